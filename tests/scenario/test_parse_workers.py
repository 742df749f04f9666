"""The agent with a parse worker process, killed with -9 at load again and again: every line is
delivered once and every bad line dead-lettered once, whichever process parsed it, and no worker
outlives its agent."""

from __future__ import annotations

import functools
import random
import threading
from pathlib import Path

import pytest

from tests.fakes.bulk_server import BulkServer
from tests.procs import all_exited, children
from tests.scenario.harness import AgentProcess, LogWriter, assert_exactly_once, wait_delivered, wait_until

pytestmark = pytest.mark.scenario

KILLS = 6


def test_kill_9_while_a_worker_parses_loses_duplicates_and_orphans_nothing(
    tmp_path: Path, server: BulkServer, agents: list[AgentProcess]
) -> None:
    agent = AgentProcess(tmp_path, server, parse_workers=1, batch={"max_docs": 2000, "max_wait": "50ms"})
    agents.append(agent)
    writer = LogWriter(agent.logs / "preds.jsonl")
    writer.write(20_000)  # a backlog: reads of thousands of lines, shared with the worker
    bad = 0
    stop = threading.Event()
    rng = random.Random(11)

    def write_forever() -> None:
        nonlocal bad
        while not stop.is_set():
            writer.write(rng.randint(300, 900))  # runs big enough for the pool
            writer.write_raw(b"{not json %d\n" % bad)
            bad += 1
            stop.wait(0.02)

    t = threading.Thread(target=write_forever, daemon=True)
    t.start()
    parsed_elsewhere = 0.0
    try:
        for _ in range(KILLS):
            agent.start()
            agent.wait_ready()
            assert agent.proc is not None
            wait_until(lambda: bool(children(agent.proc.pid)), 30, "a parse worker")  # type: ignore[union-attr]
            workers = children(agent.proc.pid)
            threading.Event().wait(rng.uniform(0.2, 0.8))  # a random moment, not synchronization
            parsed_elsewhere += agent.metric("lines_parsed_in_workers_total") or 0.0
            agent.kill()
            wait_until(functools.partial(all_exited, workers), 30, "the worker to exit after kill -9")
    finally:
        stop.set()
        t.join()
    agent.start()
    wait_delivered(server, writer.written, 120, agent)
    assert agent.stop() == 0
    assert_exactly_once(server, writer.written)
    assert parsed_elsewhere > 0
    dead = agent.dead_letters()
    assert sorted(d["raw"] for d in dead) == sorted(f"{{not json {i}" for i in range(bad))
    print(
        f"kill -9 x{KILLS} with a parse worker: {len(writer.written)} lines, {bad} bad, "
        f"{parsed_elsewhere:.0f} parsed by workers before the kills"
    )
