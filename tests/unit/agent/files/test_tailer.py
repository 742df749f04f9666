from __future__ import annotations

import os
import shutil
from pathlib import Path

from inferwatch.agent.files.identity import fingerprint_of
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.model import Checkpoint, FileId

from .helpers import FakeClock, drain, lines, make_tailer


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def fid(first_line: bytes) -> FileId:
    found = fingerprint_of(first_line)
    assert found is not None
    return found


def test_a_small_file_is_read_with_offsets_and_end_offset(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\nbb\n")
    t = make_tailer()
    t.add_path(str(log), 3)
    [batch] = t.step(1 << 20)
    assert (batch.lines, batch.offsets, batch.end_offset) == ([b"a", b"bb"], [0, 2], 5)
    assert (batch.file_id, batch.path, batch.input_index) == (fid(b"a\n"), str(log), 3)
    st = os.stat(log)
    assert (batch.device, batch.inode) == (st.st_dev, st.st_ino)
    assert t.step(1 << 20) == []


def test_add_path_is_idempotent(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\n")
    t = make_tailer()
    for _ in range(3):
        t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"a"]
    assert len(t.files()) == 1


def test_a_partial_last_line_waits_for_its_newline_and_is_shipped_once(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"one\ntw")
    t = make_tailer()
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"one"]
    append(log, b"o")
    assert drain(t) == []
    append(log, b"\nthree\n")
    batches = drain(t)
    assert lines(batches) == [b"two", b"three"]
    assert batches[0].offsets == [4, 8]
    assert batches[-1].end_offset == 14


def test_a_file_without_a_first_line_waits_then_is_read_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"")
    t = make_tailer()
    t.add_path(str(log), 0)
    assert drain(t) == []
    append(log, b'{"x":')
    assert drain(t) == []
    append(log, b"1}\n")
    assert lines(drain(t)) == [b'{"x":1}']


def test_crlf_stripped_and_empty_lines_skipped_with_offsets_advanced(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\r\n\r\n\nb\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    [batch] = drain(t)
    assert (batch.lines, batch.offsets, batch.end_offset) == ([b"a", b"b"], [0, 6], 8)


def test_only_empty_lines_still_advance_the_end_offset(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    append(log, b"\n\n")
    [batch] = drain(t)
    assert (batch.lines, batch.end_offset) == ([], 4)


def test_oversized_lines_are_skipped_without_buffering_and_reported_once(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    long = b"L" * 50
    log.write_bytes(b"ok\n" + long + b"\nafter\n")
    # read in 8-byte chunks: the long line spans many reads and must never be held whole
    t = make_tailer(max_line_bytes=16, read_buffer_bytes=8)
    t.add_path(str(log), 0)
    batches = drain(t)
    assert lines(batches) == [b"ok", b"after"]
    [over] = [o for b in batches for o in b.oversized]
    assert (over.offset, over.length) == (3, 50)
    assert long.startswith(over.head) and 16 < len(over.head) <= 24  # what was read when it overflowed
    assert batches[-1].end_offset == 3 + 51 + 6
    assert t.counts["oversized"] == 1


def test_an_oversized_line_written_in_pieces_is_reported_when_it_ends(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"ok\n" + b"x" * 20)
    t = make_tailer(max_line_bytes=16, read_buffer_bytes=1024)
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"ok"]
    append(log, b"y" * 20)
    assert [b.oversized for b in drain(t)] == []
    append(log, b"\nnext\n")
    batches = drain(t)
    assert lines(batches) == [b"next"]
    assert [(o.offset, o.length, o.head) for b in batches for o in b.oversized] == [(3, 40, b"x" * 20)]


def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    clock = FakeClock()
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n2\n")
    t = make_tailer(clock, rotated_grace=5.0)
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"1", b"2"]
    append(log, b"3\n")  # written before the rotation, not yet read
    os.rename(log, tmp_path / "a.jsonl.1")  # not matched by the glob: only the descriptor reaches it
    log.write_bytes(b"4\n")
    t.add_path(str(log), 0)
    assert sorted(lines(drain(t))) == [b"3", b"4"]
    assert len(t.files()) == 2
    clock.now += 4.0
    drain(t)
    assert len(t.files()) == 2  # within the grace the rotated file may still get a late write
    clock.now += 2.0
    drain(t)
    assert [f.path for f in t.files()] == [str(log)]
    assert t.counts["released_rotated"] == 1


def test_a_rotated_file_is_not_let_go_before_it_is_fully_read(tmp_path: Path) -> None:
    clock = FakeClock()
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"".join(b"%04d\n" % i for i in range(100)))
    t = make_tailer(clock, read_buffer_bytes=50)
    t.add_path(str(log), 0)
    got = lines(t.step(50))
    os.unlink(log)
    clock.now += 60.0
    for _ in range(200):
        got += lines(t.step(50))
    assert got == [b"%04d" % i for i in range(100)]


