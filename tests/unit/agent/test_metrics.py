"""agent.metrics: the Prometheus text format, the progress line, and /metrics + /health over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from inferwatch.agent.metrics import HealthStatus, Metrics, MetricsServer, labels, progress_line


def test_counters_render_with_help_type_and_sorted_labels() -> None:
    m = Metrics()
    m.inc("lines_read_total", 5)
    m.inc("lines_read_total", 2)
    m.inc("dead_lettered_total", 1, labels(reason="invalid_json"))
    m.inc_many("dead_lettered_total", {"invalid_json": 2, "line_too_long": 1}, "reason")
    text = m.render()
    assert "# TYPE inferwatch_agent_lines_read_total counter\n" in text
    assert "inferwatch_agent_lines_read_total 7\n" in text
    assert 'inferwatch_agent_dead_lettered_total{reason="invalid_json"} 3\n' in text
    assert 'inferwatch_agent_dead_lettered_total{reason="line_too_long"} 1\n' in text
    # A counter never touched still shows 0 so that rate() works from the first scrape.
    assert "inferwatch_agent_documents_duplicate_total 0\n" in text


def test_gauges_set_replace_and_escape_label_values() -> None:
    m = Metrics()
    m.set("spool_bytes", 1024)
    m.set("oldest_unshipped_age_seconds", 1.5)
    m.replace("file_lag_bytes", {labels(path='/logs/a"b.jsonl'): 10.0, labels(path="/logs/c.jsonl"): 0.0})
    m.replace("file_lag_bytes", {labels(path="/logs/c.jsonl"): 3.0})  # a.jsonl went away
    text = m.render()
    assert "inferwatch_agent_spool_bytes 1024\n" in text
    assert "inferwatch_agent_oldest_unshipped_age_seconds 1.5\n" in text
    assert 'inferwatch_agent_file_lag_bytes{path="/logs/c.jsonl"} 3\n' in text
    assert 'a\\"b' not in text and "a.jsonl" not in text
    m.replace("file_lag_bytes", {labels(path='x"\\\ny'): 1.0})
    assert 'inferwatch_agent_file_lag_bytes{path="x\\"\\\\\\ny"} 1\n' in m.render()


def test_unknown_metric_name_fails_loudly() -> None:
    with pytest.raises(KeyError):
        Metrics().inc("lines_red_total")


def test_progress_line_summarises_counts() -> None:
    m = Metrics()
    m.inc("lines_read_total", 10)
    m.inc("documents_shipped_total", 8)
    m.inc("documents_duplicate_total", 1)
    m.inc("dead_lettered_total", 1, labels(reason="invalid_json"))
    m.set("output_up", 0)
    line = progress_line(m)
    assert line.startswith("read 10 lines, shipped 8 (+1 duplicates), retried 0, dead-lettered 1")
    assert line.endswith("output DOWN")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_server_serves_metrics_and_health() -> None:
    m = Metrics()
    m.inc("documents_shipped_total", 42)
    state = {"health": HealthStatus(True, "ok")}
    server = MetricsServer("127.0.0.1:0", m, lambda: state["health"])
    server.start()
    try:
        host, port = server.address
        status, body = _get(f"http://{host}:{port}/metrics")
        assert status == 200
        assert "inferwatch_agent_documents_shipped_total 42\n" in body
        status, body = _get(f"http://{host}:{port}/health")
        assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"})
        state["health"] = HealthStatus(False, "output unreachable for 45s: connection refused")
        status, body = _get(f"http://{host}:{port}/health")
        assert status == 503
        assert json.loads(body)["reason"] == "output unreachable for 45s: connection refused"
        assert _get(f"http://{host}:{port}/nope")[0] == 404
    finally:
        server.stop()
