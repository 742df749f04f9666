"""agent.metrics over real HTTP: prometheus_client's exposition of the agent's metrics (label sets
initialised, histograms, process_*, build_info), the progress line, and /livez, /health, /readyz."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferwatch.agent import daemon
from inferwatch.agent.daemon import Agent
from inferwatch.agent.measured import MeasuredOutput
from inferwatch.agent.metrics import (
    DEAD_LETTER_REASONS,
    METRICS,
    HealthStatus,
    Metrics,
    MetricsServer,
    labels,
    progress_line,
)
from inferwatch.agent.model import ItemResult, Outcome
from inferwatch.agent.outputs import OutputUnavailable
from inferwatch.core.config import parse_config
from tests.scenario.harness import LogWriter
from tests.unit.agent.helpers import DownOutput, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, parsed by prometheus_client's own parser (so the text is
    valid for a real scraper): (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_counters_render_with_help_type_and_labels() -> None:
    m = Metrics()
    m.inc("lines_read_total", 5)
    m.inc("lines_read_total", 2)
    m.inc("dead_lettered_total", 1, labels(reason="invalid_json"))
    m.inc_many("dead_lettered_total", {"invalid_json": 2, "line_too_long": 1}, "reason")
    m.inc("dead_lettered_total", 1, labels(reason="document_parsing_exception"))  # from Elasticsearch
    text = m.render()
    assert "# TYPE inferwatch_agent_lines_read_total counter\n" in text
    assert "# HELP inferwatch_agent_lines_read_total Lines read from log files" in text
    got = samples(text)
    assert got["inferwatch_agent_lines_read_total", ()] == 7
    assert got["inferwatch_agent_dead_lettered_total", (("reason", "invalid_json"),)] == 3
    assert got["inferwatch_agent_dead_lettered_total", (("reason", "line_too_long"),)] == 1
    assert got["inferwatch_agent_dead_lettered_total", (("reason", "document_parsing_exception"),)] == 1
    # A counter never touched still shows 0 so that rate() works from the first scrape.
    assert got["inferwatch_agent_documents_duplicate_total", ()] == 0


def test_label_sets_exist_from_the_start() -> None:
    """Before any event: every reason the agent decides is a series at 0 (no unlabelled
    dead_lettered_total that vanishes when the first reason appears), spool_full is 0, and
    bulk_requests_total has its ok and too_large series."""
    got = samples(Metrics().render())
    for reason in DEAD_LETTER_REASONS:
        assert got["inferwatch_agent_dead_lettered_total", (("reason", reason),)] == 0
    assert ("inferwatch_agent_dead_lettered_total", ()) not in got
    for reason in (
        "dead_letter_index",
        "dead_letter_write_failed",
        "spool_records_lost",
        "truncated_while_away",
    ):
        assert got["inferwatch_agent_dropped_total", (("reason", reason),)] == 0
    assert got["inferwatch_agent_spool_full", ()] == 0
    assert got["inferwatch_agent_files_open", ()] == 0
    assert got["inferwatch_agent_loop_errors_total", (("loop", "read"),)] == 0
    assert got["inferwatch_agent_loop_errors_total", (("loop", "ship"),)] == 0
    assert got["inferwatch_agent_bulk_requests_total", (("result", "ok"), ("status", ""))] == 0
    # output_up means nothing before the first request: no sample, but the family is declared.
    assert not [k for k in got if k[0] == "inferwatch_agent_output_up"]


def test_every_dead_letter_reason_the_agent_writes_is_initialised() -> None:
    """The reasons written as literals in the agent's code are the ones initialised at 0."""
    import re

    src = Path(daemon.__file__).parent
    found: set[str] = set()
    for path in src.rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'Rejected\(\s*"([a-z_]+)"', text))
        found |= set(re.findall(r'_dead_letter\(\s*"([a-z_]+)"', text))
        found |= set(re.findall(r'"dead_lettered_total", 1, labels\(reason="([a-z_]+)"\)', text))
    assert found and found <= set(DEAD_LETTER_REASONS), found - set(DEAD_LETTER_REASONS)


