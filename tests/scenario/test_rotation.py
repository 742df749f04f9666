"""Rotation as the real tools do it, and what a crash costs in replays: the daemon as a
subprocess against the fake bulk endpoint, counting the exact ids stored and the replays (409s)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import threading
from pathlib import Path

import orjson
import pytest

from tests.fakes.bulk_server import BulkServer
from tests.scenario.harness import (
    AgentProcess,
    LogWriter,
    assert_exactly_once,
    delivered,
    line,
    make_agent,
    wait_delivered,
    wait_until,
)

pytestmark = pytest.mark.scenario

DEADLINE = 60.0
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


def ids_in(paths: list[Path]) -> set[str]:
    """The prediction ids of the complete lines in these files (gzip ones decompressed)."""
    out: set[str] = set()
    for p in paths:
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        for row in data.split(b"\n")[:-1]:
            if row:
                out.add(orjson.loads(row)["prediction_id"])
    return out


def logrotate(tmp: Path, log: Path, *options: str) -> None:
    conf = tmp / "logrotate.conf"
    body = "\n".join(["rotate 1000", "missingok", "nodateext", *options])
    conf.write_text(f"{log} {{\n{body}\n}}\n")
    subprocess.run([LOGROTATE, "-f", "-s", str(tmp / "logrotate.state"), str(conf)], check=True)


def test_copytruncate_after_reading_past_the_copy_replays_nothing(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    """Lines read between the copy and the truncate: the copy holds nothing unread, so it is not
    read again (it was: the whole copy, answered 409) and nothing is counted as dropped."""
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    for i in range(3):
        writer.write(500)
        wait_delivered(server, writer.written, DEADLINE, agent)
        copy = writer.path.with_name(f"{writer.path.name}.{i + 1}")
        shutil.copyfile(writer.path, copy)  # logrotate's copy ...
        writer.write(100)  # ... lines written and read before its truncate
        wait_delivered(server, writer.written, DEADLINE, agent)
        writer.truncate()
    writer.write(50)
    wait_delivered(server, writer.written, DEADLINE, agent)
    wait_until(lambda: agent.metric("file_lag_bytes") == 0, DEADLINE, "no lag")
    assert agent.metric("dropped_total") == 0
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    assert server.stats()["conflicts"] == 0


def test_real_logrotate_copytruncate_under_load(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    """logrotate copytruncate while lines arrive: every line the files hold is stored once, no
    line is read twice (no 409), and a line is missing only if logrotate itself lost it (written
    between its copy and its truncate, before the agent read it)."""
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(10)
    agent.start()
    stop = threading.Event()

    def write_forever() -> None:
        while not stop.is_set():
            writer.write(20)  # about 2000 lines/s
            stop.wait(0.01)

    t = threading.Thread(target=write_forever, daemon=True)
    t.start()
    try:
        for _ in range(8):
            mark = len(writer.written) + 1000
            wait_until(lambda: len(writer.written) >= mark, DEADLINE, "more lines")  # noqa: B023
            logrotate(tmp_path, writer.path, "copytruncate")
    finally:
        stop.set()
        t.join()
    on_disk = ids_in(sorted(agent.logs.glob("preds.jsonl*")))
    wait_delivered(server, on_disk, DEADLINE, agent)
    wait_until(lambda: agent.metric("file_lag_bytes") == 0, DEADLINE, "no lag")
    assert agent.stop() == 0
    got = delivered(server)
    assert not [k for k, n in got.items() if n > 1]
    assert set(got) <= set(writer.written)
    assert on_disk <= set(got)
    stats = server.stats()
    print(
        f"logrotate copytruncate x8: {len(writer.written)} written, {len(on_disk)} on disk, "
        f"{len(got)} delivered, {stats['conflicts']} replays answered 409"
    )
    assert stats["conflicts"] == 0


def test_real_logrotate_compress_is_never_read_as_text(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    """``compress`` with the glob ``*.jsonl*``: the .gz files match; they are skipped (counted),
    never dead-lettered line by line, and every line is stored once (read from the plain file
    before it was compressed)."""
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    for _ in range(4):
        writer.write(300)
        wait_delivered(server, writer.written, DEADLINE, agent)
        logrotate(tmp_path, writer.path, "compress", "create")
    assert len(list(agent.logs.glob("*.gz"))) == 4
    writer.write(20)
    wait_delivered(server, writer.written, DEADLINE, agent)
    wait_until(lambda: (agent.metric("files_skipped_total") or 0) >= 4, DEADLINE, "the .gz files skipped")
    assert agent.stop() == 0
    assert agent.dead_letters() == []
    assert_exactly_once(server, writer.written)
    assert "compressed" in agent.log_path.read_text()


def test_a_gzip_file_present_at_start_is_skipped(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = make_agent(agents, tmp_path, server)
    old = b"".join(line(i) for i in range(1000, 1200))
    (agent.logs / "preds.jsonl.2.gz").write_bytes(gzip.compress(old))
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(50)
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    wait_until(lambda: (agent.metric("files_skipped_total") or 0) == 1, DEADLINE, "the .gz file skipped")
    assert agent.stop() == 0
    assert agent.dead_letters() == []
    assert_exactly_once(server, writer.written)


def test_a_rotation_compressed_while_the_agent_was_down_is_reported_then_read_once_decompressed(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(300)
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    unread = writer.write(200)  # the agent is down: compressed before it reads them
    logrotate(tmp_path, writer.path, "compress", "create")
    writer.write(50)
    agent.start()
    wait_delivered(server, [x for x in writer.written if x not in set(unread)], DEADLINE, agent)
    wait_until(lambda: "compressed before the agent finished" in agent.output_log(), DEADLINE, "the report")
    gz = agent.logs / "preds.jsonl.1.gz"
    (agent.logs / "preds.jsonl.1").write_bytes(gzip.decompress(gz.read_bytes()))  # as the log says
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    assert server.stats()["conflicts"] == 0  # the decompressed copy is read from where it stopped
