"""The spool: a disk queue of ready-to-send bulk bodies, checksummed, fsynced and capped in bytes.

The pipeline appends one record per bulk request and the shipper reads them back in order; a
record stays until ``ack`` says every record up to its seq has a final outcome. While the output is
down the spool fills up to ``max_bytes``; then ``append`` raises ``SpoolFull`` and the reader
pauses, so the log files themselves are the buffer and memory stays bounded. An empty spool
accepts one record of any size (up to the framing's ``MAX_PAYLOAD``), so a record larger than
``max_bytes`` is a brief overshoot, never a stall.

On disk, ``directory`` holds:

- ``<first seq:020d>.seg`` segment files of checksummed records (framing in
  ``agent.spoolformat``), appended in seq order (seq + 1 per record). A new segment starts when
  the current one would pass ``segment_bytes`` (a record larger than that gets a segment of its
  own).
- ``ack.json`` ``{"version": 1, "acked_seq": N, "dead_letter": {"inode": I, "size": S}}``,
  written atomically (``agent.atomic``) before the segments whose records are all <= N are
  deleted; on every ack by default, or at most every ``ack_interval`` seconds (an fsynced ack
  costs 1-10 ms; see bench/spool_cost.py). ``dead_letter`` is the mark the consumer gave with that
  ack (``acked_dead_letter``): the ship loop's position in the dead letter before which no entry
  of a record after N lies, saved in the same write as N so the two always agree.
- ``lock``, held with ``flock`` while a ``Spool`` is open, so two agents never share a spool.

Opening validates every record. What a crash or a damaged disk can leave, and what happens
(``counts`` reasons, exported as metrics):

- ``torn_tail``: the last segment ends inside a record (a crash mid-append; that append never
  returned, so nothing committed is lost). Truncated away.
- ``bad_checksum``: a record in the last segment does not verify. It and the rest of the segment
  are truncated away. When its header was intact and the whole payload present, the record had
  been committed: it and the whole records after it are counted in ``records_lost`` (a
  zero-filled tail after a crash is not: that append never returned).
- ``corrupt_segment``: a record in an older segment does not verify; the rest of that segment is
  dropped and the records missing before the next segment are counted in ``records_lost``.
- ``empty_segment``: a segment file without records (a crash right after creating it). Removed.
- ``corrupt_ack``: ``ack.json`` does not parse; it is moved to ``ack.json.corrupt`` and every
  record on disk is sent again (the bulk requests use deterministic ids: the replay is answered
  409).
- ``read_corrupt``: a record that verified at open no longer does when read; the rest of its
  segment is skipped.

Seqs are never reused while ``ack.json`` or a segment survives: after everything was acked and
deleted, ``ack.json`` alone carries the numbering on. (A corrupt ``ack.json`` with no segments
left restarts at 1; consumers keying files by seq should tolerate that rare case.)

Threads: one writer (``append``) and one reader (``read``, ``ack``, ``oldest_pending_age``) may
run at once. The write and fsync of an append happen outside the state lock, so reads and acks
are not held up by the disk. Memory holds a few numbers per segment, never payloads: ``read``
continues from a cached position and file handle, and otherwise finds its start by a bisect over
the segments and a scan of the record headers of one segment.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import orjson

from inferwatch.agent.deadletter import DeadLetterMark, mark_from_json, mark_to_json
from inferwatch.agent.model import SpoolRecord
from inferwatch.agent.oserrors import name_file
from inferwatch.agent.spoolformat import (
    HEADER_BYTES,
    MAX_PAYLOAD,
    SEGMENT_RE,
    Header,
    Scan,
    encode_record,
    parse_header,
    scan_segment,
    segment_name,
)
from inferwatch.core.atomic import atomic_write_bytes, fsync_dir, read_state_bytes

log = logging.getLogger(__name__)

ACK_FILE = "ack.json"
LOCK_FILE = "lock"
ACK_VERSION = 1
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class SpoolFull(Exception):
    """The record does not fit under ``max_bytes``; retry after ``ack`` freed room."""


class SpoolInUse(RuntimeError):
    """Another open ``Spool`` (in this or another process) holds the directory."""


@dataclass(slots=True, eq=False)  # identity matters: the writer and the reader share these
class _Segment:
    first_seq: int
    path: Path
    size: int = 0  # bytes of whole, verified records
    last_seq: int = 0  # first_seq - 1 while empty

    def pending(self, acked: int) -> int:
        return max(0, self.last_seq - max(self.first_seq - 1, acked))


@dataclass(frozen=True, slots=True)
class _View:
    """A reader's snapshot of one segment (sizes only grow; deletion happens under the read lock)."""

    first_seq: int
    last_seq: int
    size: int
    path: Path