def test_a_rename_within_the_glob_is_the_same_file(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    append(log, b"2\n")
    rotated = tmp_path / "a.jsonl.1"
    os.rename(log, rotated)
    log.write_bytes(b"3\n")
    t.add_path(str(log), 0)
    t.add_path(str(rotated), 0)
    batches = drain(t)
    assert sorted(lines(batches)) == [b"2", b"3"]
    assert {b.path for b in batches if b.lines == [b"2"]} == {str(rotated)}


def test_copytruncate_reads_the_unread_tail_from_the_copy_exactly_once(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n2\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"1", b"2"]
    append(log, b"3\n4\n")  # written after the last read, before the copy
    copy = tmp_path / "a.jsonl.1"
    shutil.copyfile(log, copy)
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, b"5\n")
    t.add_path(str(copy), 0)  # discovered before the truncation is noticed: deferred
    t.add_path(str(log), 0)
    batches = drain(t)
    assert sorted(lines(batches)) == [b"3", b"4", b"5"]
    from_copy = next(b for b in batches if b.path == str(copy))
    assert (from_copy.file_id, from_copy.offsets, from_copy.end_offset) == (fid(b"1\n"), [4, 6], 8)
    from_log = next(b for b in batches if b.path == str(log))
    assert (from_log.file_id, from_log.offsets) == (fid(b"5\n"), [0])
    t.add_path(str(copy), 0)
    assert drain(t) == []


def test_copytruncate_when_the_copy_is_found_after_the_truncation(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    append(log, b"2\n")
    copy = tmp_path / "a.jsonl.1"
    shutil.copyfile(log, copy)
    with open(log, "r+b") as f:
        f.truncate(0)
    assert drain(t) == []  # truncation noticed, copy not yet discovered
    assert t.counts["truncated"] == 1
    t.add_path(str(copy), 0)
    assert lines(drain(t)) == [b"2"]


def test_copytruncate_after_reading_past_the_copy_reads_nothing_of_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n2\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    copy = tmp_path / "a.jsonl.1"
    shutil.copyfile(log, copy)
    append(log, b"3\n")  # written after the copy, read before the truncate
    t.add_path(str(copy), 0)
    assert lines(drain(t)) == [b"3"]
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, b"4\n")
    assert lines(drain(t)) == [b"4"]  # the copy holds nothing unread
    assert (t.counts["copy_already_read"], t.counts["truncated_while_away"]) == (1, 0)
    assert t.counts["copytruncate_lost"] == 0


def test_copytruncate_counts_bytes_seen_in_the_original_and_in_neither_copy_nor_read(
    tmp_path: Path,
) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n")
    t = make_tailer(read_buffer_bytes=2)
    t.add_path(str(log), 0)
    drain(t)
    copy = tmp_path / "a.jsonl.1"
    shutil.copyfile(log, copy)
    append(log, b"2\n3\n")
    assert lines(t.step(2)) == [b"2"]  # the original's new size is seen, "2" read, "3" not
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, b"4\n")
    t.add_path(str(copy), 0)
    assert lines(drain(t)) == [b"4"]
    assert t.counts["copytruncate_lost"] == 1


