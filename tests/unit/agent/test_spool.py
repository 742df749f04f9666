"""Spool recovery from the on-disk fixtures, damage found while reading, failed writes, the
directory lock, and one writer thread racing one reader thread."""

from __future__ import annotations

import errno
import gc
import importlib.util
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import inferwatch.agent.spool as spool_module
from inferwatch.agent.model import SpoolRecord
from inferwatch.agent.oserrors import describe
from inferwatch.agent.spool import Spool, SpoolInUse
from inferwatch.agent.spoolformat import HEADER_BYTES, encode_record

FIXTURES = Path(__file__).parents[2] / "fixtures" / "spool"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
MB = 1024**2


def open_case(name: str, tmp_path: Path) -> tuple[Spool, dict[str, Any], Path]:
    directory = tmp_path / name
    shutil.copytree(FIXTURES / name, directory, ignore=shutil.ignore_patterns("expected.json"))
    expected = json.loads((FIXTURES / name / "expected.json").read_text())
    return Spool(directory, 10 * MB, MB, fsync=True), expected, directory


def test_every_fixture_case_has_its_expected_result() -> None:
    assert len(CASES) == 13
    assert all((FIXTURES / c / "expected.json").is_file() for c in CASES)


@pytest.mark.parametrize("case", CASES)
def test_opening_a_damaged_spool_gives_the_expected_records_and_counts(case: str, tmp_path: Path) -> None:
    spool, expected, directory = open_case(case, tmp_path)
    with spool:
        assert spool.read(0, 100) == [SpoolRecord(s, p.encode()) for s, p in expected["records"]]
        assert spool.acked_seq == expected["acked_seq"]
        assert spool.last_seq == expected["last_seq"]
        assert dict(spool.counts) == expected["counts"]
        assert sorted(p.name for p in directory.iterdir() if p.name != "lock") == expected["files"]
        assert spool.bytes == sum(p.stat().st_size for p in directory.glob("*.seg"))
        assert spool.append(b"next") == expected["last_seq"] + 1
    with Spool(directory, 10 * MB, MB) as again:  # the repair is durable: a second open is clean
        assert not again.counts
        assert [r.seq for r in again.read(0, 100)] == [s for s, _ in expected["records"]] + [
            expected["last_seq"] + 1
        ]


def test_the_committed_fixture_bytes_match_their_builder(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("spool_fixture_build", FIXTURES / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build(tmp_path)
    for case in CASES:
        for f in (FIXTURES / case).iterdir():
            assert (tmp_path / case / f.name).read_bytes() == f.read_bytes(), f"{case}/{f.name}"


def test_the_record_framing_is_stable() -> None:
    assert HEADER_BYTES == 28
    assert encode_record(7, b"abc", 1.5).hex() == (
        "495753310000000300000000000000073ff8000000000000dbfd6b66616263"
    )


def test_damage_found_while_reading_skips_the_rest_of_that_segment(tmp_path: Path) -> None:
    with Spool(tmp_path, 10 * MB, 3 * 40) as spool:
        for i in range(1, 7):
            spool.append(b"%02d" % i * 6)  # 12-byte payloads, 40-byte records: 3 per segment
        segment = tmp_path / "00000000000000000001.seg"
        data = bytearray(segment.read_bytes())
        data[40 + HEADER_BYTES] ^= 0xFF  # record 2's payload
        segment.write_bytes(bytes(data))
        assert [r.seq for r in spool.read(0, 10)] == [1, 4, 5, 6]
        assert spool.counts == {"read_corrupt": 1, "records_lost": 2}


def test_a_failed_write_leaves_no_partial_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, 10 * MB, MB)
    spool.append(b"one")
    real_write = spool_module._write_all

    def disk_full(fd: int, data: bytes) -> None:
        real_write(fd, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module, "_write_all", disk_full)
    with pytest.raises(OSError, match="No space") as failed:
        spool.append(b"two")
    # os.write names no file: the spool names its segment, for the disk-full message
    assert failed.value.filename == str(tmp_path / "00000000000000000001.seg")
    assert f"disk full writing {tmp_path}/00000000000000000001.seg" in describe(failed.value)
    monkeypatch.setattr(spool_module, "_write_all", real_write)
    assert spool.append(b"two") == 2
    spool.close()
    with Spool(tmp_path, 10 * MB, MB) as again:
        assert not again.counts
        assert again.read(0, 10) == [SpoolRecord(1, b"one"), SpoolRecord(2, b"two")]


def test_a_directory_is_used_by_one_spool_at_a_time(tmp_path: Path) -> None:
    with Spool(tmp_path, MB, MB), pytest.raises(SpoolInUse):
        Spool(tmp_path, MB, MB)
    Spool(tmp_path, MB, MB).close()  # released on close


def test_a_spool_dropped_without_close_releases_the_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MB, MB, fsync=False)
    spool.append(b"one")
    spool.read(0, 1)
    del spool
    gc.collect()
    with Spool(tmp_path, MB, MB) as again:
        assert again.read(0, 10) == [SpoolRecord(1, b"one")]