def test_process_build_info_and_histograms() -> None:
    m = Metrics()
    m.observe("bulk_request_duration_seconds", 0.2)
    m.observe("bulk_request_documents", 500)
    got = samples(m.render())
    assert got["process_cpu_seconds_total", ()] > 0
    assert got["process_resident_memory_bytes", ()] > 0
    assert got["process_open_fds", ()] > 0
    build = [k for k in got if k[0] == "inferwatch_agent_build_info"]
    assert len(build) == 1 and dict(build[0][1])["version"] and got[build[0]] == 1
    assert got["inferwatch_agent_bulk_request_duration_seconds_bucket", (("le", "0.1"),)] == 0
    assert got["inferwatch_agent_bulk_request_duration_seconds_bucket", (("le", "0.25"),)] == 1
    assert got["inferwatch_agent_bulk_request_duration_seconds_count", ()] == 1
    assert got["inferwatch_agent_bulk_request_documents_bucket", (("le", "500.0"),)] == 1
    assert got["inferwatch_agent_bulk_request_documents_bucket", (("le", "250.0"),)] == 0
    assert got["inferwatch_agent_bulk_request_bytes_count", ()] == 0


def test_gauges_set_replace_and_escape_label_values() -> None:
    m = Metrics()
    m.set("spool_bytes", 1024)
    m.set("oldest_unshipped_age_seconds", 1.5)
    m.replace("file_lag_bytes", {labels(path='/logs/a"b.jsonl'): 10.0, labels(path="/logs/c.jsonl"): 0.0})
    m.replace("file_lag_bytes", {labels(path="/logs/c.jsonl"): 3.0})  # a.jsonl went away
    text = m.render()
    got = samples(text)
    assert got["inferwatch_agent_spool_bytes", ()] == 1024
    assert got["inferwatch_agent_oldest_unshipped_age_seconds", ()] == 1.5
    assert got["inferwatch_agent_file_lag_bytes", (("path", "/logs/c.jsonl"),)] == 3
    assert "a.jsonl" not in text
    m.replace("file_lag_bytes", {labels(path='x"\\\ny'): 1.0})
    text = m.render()
    assert 'inferwatch_agent_file_lag_bytes{path="x\\"\\\\\\ny"} 1.0\n' in text
    assert samples(text)["inferwatch_agent_file_lag_bytes", (("path", 'x"\\\ny'),)] == 1


def test_unknown_metric_or_label_name_fails_loudly() -> None:
    with pytest.raises(KeyError):
        Metrics().inc("lines_red_total")
    with pytest.raises(KeyError, match="no label 'raeson'"):
        Metrics().inc("dead_lettered_total", 1, labels(raeson="invalid_json"))


def test_progress_line_summarises_counts() -> None:
    m = Metrics()
    m.inc("lines_read_total", 10)
    m.inc("documents_shipped_total", 8)
    m.inc("documents_duplicate_total", 1)
    m.inc("dead_lettered_total", 1, labels(reason="invalid_json"))
    assert progress_line(m).endswith("output up")  # not known yet
    m.set("output_up", 0)
    line = progress_line(m)
    assert line.startswith("read 10 lines, shipped 8 (+1 duplicates), retried 0, dead-lettered 1")
    assert line.endswith("output DOWN")


def test_measured_output_observes_every_request_answered_or_failed() -> None:
    class Flaky:
        calls = 0

        def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
            self.calls += 1
            if self.calls == 2:
                raise OutputUnavailable("connection refused")
            return [ItemResult(Outcome.CREATED, 201)] * items

        def check(self) -> str:
            return "flaky"

        def close(self) -> None:
            pass

    m = Metrics()
    ticks = iter([0.0, 0.03, 1.0, 3.0])
    out = MeasuredOutput(Flaky(), m, clock=lambda: next(ticks))
    assert len(out.send(b"x" * 2000, 7)) == 7
    with pytest.raises(OutputUnavailable):
        out.send(b"y" * 10, 3000)
    got = samples(m.render())
    assert got["inferwatch_agent_bulk_request_duration_seconds_count", ()] == 2
    assert got["inferwatch_agent_bulk_request_duration_seconds_sum", ()] == pytest.approx(2.03)
    assert got["inferwatch_agent_bulk_request_duration_seconds_bucket", (("le", "0.05"),)] == 1
    assert got["inferwatch_agent_bulk_request_documents_sum", ()] == 3007
    assert got["inferwatch_agent_bulk_request_documents_bucket", (("le", "10.0"),)] == 1
    assert got["inferwatch_agent_bulk_request_bytes_bucket", (("le", "4096.0"),)] == 2
    assert out.check() == "flaky"