def test_a_copy_shorter_than_the_offset_read_in_the_original_before_a_restart(tmp_path: Path) -> None:
    copy = tmp_path / "a.jsonl.1"
    copy.write_bytes(b"a\nb\n")  # copied at 4; the original (other inode) was read to 6
    committed = {fid(b"a\n"): Checkpoint(6, str(tmp_path / "a.jsonl"), 1, 99, 0.0)}
    t = make_tailer(lookup=committed.get)
    t.add_path(str(copy), 0)
    assert drain(t) == []
    assert (t.counts["copy_already_read"], t.counts["truncated_while_away"]) == (1, 0)


def test_a_copy_of_a_live_file_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"1\n2\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    shutil.copyfile(log, tmp_path / "a.jsonl.bak")
    t.add_path(str(tmp_path / "a.jsonl.bak"), 0)
    append(log, b"3\n")
    assert lines(drain(t)) == [b"3"]
    assert t.counts["copy_deferred"] == 1


def test_truncate_and_rewrite_starts_over_under_a_new_identity(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"old-1\nold-2\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, b"new\n")
    [batch] = drain(t)
    assert (batch.lines, batch.offsets, batch.file_id) == ([b"new"], [0], fid(b"new\n"))


def test_a_rewrite_longer_than_the_old_position_is_noticed_by_its_first_line(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    with open(log, "r+b") as f:  # truncated and rewritten between two steps: size never shrank
        f.truncate(0)
    append(log, b"bbbb\ncc\n")
    assert lines(drain(t)) == [b"bbbb", b"cc"]
    assert t.counts["truncated"] == 1


def test_a_rewrite_with_the_same_first_line_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"header\nx\n")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    with open(log, "r+b") as f:
        f.truncate(0)
    assert drain(t) == []
    append(log, b"header\ny\nz\n")
    assert lines(drain(t)) == [b"header", b"y", b"z"]


def test_delete_and_recreate_reads_the_old_rest_and_the_new_file_from_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"old-1\n")
    t = make_tailer(clock)
    t.add_path(str(log), 0)
    drain(t)
    append(log, b"old-2\n")
    os.unlink(log)
    log.write_bytes(b"new-1\n")
    t.add_path(str(log), 0)
    batches = drain(t)
    assert sorted(lines(batches)) == [b"new-1", b"old-2"]
    assert next(b for b in batches if b.lines == [b"new-1"]).offsets == [0]
    clock.now += 10
    drain(t)
    assert [f.file_id for f in t.files()] == [fid(b"new-1\n")]


def test_a_deleted_file_ending_without_newline_hands_out_its_last_line_on_release(tmp_path: Path) -> None:
    clock = FakeClock()
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\nunfinished")
    t = make_tailer(clock)
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"a"]
    os.unlink(log)
    assert drain(t) == []
    clock.now += 6
    [batch] = drain(t)
    assert (batch.lines, batch.offsets, batch.end_offset) == ([b"unfinished"], [2], 12)
    assert t.files() == []


def test_files_present_at_first_start_can_start_at_the_end(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"old-1\nold-2\npart")
    t = make_tailer()
    t.add_path(str(log), 0, first_start=True, start_at="end")
    assert drain(t) == []
    append(log, b"ial\nnew\n")
    batches = drain(t)
    assert lines(batches) == [b"partial", b"new"]
    assert batches[0].offsets[0] == 12