def test_files_that_are_not_segments_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "1.seg").write_bytes(b"junk")
    with Spool(tmp_path, MB, MB) as spool:
        assert spool.read(0, 10) == []
        assert not spool.counts
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "1.seg").exists()


def test_one_writer_and_one_reader_thread_see_every_record_once_in_order(tmp_path: Path) -> None:
    n = 2000
    spool = Spool(tmp_path, 64 * 1024, 4 * 1024, fsync=False)
    received: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            i = 1
            while i <= n and not stop.is_set():
                try:
                    spool.append(b"%06d" % i * 20)
                    i += 1
                except spool_module.SpoolFull:
                    stop.wait(0.001)  # the reader frees room
        except BaseException as e:
            errors.append(e)

    def reader() -> None:
        try:
            after = 0
            while after < n and not stop.is_set():
                batch = spool.read(after, 7)
                for r in batch:
                    assert r.payload == b"%06d" % r.seq * 20
                received.extend(r.seq for r in batch)
                if batch:
                    after = batch[-1].seq
                    spool.ack(after)
                else:
                    stop.wait(0.0005)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline and not errors:
        threads[1].join(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert received == list(range(1, n + 1))
    assert (spool.pending, spool.bytes, spool.acked_seq) == (0, 0, n)
    spool.close()


def crash(spool: Spool) -> None:
    """What kill -9 leaves: descriptors closed by the OS, nothing saved on the way out."""
    spool._finalizer()


def test_ack_interval_holds_the_position_back_and_a_crash_replays_those_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MB, MB, ack_interval=3600.0)
    for i in range(1, 4):
        spool.append(b"%d" % i)
    spool.ack(2)
    assert spool.acked_seq == 2
    assert not (tmp_path / "ack.json").exists()
    crash(spool)
    with Spool(tmp_path, MB, MB) as again:
        assert (again.acked_seq, [r.seq for r in again.read(0, 10)]) == (0, [1, 2, 3])


def test_ack_interval_still_saves_before_a_segment_is_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MB, HEADER_BYTES + 1, ack_interval=3600.0)  # one record per segment
    for i in range(1, 4):
        spool.append(b"%d" % i)
    spool.ack(1)
    assert json.loads((tmp_path / "ack.json").read_bytes())["acked_seq"] == 1
    crash(spool)
    with Spool(tmp_path, MB, MB) as again:
        assert (again.acked_seq, [r.seq for r in again.read(0, 10)]) == (1, [2, 3])


def test_flush_ack_and_close_save_a_held_back_position(tmp_path: Path) -> None:
    spool = Spool(tmp_path, MB, MB, ack_interval=3600.0)
    for i in range(1, 4):
        spool.append(b"%d" % i)
    spool.ack(1)
    assert spool.flush_ack() is True
    assert spool.flush_ack() is False
    assert json.loads((tmp_path / "ack.json").read_bytes())["acked_seq"] == 1
    spool.ack(2)
    spool.close()
    with Spool(tmp_path, MB, MB) as again:
        assert again.acked_seq == 2


def test_the_dead_letter_mark_given_with_an_ack_is_saved_with_that_ack(tmp_path: Path) -> None:
    from inferwatch.agent.deadletter import DeadLetterMark

    spool = Spool(tmp_path, MB, MB, ack_interval=3600.0)
    for i in range(1, 4):
        spool.append(b"%d" % i)
    assert spool.acked_dead_letter is None
    spool.ack(1, DeadLetterMark(7, 100))
    assert spool.flush_ack() is True
    spool.ack(2, DeadLetterMark(7, 250))  # held back: a crash finds seq 1 with its own mark
    crash(spool)
    with Spool(tmp_path, MB, MB) as again:
        assert (again.acked_seq, again.acked_dead_letter) == (1, DeadLetterMark(7, 100))
        again.ack(3, DeadLetterMark(8, 0))
    with Spool(tmp_path, MB, MB) as again:
        assert (again.acked_seq, again.acked_dead_letter) == (3, DeadLetterMark(8, 0))


@pytest.mark.parametrize("value", ['"x"', '{"inode": -1, "size": 0}', '{"inode": 1}', "null"])
def test_an_ack_file_with_an_unusable_dead_letter_mark_keeps_its_position(tmp_path: Path, value: str) -> None:
    (tmp_path / "ack.json").write_text(f'{{"version": 1, "acked_seq": 4, "dead_letter": {value}}}')
    with Spool(tmp_path, MB, MB) as spool:
        assert (spool.acked_seq, spool.acked_dead_letter) == (4, None)
        assert spool.counts["corrupt_ack"] == 0