def test_http_server_serves_metrics_liveness_and_readiness() -> None:
    m = Metrics()
    m.inc("documents_shipped_total", 42)
    state = {"live": HealthStatus(True, "ok"), "ready": HealthStatus(True, "ok")}
    server = MetricsServer("127.0.0.1:0", m, lambda: state["live"], lambda: state["ready"])
    server.start()
    try:
        base = "http://{}:{}".format(*server.address)
        status, content_type, body = _get(base + "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        assert samples(body)["inferwatch_agent_documents_shipped_total", ()] == 42
        # A scraper that asks for OpenMetrics gets it (prometheus_client's content negotiation).
        status, content_type, body = _get(base + "/metrics", accept="application/openmetrics-text")
        assert status == 200 and content_type.startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n")
        for path in ("/livez", "/health", "/readyz"):
            status, _, body = _get(base + path)
            assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"})
        state["ready"] = HealthStatus(False, "output unreachable for 45s: connection refused")
        status, _, body = _get(base + "/readyz")
        assert status == 503
        assert json.loads(body)["reason"] == "output unreachable for 45s: connection refused"
        assert _get(base + "/livez")[0] == 200 and _get(base + "/health")[0] == 200
        state["live"] = HealthStatus(False, "the read loop is not running")
        assert _get(base + "/health")[0] == 503 and _get(base + "/livez")[0] == 503
        assert _get(base + "/nope")[0] == 404
    finally:
        server.stop()


def test_an_output_outage_is_not_ready_but_alive_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent buffers into its spool while the output is down: /readyz says 503 with the
    reason, /livez and /health stay 200 (a liveness probe must not restart it), and the metrics
    show the failed requests in the latency histogram."""
    monkeypatch.setattr(daemon, "HEALTH_OUTPUT_GRACE", 0.0)
    (tmp_path / "logs").mkdir()
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  batch: {{max_wait: 50ms}}
  shutdown_timeout: 5s
  metrics: {{listen: "127.0.0.1:0"}}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: churn_classifier}}]
"""
    )
    LogWriter(tmp_path / "logs" / "a.jsonl").write(3)
    agent = Agent(cfg, output=DownOutput())
    agent.start()
    try:
        assert agent._server is not None
        base = "http://{}:{}".format(*agent._server.address)
        wait_for(lambda: agent.shipper.down_since is not None)
        status, _, body = _get(base + "/readyz")
        assert status == 503
        assert "output unreachable" in json.loads(body)["reason"] and "connection refused" in body
        for path in ("/livez", "/health"):
            status, _, body = _get(base + path)
            assert (status, json.loads(body)) == (200, {"status": "ok", "reason": "ok"}), path
        got = samples(_get(base + "/metrics")[2])
        assert got["inferwatch_agent_output_up", ()] == 0
        assert got["inferwatch_agent_bulk_request_duration_seconds_count", ()] >= 1
        assert got["inferwatch_agent_spool_pending_records", ()] >= 0
    finally:
        agent.stop(timeout=0.5)


def test_every_declared_metric_is_exposed() -> None:
    names = {family.name for family in text_string_to_metric_families(Metrics().render())}
    for name, spec in METRICS.items():
        expected = "inferwatch_agent_" + (name.removesuffix("_total") if spec.kind == "counter" else name)
        assert expected in names, expected


def test_metrics_server_closes_a_client_that_sends_nothing() -> None:
    server = MetricsServer("127.0.0.1:0", Metrics(), lambda: HealthStatus(True, "ok"), request_timeout=0.3)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=10) as idle:
            assert idle.recv(1024) == b""  # closed by the server, not held open forever
    finally:
        server.stop()


def test_metrics_server_listens_on_ipv6() -> None:
    server = MetricsServer("[::1]:0", Metrics(), lambda: HealthStatus(True, "ok"))
    server.start()
    try:
        port = server.address[1]
        with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert b"inferwatch_agent_lines_read_total 0" in resp.read()
    finally:
        server.stop()


def test_metrics_concurrent_scrapes_and_stop_ends_the_thread() -> None:
    metrics = Metrics()
    server = MetricsServer("127.0.0.1:0", metrics, lambda: HealthStatus(False, "output down"))
    server.start()
    host, port = server.address
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def scrape() -> None:
        for _ in range(20):
            metrics.inc("lines_read_total")
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp, lock:
                results.append((resp.status, resp.read()))

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 160 and all(status == 200 for status, _ in results)
    assert all(
        body.endswith(b"\n") and b"# TYPE inferwatch_agent_output_up gauge" in body for _, body in results
    )
    try:
        urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10)
        raise AssertionError("an unhealthy agent answers 503")
    except urllib.error.HTTPError as e:
        assert e.code == 503 and orjson.loads(e.read()) == {"status": "unhealthy", "reason": "output down"}
    names = {t.name for t in threading.enumerate()}
    assert "metrics-http" in names
    server.stop()
    assert "metrics-http" not in {t.name for t in threading.enumerate()}
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_metrics_port_in_use_is_an_oserror_at_construction() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            MetricsServer(f"127.0.0.1:{port}", Metrics(), lambda: HealthStatus(True, "ok"))
