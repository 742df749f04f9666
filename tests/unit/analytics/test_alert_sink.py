from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from inferwatch.analytics.alerts import AlertState, IncidentState
from inferwatch.analytics.alerts import index as alert_index
from inferwatch.analytics.alerts.sink import (
    ALERTS_INDEX,
    HISTORY_STREAM,
    INCIDENTS_INDEX,
    ElasticsearchAlertSink,
    LocalAlertSink,
    WriteClock,
)
from inferwatch.analytics.alerts.window import AlertUpdate, apply_findings
from inferwatch.analytics.model import Finding, Status, Window

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def window(i: int) -> Window:
    return Window(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1))


def finding(i: int, feature: str = "inputs.age") -> Finding:
    return Finding(
        detector="null_surge",
        model="churn",
        version="1",
        feature=feature,
        status=Status.FIRING,
        severity="warning",
        message=f"{feature}: 12% null vs 1% in training",
        window=window(i),
        strong=True,
    )


def changes_of(windows: list[list[Finding]]) -> list[AlertUpdate]:
    states: dict[str, AlertState] = {}
    incidents: dict[str, IncidentState] = {}
    out = []
    for i, fs in enumerate(windows):
        states, incidents, update = apply_findings(states, incidents, fs, window(i).end, [("churn", "1")])
        out.append(update)
    return out


def test_local_sink_keeps_one_document_per_alert_and_incident_and_history_per_incident(
    tmp_path: Path,
) -> None:
    sink = LocalAlertSink(tmp_path, fsync=False)
    opened, updated = changes_of([[finding(0)], [finding(1), finding(1, "inputs.zip")]])
    sink.write(opened, window(0).end.isoformat())
    sink.write(updated, window(1).end.isoformat())
    alerts = sink.alerts()
    assert len(alerts) == 2
    doc = alerts[opened.alerts[0].state.id]
    assert doc["status"] == "open" and doc["windows"] == 2
    assert doc["message"] == "inputs.age: 12% null vs 1% in training"
    (incident,) = sink.incidents().values()
    assert {d["incident"]["id"] for d in alerts.values()} == {incident["incident"]["id"]}
    assert incident["incident"]["alerts"] == 2
    assert (
        incident["message"]
        == "missing values surged on inputs.age; missing values surged on inputs.zip follows"
    )
    # the history is per incident: it opened once, the second alert joined it (no notification)
    assert [h["event"]["action"] for h in sink.history()] == ["opened", "joined"]
    assert {h["event"]["kind"] for h in sink.history()} == {"incident"}


def test_local_sink_replaying_the_same_changes_writes_nothing_new(tmp_path: Path) -> None:
    sink = LocalAlertSink(tmp_path, fsync=False)
    (opened,) = changes_of([[finding(0)]])
    sink.write(opened, window(0).end.isoformat())
    paths = (sink.alerts_path, sink.incidents_path, sink.history_path)
    before = [p.read_bytes() for p in paths]
    sink.write(opened, window(0).end.isoformat())
    assert [p.read_bytes() for p in paths] == before
    assert len(LocalAlertSink(tmp_path).history()) == 1


def test_local_sink_with_nothing_to_write_creates_no_files(tmp_path: Path) -> None:
    sink = LocalAlertSink(tmp_path / "alerts")
    sink.write(AlertUpdate(), window(0).end.isoformat())
    assert sink.alerts() == {} and sink.history() == []
    assert not sink.alerts_path.exists()


class FakeClient:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls: list[dict[str, Any]] = []

    def bulk(self, operations: list[dict[str, Any]], refresh: str) -> dict[str, Any]:
        self.calls.append({"operations": operations, "refresh": refresh})
        items = []
        for op, status in zip(operations[::2], self.statuses, strict=True):
            ((name, meta),) = op.items()
            items.append({name: {"_id": meta["_id"], "status": status}})
        return {"errors": any(s >= 300 for s in self.statuses), "items": items}


def test_es_sink_indexes_alerts_and_incidents_by_id_and_creates_incident_history_events() -> None:
    (opened,) = changes_of([[finding(0)]])
    client = FakeClient([201, 201, 201])
    ElasticsearchAlertSink(client).write(opened, window(0).end.isoformat())
    ops = client.calls[0]["operations"]
    (event,) = opened.incidents
    assert ops[0] == {"index": {"_index": ALERTS_INDEX, "_id": opened.alerts[0].state.id}}
    assert ops[1]["status"] == "open" and ops[1]["incident"]["id"] == event.incident.id
    assert ops[2] == {"index": {"_index": INCIDENTS_INDEX, "_id": event.incident.id}}
    assert ops[4] == {"create": {"_index": HISTORY_STREAM, "_id": event.history_id}}
    assert ops[5]["event"]["action"] == "opened" and ops[5]["event"]["kind"] == "incident"
    assert ops[5]["severity"] == "warning" and ops[5]["detector"] == "null_surge"


def test_es_sink_accepts_a_replayed_history_event_as_duplicate() -> None:
    (opened,) = changes_of([[finding(0)]])
    ElasticsearchAlertSink(FakeClient([200, 200, 409])).write(opened, window(0).end.isoformat())


def test_es_sink_raises_when_an_alert_document_is_refused() -> None:
    (opened,) = changes_of([[finding(0)]])
    with pytest.raises(RuntimeError, match="refused"):
        ElasticsearchAlertSink(FakeClient([400, 201, 201])).write(opened, window(0).end.isoformat())


def test_es_sink_sends_nothing_without_changes() -> None:
    client = FakeClient([])
    ElasticsearchAlertSink(client).write(AlertUpdate(), window(0).end.isoformat())
    assert client.calls == []


