"""The two loops at step() level: ReadLoop with a real spool, registry and dead letter in a tmp dir;
ShipLoop with a scripted output that answers per item."""

from __future__ import annotations

import errno
import random
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import bulkbody, shipper
from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.files.discovery import Discovery
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import Event, ItemResult, Outcome, Rejected, Source
from inferwatch.agent.normalize import Normalizer
from inferwatch.agent.outputs import OutputUnavailable
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.reader import Normalize, ReadLoop, ReadSettings
from inferwatch.agent.registry import Registry
from inferwatch.agent.shipper import ITEM_RETRY_INITIAL, RETRY_TICK, ShipLoop
from inferwatch.agent.spool import Spool
from inferwatch.core.config import InputConfig
from tests.scenario.harness import line


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simple_normalize(line: bytes, source: Source, ingested: str) -> Event:
    """A tiny normalizer for these tests: the line must be a JSON object with an "id"."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise Rejected("invalid_json", str(e)) from None
    if not isinstance(doc, dict):
        raise Rejected("not_an_object", type(doc).__name__)
    return Event(f"{source.file_id}:{source.offset}", "logs-test-default", orjson.dumps(doc))


class Rig:
    """A read loop over ``<tmp>/logs/*.jsonl`` with a real spool, registry and dead letter."""

    def __init__(
        self,
        tmp: Path,
        spool_bytes: int = 1 << 30,
        start_at: str = "beginning",
        normalizer: Normalize = simple_normalize,
        on_spooled: Callable[[int, int], None] = lambda seq, items: None,
        **settings: object,
    ) -> None:
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self.clock = Clock()
        self.registry = Registry(tmp / "registry.json", fsync=False)
        self.spool = Spool(tmp / "spool", spool_bytes, 64 * 1024, fsync=False)
        self.dead = DeadLetter(tmp / "dead-letter.ndjson", fsync=False)
        self.metrics = Metrics()
        inputs = [InputConfig(paths=(str(self.logs / "*.jsonl"),), start_at=start_at)]  # type: ignore[arg-type]
        self.discovery = Discovery(inputs, scan_interval=0.0, clock=self.clock)
        self.tailer = Tailer(1024, 4096, self.registry.get, clock=self.clock)
        defaults: dict[str, object] = {"max_docs": 1000, "max_wait": 0.5, "max_line_bytes": 1024}
        defaults.update(settings)
        self.loop = ReadLoop(
            inputs,
            self.discovery,
            self.tailer,
            [normalizer],
            self.registry,
            self.spool,
            self.dead,
            self.metrics,
            ReadSettings(**defaults),  # type: ignore[arg-type]
            wake=threading.Event(),
            on_spooled=on_spooled,
            clock=self.clock,
        )

    def write(self, name: str, data: bytes) -> Path:
        path = self.logs / name
        with path.open("ab") as f:
            f.write(data)
        return path

    def spooled_ids(self) -> list[int]:
        out = []
        for rec in self.spool.read(0, 10_000):
            out += [orjson.loads(doc)["id"] for _, _, doc in bulkbody.decode(rec.payload)]
        return out

    def offset(self, path: Path) -> int | None:
        for cp in self.registry.items().values():
            if cp.path == str(path):
                return cp.offset
        return None


def lines(ids: range) -> bytes:
    return b"".join(b'{"id": %d}\n' % i for i in ids)


def test_lines_reach_the_spool_before_their_offsets_move(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    path = rig.write("a.jsonl", lines(range(5)))
    assert rig.loop.step() is True
    # Read but not yet sealed (max_wait not reached): nothing spooled, nothing committed.
    assert rig.spool.last_seq == 0
    assert rig.offset(path) is None
    rig.clock.now += 0.5
    rig.loop.step()
    assert rig.spooled_ids() == [0, 1, 2, 3, 4]
    assert rig.offset(path) == path.stat().st_size
    assert rig.metrics.value("lines_read_total") == 5


def test_batches_are_cut_by_max_docs_and_offsets_follow_each_cut(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_docs=2)
    path = rig.write("a.jsonl", lines(range(5)))
    rig.loop.step()
    assert [len(bulkbody.decode(r.payload)) for r in rig.spool.read(0, 10)] == [2, 2]
    # Two full batches spooled: the offset is the start of line 4, the fifth waits in memory.
    assert rig.offset(path) == len(lines(range(4)))
    rig.clock.now += 1
    rig.loop.step()
    assert rig.spooled_ids() == [0, 1, 2, 3, 4]
    assert rig.offset(path) == path.stat().st_size


def test_batches_are_cut_by_uncompressed_bytes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_bytes=1024)
    rig.write("a.jsonl", lines(range(100)))
    rig.loop.step()
    rig.clock.now += 1
    rig.loop.step()
    records = rig.spool.read(0, 100)
    assert len(records) > 1
    for rec in records[:-1]:
        size = sum(len(i) + len(d) + len(doc) for i, d, doc in bulkbody.decode(rec.payload))
        assert size < 1024
    assert rig.spooled_ids() == list(range(100))


def test_bad_lines_go_to_the_dead_letter_and_do_not_hold_the_offset(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    data = b'{"id": 0}\nnot json\n\n[1]\r\n' + b'{"id": 1}\n' + b"x" * 2000 + b"\n" + b'{"id": 2}\n'
    path = rig.write("a.jsonl", data)
    rig.loop.step()
    rig.clock.now += 1
    rig.loop.step()
    assert rig.spooled_ids() == [0, 1, 2]
    assert rig.offset(path) == len(data)
    entries = [orjson.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    got = sorted((e["reason"], e["log"]["offset"]) for e in entries)
    assert got == [("invalid_json", 10), ("line_too_long", 35), ("not_an_object", 20)]
    assert rig.metrics.value("dead_lettered_total", labels(reason="line_too_long")) == 1


def test_a_batch_of_only_rejected_lines_still_moves_the_offset(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    path = rig.write("a.jsonl", b"oops\n")
    rig.loop.step()
    rig.clock.now += 1
    rig.loop.step()
    assert rig.spool.last_seq == 0
    assert rig.offset(path) == 5


def test_a_full_spool_pauses_reading_and_loses_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, spool_bytes=128 * 1024, max_docs=50)
    rng = random.Random(0)
    pads = ["".join(rng.choices("0123456789abcdef", k=800)) for _ in range(2000)]
    path = rig.write(
        "a.jsonl", b"".join(b'{"id": %d, "pad": "%s"}\n' % (i, p.encode()) for i, p in enumerate(pads))
    )
    for _ in range(50):
        rig.loop.step()
        rig.clock.now += 1
    assert rig.metrics.value("spool_full") == 1  # reading paused
    committed = rig.offset(path)
    assert committed is not None and committed < path.stat().st_size
    spooled = rig.spooled_ids()
    # Reading stopped: stepping more changes nothing while the spool is full.
    rig.loop.step()
    assert rig.spooled_ids() == spooled
    # Drain the spool as the ship loop would; reading resumes and every line arrives once.
    seen: list[int] = []
    for _ in range(200):
        records = rig.spool.read(rig.spool.acked_seq, 100)
        for rec in records:
            seen += [orjson.loads(doc)["id"] for _, _, doc in bulkbody.decode(rec.payload)]
            rig.spool.ack(rec.seq)
        rig.loop.step()
        rig.clock.now += 1
        if rig.offset(path) == path.stat().st_size and rig.spool.pending == 0:
            break
    assert seen == list(range(2000))
    assert rig.metrics.value("spool_full") == 0


def test_a_restart_resumes_at_the_committed_offset(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    path = rig.write("a.jsonl", lines(range(3)))
    rig.loop.step()
    rig.loop.flush()
    rig.spool.close()
    rig.write("a.jsonl", lines(range(3, 6)))
    again = Rig(tmp_path)
    again.loop.step()
    again.loop.flush()
    assert again.spooled_ids() == [0, 1, 2, 3, 4, 5]  # 0-2 from the first run's spool, 3-5 new
    assert again.offset(path) == path.stat().st_size


def test_start_at_end_skips_what_files_held_at_the_first_start_only(tmp_path: Path) -> None:
    rig = Rig(tmp_path, start_at="end")
    rig.write("old.jsonl", lines(range(3)))
    rig.loop.step()
    rig.write("old.jsonl", lines(range(3, 5)))
    rig.write("new.jsonl", lines(range(100, 102)))  # created while running: read whole
    for _ in range(3):
        rig.clock.now += 1
        rig.loop.step()
    assert sorted(rig.spooled_ids()) == [3, 4, 100, 101]


def test_gone_files_are_pruned_from_the_registry(tmp_path: Path) -> None:
    rig = Rig(tmp_path, prune_interval=10.0, prune_grace=0.0)
    gone = rig.write("gone.jsonl", lines(range(2)))
    kept = rig.write("kept.jsonl", lines(range(2, 4)))
    rig.loop.step()
    rig.clock.now += 1
    rig.loop.step()
    assert rig.offset(gone) == gone.stat().st_size
    gone.unlink()
    for _ in range(3):  # the tailer lets the deleted file go after its grace, then the prune runs
        rig.clock.now += 10
        rig.loop.step()
    assert rig.offset(gone) is None
    assert rig.offset(kept) == kept.stat().st_size
    assert rig.registry.flush() or (tmp_path / "registry.json").exists()


def test_spool_repairs_are_exported(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.spool.counts["torn_tail"] += 1
    rig.spool.counts["records_lost"] += 2
    rig.loop.step()
    assert rig.metrics.value("storage_repairs_total", labels(reason="torn_tail", store="spool")) == 1
    assert rig.metrics.value("dropped_total", labels(reason="spool_records_lost")) == 2


def real_rig(tmp: Path, **settings: object) -> Rig:
    """The read loop with the real Normalizer (its ``normalize_batch`` fast path)."""
    inp = InputConfig(paths=("unused",), model="m")
    return Rig(tmp, normalizer=Normalizer(inp, host="h", agent_version="0"), **settings)  # type: ignore[arg-type]


def prediction_ids(rig: Rig) -> list[str]:
    out = []
    for rec in rig.spool.read(0, 10_000):
        out += [orjson.loads(doc)["ml"]["prediction"]["id"] for _, _, doc in bulkbody.decode(rec.payload)]
    return out


def test_whole_file_batches_with_the_real_normalizer(tmp_path: Path) -> None:
    rig = real_rig(tmp_path, max_docs=7)
    data = b"".join(line(i) for i in range(10)) + b"{broken\n" + b"".join(line(i) for i in range(10, 20))
    path = rig.write("a.jsonl", data)
    for _ in range(3):
        rig.loop.step()
        rig.clock.now += 1
    records = rig.spool.read(0, 100)
    assert all(len(bulkbody.decode(r.payload)) <= 7 for r in records)
    assert prediction_ids(rig) == [f"p{i}" for i in range(20)]
    assert rig.offset(path) == len(data)
    (entry,) = rig.dead.counts.items()
    assert entry == ("invalid_json", 1)


def test_the_fast_path_respects_max_bytes(tmp_path: Path) -> None:
    rig = real_rig(tmp_path, max_bytes=8 * 1024)
    path = rig.write("a.jsonl", b"".join(line(i) for i in range(200)))
    for _ in range(3):
        rig.loop.step()
        rig.clock.now += 1
    for rec in rig.spool.read(0, 1000)[:-1]:
        size = sum(len(i) + len(d) + len(doc) + 40 for i, d, doc in bulkbody.decode(rec.payload))
        assert size <= 8 * 1024 + 1200  # at most one document over
    assert prediction_ids(rig) == [f"p{i}" for i in range(200)]
    assert rig.offset(path) == path.stat().st_size


def test_dead_lettered_lines_are_also_spooled_for_the_dead_letter_index(tmp_path: Path) -> None:
    rig = Rig(tmp_path, dead_letter_index="inferwatch-dead-letter")
    rig.write("a.jsonl", b'{"id": 0}\nnot json\n')
    rig.loop.step()
    rig.clock.now += 1
    rig.loop.step()
    (rec,) = rig.spool.read(0, 10)
    items = bulkbody.decode(rec.payload)
    assert [i for i, _, _ in items] == ["logs-test-default", "inferwatch-dead-letter"]
    doc = orjson.loads(items[1][2])
    assert (doc["reason"], doc["log"]["offset"], doc["raw"]) == ("invalid_json", 10, "not json")
    assert "_id" not in doc  # a metadata field Elasticsearch refuses in a document


# -- the ship loop ---------------------------------------------------------------------------------

Answer = Callable[[list[tuple[str, str, bytes]]], list[ItemResult]]
CREATED = ItemResult(Outcome.CREATED, 201)
DUP = ItemResult(Outcome.DUPLICATE, 409, "version_conflict_engine_exception")
BUSY = ItemResult(Outcome.RETRY, 429, "es_rejected_execution_exception")
BAD = ItemResult(Outcome.REJECTED, 400, "document_parsing_exception", "failed to parse field [x]")


class ScriptedOutput:
    """Answers each request with the next scripted function of the decoded items (or raises).
    Requests run on the ship loop's sender threads: ``lock`` keeps the script in call order."""

    def __init__(self, script: list[Answer | Exception]) -> None:
        self.script = script
        self.requests: list[list[str]] = []  # doc ids per request
        self.lock = threading.Lock()

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        decoded = bulkbody.decode(body_gz)
        assert len(decoded) == items
        with self.lock:
            self.requests.append([d for _, d, _ in decoded])
            step = self.script.pop(0) if self.script else (lambda xs: [CREATED] * len(xs))
        if isinstance(step, Exception):
            raise step
        return step(decoded)

    def check(self) -> str:
        return "scripted"

    def close(self) -> None:
        pass


def spool_with(tmp: Path, *batches: list[str], counted: bool = True) -> Spool:
    spool = Spool(tmp / "spool", 1 << 30, 64 * 1024, fsync=False)
    for ids in batches:
        events = [Event(i, "logs-test-default", orjson.dumps({"n": i})) for i in ids]
        spool.append(bulkbody.encode(events, 1), len(ids) if counted else None)
    return spool


def ship_rig(
    tmp: Path,
    output: ScriptedOutput,
    *batches: list[str],
    dead_letter_index: str | None = None,
    max_in_flight: int = 1,
) -> tuple[ShipLoop, Spool, Metrics, Clock]:
    spool = spool_with(tmp, *batches)
    metrics = Metrics()
    dead = DeadLetter(tmp / "dead-letter.ndjson", fsync=False)
    backoff = Backoff(1.0, 60.0, random.Random(1))
    clock = Clock()
    loop = ShipLoop(
        spool,
        output,
        dead,
        metrics,
        backoff,
        dead_letter_index=dead_letter_index,
        clock=clock,
        max_in_flight=max_in_flight,
    )
    return loop, spool, metrics, clock


def answered(loop: ShipLoop) -> float | None:
    """One step of the loop's thread, then wait for the answers it started (the sender threads
    set ``wake``); returns the wait the step asked for."""
    loop.wake.clear()
    delay = loop.step()
    if loop.in_flight:
        assert loop.wake.wait(10), "no answer"
    return delay


def drive(loop: ShipLoop, clock: Clock, steps: int = 200) -> list[float]:
    """Run the loop as its thread does until it is idle; a wait with nothing in flight (a backoff)
    moves the fake clock instead of sleeping. Returns those waits."""
    waits: list[float] = []
    for _ in range(steps):
        delay = answered(loop)
        if delay is None:
            return waits
        if not loop.in_flight and delay > 0:
            waits.append(delay)
            clock.now += delay
    raise AssertionError("the ship loop did not settle")


def test_every_item_created_acks_the_record(tmp_path: Path) -> None:
    out = ScriptedOutput([])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a", "b"], ["c"])
    assert drive(loop, clock) == []
    assert spool.acked_seq == 2
    assert out.requests == [["a", "b"], ["c"]]
    assert metrics.value("documents_shipped_total") == 3


def test_partial_429_resends_only_those_items_and_acks_after_all_are_final(tmp_path: Path) -> None:
    out = ScriptedOutput(
        [lambda xs: [CREATED, BUSY, DUP, BUSY], lambda xs: [BUSY, CREATED], lambda xs: [CREATED]]
    )
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a", "b", "c", "d"])
    answered(loop)
    answered(loop)  # the answer: b and d wait for their retry
    assert spool.acked_seq == 0
    waits = drive(loop, clock)
    # Each item's own backoff: ITEM_RETRY_INITIAL (jittered down to half) before its first retry,
    # twice that before the second, each rounded up to the next RETRY_TICK.
    first, tick = ITEM_RETRY_INITIAL, RETRY_TICK
    assert len(waits) == 2 and first / 2 <= waits[0] <= first + tick and first <= waits[1] <= 2 * first + tick
    assert spool.acked_seq == 1
    assert out.requests == [["a", "b", "c", "d"], ["b", "d"], ["b"]]
    assert metrics.value("documents_shipped_total") == 3
    assert metrics.value("documents_duplicate_total") == 1
    assert metrics.value("documents_retried_total", labels(status="429")) == 3


def test_items_waiting_for_a_retry_do_not_hold_up_the_next_records_nor_the_ack_order(
    tmp_path: Path,
) -> None:
    out = ScriptedOutput([lambda xs: [CREATED, BUSY]])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a", "b"], ["c"], ["d"])
    answered(loop)
    answered(loop)  # b answered 429: c goes at once, without waiting for b's backoff
    answered(loop)
    answered(loop)
    assert out.requests == [["a", "b"], ["c"], ["d"]]
    assert metrics.value("documents_shipped_total") == 3
    assert metrics.value("documents_awaiting_retry") == 1
    assert spool.acked_seq == 0  # c and d are delivered, but b (before them) is not final yet
    assert loop.wait_acked(1, 0.0) is False
    drive(loop, clock)
    assert out.requests[-1] == ["b"]
    assert spool.acked_seq == 3


def test_rejected_items_go_to_the_dead_letter_and_do_not_stall(tmp_path: Path) -> None:
    out = ScriptedOutput([lambda xs: [CREATED, BAD, CREATED]])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a", "b", "c"], ["d"])
    drive(loop, clock)
    assert spool.acked_seq == 2
    (entry,) = [orjson.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    assert entry["_id"] == "b"
    assert entry["reason"] == "document_parsing_exception"
    assert "failed to parse field [x]" in entry["detail"]
    assert entry["document"] == {"n": "b"}
    assert metrics.value("dead_lettered_total", labels(reason="document_parsing_exception")) == 1


def test_rejected_items_are_also_indexed_in_the_dead_letter_index(tmp_path: Path) -> None:
    seen: list[list[tuple[str, str, bytes]]] = []

    def record(xs: list[tuple[str, str, bytes]]) -> list[ItemResult]:
        seen.append(xs)
        return [CREATED] * len(xs)

    out = ScriptedOutput([lambda xs: [CREATED, BAD], record])
    loop, spool, _, clock = ship_rig(tmp_path, out, ["a", "b"], dead_letter_index="dl")
    drive(loop, clock)
    assert spool.acked_seq == 1
    ((index, _, body),) = seen[0]
    doc = orjson.loads(body)
    assert index == "dl"
    assert (doc["reason"], doc["document_id"], doc["index"]) == (
        "document_parsing_exception",
        "b",
        "logs-test-default",
    )
    assert orjson.loads(doc["document"]) == {"n": "b"}  # as text: it cannot hit the mapping again


def test_output_unavailable_backs_off_honouring_retry_after_and_resends(tmp_path: Path) -> None:
    out = ScriptedOutput(
        [OutputUnavailable("connection refused"), OutputUnavailable("busy", status=503, retry_after=7.0)]
    )
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a"])
    answered(loop)
    answered(loop)
    assert loop.down_since is not None
    assert metrics.value("output_up") == 0
    waits = drive(loop, clock)
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and waits[1] >= 7.0
    assert spool.acked_seq == 1
    assert loop.down_since is None
    assert metrics.value("output_up") == 1
    assert metrics.value("bulk_requests_total", labels(result="unavailable", status="503")) == 1
    assert metrics.value("bulk_requests_total", labels(result="unavailable", status="none")) == 1
    assert out.requests == [["a"], ["a"], ["a"]]


def test_one_request_refused_whole_does_not_stop_the_next_records(tmp_path: Path) -> None:
    busy = OutputUnavailable("rejected execution of bulk request", status=429)
    out = ScriptedOutput([busy])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a"], ["b"], ["c"])
    for _ in range(4):
        answered(loop)
    assert out.requests == [["a"], ["b"], ["c"]]  # b and c did not wait for a's backoff
    assert spool.acked_seq == 0
    # A lone 429 is a busy cluster, not an outage: counted, but no outage is declared.
    assert loop.down_since is None and metrics.value("output_up") == 1
    assert metrics.value("bulk_requests_total", labels(result="unavailable", status="429")) == 1
    waits = drive(loop, clock)
    assert out.requests == [["a"], ["b"], ["c"], ["a"]]  # the same body again
    assert spool.acked_seq == 3
    # ... and a's body waits as an item's first 429 does, not the outage backoff (1 s at first).
    assert len(waits) == 1 and ITEM_RETRY_INITIAL / 2 <= waits[0] <= ITEM_RETRY_INITIAL


def test_a_429_after_a_failure_is_part_of_the_outage(tmp_path: Path) -> None:
    busy = OutputUnavailable("rejected execution of bulk request", status=429)
    out = ScriptedOutput([OutputUnavailable("connection refused"), busy])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a"])
    answered(loop)
    answered(loop)
    waits = drive(loop, clock)
    assert out.requests == [["a"], ["a"], ["a"]] and spool.acked_seq == 1
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # the outage schedule
    assert metrics.value("bulk_requests_total", labels(result="unavailable", status="429")) == 1


def test_while_the_output_is_down_only_due_retries_probe_and_new_records_wait(tmp_path: Path) -> None:
    down = OutputUnavailable("connection refused")
    out = ScriptedOutput([down, down, down, down])
    loop, spool, _, clock = ship_rig(tmp_path, out, ["a"], ["b"], ["c"], ["d"])
    waits = drive(loop, clock)
    # One failure alone does not stop new records (b goes at once); after two in a row only the
    # failed requests are tried again, each after its backoff, until one is answered.
    assert out.requests[:5] == [["a"], ["b"], ["a"], ["b"], ["a"]]
    assert sorted(map(tuple, out.requests[5:])) == [("b",), ("c",), ("d",)]
    assert len(waits) >= 3 and all(w > 0 for w in waits)
    assert spool.acked_seq == 4
    assert loop.down_since is None


def test_requests_are_in_flight_together_up_to_max_in_flight(tmp_path: Path) -> None:
    together = threading.Barrier(3, timeout=10)  # three requests must be open at once to pass

    def meet(xs: list[tuple[str, str, bytes]]) -> list[ItemResult]:
        together.wait()
        return [CREATED] * len(xs)

    out = ScriptedOutput([meet, meet, meet])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a"], ["b"], ["c"], ["d"], max_in_flight=3)
    loop.step()
    assert loop.in_flight == 3
    assert metrics.value("bulk_in_flight") == 3
    drive(loop, clock)
    assert spool.acked_seq == 4
    assert not together.broken
    loop.close()


def test_a_document_over_the_servers_size_limit_is_dead_lettered_as_request_too_large(tmp_path: Path) -> None:
    from inferwatch.agent.outputs.elasticsearch import ElasticsearchOutput
    from inferwatch.core.config import ElasticsearchConfig
    from tests.fakes.bulk_server import BulkServer

    small = [Event(i, "logs-test-default", orjson.dumps({"n": i})) for i in "abc"]
    noise = random.Random(3).randbytes(10_000).hex()  # does not compress
    big = Event("big", "logs-test-default", orjson.dumps({"n": noise}))
    spool = Spool(tmp_path / "spool", 1 << 30, 64 * 1024, fsync=False)
    spool.append(bulkbody.encode([*small[:2], big, small[2]], 1), 4)
    metrics = Metrics()
    with BulkServer() as srv:
        srv.set_faults(max_body_bytes=2000)  # the big document does not fit even alone, gzipped
        output = ElasticsearchOutput(ElasticsearchConfig(hosts=(srv.url,)))
        dead = DeadLetter(tmp_path / "dead-letter.ndjson", fsync=False)
        clock = Clock()
        loop = ShipLoop(spool, output, dead, metrics, Backoff(1.0, 60.0, random.Random(1)), clock=clock)
        drive(loop, clock)
        loop.close()
        output.close()
        assert sorted(srv.ids()) == ["a", "b", "c"]
    assert spool.acked_seq == 1
    (entry,) = [orjson.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    assert (entry["reason"], entry["_id"]) == ("request_too_large", "big")
    assert metrics.value("dead_lettered_total", labels(reason="request_too_large")) == 1


def test_a_full_disk_under_the_local_store_is_one_error_with_the_fix_a_gauge_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from inferwatch.agent.outputs import local as local_module
    from inferwatch.agent.outputs.local import LocalOutput

    real = local_module.atomic_write_bytes
    room = threading.Event()

    def write(path: Path, data: bytes, fsync: bool = True) -> None:
        if not room.is_set():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, fsync)

    monkeypatch.setattr(local_module, "atomic_write_bytes", write)
    spool = spool_with(tmp_path, ["a", "b"])
    metrics = Metrics()
    clock = Clock()
    output = LocalOutput(tmp_path / "store", fsync=False)
    dead = DeadLetter(tmp_path / "dead-letter.ndjson", fsync=False)
    loop = ShipLoop(spool, output, dead, metrics, Backoff(1.0, 60.0, random.Random(1)), clock=clock)
    for _ in range(6):  # six attempts on a full disk
        while answered(loop) != 0.0 and loop.in_flight:
            pass
        clock.now += 60
    assert spool.acked_seq == 0
    assert metrics.value("disk_full", labels(loop="ship")) == 1
    assert metrics.value("output_up") == 0
    assert "free space" in loop.last_error and "agent.data_dir" in loop.last_error
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "disk full" in errors[0].getMessage()
    room.set()
    drive(loop, clock)
    assert spool.acked_seq == 1
    assert output.stored == 2
    assert metrics.value("disk_full", labels(loop="ship")) == 0
    assert loop.down_since is None


def test_wait_acked_returns_once_the_record_is_delivered(tmp_path: Path) -> None:
    out = ScriptedOutput([])
    loop, _spool, _, clock = ship_rig(tmp_path, out, ["a"])
    assert loop.wait_acked(1, 0.0) is False
    drive(loop, clock)
    assert loop.wait_acked(1, 0.0) is True


# -- item counts: kept in the spool record, not re-counted by decompressing ----------------------


class CountSpy:
    """Stands in for ``shipper._count_items``: counts the calls, answers as the real one."""

    def __init__(self) -> None:
        self.calls = 0
        self.real = shipper._count_items

    def __call__(self, payload: bytes) -> int:
        self.calls += 1
        return self.real(payload)


@pytest.fixture
def count_spy(monkeypatch: pytest.MonkeyPatch) -> CountSpy:
    spy = CountSpy()
    monkeypatch.setattr(shipper, "_count_items", spy)
    return spy


def test_counts_kept_in_the_spool_are_used_instead_of_decompressing(
    tmp_path: Path, count_spy: CountSpy
) -> None:
    out = ScriptedOutput([])
    loop, spool, metrics, clock = ship_rig(tmp_path, out, ["a", "b"], ["c"])
    drive(loop, clock)
    assert count_spy.calls == 0
    assert out.requests == [["a", "b"], ["c"]]  # the scripted output checks each count against the body
    assert spool.acked_seq == 2
    assert metrics.value("documents_shipped_total") == 3


def test_records_spooled_without_a_count_are_counted_from_the_payload(
    tmp_path: Path, count_spy: CountSpy
) -> None:
    spool = spool_with(tmp_path, ["a", "b", "c"], ["d"], counted=False)  # as before counts were kept
    spool.append(bulkbody.encode([Event("e", "logs-test-default", b"{}")], 1), 1)
    out = ScriptedOutput([])
    clock = Clock()
    dead = DeadLetter(tmp_path / "dl.ndjson", fsync=False)
    # One request at a time: the order the output sees them in is the spool's.
    loop = ShipLoop(spool, out, dead, Metrics(), Backoff(), clock=clock, max_in_flight=1)
    drive(loop, clock)
    assert count_spy.calls == 2  # the two old records only
    assert out.requests == [["a", "b", "c"], ["d"], ["e"]]
    assert spool.acked_seq == 3


@pytest.mark.parametrize("encoders", [0, 1])
def test_the_read_loop_keeps_the_item_count_of_each_record_in_the_spool(
    tmp_path: Path, count_spy: CountSpy, encoders: int
) -> None:
    rig = Rig(tmp_path, max_docs=3, dead_letter_index="inferwatch-dead-letter", encoders=encoders)
    out = ScriptedOutput([])
    clock = Clock()
    ship = ShipLoop(
        rig.spool,
        out,
        DeadLetter(tmp_path / "ship-dead.ndjson", fsync=False),
        Metrics(),
        Backoff(1.0, 60.0, random.Random(1)),
        clock=clock,
    )
    rig.write("a.jsonl", lines(range(5)) + b"broken\n" + lines(range(5, 8)))
    rig.loop.step()
    assert rig.loop.flush() is True
    rig.loop.close()
    assert [r.items for r in rig.spool.read(0, 10)] == [3, 3, 3]
    drive(ship, clock)
    assert count_spy.calls == 0
    # Each request's count matched its body (ScriptedOutput asserts it); the dead letter counts.
    assert [len(r) for r in out.requests] == [3, 3, 3]
    assert ship.acked_seq == rig.spool.last_seq == 3


@pytest.mark.parametrize(
    "module",
    [
        "inferwatch.agent.reader",
        "inferwatch.agent.shipper",
        "inferwatch.agent.daemon",
        "inferwatch.agent.metrics",
    ],
)
def test_pipeline_modules_import(module: str) -> None:
    __import__(module)


def test_dead_letters_the_index_did_not_take_are_counted_as_dropped(tmp_path: Path) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.metrics import labels
    from inferwatch.agent.model import ItemResult
    from inferwatch.agent.shipper import ShipLoop
    from inferwatch.agent.spool import Spool

    class Output:
        def __init__(self) -> None:
            self.requests = 0

        def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
            self.requests += 1
            if self.requests == 1:  # the document: refused by its mapping
                return [ItemResult(Outcome.REJECTED, 400, "mapper_parsing_exception", "bad")]
            return [ItemResult(Outcome.RETRY, 429, "es_rejected_execution_exception", "busy")]

        def check(self) -> str:
            return "fake"

        def close(self) -> None:
            pass

    metrics = Metrics()
    with Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False) as spool:
        dl = DeadLetter(tmp_path / "dl.ndjson", fsync=False)
        output = Output()
        loop = ShipLoop(spool, output, dl, metrics, Backoff(), dead_letter_index="inferwatch-dead-letter")
        spool.append(bulkbody.encode_items([("logs-inferwatch.m-default", "a", b'{"x":1}')]), 1)
        while loop.step() is not None:  # until idle; the request runs on a sender thread
            loop.wake.wait(10)
            loop.wake.clear()
        assert spool.acked_seq == 1 and output.requests == 2
        assert dl.counts == {"mapper_parsing_exception": 1}  # the local record that counts
        assert metrics.value("dropped_total", labels(reason="dead_letter_index")) == 1
        dl.close()


@pytest.mark.parametrize(
    ("answer", "dropped"),
    [
        ([Outcome.CREATED, Outcome.DUPLICATE, Outcome.RETRY, Outcome.REJECTED], 2),
        ([Outcome.CREATED, Outcome.DUPLICATE, Outcome.CREATED, Outcome.DUPLICATE], 0),
        ([Outcome.CREATED], 4),  # an answer of the wrong length: none is sure to be indexed
        (OSError(errno.ENOSPC, "no space left on device"), 4),
    ],
)
def test_every_dead_letter_the_index_did_not_take_is_counted_once(
    tmp_path: Path, answer: list[Outcome] | OSError, dropped: int
) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.metrics import labels
    from inferwatch.agent.model import ItemResult
    from inferwatch.agent.shipper import ShipLoop
    from inferwatch.agent.spool import Spool

    class Output:
        def __init__(self) -> None:
            self.requests = 0

        def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
            self.requests += 1
            if self.requests == 1:  # the four documents: refused by their mapping
                return [ItemResult(Outcome.REJECTED, 400, "mapper_parsing_exception", "bad")] * items
            if isinstance(answer, OSError):
                raise answer
            status = {Outcome.CREATED: 201, Outcome.DUPLICATE: 409, Outcome.RETRY: 503, Outcome.REJECTED: 400}
            return [ItemResult(o, status[o]) for o in answer]

        def check(self) -> str:
            return "fake"

        def close(self) -> None:
            pass

    metrics = Metrics()
    with Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False) as spool:
        dl = DeadLetter(tmp_path / "dl.ndjson", fsync=False)
        output = Output()
        loop = ShipLoop(spool, output, dl, metrics, Backoff(), dead_letter_index="inferwatch-dead-letter")
        docs = [("logs-inferwatch.m-default", doc_id, b'{"x":1}') for doc_id in "abcd"]
        spool.append(bulkbody.encode_items(docs), len(docs))
        while loop.step() is not None:  # until idle; the request runs on a sender thread
            loop.wake.wait(10)
            loop.wake.clear()
        assert spool.acked_seq == 1 and output.requests == 2  # acknowledged; not sent again
        assert dl.counts == {"mapper_parsing_exception": 4}
        assert metrics.value("dropped_total", labels(reason="dead_letter_index")) == dropped
        dl.close()


def test_lines_by_normalizer_and_repairs_are_exported(tmp_path: Path) -> None:
    from types import MappingProxyType

    from inferwatch.agent.fastpath import native_module
    from inferwatch.agent.normalize import Normalizer
    from inferwatch.core.config import ModelConfig

    models = MappingProxyType({"m": ModelConfig(features=MappingProxyType({"age": "numeric"}))})
    normalizer = Normalizer(
        input_config=InputConfig(paths=("/x/*.jsonl",), model="m"),
        models=models,
        namespace="default",
        host="h",
        agent_version="0",
    )
    rig = Rig(tmp_path, normalizer=normalizer)
    common = b'{"timestamp": "2026-12-06T10:00:00.000Z", "inputs": {"age": 41}}\n'
    no_time = b'{"inputs": {"age": 41}}\n'  # repaired: the ingest time
    bad_age = b'{"timestamp": "2026-12-06T10:00:00.000Z", "inputs": {"age": "old"}}\n'  # repaired: nulled
    path = rig.write("a.jsonl", common + no_time + bad_age)
    for _ in range(2):  # read, then seal (max_wait)
        rig.loop.step()
        rig.clock.now += 1
    rig.write(path.name, common * 4)  # the model is known to the fast path now
    for _ in range(2):
        rig.loop.step()
        rig.clock.now += 1

    def by(name: str) -> float | None:
        return rig.metrics.value("lines_normalized_total", labels(by=name))

    # The first batch taught the model (Python); the second is native where the module is.
    assert (by("native"), by("python")) == ((4, 3) if native_module() is not None else (0, 7))
    assert rig.metrics.value("normalizer_repairs_total", labels(reason="timestamp_missing")) == 1
    assert rig.metrics.value("normalizer_repairs_total", labels(reason="invalid_value")) == 1