def test_start_at_end_applies_only_at_the_first_start(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\nb\n")
    t = make_tailer()
    t.add_path(str(log), 0, first_start=False, start_at="end")
    assert lines(drain(t)) == [b"a", b"b"]


def test_restart_resumes_at_the_committed_offset(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\nb\nc\n")
    st = os.stat(log)
    committed = {fid(b"a\n"): Checkpoint(2, "elsewhere.jsonl", st.st_dev, st.st_ino + 1, 0.0)}
    t = make_tailer(lookup=committed.get)
    t.add_path(str(log), 0, first_start=True, start_at="end")  # a checkpoint wins over start_at
    [batch] = drain(t)
    assert (batch.lines, batch.offsets) == ([b"b", b"c"], [2, 4])


def test_inode_reuse_with_a_stale_checkpoint_starts_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"new-1\nnew-2\n")
    st = os.stat(log)
    # the registry remembers another file that had this very device/inode, read up to 9
    stale = {fid(b"old\n"): Checkpoint(9, str(log), st.st_dev, st.st_ino, 0.0)}
    t = make_tailer(lookup=lambda f: stale.get(f))
    t.add_path(str(log), 0)
    [batch] = drain(t)
    assert (batch.lines, batch.offsets) == ([b"new-1", b"new-2"], [0, 6])


def test_a_checkpoint_beyond_the_end_means_the_file_was_truncated_while_away(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\nb\n")
    committed = {fid(b"a\n"): Checkpoint(100, str(log), 0, 0, 0.0)}
    t = make_tailer(lookup=committed.get)
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b"a", b"b"]


def test_step_respects_the_byte_budget_and_is_fair_across_files(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.jsonl" for i in range(3)]
    for i, p in enumerate(paths):
        p.write_bytes(b"".join(b"%d-%03d\n" % (i, n) for n in range(100)))  # 6 bytes a line
    t = make_tailer(read_buffer_bytes=60)
    for p in paths:
        t.add_path(str(p), 0)
    batches = t.step(180)
    assert sum(len(b.lines) for b in batches) == 30
    assert sorted(len(b.lines) for b in batches) == [10, 10, 10]
    rest = drain(t)
    assert len(lines(batches + rest)) == 300
    assert len(set(lines(batches + rest))) == 300


def test_an_idle_file_is_closed_and_resumed_when_it_grows(tmp_path: Path) -> None:
    clock = FakeClock()
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\n")
    t = make_tailer(clock, close_idle=60.0)
    t.add_path(str(log), 0)
    drain(t)
    clock.now += 61
    drain(t)
    assert t.files() == []
    assert t.alive_ids() == {fid(b"a\n")}
    t.add_path(str(log), 0)  # unchanged: stays closed
    assert t.files() == []
    append(log, b"b\n")
    t.add_path(str(log), 0)
    [batch] = drain(t)
    assert (batch.lines, batch.offsets) == ([b"b"], [2])


def test_files_and_alive_ids_and_close(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a\nb\npartial")
    t = make_tailer()
    t.add_path(str(log), 0)
    drain(t)
    [status] = t.files()
    assert (status.path, status.file_id, status.position, status.size) == (str(log), fid(b"a\n"), 4, 11)
    assert t.alive_ids() == {fid(b"a\n")}
    t.close()
    assert t.files() == []


def test_a_rewrite_to_the_very_size_already_read_is_noticed(tmp_path: Path) -> None:
    clock = FakeClock()
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"aaa\n")
    t = make_tailer(clock)
    t.add_path(str(log), 0)
    drain(t)
    before = os.stat(log)
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, b"bbb\n")
    # as if within one tick of a coarse filesystem clock: size and mtime both look unchanged
    os.utime(log, ns=(before.st_atime_ns, before.st_mtime_ns))
    clock.now += 0.5
    assert drain(t) == []
    clock.now += 1.0  # the periodic first-line check
    [batch] = drain(t)
    assert (batch.lines, batch.offsets, batch.file_id) == ([b"bbb"], [0], fid(b"bbb\n"))


def test_delete_and_recreate_with_the_same_first_line_reads_the_new_file_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b'{"schema":1}\nold-2\n')
    clock = FakeClock()
    t = make_tailer(clock)
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b'{"schema":1}', b"old-2"]
    os.unlink(log)  # a server restart recreates its log, starting with the same header line
    log.write_bytes(b'{"schema":1}\nnew-2\nnew-3\n')
    got: list[bytes] = []
    for _ in range(4):  # the old file is let go after its grace; the new one is then read
        t.add_path(str(log), 0)
        got += lines(drain(t))
        clock.now += 10
    assert got == [b'{"schema":1}', b"new-2", b"new-3"]
    assert t.counts["same_first_line_new_file"] == 1


