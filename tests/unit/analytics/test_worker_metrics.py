"""The worker's endpoint (analytics.metrics.listen), over real HTTP against a real
``inferwatch analytics run`` process: evaluations, findings and alert changes by detector,
documents evaluated, errors; /livez and /readyz."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.scenario.harness import free_port
from tests.unit.analytics.test_cli import CONFIG, invoke, setup, write_store

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base: str) -> Samples | None:
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_until(
    cond: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)  # polling a condition with a deadline, not synchronisation by sleep


@contextmanager
def worker(tmp_path: Path, config: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text(config, encoding="utf-8")
    log = tmp_path / "worker.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.core", "analytics", "run", "-c", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "INFERWATCH_LOG_LEVEL": "info"},
        )
        try:
            yield proc, log
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def with_metrics(port: int, extra: str = "") -> str:
    return CONFIG.replace("interval: 1h", f'interval: 1s\n  metrics: {{listen: "127.0.0.1:{port}"}}') + extra


def test_the_worker_serves_its_evaluations_findings_and_alerts(tmp_path: Path) -> None:
    setup(tmp_path)
    code, _, stderr = invoke(
        "baseline", "build", "-c", str(tmp_path / "inferwatch.yml"), "-m", "churn", "-v", "1",
        "--data", str(tmp_path / "train.csv"),
    )  # fmt: skip
    assert code == 0, stderr
    # 250 documents in the last hour, 20 of them with a country the baseline never saw.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    write_store(tmp_path, ["DE"] * 150 + ["FR"] * 80 + ["XX"] * 20, start)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    before = time.time()
    with worker(tmp_path, with_metrics(port)) as (proc, log):
        ok = ("inferwatch_analytics_evaluations_total", (("model", "churn"), ("result", "ok")))
        wait_until(lambda: (scrape(base) or {}).get(ok, 0) >= 1, proc, log)
        got = scrape(base)
        assert got is not None
        assert got["inferwatch_analytics_evaluations_total", (("model", "churn"), ("result", "error"))] == 0
        assert got["inferwatch_analytics_documents_evaluated_total", (("model", "churn"),)] >= 250
        firing = (
            "inferwatch_analytics_findings_total",
            (("detector", "unseen_category"), ("status", "firing")),
        )
        assert got[firing] >= 1
        opened = (
            "inferwatch_analytics_alert_changes_total",
            (("detector", "unseen_category"), ("transition", "opened")),
        )
        assert got[opened] == 1  # later windows update the open alert, they do not open it again
        assert got["inferwatch_analytics_last_evaluation_timestamp_seconds", (("model", "churn"),)] >= before
        assert got["inferwatch_analytics_last_evaluation_duration_seconds", (("model", "churn"),)] > 0
        assert got["inferwatch_analytics_evaluation_duration_seconds_count", ()] >= 1
        assert got["process_resident_memory_bytes", ()] > 0
        assert [k for k in got if k[0] == "inferwatch_analytics_build_info"]
        assert get(base + "/livez") == (200, {"status": "ok", "reason": "ok"})
        assert get(base + "/health") == (200, {"status": "ok", "reason": "ok"})
        assert get(base + "/readyz") == (200, {"status": "ok", "reason": "ok"})


def test_an_elasticsearch_outage_makes_the_worker_unready_not_dead(tmp_path: Path) -> None:
    setup(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    es = f"elasticsearch:\n  hosts: ['http://127.0.0.1:{free_port()}']\n  request_timeout: 1s\n"
    with worker(tmp_path, with_metrics(port, es)) as (proc, log):
        error = ("inferwatch_analytics_evaluations_total", (("model", "churn"), ("result", "error")))
        wait_until(lambda: (scrape(base) or {}).get(error, 0) >= 1, proc, log)
        got = scrape(base)
        assert got is not None
        errors = [k for k in got if k[0] == "inferwatch_analytics_evaluation_errors_total" and got[k] >= 1]
        assert errors and dict(errors[0][1])["model"] == "churn", errors
        status, body = get(base + "/readyz")
        assert status == 503 and body["reason"].startswith("the last evaluation of churn failed: "), body
        assert get(base + "/livez") == (200, {"status": "ok", "reason": "ok"})


def test_a_metrics_address_in_use_fails_before_the_worker_starts(tmp_path: Path) -> None:
    setup(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "inferwatch.yml"
        cfg.write_text(with_metrics(port), encoding="utf-8")
        code, _, stderr = invoke("analytics", "run", "-c", str(cfg))
    assert code == 1
    assert f"analytics.metrics.listen 127.0.0.1:{port}" in stderr and "fix:" in stderr
    assert not list((tmp_path / "data").glob("analytics-state/*.json"))  # no evaluation ran
