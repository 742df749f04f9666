"""The Agent in-process: built from a config, started, stopped; lock, health, lag metrics."""

from __future__ import annotations

import errno
import os
import socket
import threading
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import daemon
from inferwatch.agent.daemon import Agent, AgentLocked, take_lock
from inferwatch.agent.metrics import labels
from inferwatch.core.config import parse_config
from tests.scenario.harness import LogWriter
from tests.unit.agent.helpers import DownOutput, wait_for


def config(tmp: Path) -> str:
    (tmp / "logs").mkdir(exist_ok=True)
    return f"""
agent:
  data_dir: {tmp}/data
  scan_interval: 200ms
  batch: {{max_wait: 50ms}}
  shutdown_timeout: 5s
  inputs: [{{paths: ["{tmp}/logs/*.jsonl"], model: churn_classifier}}]
"""


def stored_ids(store: Path) -> list[str]:
    out = []
    for seg in sorted(store.glob("*/*.ndjson")):
        out += [orjson.loads(x)["ml"]["prediction"]["id"] for x in seg.read_bytes().splitlines()]
    return out


def test_local_store_gets_every_line_and_stop_checkpoints(tmp_path: Path) -> None:
    cfg = parse_config(config(tmp_path))
    writer = LogWriter(tmp_path / "logs" / "a.jsonl")
    writer.write(120)
    agent = Agent(cfg, host="test-host")
    agent.start()
    try:
        store = tmp_path / "data" / "store"
        wait_for(lambda: len(stored_ids(store)) == 120)
        lag = labels(path=str(writer.path))
        wait_for(lambda: agent.metrics.by_label("file_lag_bytes").get(lag) == 0.0)
        assert agent.health().ok
    finally:
        assert agent.stop() is True
    assert agent.stop() is True  # idempotent
    assert sorted(stored_ids(store)) == sorted(writer.written)
    registry = (tmp_path / "data" / "registry.json").read_text()
    assert str(writer.path) in registry
    assert f'"offset":{writer.path.stat().st_size}' in registry.replace(" ", "")
    # The lines name their model ("scenario"); the input's model is only the default.
    assert list((tmp_path / "data").glob("store/logs-inferwatch.scenario-default/*.ndjson"))
    take_lock(tmp_path / "data")  # released


def test_a_second_agent_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    cfg = parse_config(config(tmp_path))
    first = Agent(cfg)
    first.start()
    try:
        with pytest.raises(AgentLocked):
            Agent(cfg).start()
    finally:
        first.stop()


def test_readiness_reports_an_output_down_for_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon, "HEALTH_OUTPUT_GRACE", 0.0)
    cfg = parse_config(config(tmp_path))
    LogWriter(tmp_path / "logs" / "a.jsonl").write(3)
    agent = Agent(cfg, output=DownOutput())
    agent.start()
    try:
        wait_for(lambda: agent.shipper.down_since is not None)
        assert agent.health().ok  # alive: the spool buffers; restarting would not help
        status = agent.readiness()
        assert not status.ok
        assert "output unreachable" in status.reason and "connection refused" in status.reason
        assert agent.metrics.value("output_up") == 0
    finally:
        drained = agent.stop(timeout=0.5)
    assert drained is False  # the records stay in the spool for the next start


def test_a_full_disk_under_the_spool_is_said_once_shown_in_readiness_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from inferwatch.agent import loopthread
    from inferwatch.agent.spool import Spool

    monkeypatch.setattr(loopthread, "FAILURE_RETRY", 0.02)  # many attempts while the disk is full
    real = Spool.append
    room = threading.Event()

    def append(self: Spool, payload: bytes, items: int | None = None) -> int:
        if not room.is_set():
            raise OSError(errno.ENOSPC, "No space left on device", str(self.directory / "x.seg"))
        return real(self, payload, items)

    monkeypatch.setattr(Spool, "append", append)
    cfg = parse_config(config(tmp_path))
    writer = LogWriter(tmp_path / "logs" / "a.jsonl")
    writer.write(50)
    agent = Agent(cfg, host="test-host")
    agent.start()
    try:
        wait_for(lambda: agent.metrics.value("loop_errors_total", labels(loop="read")) >= 10)
        status = agent.readiness()
        assert not status.ok and "disk full" in status.reason and "free space" in status.reason
        assert agent.metrics.value("disk_full", labels(loop="read")) == 1
        assert agent.metrics.value("loop_failing", labels(loop="read")) == 1
        room.set()
        store = tmp_path / "data" / "store"
        wait_for(lambda: len(stored_ids(store)) == 50)
        wait_for(lambda: agent.readiness().ok)
        assert agent.metrics.value("disk_full", labels(loop="read")) == 0
    finally:
        assert agent.stop() is True
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.name.endswith("loopthread")]
    assert len(errors) == 1  # ten and more failures, one message


def test_agent_start_with_the_metrics_port_in_use_leaves_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = parse_config(
            f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  shutdown_timeout: 5s
  metrics: {{listen: "127.0.0.1:{port}"}}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
        )
        agent = Agent(cfg)
        before = {t.ident for t in threading.enumerate()}
        try:
            with pytest.raises(OSError):
                agent.start()
            started = [
                t for t in threading.enumerate() if t.ident not in before and t.name in ("read", "ship")
            ]
            alive = [t.name for t in started if t.is_alive()]
            assert alive == []
            os.close(take_lock(tmp_path / "data"))  # the lock was released
        finally:
            agent.stop(timeout=5)


def test_agent_stop_closes_the_spool_and_releases_the_lock_when_closing_the_dead_letter_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferwatch.agent.spool import Spool

    (tmp_path / "logs").mkdir()
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  shutdown_timeout: 5s
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
    )
    agent = Agent(cfg)
    agent.start()

    def fail() -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(agent.dead_letter, "close", fail)
    monkeypatch.setattr(agent.tailer, "close", fail)
    with pytest.raises(OSError):
        agent.stop(timeout=5)
    os.close(take_lock(tmp_path / "data"))  # the data_dir lock was released
    Spool(tmp_path / "data" / "spool", 1 << 20, 1 << 16, fsync=False).close()  # and the spool's


@pytest.mark.parametrize("redact", [False, True])
@pytest.mark.parametrize("configured", [None, 0, 2])
def test_automatic_parse_workers_only_while_an_input_normalizes_in_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redact: bool, configured: int | None
) -> None:
    from inferwatch.agent.fastpath import native_module

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setenv("INFERWATCH_HASH_KEY", "k")
    text = config(tmp_path) + (
        f"  parse_workers: {'null' if configured is None else configured}\n"
        + ("  redact: {hash: [inputs.user_id]}\n" if redact else "")
    )
    cfg = parse_config(text)
    normalizers = daemon.build_normalizers(cfg, "host")
    native = native_module() is not None and not redact
    expected = configured if configured is not None else (0 if native else 1)
    assert daemon.parse_workers(cfg, normalizers) == expected