def test_a_moved_copy_still_continues_where_the_original_was_let_go(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b'{"schema":1}\nline-2\n')
    clock = FakeClock()
    t = make_tailer(clock)
    t.add_path(str(log), 0)
    assert lines(drain(t)) == [b'{"schema":1}', b"line-2"]
    moved = tmp_path / "b.jsonl"
    moved.write_bytes(log.read_bytes() + b"line-3\n")  # a copy that went on growing
    os.unlink(log)
    got: list[bytes] = []
    for _ in range(4):
        t.add_path(str(moved), 0)
        got += lines(drain(t))
        clock.now += 10
    assert got == [b"line-3"]
    assert t.counts["same_first_line_new_file"] == 0


def test_a_file_rotated_while_the_agent_was_down_resumes_at_its_offset_under_the_new_name(
    tmp_path: Path,
) -> None:
    from inferwatch.agent.files.identity import fingerprint_of
    from inferwatch.agent.model import Checkpoint

    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a-1\na-2\na-3\n")
    st = os.stat(log)
    fid = fingerprint_of(b"a-1\n")
    assert fid is not None
    committed = {fid: Checkpoint(4, str(log), st.st_dev, st.st_ino, 0.0)}  # a-1 was shipped
    os.rename(log, tmp_path / "a.jsonl.1")  # rotated while down, a new file at the old name
    log.write_bytes(b"b-1\n")
    t = Tailer(1 << 20, 1 << 18, committed.get)
    t.add_path(str(log), 0)
    t.add_path(str(tmp_path / "a.jsonl.1"), 0)
    assert sorted(lines(drain(t))) == [b"a-2", b"a-3", b"b-1"]


def test_a_first_line_over_max_line_bytes_gives_a_stable_identity(tmp_path: Path) -> None:
    from inferwatch.agent.model import Checkpoint

    log = tmp_path / "a.jsonl"
    log.write_bytes(b"x" * 3000 + b"\nok-1\n")
    t = Tailer(1000, 1 << 18, lambda fid: None)
    t.add_path(str(log), 0)
    batches = t.step(1 << 20)
    assert [line for b in batches for line in b.lines] == [b"ok-1"]
    assert [o.offset for b in batches for o in b.oversized] == [0]  # dead-lettered by the reader
    committed = {batches[0].file_id: Checkpoint(3006, str(log), 0, 0, 0.0)}
    with open(log, "ab") as f:
        f.write(b"ok-2\n")
    restarted = Tailer(1000, 1 << 18, committed.get)
    restarted.add_path(str(log), 0)
    assert lines(drain(restarted)) == [b"ok-2"]


def test_a_file_shorter_than_a_line_is_read_once_it_has_one_and_two_inputs_read_it_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"{")
    t = Tailer(1 << 20, 1 << 18, lambda fid: None)
    t.add_path(str(log), 0)
    t.add_path(str(log), 1)  # also matched by a second input: the first one owns it
    assert lines(drain(t)) == []
    with open(log, "ab") as f:
        f.write(b'"a":1}\n')
    batches = t.step(1 << 20)
    assert [line for b in batches for line in b.lines] == [b'{"a":1}']
    assert {b.input_index for b in batches} == {0}
