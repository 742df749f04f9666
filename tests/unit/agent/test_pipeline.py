"""The two loops at step() level: ReadLoop with a real spool, registry and dead letter in a tmp dir;
ShipLoop with a scripted output that answers per item."""

from __future__ import annotations

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
from inferwatch.agent.outputs import OutputUnavailable, RequestTooLarge
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.reader import Normalize, ReadLoop, ReadSettings
from inferwatch.agent.registry import Registry
from inferwatch.agent.shipper import ShipLoop
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
    assert rig.loop.paused
    assert rig.metrics.value("spool_full") == 1
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
    """Answers each request with the next scripted function of the decoded items (or raises)."""

    def __init__(self, script: list[Answer | Exception]) -> None:
        self.script = script
        self.requests: list[list[str]] = []  # doc ids per request

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        decoded = bulkbody.decode(body_gz)
        assert len(decoded) == items
        self.requests.append([d for _, d, _ in decoded])
        step = self.script.pop(0) if self.script else (lambda xs: [CREATED] * len(xs))
        if isinstance(step, Exception):
            raise step
        return step(decoded)

    def check(self) -> str:
        return "scripted"

    def close(self) -> None:
        pass


def spool_with(tmp: Path, *batches: list[str]) -> Spool:
    spool = Spool(tmp / "spool", 1 << 30, 64 * 1024, fsync=False)
    for ids in batches:
        events = [Event(i, "logs-test-default", orjson.dumps({"n": i})) for i in ids]
        spool.append(bulkbody.encode(events, 1))
    return spool


def ship_rig(
    tmp: Path, output: ScriptedOutput, *batches: list[str], dead_letter_index: str | None = None
) -> tuple[ShipLoop, Spool, Metrics]:
    spool = spool_with(tmp, *batches)
    metrics = Metrics()
    dead = DeadLetter(tmp / "dead-letter.ndjson", fsync=False)
    backoff = Backoff(1.0, 60.0, random.Random(1))
    loop = ShipLoop(spool, output, dead, metrics, backoff, dead_letter_index=dead_letter_index)
    return loop, spool, metrics


def test_every_item_created_acks_the_record(tmp_path: Path) -> None:
    out = ScriptedOutput([])
    loop, spool, metrics = ship_rig(tmp_path, out, ["a", "b"], ["c"])
    assert loop.step() == 0.0
    assert spool.acked_seq == 1
    assert loop.step() == 0.0
    assert spool.acked_seq == 2
    assert loop.step() is None
    assert out.requests == [["a", "b"], ["c"]]
    assert metrics.value("documents_shipped_total") == 3


def test_partial_429_resends_only_those_items_and_acks_after_all_are_final(tmp_path: Path) -> None:
    out = ScriptedOutput(
        [lambda xs: [CREATED, BUSY, DUP, BUSY], lambda xs: [BUSY, CREATED], lambda xs: [CREATED]]
    )
    loop, spool, metrics = ship_rig(tmp_path, out, ["a", "b", "c", "d"])
    delay = loop.step()
    assert delay is not None and 0.5 <= delay <= 1.0  # backoff after items were refused
    assert spool.acked_seq == 0
    loop.step()
    assert spool.acked_seq == 0
    loop.step()
    assert spool.acked_seq == 1
    assert out.requests == [["a", "b", "c", "d"], ["b", "d"], ["b"]]
    assert metrics.value("documents_shipped_total") == 3
    assert metrics.value("documents_duplicate_total") == 1
    assert metrics.value("documents_retried_total", labels(status="429")) == 3


def test_rejected_items_go_to_the_dead_letter_and_do_not_stall(tmp_path: Path) -> None:
    out = ScriptedOutput([lambda xs: [CREATED, BAD, CREATED]])
    loop, spool, metrics = ship_rig(tmp_path, out, ["a", "b", "c"], ["d"])
    loop.step()
    loop.step()
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
    loop, spool, _ = ship_rig(tmp_path, out, ["a", "b"], dead_letter_index="dl")
    loop.step()
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
    loop, spool, metrics = ship_rig(tmp_path, out, ["a"])
    first = loop.step()
    assert first is not None and 0.5 <= first <= 1.0
    assert loop.down_since is not None
    assert metrics.value("output_up") == 0
    second = loop.step()
    assert second is not None and second >= 7.0
    assert loop.step() == 0.0
    assert spool.acked_seq == 1
    assert loop.down_since is None
    assert metrics.value("output_up") == 1
    assert metrics.value("bulk_requests_total", labels(result="unavailable", status="503")) == 1
    assert metrics.value("bulk_requests_total", labels(result="unavailable", status="none")) == 1
    assert out.requests == [["a"], ["a"], ["a"]]


def test_request_too_large_splits_in_halves(tmp_path: Path) -> None:
    too_large = RequestTooLarge("over http.max_content_length", status=413)
    out = ScriptedOutput([too_large, too_large])
    loop, spool, _ = ship_rig(tmp_path, out, ["a", "b", "c", "d"])
    for _ in range(10):
        loop.step()
    assert spool.acked_seq == 1
    # The size that fits is kept for the rest of the record.
    assert out.requests == [["a", "b", "c", "d"], ["a", "b"], ["a"], ["b"], ["c"], ["d"]]


