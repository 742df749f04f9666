"""A dead-letter write that fails (a full disk) gives its item no final outcome: the ship loop keeps
its record open, acknowledges nothing past it, takes every other answer as usual, and writes the
entry again at a later step; the step raises meanwhile, so the loop's thread says the episode once
(``LoopThread``) and says it is over when the write goes through."""

from __future__ import annotations

import errno
import logging
import random
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import bulkbody, loopthread
from inferwatch.agent.loopthread import LoopThread
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.shipper import ShipLoop
from inferwatch.agent.spool import Spool
from tests.unit.agent.helpers import FullDisk, wait_for
from tests.unit.agent.test_pipeline import BAD, BUSY, CREATED, DUP, Clock, ScriptedOutput, answered

INDEX = "logs-test-default"
REASON = labels(reason="document_parsing_exception")


def entries(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(row) for row in path.read_bytes().splitlines()] if path.exists() else []


class Acks:
    """``on_ack``: the spool's acknowledged position at each acknowledgement, with the dead-letter
    entries written by then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spool: Spool | None = None
        self.seen: list[tuple[int, list[object]]] = []

    def __call__(self) -> None:
        assert self.spool is not None
        self.seen.append((self.spool.acked_seq, [e.get("_id", e.get("spool")) for e in entries(self.path)]))


def rig(
    tmp: Path, output: ScriptedOutput, full: int, *records: tuple[bytes, int | None]
) -> tuple[ShipLoop, Spool, FullDisk, Metrics, Acks, Clock]:
    spool = Spool(tmp / "spool", 1 << 30, 64 * 1024, fsync=False)
    for payload, items in records:
        spool.append(payload, items)
    dead = FullDisk(tmp / "dead-letter.ndjson", full)
    metrics = Metrics()
    acks = Acks(dead.path)
    acks.spool = spool
    clock = Clock()
    loop = ShipLoop(
        spool,
        output,
        dead,
        metrics,
        Backoff(1.0, 60.0, random.Random(1)),
        on_ack=acks,
        clock=clock,
        max_in_flight=1,  # one answer per step: the one carrying the rejects is taken alone
    )
    return loop, spool, dead, metrics, acks, clock


def body(*ids: str) -> tuple[bytes, int]:
    return bulkbody.encode_items([(INDEX, i, orjson.dumps({"n": i})) for i in ids]), len(ids)


def drive(loop: ShipLoop, clock: Clock, steps: int = 100) -> list[Exception]:
    """Run the loop as its thread does until it is idle: a step that raises is tried again after
    ``FAILURE_RETRY``. Returns what the failed steps raised."""
    failed: list[Exception] = []
    for _ in range(steps):
        try:
            delay = answered(loop)
        except OSError as e:
            failed.append(e)
            clock.now += loopthread.FAILURE_RETRY
            continue
        if delay is None:
            return failed
        if not loop.in_flight and delay > 0:
            clock.now += delay
    raise AssertionError("the ship loop did not settle")


def test_a_rejected_document_whose_entry_cannot_be_written_keeps_its_record_open_until_it_is(
    tmp_path: Path,
) -> None:
    # One answer with every outcome: two rejected documents, the first of which meets a full disk.
    out = ScriptedOutput([lambda xs: [CREATED, BAD, BUSY, DUP, BAD, CREATED]])
    loop, spool, dead, metrics, acks, clock = rig(
        tmp_path, out, 1, body("a", "b", "c", "d", "e", "f"), body("g")
    )
    failed = drive(loop, clock)
    assert [getattr(e, "errno", None) for e in failed] == [errno.ENOSPC]  # the step said it
    assert dead.failed == 1
    # (a) each rejected document has its entry, once, in answer order
    assert [e["_id"] for e in entries(dead.path)] == ["b", "e"]
    # (b) the other items of that answer got theirs: "c" was sent again, the rest counted
    assert out.requests == [["a", "b", "c", "d", "e", "f"], ["c"], ["g"]]
    assert metrics.value("documents_shipped_total") == 4  # a, f, then c and g
    assert metrics.value("documents_duplicate_total") == 1
    assert metrics.value("documents_retried_total", labels(status="429")) == 1
    # (c) the position passed the record only once both entries were written
    assert acks.seen and all(ids == ["b", "e"] for seq, ids in acks.seen if seq >= 1)
    assert spool.acked_seq == 2
    # (d) counted once each
    assert metrics.value("dead_lettered_total", REASON) == 2
    assert dead.counts == {"document_parsing_exception": 2}


def test_an_undecodable_record_whose_entry_cannot_be_written_is_read_again(tmp_path: Path) -> None:
    out = ScriptedOutput([])
    loop, spool, dead, metrics, acks, clock = rig(
        tmp_path, out, 2, body("a"), (b"not a bulk body", None), body("b")
    )
    failed = drive(loop, clock)
    assert len(failed) == 2 and dead.failed == 2
    rows = entries(dead.path)
    assert [(row["reason"], row["spool"]) for row in rows] == [("undecodable_record", {"seq": 2})]
    assert out.requests == [["a"], ["b"]]
    assert all(ids == [{"seq": 2}] for seq, ids in acks.seen if seq >= 2)
    assert spool.acked_seq == 3
    assert metrics.value("dead_lettered_total", labels(reason="undecodable_record")) == 1


def test_a_full_dead_letter_disk_is_said_once_by_the_ship_loop_thread_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(loopthread, "FAILURE_RETRY", 0.01)
    out = ScriptedOutput([lambda xs: [BAD, CREATED]])
    loop, spool, dead, metrics, _, _ = rig(tmp_path, out, 10**9, body("x", "a"))
    thread = LoopThread("ship", loop.step, loop.wake, metrics)
    thread.start()
    try:
        wait_for(lambda: dead.failed >= 10)
        assert spool.acked_seq == 0
        assert metrics.value("disk_full", labels(loop="ship")) == 1
        assert thread.failure is not None and "free space" in thread.failure.message
        dead.room.set()
        assert loop.wait_acked(1, 30)
        wait_for(lambda: thread.failure is None)
        assert metrics.value("disk_full", labels(loop="ship")) == 0
    finally:
        thread.stop()
        thread.join(10)
        loop.close()
    assert [e["_id"] for e in entries(dead.path)] == ["x"]
    assert metrics.value("dead_lettered_total", REASON) == 1
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "disk full" in said[0].getMessage()