def test_each_record_keeps_its_item_count_and_segments_from_before_counts_are_still_read(
    tmp_path: Path,
) -> None:
    from inferwatch.agent.spoolformat import segment_name

    directory = tmp_path / "spool"
    directory.mkdir()
    # A segment as written before counts were kept ("IWS1" framing, no count).
    old = encode_record(1, b"old-one", 1.0) + encode_record(2, b"old-two", 2.0)
    assert old[:4] == b"IWS1"
    (directory / segment_name(1)).write_bytes(old)
    with Spool(directory, 1 << 20, 1 << 16, fsync=False) as spool:
        assert spool.append(b"new", 2000) == 3
        assert spool.append(b"no-count") == 4  # without a count: the old framing
        records = spool.read(0, 10)
    assert records == [
        SpoolRecord(1, b"old-one", None),
        SpoolRecord(2, b"old-two", None),
        SpoolRecord(3, b"new", 2000),
        SpoolRecord(4, b"no-count", None),
    ]
    with Spool(directory, 1 << 20, 1 << 16, fsync=False) as spool:  # reopened: verified and read alike
        assert spool.read(0, 10) == records
        assert spool.counts == {}


def test_a_damaged_item_count_is_caught_by_the_checksum(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    with Spool(directory, 1 << 20, 1 << 16, fsync=False) as spool:
        spool.append(b"payload", 7)
    (segment,) = directory.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[HEADER_BYTES + 3] ^= 0xFF  # the count's last byte
    segment.write_bytes(bytes(data))
    with Spool(directory, 1 << 20, 1 << 16, fsync=False) as spool:
        assert spool.read(0, 10) == []
        assert spool.counts["bad_checksum"] == 1


def test_a_full_spool_is_one_episode_until_it_drains_to_a_quarter_logged_once_at_each_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from inferwatch.agent.spool import SpoolFull

    record = HEADER_BYTES + 1000
    with Spool(tmp_path / "spool", max_bytes=8 * record, segment_bytes=2 * record, fsync=False) as spool:
        caplog.set_level("INFO", logger="inferwatch.agent.spool")
        seqs = [spool.append(b"x" * 1000) for _ in range(8)]
        assert not spool.full
        refused = 0
        # A drain at the pace of the reader: each ack frees a segment, the reader fills it at once
        # and is refused again (reading paused and resumed at every segment).
        for acked in (2, 4):
            for _ in range(3):
                try:
                    spool.append(b"x" * 1000)
                except SpoolFull:
                    refused += 1
            assert spool.full
            spool.ack(seqs[acked - 1])
        assert refused == 2 * 3 - 2  # twice two records fitted in the freed segments
        spool.ack(spool.last_seq - 4)  # down to four records: half of max_bytes
        assert spool.full  # the reader has not caught up yet
        spool.ack(spool.last_seq - 2)  # down to two records: a quarter of max_bytes
        assert not spool.full
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is full" in m for m in messages) == 1
    assert sum("after" in m and "drained to" in m for m in messages) == 1


def test_spool_crash_at_every_point_of_an_ack_neither_loses_nor_reuses_seqs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pathlib
    import shutil

    from inferwatch.agent import spool as spool_module
    from inferwatch.agent.spool import Spool

    live = tmp_path / "live"
    snapshots: list[Path] = []

    def snapshot() -> None:
        target = tmp_path / f"crash{len(snapshots)}"
        shutil.copytree(live, target, ignore=shutil.ignore_patterns("lock"))
        snapshots.append(target)

    spool = Spool(live, max_bytes=1 << 20, segment_bytes=1, fsync=True)  # a segment per record
    for n in range(1, 6):
        assert spool.append(b"payload-%d" % n) == n
    spool.ack(2)

    real_save, real_unlink = spool_module.atomic_write_bytes, pathlib.Path.unlink

    def save(path: Path, data: bytes, fsync: bool = True) -> None:
        snapshot()  # crash before ack.json is replaced
        real_save(path, data, fsync)
        snapshot()  # crash right after: the acked segments are still there

    def unlink(self: Path, missing_ok: bool = False) -> None:
        real_unlink(self, missing_ok)
        if self.parent == live:
            snapshot()  # crash after each segment deletion

    monkeypatch.setattr(spool_module, "atomic_write_bytes", save)
    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    spool.ack(4)
    monkeypatch.undo()
    spool.close()
    assert len(snapshots) == 4

    for i, directory in enumerate(snapshots):
        reopened = Spool(directory, max_bytes=1 << 20, segment_bytes=1)
        acked = reopened.acked_seq
        assert acked == (2 if i == 0 else 4), directory
        assert [r.seq for r in reopened.read(0, 100)] == list(range(acked + 1, 6))
        assert [r.payload for r in reopened.read(0, 100)] == [b"payload-%d" % n for n in range(acked + 1, 6)]
        assert reopened.append(b"next") == 6  # never a reused seq
        assert not reopened.counts, reopened.counts  # nothing counted as damage or loss
        reopened.close()


def test_a_record_larger_than_the_whole_spool_does_not_stall_reading_forever(tmp_path: Path) -> None:
    from inferwatch.agent.spool import Spool, SpoolFull

    with Spool(tmp_path / "spool", max_bytes=1000, segment_bytes=500, fsync=False) as spool:
        big = b"B" * 3000  # a batch limit set above the spool's cap
        assert spool.append(big) == 1  # an empty spool takes it
        with pytest.raises(SpoolFull):
            spool.append(b"small")
        spool.ack(1)
        assert spool.append(b"small") == 2
        assert [r.payload for r in spool.read(0, 10)] == [b"small"]
