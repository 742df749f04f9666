"""The spool's contract, run twice: on one open instance, and with the spool closed and opened
again between every step (what a restart does). Plus a model-based property test over random
append/ack/read/reopen/torn-write sequences."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from inferwatch.agent.model import SpoolRecord
from inferwatch.agent.spool import Spool, SpoolFull
from inferwatch.agent.spoolformat import HEADER_BYTES, encode_record

P = 100  # payload size used by most tests
REC = HEADER_BYTES + P  # bytes one such record takes on disk


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """Holds the spool under test; ``step()`` is a restart in the reopening variant."""

    def __init__(self, directory: Path, reopen: bool, max_bytes: int, segment_bytes: int) -> None:
        self.directory = directory
        self.reopen = reopen
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.clock = Clock(1_000.0)
        self.spool = self._open()

    def _open(self) -> Spool:
        return Spool(self.directory, self.max_bytes, self.segment_bytes, fsync=False, clock=self.clock)

    def step(self) -> Spool:
        if self.reopen:
            self.spool.close()
            self.spool = self._open()
        return self.spool

    def segment_files(self) -> list[str]:
        return sorted(p.name for p in self.directory.glob("*.seg"))


Make = Callable[..., Harness]


@pytest.fixture(params=["same_instance", "reopen_every_step"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    harnesses: list[Harness] = []

    def factory(max_bytes: int = 100 * REC, segment_bytes: int = 3 * REC) -> Harness:
        h = Harness(tmp_path / "spool", request.param == "reopen_every_step", max_bytes, segment_bytes)
        harnesses.append(h)
        return h

    yield factory
    for h in harnesses:
        h.spool.close()


def payload(i: int) -> bytes:
    return f"{i:03d}".encode() * (P // 3) + b"x" * (P % 3)


def seqs(records: list[SpoolRecord]) -> list[int]:
    return [r.seq for r in records]


def test_a_new_spool_is_empty(make: Make) -> None:
    h = make()
    s = h.step()
    assert (s.acked_seq, s.last_seq, s.pending, s.bytes) == (0, 0, 0, 0)
    assert s.read(0, 10) == []
    assert s.oldest_pending_age(2_000.0) is None


def test_records_come_back_in_append_order_with_their_payloads(make: Make) -> None:
    h = make()
    assert [h.step().append(payload(i)) for i in range(1, 6)] == [1, 2, 3, 4, 5]
    s = h.step()
    assert s.read(0, 10) == [SpoolRecord(i, payload(i)) for i in range(1, 6)]
    assert seqs(h.step().read(2, 2)) == [3, 4]
    assert seqs(h.step().read(5, 10)) == []
    assert (h.spool.last_seq, h.spool.pending, h.spool.bytes) == (5, 5, 5 * REC)


def test_reading_in_small_chunks_crosses_segments_without_gaps(make: Make) -> None:
    h = make()
    for i in range(1, 11):
        h.step().append(payload(i))
    got: list[int] = []
    after = 0
    while batch := h.step().read(after, 2):
        got += seqs(batch)
        after = batch[-1].seq
    assert got == list(range(1, 11))


def test_ack_is_persisted_and_acked_records_are_never_read_again(make: Make) -> None:
    h = make()
    for i in range(1, 5):
        h.step().append(payload(i))
    h.step().ack(2)
    s = h.step()
    assert s.acked_seq == 2
    assert s.pending == 2
    assert seqs(s.read(0, 10)) == [3, 4]
    assert seqs(h.step().read(1, 10)) == [3, 4]


def test_an_older_ack_changes_nothing_and_an_ack_past_the_end_is_refused(make: Make) -> None:
    h = make()
    for i in range(1, 4):
        h.step().append(payload(i))
    h.step().ack(2)
    h.step().ack(1)
    assert h.step().acked_seq == 2
    with pytest.raises(ValueError, match="beyond the last appended seq 3"):
        h.step().ack(4)
    assert h.step().acked_seq == 2


def test_segments_are_deleted_once_all_their_records_are_acked(make: Make) -> None:
    h = make(segment_bytes=2 * REC)
    for i in range(1, 6):
        h.step().append(payload(i))
    if not h.reopen:
        assert h.segment_files() == [
            "00000000000000000001.seg",
            "00000000000000000003.seg",
            "00000000000000000005.seg",
        ]
    h.step().ack(3)  # the first segment (1, 2) is done; the second (3, 4) still holds 4
    s = h.step()
    assert "00000000000000000001.seg" not in h.segment_files()
    assert s.bytes == sum(p.stat().st_size for p in h.directory.glob("*.seg"))
    assert s.bytes == (3 * REC if not h.reopen else 2 * REC)  # reopening starts a new segment
    s.ack(5)
    s = h.step()
    assert h.segment_files() == []
    assert (s.bytes, s.pending) == (0, 0)


def test_a_full_spool_refuses_appends_until_an_ack_frees_room(make: Make) -> None:
    h = make(max_bytes=3 * REC, segment_bytes=REC)
    for i in range(1, 4):
        h.step().append(payload(i))
    with pytest.raises(SpoolFull):
        h.step().append(payload(4))
    s = h.step()
    assert (s.last_seq, s.bytes) == (3, 3 * REC)
    s.ack(1)
    assert h.step().append(payload(4)) == 4
    assert seqs(h.step().read(0, 10)) == [2, 3, 4]


def test_room_comes_back_even_when_one_segment_holds_everything(make: Make) -> None:
    h = make(max_bytes=3 * REC, segment_bytes=10 * REC)
    for i in range(1, 4):
        h.step().append(payload(i))
    with pytest.raises(SpoolFull):
        h.step().append(payload(4))
    h.step().ack(3)
    s = h.step()
    assert s.bytes == 0
    assert s.append(payload(4)) == 4
    assert seqs(h.step().read(0, 10)) == [4]


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own(make: Make) -> None:
    h = make(max_bytes=20 * REC, segment_bytes=2 * REC)
    h.step().append(payload(1))
    big = b"B" * (5 * REC)
    assert h.step().append(big) == 2
    h.step().append(payload(3))
    assert h.step().read(0, 10) == [
        SpoolRecord(1, payload(1)),
        SpoolRecord(2, big),
        SpoolRecord(3, payload(3)),
    ]
    with pytest.raises(SpoolFull):
        h.step().append(b"B" * (20 * REC))


def test_seq_numbers_continue_after_everything_was_acked_and_deleted(make: Make) -> None:
    h = make()
    for i in range(1, 4):
        h.step().append(payload(i))
    h.step().ack(3)
    s = h.step()
    assert (s.last_seq, s.acked_seq) == (3, 3)
    assert s.append(payload(4)) == 4
    assert h.step().read(0, 10) == [SpoolRecord(4, payload(4))]


def test_oldest_pending_age_follows_the_oldest_unacked_record(make: Make) -> None:
    h = make()
    h.clock.now = 1_000.0
    h.step().append(payload(1))
    h.clock.now = 1_010.0
    h.step().append(payload(2))
    assert h.step().oldest_pending_age(1_030.0) == 30.0
    h.step().ack(1)
    assert h.step().oldest_pending_age(1_030.0) == 20.0
    h.step().ack(2)
    assert h.step().oldest_pending_age(1_030.0) is None


def test_a_closed_spool_refuses_work(tmp_path: Path) -> None:
    s = Spool(tmp_path, 10 * REC, REC, fsync=False)
    s.close()
    s.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        s.append(b"x")
    with pytest.raises(ValueError, match="closed"):
        s.read(0, 1)


# ---- property: the spool behaves like a list of unacked records ---------------------------


class SpoolModel(RuleBasedStateMachine):
    """Random appends, reads, acks, clean reopens and crashes in the middle of an append."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.max_bytes = 12 * REC
        self.segment_bytes = 3 * REC
        self.spool = self._open()
        self.unacked: list[SpoolRecord] = []
        self.last = 0

    def _open(self) -> Spool:
        return Spool(self.directory, self.max_bytes, self.segment_bytes, fsync=False)

    @rule(size=st.integers(0, 2 * REC), byte=st.binary(min_size=1, max_size=1))
    def append(self, size: int, byte: bytes) -> None:
        data = byte * size
        before = self.spool.bytes
        try:
            seq = self.spool.append(data)
        except SpoolFull:
            assert before + HEADER_BYTES + size > self.max_bytes
            return
        self.last += 1
        assert seq == self.last
        self.unacked.append(SpoolRecord(seq, data))

    @precondition(lambda self: self.unacked)
    @rule(k=st.integers(0, 20))
    def ack(self, k: int) -> None:
        upto = self.unacked[min(k, len(self.unacked) - 1)].seq
        self.spool.ack(upto)
        self.unacked = [r for r in self.unacked if r.seq > upto]

    @rule(after_index=st.integers(0, 20), n=st.integers(1, 5))
    def read_some(self, after_index: int, n: int) -> None:
        after = self.unacked[after_index - 1].seq if 0 < after_index <= len(self.unacked) else 0
        expected = [r for r in self.unacked if r.seq > after][:n]
        assert self.spool.read(after, n) == expected

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = self._open()
        assert not self.spool.counts

    @rule(cut=st.integers(1, HEADER_BYTES + 50))
    def crash_mid_append(self, cut: int) -> None:
        """The process dies while writing the next record: part of it is on disk."""
        self.spool.close()
        torn = encode_record(self.last + 1, b"t" * 60, 0.0)[:cut]
        segments = sorted(self.directory.glob("*.seg"))
        target = segments[-1] if segments else self.directory / f"{self.last + 1:020d}.seg"
        with target.open("ab") as f:
            f.write(torn)
        self.spool = self._open()
        assert set(self.spool.counts) <= {"torn_tail", "bad_checksum", "empty_segment"}
        assert self.spool.counts["records_lost"] == 0

    @invariant()
    def reads_everything_unacked_in_order(self) -> None:
        assert self.spool.read(0, 1000) == self.unacked
        assert self.spool.pending == len(self.unacked)
        assert self.spool.last_seq == self.last
        assert self.spool.bytes >= sum(HEADER_BYTES + len(r.payload) for r in self.unacked)

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.directory, ignore_errors=True)


TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