def test_es_sink_sends_no_nan_or_infinity_that_elasticsearch_cannot_parse() -> None:
    inf_finding = dataclasses.replace(
        finding(0),
        effect=math.inf,
        statistic=math.nan,
        p_value=0.001,
        observed=MappingProxyType({"ratio": -math.inf, "shares": [0.5, math.nan]}),
    )
    _, _, opened = apply_findings({}, {}, [inf_finding], window(0).end, [("churn", "1")])
    client = FakeClient([201, 201, 201])
    ElasticsearchAlertSink(client).write(opened, window(0).end.isoformat())
    ops = client.calls[0]["operations"]
    for doc in ops[1::2]:
        json.dumps(doc, allow_nan=False)  # what Elasticsearch's parser accepts
    doc = ops[1]
    assert doc["effect"] is None and doc["statistic"]["value"] is None
    assert doc["p_value"] == 0.001
    assert doc["observed"] == {"ratio": None, "shares": [0.5, None]}


def test_a_history_line_torn_by_a_crash_is_dropped_and_the_window_is_written_again(tmp_path: Path) -> None:
    """A crash in the middle of the history append leaves half a line. The replay of that
    window must write the event again (whole, on its own line), not fail on every write."""
    sink = LocalAlertSink(tmp_path, fsync=False)
    opened, joined = changes_of([[finding(0)], [finding(1), finding(1, "inputs.zip")]])
    sink.write(opened, window(0).end.isoformat())
    whole = sink.history_path.read_bytes()
    torn = json.dumps({"history_id": joined.incidents[0].history_id, "event": {"action": "joined"}}).encode()
    sink.history_path.write_bytes(whole + torn[:40])
    sink.write(joined, window(1).end.isoformat())  # the replay after the restart
    assert [h["event"]["action"] for h in sink.history()] == ["opened", "joined"]
    assert sink.history_path.read_bytes().startswith(whole)
    assert sink.history_path.read_bytes().endswith(b"\n")


def test_es_sink_marks_alert_documents_with_partial_updates_and_skips_missing_ones() -> None:
    client = FakeClient([200, 404])
    found = ElasticsearchAlertSink(client).mark({"a1": {"acknowledged": True}, "a2": {"acknowledged": True}})
    assert found == 1
    ops = client.calls[0]["operations"]
    assert ops[0] == {"update": {"_index": ALERTS_INDEX, "_id": "a1"}}
    assert ops[1] == {"doc": {"alert": {"acknowledged": True}}}
    with pytest.raises(RuntimeError, match="refused"):
        ElasticsearchAlertSink(FakeClient([400])).mark({"a1": {"muted_until": None}})


def test_local_sink_marks_documents_in_place(tmp_path: Path) -> None:
    sink = LocalAlertSink(tmp_path, fsync=False)
    (opened,) = changes_of([[finding(0)]])
    sink.write(opened, window(0).end.isoformat())
    alert_id = opened.alerts[0].state.id
    assert sink.mark({alert_id: {"acknowledged": True}, "unknown": {"acknowledged": True}}) == 1
    doc = sink.alerts()[alert_id]
    assert doc["alert"]["acknowledged"] is True and doc["alert"]["id"] == alert_id


def _clock_at(*times: datetime) -> WriteClock:
    it = iter(times)
    return WriteClock(lambda: next(it))


def test_history_events_carry_their_write_time_mapped_as_a_date(tmp_path: Path) -> None:
    """event.created is when the event was written (the Kibana rule's time field), not the end of
    the window it describes (@timestamp), which can be long before or shared by many events."""
    written = T0 + timedelta(hours=5, seconds=12.3456)
    (opened,) = changes_of([[finding(0)]])
    client = FakeClient([201, 201, 201])
    ElasticsearchAlertSink(client, clock=_clock_at(written)).write(opened, window(0).end.isoformat())
    history = client.calls[0]["operations"][5]
    assert history["@timestamp"] == window(0).end.isoformat()
    assert history["event"] == {"action": "opened", "kind": "incident", "created": "2026-11-22T15:00:12.345Z"}
    for doc in client.calls[0]["operations"][1:4:2]:  # the alert and incident documents: no write time
        assert "created" not in (doc.get("event") or {})

    local = LocalAlertSink(tmp_path, fsync=False, clock=_clock_at(written))
    local.write(opened, window(0).end.isoformat())
    (line,) = local.history()
    assert line["event"]["created"] == "2026-11-22T15:00:12.345Z"

    event = alert_index.alert_properties()["event"]["properties"]
    assert event["created"] == {"type": "date"}
    history_mapping = alert_index.history_template("365d")["template"]["mappings"]["properties"]
    assert history_mapping["event"]["properties"]["created"] == {"type": "date"}


def test_two_writes_in_one_millisecond_get_distinct_increasing_write_times() -> None:
    same = T0 + timedelta(microseconds=250)
    first, second = changes_of([[finding(0)], [finding(1, "inputs.zip")]])
    client = FakeClient([])
    sink = ElasticsearchAlertSink(client, clock=_clock_at(same, same))
    for update, w in ((first, window(0)), (second, window(1))):
        client.statuses = [201] * (len(update.alerts) + 2 * len(update.incidents))
        sink.write(update, w.end.isoformat())
    created = [
        doc["event"]["created"]
        for call in client.calls
        for meta, doc in zip(call["operations"][::2], call["operations"][1::2], strict=True)
        if "create" in meta
    ]
    assert created == ["2026-11-22T10:00:00.000Z", "2026-11-22T10:00:00.001Z"]
