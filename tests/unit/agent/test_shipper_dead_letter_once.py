"""A document the output rejects is dead-lettered once across crashes of the ship loop: a crash is
the loop, spool and dead letter dropped without closing them (nothing is flushed or saved that
was not already), then opened again from the same directory, as kill -9 and a restart do."""

from __future__ import annotations

import gc
import hashlib
import logging
import random
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import bulkbody
from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import ItemResult
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.shipper import ShipLoop
from inferwatch.agent.spool import Spool
from tests.unit.agent.test_pipeline import BAD, BUSY, CREATED, DUP, Clock, answered

INDEX = "logs-test-default"
DL_INDEX = "dead-letters"


class Cluster:
    """Answers like Elasticsearch would, item by item, whatever the batching: ids starting with
    "x" are refused by the mapping (400) on every attempt, the others answer 429 on a draw per
    (id, attempt) and are created once (409 after). Dead letters sent to ``DL_INDEX`` are kept
    by id, as an index does."""

    def __init__(self, seed: int, busy: float) -> None:
        self.seed, self.busy = seed, busy
        self.lock = threading.Lock()
        self.stored: set[tuple[str, str]] = set()
        self.attempts: Counter[str] = Counter()
        self.dead_indexed: Counter[str] = Counter()  # the rejected document's id -> stored

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        out = []
        with self.lock:
            for index, doc_id, doc in bulkbody.decode(body_gz):
                out.append(self._one(index, doc_id, doc))
        assert len(out) == items
        return out

    def _one(self, index: str, doc_id: str, doc: bytes) -> ItemResult:
        key = (index, doc_id)
        if index == DL_INDEX:
            if key in self.stored:
                return DUP
            self.stored.add(key)
            self.dead_indexed[orjson.loads(doc)["document_id"]] += 1
            return CREATED
        if doc_id.startswith("x"):
            return BAD
        self.attempts[doc_id] += 1
        draw = hashlib.blake2b(f"{self.seed}:{doc_id}:{self.attempts[doc_id]}".encode()).digest()
        if draw[0] < 256 * self.busy:
            return BUSY
        if key in self.stored:
            return DUP
        self.stored.add(key)
        return CREATED

    def check(self) -> str:
        return "cluster"

    def close(self) -> None:
        pass


class Life:
    """One life of the agent's ship side over ``tmp``."""

    def __init__(self, tmp: Path, cluster: Cluster, clock: Clock) -> None:
        self.spool = Spool(tmp / "spool", 1 << 30, 4096, fsync=False)
        self.dead = DeadLetter(tmp / "dead-letter.ndjson", fsync=False)
        self.metrics = Metrics()
        self.loop = ShipLoop(
            self.spool,
            cluster,
            self.dead,
            self.metrics,
            Backoff(1.0, 8.0, random.Random(1)),
            dead_letter_index=DL_INDEX,
            clock=clock,
            max_in_flight=2,
            batch_items=4,
        )

    def run(self, clock: Clock, steps: int) -> bool:
        """Up to ``steps`` steps of the loop's thread; True once it is idle."""
        for _ in range(steps):
            delay = answered(self.loop)
            if delay is None:
                return True
            if not self.loop.in_flight and delay > 0:
                clock.now += delay
        return False

    def crash(self) -> None:
        """Drop everything unclosed; the sender threads' answers are lost with the loop."""
        self.loop._senders.close()  # threads end after their request: as the process's would
        del self.loop, self.spool, self.dead
        gc.collect()  # the spool's finalizer releases its directory lock


def dead_letter_ids(tmp: Path) -> Counter[str]:
    rows = (tmp / "dead-letter.ndjson").read_bytes().splitlines()
    return Counter(orjson.loads(row)["_id"] for row in rows)


