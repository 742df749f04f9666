"""--log-format json / $INFERWATCH_LOG_FORMAT: the agent's and the worker's own logs as ECS
documents, one per line, from real processes."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inferwatch.core.logs import formatter
from tests.scenario.harness import free_port
from tests.unit.analytics.test_cli import CONFIG, setup

ECS_KEYS = {"@timestamp", "log.level", "message", "ecs.version"}


def documents(stderr: bytes) -> list[dict[str, Any]]:
    """Every stderr line, which must each be one JSON object with the ECS base fields."""
    docs = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    for doc in docs:
        assert set(doc) >= ECS_KEYS, doc
        assert doc["log"]["logger"] and doc["process"]["pid"] and doc["service"]["name"] == "inferwatch"
    return docs


def run_until(args: list[str], env: dict[str, str], done: Any, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.core", *args], stdout=subprocess.DEVNULL, stderr=err, env=env
        )
        try:
            deadline = time.monotonic() + 60
            while not done():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)  # polling a condition with a deadline, not synchronisation by sleep
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return proc


def test_the_agent_logs_ecs_json_with_log_format_json(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text(
        f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  shutdown_timeout: 5s
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
""",
        encoding="utf-8",
    )
    log = tmp_path / "agent.log"
    env = {**os.environ, "INFERWATCH_LOG_LEVEL": "info"}
    env.pop("INFERWATCH_LOG_FORMAT", None)

    def up() -> bool:  # the agent logs "started" once its signal handlers are in place
        return b" started: " in log.read_bytes()

    proc = run_until(["--log-format", "json", "agent", "run", "-c", str(cfg)], env, up, log)
    assert proc.returncode == 0, log.read_text()
    docs = documents(log.read_bytes())
    started = [d for d in docs if d["message"].startswith("agent ") and " started: " in d["message"]]
    assert len(started) == 1, docs
    assert started[0]["log.level"] == "info" and started[0]["log"]["logger"] == "inferwatch.agent.daemon"
    assert started[0]["process"]["pid"] == proc.pid
    assert started[0]["@timestamp"].endswith("Z")
    assert any(d["message"].startswith("stopped: ") for d in docs)


def test_the_worker_logs_ecs_json_with_the_environment_variable(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    es = f"elasticsearch:\n  hosts: ['http://127.0.0.1:{free_port()}']\n  request_timeout: 1s\n"
    cfg.write_text(CONFIG.replace("interval: 1h", "interval: 1s") + es, encoding="utf-8")
    log = tmp_path / "worker.log"
    env = {**os.environ, "INFERWATCH_LOG_LEVEL": "info", "INFERWATCH_LOG_FORMAT": "json"}
    proc = run_until(["analytics", "run", "-c", str(cfg)], env, lambda: b"failed" in log.read_bytes(), log)
    assert proc.returncode == 0, log.read_text()
    docs = documents(log.read_bytes())
    failed = [d for d in docs if d["log.level"] == "error" and "job evaluate:churn failed" in d["message"]]
    assert failed and failed[0]["log"]["logger"] == "inferwatch.analytics.scheduler", docs


def test_an_exception_is_in_error_fields_and_text_stays_the_default(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    logger = logging.getLogger("inferwatch.test_logs")
    logger.addHandler(handler)
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            logger.exception("spool write failed")
        handler.setFormatter(formatter("text"))
        logger.warning("plain")
    finally:
        logger.removeHandler(handler)
    doc_line, text_line = stream.getvalue().splitlines()[0], stream.getvalue().splitlines()[-1]
    doc = json.loads(doc_line)
    assert doc["message"] == "spool write failed" and doc["log.level"] == "error"
    assert doc["error"]["type"] == "OSError"
    assert "No space left on device" in doc["error"]["message"]
    assert "raise OSError" in doc["error"]["stack_trace"]
    assert text_line.endswith(" WARNING inferwatch.test_logs: plain")


def test_an_unknown_log_format_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inferwatch.core", "--log-format", "xml", "agent", "--help"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2 and b"--log-format" in proc.stderr


def test_an_exception_escaping_a_thread_is_one_json_document() -> None:
    code = (
        "import threading\n"
        "from inferwatch.core.logs import configure\n"
        "configure('info', 'json')\n"
        "def boom():\n"
        "    raise RuntimeError('disk gone')\n"
        "t = threading.Thread(target=boom, name='ship')\n"
        "t.start(); t.join()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (doc,) = documents(proc.stderr)
    assert doc["message"] == "uncaught exception in thread ship" and doc["log.level"] == "critical"
    assert doc["error"]["type"] == "RuntimeError" and doc["error"]["message"] == "disk gone"
