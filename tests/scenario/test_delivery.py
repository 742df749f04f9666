"""The daemon as a subprocess against the fault-injecting bulk endpoint: every scenario asserts that
the set of prediction ids stored equals the set written, and that none was stored twice."""

from __future__ import annotations

import random
import re
import signal
import threading
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import bulkbody
from inferwatch.agent.spool import Spool
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

DEADLINE = 60.0  # generous: CI machines are slow; a pass takes a few seconds


def test_steady_state_three_files(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writers = [LogWriter(agent.logs / f"model-{i}.jsonl", start=i * 1_000_000) for i in range(3)]
    writers[0].write(100)  # present before the start: read from the beginning
    agent.start()
    for _ in range(20):
        for w in writers:
            w.write(50)
    written = [x for w in writers for x in w.written]
    wait_delivered(server, written, DEADLINE, agent)
    assert agent.health() == (200, {"status": "ok", "reason": "ok"})
    wait_until(lambda: agent.metric("file_lag_bytes") == 0, DEADLINE, "no lag")
    assert agent.metric("documents_shipped_total") == len(written)
    assert agent.stop() == 0
    assert_exactly_once(server, written)
    assert agent.dead_letters() == []


def test_rename_rotation_under_load(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    rng = random.Random(2)
    for _ in range(30):  # 30 rotations, logrotate style (.1 -> .2, live -> .1)
        for _ in range(rng.randint(1, 5)):
            writer.write(rng.randint(1, 40))
        writer.rotate()
    writer.write(10)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_copytruncate(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    for i in range(5):
        writer.write(200)
        writer.copytruncate(suffix=f".{i + 1}")  # the copy matches the glob: never read twice
    writer.write(50)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_truncate_and_rewrite(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    for _ in range(4):
        writer.write(300)
        wait_delivered(server, writer.written, DEADLINE, agent)  # truncation loses unread bytes
        writer.truncate()
    writer.write(5)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_delete_and_recreate(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    for _ in range(5):
        writer.write(100)
        wait_delivered(server, writer.written, DEADLINE, agent)
        writer.delete()  # and recreated by the next write, often on the same inode
    writer.write(100)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_kill_9_at_random_moments(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server, batch={"max_docs": 200, "max_wait": "50ms"})
    writer = LogWriter(agent.logs / "preds.jsonl")
    rng = random.Random(15)
    stop = threading.Event()

    def write_forever() -> None:
        r = random.Random(3)
        while not stop.is_set():
            writer.write(r.randint(1, 30))
            if r.random() < 0.03:
                writer.rotate()
            stop.wait(r.uniform(0.0, 0.02))

    t = threading.Thread(target=write_forever, daemon=True)
    t.start()
    try:
        for _ in range(15):
            agent.start()
            threading.Event().wait(rng.uniform(0.4, 1.6))  # a random moment, not synchronization
            agent.kill()
    finally:
        stop.set()
        t.join()
    agent.start()
    wait_delivered(server, writer.written, DEADLINE * 2, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    stats = server.stats()
    print(
        f"kill -9 x15: {len(writer.written)} ids written, {len(delivered(server))} delivered, "
        f"{stats['conflicts']} replays answered 409"
    )


def test_output_down_then_up(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    writer.write(100)
    wait_delivered(server, writer.written, DEADLINE, agent)
    server.set_faults(mode="refuse")
    writer.write(300)
    wait_until(lambda: (agent.metric("bulk_requests_total") or 0) >= 3, DEADLINE, "failed requests")
    server.set_faults(mode="503", retry_after="1")
    writer.write(300)
    wait_until(lambda: server.stats()["whole_request_errors"] >= 1, DEADLINE, "503 answers")
    server.clear_faults()
    writer.write(100)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_per_item_429s_are_retried(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    server.set_faults(item_429_rate=0.25, seed=11)
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    for _ in range(4):
        writer.write(200)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    assert server.stats()["rejected_429"] > 0


def test_item_and_request_429s_with_requests_in_flight_and_kill_9_deliver_each_id_once(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    # Refused items retried while later records go on, several requests in flight, whole requests
    # refused too, and the agent killed mid-way: every id is stored once (replays answer 409).
    server.set_faults(item_429_rate=0.1, request_429_rate=0.1, seed=5)
    agent = make_agent(
        agents, tmp_path, server, batch={"max_docs": 100, "max_wait": "50ms"}, output={"max_in_flight": 4}
    )
    writer = LogWriter(agent.logs / "preds.jsonl")
    rng = random.Random(8)
    for _ in range(3):
        agent.start()
        for _ in range(5):
            writer.write(rng.randint(100, 300))
        threading.Event().wait(rng.uniform(0.5, 1.0))  # a random moment, not synchronization
        agent.kill()
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    stats = server.stats()
    assert stats["rejected_429"] > 0 and stats["whole_request_errors"] > 0


def test_mapping_rejections_go_to_the_dead_letter(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    server.set_faults(reject_field="ml.inputs.kind", reject_value="poison")
    agent = make_agent(agents, tmp_path, server, dead_letter_index="inferwatch-dead-letter")
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    poison: list[str] = []
    for i in range(10):
        writer.write(50, kind="fine")
        poison += writer.write(1 + i % 3, kind="poison")
    good = [x for x in writer.written if x not in set(poison)]
    wait_delivered(server, good, DEADLINE, agent)
    wait_until(lambda: len(agent.dead_letters()) >= len(poison), DEADLINE, "dead letters")
    assert agent.stop() == 0
    assert_exactly_once(server, good)
    dead = agent.dead_letters()
    assert sorted(d["document"]["ml"]["prediction"]["id"] for d in dead) == sorted(poison)
    assert {d["reason"] for d in dead} == {"mapper_parsing_exception"}
    # ... and in the dead-letter index, once each
    indexed = [doc for (index, _), doc in server.documents().items() if index == "inferwatch-dead-letter"]
    ids = sorted(orjson.loads(d["document"])["ml"]["prediction"]["id"] for d in indexed)
    assert ids == sorted(poison)


def test_malformed_lines(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server, max_line_bytes="1KiB")
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(3)
    writer.write_raw(b"{not json\n")
    writer.write_raw(b'{"model": "scenario", "inputs": {"t": "\xff\xfe"}}\n')
    writer.write_raw(line(100).rstrip(b"\n") + b"\r\n", ["p100"])  # CRLF: a good line
    writer.write_raw(b"\n\n\r\n")  # empty lines: skipped, not dead-lettered
    writer.write_raw(b'{"model": "scenario", "pad": "' + b"x" * 3000 + b'"}\n')  # over max_line_bytes
    writer.write_raw(b"[1, 2]\n")
    half = line(101)
    writer.write_raw(half[:40])  # a partial line at EOF, completed later
    agent.start()
    wait_until(lambda: len(agent.dead_letters()) >= 4, DEADLINE, "dead letters")
    wait_delivered(server, ["p0", "p1", "p2", "p100"], DEADLINE, agent)
    writer.write_raw(half[40:], ["p101"])
    writer.seq = 102
    writer.write(3)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    dead = agent.dead_letters()
    assert sorted(d["reason"] for d in dead) == [
        "invalid_json",
        "invalid_utf8",
        "line_too_long",
        "not_an_object",
    ]
    assert all(d["log"]["file"]["path"] == str(writer.path) for d in dead)


def test_partial_line_at_eof_is_shipped_once_when_completed(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(10)
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    full = line(10)
    writer.write_raw(full[:30])
    wait_until(lambda: (agent.metric("lines_read_total") or 0) >= 10, DEADLINE, "lines read")
    assert agent.stop() == 0  # restart in the middle of the unfinished line
    agent.start()
    writer.write_raw(full[30:], ["p10"])
    writer.seq = 11
    writer.write(5)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    assert agent.dead_letters() == []


def test_sigterm_drains_and_the_rest_is_delivered_after_restart(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = make_agent(agents, tmp_path, server, shutdown_timeout="1s")
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    writer.write(100)
    wait_delivered(server, writer.written, DEADLINE, agent)
    server.set_faults(delay_ms=400)  # slower than the shutdown deadline allows
    for _ in range(10):
        writer.write(100)
    wait_until(lambda: agent.metric("lines_read_total") == len(writer.written), DEADLINE, "all lines read")
    assert agent.stop() == 0
    # Everything written before SIGTERM is either stored or in the spool.
    spool = Spool(agent.data_dir / "spool", 1 << 30, 16 << 20, fsync=False)
    spooled = set()
    for rec in spool.read(spool.acked_seq, 100_000):
        for _, _, doc in bulkbody.decode(rec.payload):
            spooled.add(orjson.loads(doc)["ml"]["prediction"]["id"])
    spool.close()
    assert set(writer.written) <= set(delivered(server)) | spooled
    server.clear_faults()
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_a_long_outage_fills_the_spool_then_the_files_buffer(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = make_agent(
        agents,
        tmp_path,
        server,
        spool={"max_bytes": "128KiB", "segment_bytes": "64KiB"},
        batch={"max_docs": 100, "max_wait": "50ms"},
    )
    writer = LogWriter(agent.logs / "preds.jsonl")
    server.set_faults(mode="refuse")
    agent.start()
    rng = random.Random(5)
    for _ in range(1000):  # ~7 MB that gzip can't shrink much: far more than the spool holds
        writer.write(10, text="".join(rng.choices("0123456789abcdef", k=400)))
    wait_until(lambda: agent.metric("spool_full") == 1, DEADLINE, "the spool to fill up")
    read = agent.metric("lines_read_total") or 0
    assert read < len(writer.written) / 2, read  # the files hold the rest
    server.clear_faults()
    wait_delivered(server, writer.written, DEADLINE * 2, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    # The drain frees one segment at a time and the reader fills it at once: that is one episode,
    # said once (it was said at every freed segment). At most two: the outage, and the catch-up
    # once the shipper has emptied the spool before the reader woke.
    log = agent.log_path.read_text()
    full, drained = log.count("is full ("), len(re.findall(r"drained to [0-9]+ bytes", log))
    print(f"spool full said {full}x, drained said {drained}x")
    assert 1 <= full <= 2
    assert drained == full


def test_lost_answers_are_resent_and_answered_409(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    server.set_faults(drop_response=True)  # stored, but the agent never hears it
    agent = make_agent(agents, tmp_path, server)
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    writer.write(300)
    wait_until(lambda: len(server.ids()) == 300, DEADLINE, "documents stored")
    server.clear_faults()
    wait_until(lambda: agent.metric("documents_duplicate_total") == 300, DEADLINE, "replays answered 409")
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_slow_answers_and_timeouts(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    agent.config.write_text(agent.config.read_text().replace("request_timeout: 5s", "request_timeout: 1s"))
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    writer.write(100)
    wait_delivered(server, writer.written, DEADLINE, agent)
    server.set_faults(delay_ms=1500)  # longer than the client waits: every request times out
    writer.write(200)
    wait_until(lambda: (agent.metric("bulk_requests_total") or 0) >= 3, DEADLINE, "timed-out requests")
    server.set_faults(delay_ms=300)  # slow, but within the timeout
    writer.write(200)
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)


def test_many_files(tmp_path: Path, server: BulkServer, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, server)
    writers = [LogWriter(agent.logs / f"f{i:03d}.jsonl", start=i * 1000) for i in range(300)]
    for w in writers[:150]:
        w.write(5)
    agent.start()
    for w in writers:
        w.write(5)
    written = [x for w in writers for x in w.written]
    wait_delivered(server, written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, written)


def test_local_store_survives_kill_9(tmp_path: Path, agents: list[AgentProcess]) -> None:
    agent = make_agent(agents, tmp_path, None, batch={"max_docs": 100, "max_wait": "50ms"})
    writer = LogWriter(agent.logs / "preds.jsonl")
    rng = random.Random(8)
    for _ in range(8):
        agent.start()
        writer.write(rng.randint(200, 800))
        threading.Event().wait(rng.uniform(0.5, 1.5))  # a random moment, not synchronization
        agent.kill()
    agent.start()
    store = agent.data_dir / "store"

    def stored() -> list[dict[str, object]]:
        docs = []
        for seg in sorted(store.glob("*/*.ndjson")):
            docs += [orjson.loads(x) for x in seg.read_bytes().splitlines() if x]
        return docs

    wait_until(lambda: len(stored()) >= len(writer.written), DEADLINE, "the local store to hold every line")
    assert agent.stop() == 0
    docs = stored()
    ids = [d["_id"] for d in docs]
    predictions = sorted(d["ml"]["prediction"]["id"] for d in docs)  # type: ignore[index]
    assert len(ids) == len(set(ids)), "an _id was stored twice"
    assert predictions == sorted(writer.written)
    print(f"local store, kill -9 x8: ids written {len(writer.written)}, stored {len(docs)}, twice 0")


def test_a_second_sigterm_exits_at_once_and_loses_nothing(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = make_agent(agents, tmp_path, server, shutdown_timeout="60s")
    writer = LogWriter(agent.logs / "preds.jsonl")
    agent.start()
    writer.write(50)
    wait_delivered(server, writer.written, DEADLINE, agent)
    server.set_faults(mode="503")
    writer.write(300)
    wait_until(lambda: agent.metric("lines_read_total") == len(writer.written), DEADLINE, "all lines read")
    agent.wait_ready()
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGTERM)  # drains for up to 60 s: the output answers 503
    wait_until(lambda: "stopping: draining" in agent.output_log(), DEADLINE, "the drain to begin")
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(DEADLINE) == 1
    server.clear_faults()
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
