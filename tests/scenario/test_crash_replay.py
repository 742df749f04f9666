"""What kill -9 at load costs in lines read twice: the output is down while the agent is killed
again and again, so nothing is in flight and every replay (409 once the output is back) is a
line the read side spooled twice. Bounded by one batch per kill: the registry is checkpointed as
soon as a batch is in the spool."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.bulk_server import BulkServer
from tests.scenario.harness import AgentProcess, LogWriter, assert_exactly_once, wait_delivered

pytestmark = pytest.mark.scenario

DEADLINE = 120.0
KILLS = 12
MAX_DOCS = 200


def kill_while_writing(
    agent: AgentProcess, write_some: Callable[[threading.Event], None], rng: random.Random
) -> None:
    """Kill -9 the agent KILLS times, each at a random moment after it is up, while a thread calls
    ``write_some(stop)`` over and over; the writer has stopped when this returns."""
    stop = threading.Event()

    def write_forever() -> None:
        while not stop.is_set():
            write_some(stop)

    t = threading.Thread(target=write_forever, daemon=True)
    t.start()
    try:
        for _ in range(KILLS):
            agent.start()
            agent.wait_ready()
            threading.Event().wait(rng.uniform(0.2, 1.0))  # a random moment, not synchronization
            agent.kill()
    finally:
        stop.set()
        t.join()


def test_kill_9_at_load_replays_at_most_one_batch_per_kill(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = AgentProcess(tmp_path, server, batch={"max_docs": MAX_DOCS, "max_wait": "50ms"})
    agents.append(agent)
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(20_000)  # a backlog: the agent reads at full speed when it starts
    server.set_faults(mode="refuse")  # nothing delivered, nothing in flight: 409s are read replays

    def write_some(stop: threading.Event) -> None:
        writer.write(20)
        stop.wait(0.01)

    kill_while_writing(agent, write_some, random.Random(4))
    server.clear_faults()
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    replays = server.stats()["conflicts"]
    print(f"kill -9 at load x{KILLS}: {len(writer.written)} lines, {replays} read again (answered 409)")
    assert replays <= KILLS * MAX_DOCS


def test_kill_9_at_load_dead_letters_each_bad_line_once(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = AgentProcess(tmp_path, server, batch={"max_docs": MAX_DOCS, "max_wait": "50ms"})
    agents.append(agent)
    writer = LogWriter(agent.logs / "preds.jsonl")
    bad = 0
    r = random.Random(9)

    def write_some(stop: threading.Event) -> None:
        nonlocal bad
        writer.write(r.randint(1, 30))
        if r.random() < 0.3:
            writer.write_raw(b"{not json %d\n" % bad)
            bad += 1
        stop.wait(0.005)

    kill_while_writing(agent, write_some, random.Random(6))
    agent.start()
    wait_delivered(server, writer.written, DEADLINE, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    dead = agent.dead_letters()
    offsets = [d["log"]["offset"] for d in dead]
    print(f"kill -9 x{KILLS}: {bad} bad lines, {len(dead)} dead-letter entries")
    assert sorted(d["raw"] for d in dead) == sorted(f"{{not json {i}" for i in range(bad))
    assert len(offsets) == len(set(offsets)) == bad
