"""The alert index mappings and templates are valid Elasticsearch shapes (checked offline)."""

from __future__ import annotations

from inferwatch.analytics.alerts import index as alert_index


def test_flattened_detector_values_cannot_exceed_the_lucene_term_limit() -> None:
    """A flattened field indexes each leaf as a keyword term with no ``ignore_above`` by default;
    a leaf over 32,766 bytes is an "immense term" and refuses the whole document."""
    props = alert_index.alert_properties()
    for name in ("observed", "expected"):
        assert props[name] == {"type": "flattened", "ignore_above": 1024}
    for name in ("key", "message", "examples"):
        # keyword terms are bytes: 4 UTF-8 bytes per character at most
        assert props[name]["type"] == "keyword" and props[name]["ignore_above"] * 4 <= 32766


def test_history_template_is_a_data_stream_with_its_lifecycle_in_the_template() -> None:
    body = alert_index.history_template("365d")
    assert body["data_stream"] == {}
    assert body["index_patterns"] == ["logs-inferwatch_alerts.history-*"]
    assert body["template"]["lifecycle"] == {"data_retention": "365d"}
    assert body["template"]["settings"]["index"]["mode"] == "standard"
    assert body["template"]["mappings"]["properties"]["@timestamp"] == {"type": "date"}
    assert "lifecycle" not in alert_index.history_template(None)["template"]