@dataclass(frozen=True, slots=True)
class _Cursor:
    after: int  # the read that left this cursor returned records up to this seq
    first_seq: int  # segment of the next record
    offset: int


class _Fds:
    """The descriptors a spool holds, apart from it so a finalizer can close them."""

    def __init__(self, lock: int) -> None:
        self.lock = lock  # flock'ed while the spool is open
        self.w: int | None = None  # the active segment, O_APPEND
        self.r: int | None = None  # the segment the reader is in

    def close_all(self) -> None:
        for fd in (self.w, self.r, self.lock):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.w = self.r = None


class Spool:
    """A durable FIFO of byte payloads with increasing seqs (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int,
        fsync: bool = True,
        *,
        clock: Callable[[], float] = time.time,
        ack_interval: float = 0.0,
    ) -> None:
        if segment_bytes <= 0 or max_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.ack_interval = ack_interval
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.counts: Counter[str] = Counter()
        self._clock = clock
        # Lock order: _read_lock -> _append_lock -> _lock. _lock guards the fields below that both
        # sides touch and is never held during disk I/O of record payloads.
        self._read_lock = threading.Lock()
        self._append_lock = threading.Lock()
        self._lock = threading.Lock()
        self._closed = False
        directory.mkdir(parents=True, exist_ok=True)
        self._fds = _Fds(self._take_lock())
        # A spool dropped without close() still releases its files and the directory lock.
        self._finalizer = weakref.finalize(self, self._fds.close_all)
        try:
            self._acked, self._acked_mark = self._load_ack()
            self._segments = self._recover()
        except BaseException:
            self._finalizer()
            raise
        self._bytes = sum(s.size for s in self._segments)
        last_on_disk = self._segments[-1].last_seq if self._segments else 0
        self._last_seq = max(self._acked, last_on_disk)
        self._ack_saved = self._acked  # what ack.json says
        self._ack_saved_at = time.monotonic()
        self._active: _Segment | None = None  # a new segment starts at the first append
        self._read_first = 0
        self._cursor: _Cursor | None = None
        self._oldest: tuple[int, float] | None = None  # (acked seq, append time of the next record)
        self._full_since: float | None = None  # monotonic start of a full episode (see ``full``)

    # ---- opening -------------------------------------------------------------------------

    def _take_lock(self) -> int:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolInUse(f"spool {self.directory} is open in another process or object") from None
        return fd

    def _load_ack(self) -> tuple[int, DeadLetterMark | None]:
        path = self.directory / ACK_FILE
        data = read_state_bytes(path)
        if data is None:
            return 0, None
        try:
            doc = orjson.loads(data)
            acked = doc["acked_seq"]
            if doc.get("version") != ACK_VERSION or not isinstance(acked, int) or acked < 0:
                raise ValueError(f"unexpected content {doc!r}")
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError) as e:
            self.counts["corrupt_ack"] += 1
            os.replace(path, path.with_name(ACK_FILE + ".corrupt"))
            log.error(
                "spool %s: %s is unreadable (%s), moved to %s.corrupt; every spooled record is sent again",
                self.directory,
                path,
                e,
                ACK_FILE,
            )
            return 0, None
        return acked, mark_from_json(doc.get("dead_letter"))

    def _segment_files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            m = SEGMENT_RE.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
            elif path.suffix == ".seg":
                log.warning("spool %s: ignoring %s (not a segment name)", self.directory, path.name)
        return sorted(found)

    def _recover(self) -> list[_Segment]:
        files = self._segment_files()
        segments: list[_Segment] = []
        for i, (first, path) in enumerate(files):
            is_last = i == len(files) - 1
            scan = scan_segment(path, first)
            if scan.problem is not None:
                self._count_damage(scan, first, path, files[i + 1][0] if not is_last else None)
                with path.open("r+b") as f:
                    f.truncate(scan.end)
                    if self.fsync:
                        os.fsync(f.fileno())
            if scan.last_seq < first:
                if scan.problem is None:
                    self.counts["empty_segment"] += 1
                path.unlink()
            elif scan.last_seq <= self._acked:  # a crash between writing ack.json and deleting
                path.unlink()
            elif segments and first <= segments[-1].last_seq:
                self.counts["corrupt_segment"] += 1
                self._lost(scan.last_seq - first + 1)
                log.error("spool %s: %s overlaps the previous segment; dropped", self.directory, path.name)
                path.unlink()
            else:
                segments.append(_Segment(first, path, scan.end, scan.last_seq))
        if self.fsync:
            fsync_dir(self.directory)
        return segments

    def _count_damage(self, scan: Scan, first: int, path: Path, next_first: int | None) -> None:
        bad_seq = scan.last_seq + 1
        if next_first is None:
            reason = "torn_tail" if scan.problem == "torn" else "bad_checksum"
            lost = max(0, bad_seq + scan.dropped - 1 - max(bad_seq - 1, self._acked))
        else:
            reason = "corrupt_segment"
            lost = max(0, next_first - max(bad_seq, self._acked + 1))
        self.counts[reason] += 1
        self._lost(lost)
        log.warning(
            "spool %s: %s in %s at byte %d (seq %d): truncated, %d record(s) lost",
            self.directory,
            reason,
            path.name,
            scan.end,
            bad_seq,
            lost,
        )

    # ---- writer side ---------------------------------------------------------------------

    def append(self, payload: bytes, items: int | None = None) -> int:
        """Store ``payload`` durably (fsynced when ``fsync``) and return its seq. ``items`` (how
        many bulk items it holds) is kept beside it and given back by ``read``."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a spool record holds at most {MAX_PAYLOAD} bytes, got {len(payload)}")
        with self._append_lock:
            self._check_open()
            seq = self._last_seq + 1  # only append changes _last_seq, and it holds _append_lock
            record = encode_record(seq, payload, self._clock(), items)
            with self._lock:
                # An empty spool takes any record: one larger than max_bytes (a batch limit set
                # above the spool's) would otherwise pause reading forever.
                if self._bytes > 0 and self._bytes + len(record) > self.max_bytes:
                    if self._full_since is None:
                        self._full_since = time.monotonic()
                        log.warning(
                            "spool %s is full (%d bytes, max_bytes %d): reading pauses whenever it is "
                            "full and the log files keep the rest; said again once it has drained "
                            "to a quarter",
                            self.directory,
                            self._bytes,
                            self.max_bytes,
                        )
                    raise SpoolFull(
                        f"spool holds {self._bytes} bytes; a record of {len(record)} would pass "
                        f"max_bytes {self.max_bytes}"
                    )
                active = self._active
                rotate = active is None or (
                    active.size > 0 and active.size + len(record) > self.segment_bytes
                )
            if rotate:
                active = self._start_segment(seq)
            assert active is not None and self._fds.w is not None
            try:
                _write_all(self._fds.w, record)
                if self.fsync:
                    _fdatasync(self._fds.w)
            except OSError as exc:
                with contextlib.suppress(OSError):  # leave no partial record behind
                    os.ftruncate(self._fds.w, active.size)
                name_file(exc, active.path)
                raise
            with self._lock:
                active.size += len(record)
                active.last_seq = seq
                self._bytes += len(record)
                self._last_seq = seq
            return seq

    def _start_segment(self, first_seq: int) -> _Segment:
        """Close the active segment and create the next one (caller holds _append_lock)."""
        path = self.directory / segment_name(first_seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.fsync:
            fsync_dir(self.directory)
        segment = _Segment(first_seq, path, 0, first_seq - 1)
        with self._lock:
            old_fd, self._fds.w = self._fds.w, fd
            self._active = segment
            self._segments.append(segment)
        if old_fd is not None:
            os.close(old_fd)
        return segment

    # ---- reader side ---------------------------------------------------------------------

    def read(self, after_seq: int, max_records: int) -> list[SpoolRecord]:
        """Up to ``max_records`` records with seq > ``after_seq`` (and > ``acked_seq``), in order."""
        with self._read_lock:
            self._check_open()
            after = max(after_seq, self._acked)
            views = self._views()
            if max_records <= 0 or not views:
                return []
            cursor = self._cursor if self._cursor is not None and self._cursor.after == after else None
            first, offset = (cursor.first_seq, cursor.offset) if cursor else self._locate(views, after)
            i = bisect.bisect_left([v.first_seq for v in views], first)
            if i == len(views):
                return []
            if views[i].first_seq != first:  # the cursor's segment is gone; continue with the next
                offset = 0
            out: list[SpoolRecord] = []
            seen = after  # the last seq passed over (for counting what a damaged record takes along)
            while len(out) < max_records:
                view = views[i]
                if offset >= view.size:
                    if i + 1 == len(views):
                        break
                    i, offset = i + 1, 0
                    continue
                found = self._read_at(view, offset)
                if found is None:
                    self._damaged(view, offset, max(seen, view.first_seq - 1))
                    offset = view.size
                    continue
                header, body = found
                offset += HEADER_BYTES + header.length
                seen = max(seen, header.seq)
                if header.seq > after:
                    items, payload = header.split(body)
                    out.append(SpoolRecord(header.seq, payload, items))
            self._cursor = _Cursor(out[-1].seq if out else after, views[i].first_seq, offset)
            return out

    def ack(self, seq: int, dead_letter: DeadLetterMark | None = None) -> None:
        """Every record <= ``seq`` is done: save the position (with the consumer's dead-letter
        mark, see the module docstring), delete fully acked segments.

        With ``ack_interval`` > 0 the position is written at most that often (and always before a
        segment is deleted, and by ``flush_ack``/``close``): a crash then replays at most the
        records acked since, which the deterministic document ids turn into 409 duplicates."""
        with self._read_lock:
            self._check_open()
            if seq <= self._acked:
                return
            if seq > self._last_seq:
                raise ValueError(f"ack({seq}) beyond the last appended seq {self._last_seq}")
            with self._lock:
                writer_done = self._active is not None and self._active.last_seq <= seq
                deletes = any(s.last_seq <= seq for s in self._segments)
            if deletes or time.monotonic() - self._ack_saved_at >= self.ack_interval:
                self._save_ack(seq, dead_letter)  # before any segment goes: seqs must never be reused
            # The active segment is deleted only while the writer is parked on _append_lock.
            with self._append_lock if writer_done else contextlib.nullcontext(), self._lock:
                self._acked, self._acked_mark = seq, dead_letter
                done = [
                    s for s in self._segments if s.last_seq <= seq and (writer_done or s is not self._active)
                ]
                self._segments = [s for s in self._segments if s not in done]
                self._bytes -= sum(s.size for s in done)
                if self._full_since is not None and self._bytes <= self.max_bytes // 4:
                    log.info(
                        "spool %s drained to %d bytes after %.0fs full; reading keeps up again",
                        self.directory,
                        self._bytes,
                        time.monotonic() - self._full_since,
                    )
                    self._full_since = None
                if self._active in done:
                    assert self._fds.w is not None
                    os.close(self._fds.w)
                    self._fds.w, self._active = None, None
            for segment in done:
                if self._fds.r is not None and self._read_first == segment.first_seq:
                    self._close_reader()
                with contextlib.suppress(FileNotFoundError):
                    segment.path.unlink()
            if done and self.fsync:
                fsync_dir(self.directory)

    def flush_ack(self) -> bool:
        """Save an acked position that ``ack_interval`` held back; True if ack.json was written."""
        with self._read_lock:
            self._check_open()
            return self._flush_ack_locked()

    def _flush_ack_locked(self) -> bool:
        if self._acked <= self._ack_saved:
            return False
        self._save_ack(self._acked, self._acked_mark)
        return True

    def _save_ack(self, seq: int, dead_letter: DeadLetterMark | None) -> None:
        doc: dict[str, object] = {"version": ACK_VERSION, "acked_seq": seq}
        if dead_letter is not None:
            doc["dead_letter"] = mark_to_json(dead_letter)
        atomic_write_bytes(self.directory / ACK_FILE, orjson.dumps(doc), fsync=self.fsync)
        self._ack_saved = seq
        self._ack_saved_at = time.monotonic()

    def oldest_pending_age(self, now: float) -> float | None:
        """Seconds since the oldest unacked record was appended; None when nothing is pending."""
        with self._read_lock:
            self._check_open()
            acked = self._acked
            if self._oldest is None or self._oldest[0] != acked:
                views = self._views()
                if not any(v.last_seq > acked for v in views):
                    return None
                first, offset = self._locate(views, acked)
                view = next(v for v in views if v.first_seq == first)
                found = self._read_at(view, offset, header_only=True) if offset < view.size else None
                if found is None:
                    return None
                self._oldest = (acked, found[0].appended)
            return max(0.0, now - self._oldest[1])

    def _views(self) -> list[_View]:
        with self._lock:
            return [_View(s.first_seq, s.last_seq, s.size, s.path) for s in self._segments]

    def _locate(self, views: list[_View], after: int) -> tuple[int, int]:
        """(segment first seq, offset) of the first record with seq > ``after``, or the end."""
        i = max(0, bisect.bisect_right([v.first_seq for v in views], after + 1) - 1)
        while i < len(views) and views[i].last_seq <= after:
            i += 1
        if i == len(views):
            return views[-1].first_seq, views[-1].size
        view, offset, seq = views[i], 0, views[i].first_seq
        while seq <= after and offset < view.size:  # skip acked or already read records by header
            found = self._read_at(view, offset, header_only=True)
            if found is None:
                self._damaged(view, offset, max(seq - 1, after))
                return view.first_seq, view.size
            offset += HEADER_BYTES + found[0].length
            seq = found[0].seq + 1
        return view.first_seq, offset

    def _read_at(self, view: _View, offset: int, header_only: bool = False) -> tuple[Header, bytes] | None:
        """The record at ``offset``; None when it no longer verifies."""
        fd = self._reader_fd(view)
        raw = _pread_exact(fd, HEADER_BYTES, offset)
        header = parse_header(raw) if len(raw) == HEADER_BYTES else None
        if header is not None and offset + HEADER_BYTES + header.length <= view.size:
            if header_only:
                return header, b""
            payload = _pread_exact(fd, header.length, offset + HEADER_BYTES)
            if header.verifies(payload):
                return header, payload
        return None

    def _damaged(self, view: _View, offset: int, done_up_to: int) -> None:
        """Count a record that no longer verifies when read; the rest of its segment is skipped."""
        self.counts["read_corrupt"] += 1
        self._lost(view.last_seq - done_up_to)
        log.error(
            "spool %s: record at byte %d of %s no longer verifies; rest of segment skipped",
            self.directory,
            offset,
            view.path.name,
        )

    def _lost(self, n: int) -> None:
        if n > 0:
            self.counts["records_lost"] += n

    def _reader_fd(self, view: _View) -> int:
        if self._fds.r is None or self._read_first != view.first_seq:
            self._close_reader()
            self._fds.r = os.open(view.path, os.O_RDONLY)
            self._read_first = view.first_seq
        return self._fds.r

    def _close_reader(self) -> None:
        if self._fds.r is not None:
            os.close(self._fds.r)
            self._fds.r = None

    # ---- state ---------------------------------------------------------------------------

    @property
    def acked_seq(self) -> int:
        with self._lock:
            return self._acked

    @property
    def acked_dead_letter(self) -> DeadLetterMark | None:
        """The dead-letter mark given with the ack of ``acked_seq`` (read from ack.json at open);
        None when none was given or ack.json had none."""
        with self._lock:
            return self._acked_mark

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    @property
    def bytes(self) -> int:
        """Bytes of records on disk (segment files)."""
        with self._lock:
            return self._bytes

    @property
    def pending(self) -> int:
        """Records appended and not acked."""
        with self._lock:
            return sum(s.pending(self._acked) for s in self._segments)

    @property
    def full(self) -> bool:
        """True from an ``append`` refused for room until acks drain the spool to a quarter of
        ``max_bytes`` (the reader has caught up): one episode, however often reading pauses and
        resumes in between (each ack frees a segment, the reader fills it again at once). Logged
        once at each end."""
        with self._lock:
            return self._full_since is not None

    @property
    def segment_count(self) -> int:
        with self._lock:
            return len(self._segments)

    def close(self) -> None:
        """Save the acked position, release files and the directory lock; idempotent."""
        with self._read_lock:
            if self._closed:
                return
            try:
                self._flush_ack_locked()
            finally:
                with self._append_lock, self._lock:
                    self._closed = True
                    self._finalizer()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"spool {self.directory} is closed")

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    while len(data) < n:
        more = os.pread(fd, n - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data