@pytest.mark.parametrize("seed", range(8))
def test_each_rejected_document_is_dead_lettered_once_whenever_the_loop_crashes(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    cluster = Cluster(seed, busy=0.4)
    clock = Clock()
    bad: list[str] = []
    with Spool(tmp_path / "spool", 1 << 30, 4096, fsync=False) as spool:
        for r in range(30):
            ids = [f"{'x' if rng.random() < 0.3 else 'g'}{r}-{i}" for i in range(rng.randint(1, 6))]
            bad += [i for i in ids if i.startswith("x")]
            spool.append(bulkbody.encode_items([(INDEX, i, b'{"n":1}') for i in ids]), len(ids))
    counted = 0
    for _ in range(6):
        life = Life(tmp_path, cluster, clock)
        life.run(clock, rng.randint(1, 12))
        counted += int(life.metrics.value("dead_lettered_total", labels(reason="document_parsing_exception")))
        life.crash()
    life = Life(tmp_path, cluster, clock)
    assert life.run(clock, 2000), "the ship loop did not settle"
    counted += int(life.metrics.value("dead_lettered_total", labels(reason="document_parsing_exception")))
    assert life.spool.acked_seq == 30
    written = dead_letter_ids(tmp_path)
    assert sorted(written) == sorted(bad)
    assert [k for k, n in written.items() if n > 1] == []
    assert counted == len(bad)  # dead_lettered_total over all lives
    assert set(cluster.dead_indexed) == set(bad)  # the dead-letter index has each one too
    assert all(n == 1 for n in cluster.dead_indexed.values())


def test_a_restart_after_a_clean_stop_reads_nothing_back(tmp_path: Path) -> None:
    cluster = Cluster(0, busy=0.0)
    clock = Clock()
    with Spool(tmp_path / "spool", 1 << 30, 4096, fsync=False) as spool:
        spool.append(bulkbody.encode_items([(INDEX, "x1", b"{}"), (INDEX, "g1", b"{}")]), 2)
    life = Life(tmp_path, cluster, clock)
    assert life.run(clock, 100)
    life.loop.close()
    life.spool.close()
    life.dead.close()
    with Spool(tmp_path / "spool", 1 << 30, 4096, fsync=False) as spool:
        assert spool.acked_seq == 1 and spool.acked_dead_letter is not None
        # The mark is the end of the dead letter: nothing of it is read again at the next start.
        assert spool.acked_dead_letter.size == (tmp_path / "dead-letter.ndjson").stat().st_size


class Holding(Cluster):
    """Answers 429 to the ids starting with "w" on every attempt (their records stay
    unacknowledged), and to those starting with "s" on their first."""

    def _one(self, index: str, doc_id: str, doc: bytes) -> ItemResult:
        if doc_id.startswith("w") or (doc_id.startswith("s") and not self.attempts[doc_id]):
            self.attempts[doc_id] += 1
            return BUSY
        return super()._one(index, doc_id, doc)


@pytest.mark.parametrize("acked_before", [0, 1], ids=["nothing_acked", "a_record_before_acked"])
def test_an_undecodable_spool_record_is_dead_lettered_once_across_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, acked_before: int
) -> None:
    """A record spooled without its count (by an older agent) that is not a bulk body is
    dead-lettered when it is read, before its turn to be acknowledged while a record before it
    waits for retries; a crash meanwhile reads it again at the next start. The record before it
    acknowledged after it was read saves a mark before its entry."""
    # A captured log record would keep the error, its traceback and so the crashed loop (and the
    # spool's lock) alive.
    caplog.set_level(logging.CRITICAL, logger="inferwatch.agent.shipper")
    clock = Clock()
    counted = 0
    life = Life(tmp_path, Holding(0, busy=0.0) if acked_before else Cluster(0, busy=1.0), clock)
    # Spooled during this life: the mark saved with an ack is where this life's entries begin.
    life.spool.append(bulkbody.encode_items([(INDEX, "s1", b"{}")]), 1)  # acked after the third is read
    life.spool.append(bulkbody.encode_items([(INDEX, "w1", b"{}")]), 1)  # holds the rest back
    life.spool.append(b"not a bulk body", None)
    life.spool.append(bulkbody.encode_items([(INDEX, "g1", b"{}")]), 1)
    life.run(clock, 6)
    assert life.spool.acked_seq == acked_before
    counted += int(life.metrics.value("dead_lettered_total", labels(reason="undecodable_record")))
    assert counted == 1
    life.crash()
    life = Life(tmp_path, Cluster(0, busy=0.0), clock)
    assert life.run(clock, 100), "the ship loop did not settle"
    counted += int(life.metrics.value("dead_lettered_total", labels(reason="undecodable_record")))
    assert life.spool.acked_seq == 4
    rows = [orjson.loads(row) for row in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    assert [row["reason"] for row in rows] == ["undecodable_record"]
    assert counted == 1
    assert rows[0]["spool"] == {"seq": 3}