def test_a_single_document_too_large_is_dead_lettered(tmp_path: Path) -> None:
    too_large = RequestTooLarge("over http.max_content_length", status=413)
    out = ScriptedOutput([too_large, too_large])
    loop, spool, _ = ship_rig(tmp_path, out, ["a", "b"])
    for _ in range(5):
        loop.step()
    assert spool.acked_seq == 1
    assert out.requests == [["a", "b"], ["a"], ["b"]]
    (entry,) = [orjson.loads(x) for x in (tmp_path / "dead-letter.ndjson").read_bytes().splitlines()]
    assert (entry["reason"], entry["_id"]) == ("too_large", "a")


def test_acks_stay_in_spool_order_across_retries(tmp_path: Path) -> None:
    out = ScriptedOutput([lambda xs: [BUSY], lambda xs: [CREATED]])
    loop, spool, _ = ship_rig(tmp_path, out, ["a"], ["b"])
    loop.step()
    assert spool.acked_seq == 0
    loop.step()
    assert spool.acked_seq == 1
    loop.step()
    assert spool.acked_seq == 2
    assert out.requests == [["a"], ["a"], ["b"]]


def test_wait_acked_returns_once_the_record_is_delivered(tmp_path: Path) -> None:
    out = ScriptedOutput([])
    loop, _spool, _ = ship_rig(tmp_path, out, ["a"])
    assert loop.wait_acked(1, 0.0) is False
    loop.step()
    assert loop.wait_acked(1, 0.0) is True


# -- item counts: reported by the read loop, not re-counted by decompressing ---------------------


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


def test_counts_from_spooled_are_used_instead_of_decompressing(tmp_path: Path, count_spy: CountSpy) -> None:
    out = ScriptedOutput([])
    loop, spool, metrics = ship_rig(tmp_path, out, ["a", "b"], ["c"])
    loop.spooled(1, 2)
    loop.spooled(2, 1)
    assert loop.wake.is_set()
    assert loop.step() == 0.0
    assert loop.step() == 0.0
    assert loop.step() is None
    assert count_spy.calls == 0
    assert out.requests == [["a", "b"], ["c"]]  # the scripted output checks each count against the body
    assert spool.acked_seq == 2
    assert metrics.value("documents_shipped_total") == 3


def test_records_spooled_before_a_restart_are_counted_from_the_payload(
    tmp_path: Path, count_spy: CountSpy
) -> None:
    out = ScriptedOutput([])
    loop, spool, metrics = ship_rig(tmp_path, out, ["a", "b", "c"], ["d"])  # no spooled() calls
    loop.spooled(3, 1)  # a record of this run, after the two left from the last one
    spool.append(bulkbody.encode([Event("e", "logs-test-default", b"{}")], 1))
    for _ in range(3):
        assert loop.step() == 0.0
    assert count_spy.calls == 2  # the two old records only
    assert out.requests == [["a", "b", "c"], ["d"], ["e"]]
    assert spool.acked_seq == 3
    assert metrics.value("documents_shipped_total") == 5


def test_a_count_arriving_while_its_record_is_retried_is_dropped_once_acked(
    tmp_path: Path, count_spy: CountSpy
) -> None:
    out = ScriptedOutput([OutputUnavailable("connection refused")])
    loop, spool, _ = ship_rig(tmp_path, out, ["a", "b"])
    assert loop.step() is not None  # read (counted from the payload), then the output was down
    assert count_spy.calls == 1
    loop.spooled(1, 2)  # the read loop's report arrives late
    assert loop.step() == 0.0
    assert spool.acked_seq == 1
    loop.spooled(1, 2)  # and even later: at or before the cursor, not kept
    assert loop._counts == {}  # nothing left behind for records already done
    assert out.requests == [["a", "b"], ["a", "b"]]


@pytest.mark.parametrize("encoders", [0, 1])
def test_the_read_loop_reports_the_item_count_of_each_record(
    tmp_path: Path, count_spy: CountSpy, encoders: int
) -> None:
    spool_ref: list[ShipLoop] = []
    rig = Rig(
        tmp_path,
        on_spooled=lambda seq, items: spool_ref[0].spooled(seq, items),
        max_docs=3,
        dead_letter_index="inferwatch-dead-letter",
        encoders=encoders,
    )
    out = ScriptedOutput([])
    ship = ShipLoop(
        rig.spool,
        out,
        DeadLetter(tmp_path / "ship-dead.ndjson", fsync=False),
        Metrics(),
        Backoff(1.0, 60.0, random.Random(1)),
    )
    spool_ref.append(ship)
    rig.write("a.jsonl", lines(range(5)) + b"broken\n" + lines(range(5, 8)))
    rig.loop.step()
    assert rig.loop.flush() is True
    rig.loop.close()
    while ship.step() is not None:
        pass
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
