"""Read complete lines from many log files, each byte once, across rename, copytruncate,
truncation and delete-and-recreate.

The tailer knows a file by its content identity (``identity.fingerprint``), never by its path or
inode alone. Per open file it keeps a descriptor, the offset after the last newline handed out
(``line_start``), the read offset and the unfinished last line (at most ``max_line_bytes``).

- One descriptor per identity. A second file with the same identity is a copy (copytruncate) and
  stays unread while the original holds the bytes; when the original is truncated, deleted or
  renamed away, the copy takes over at the original's position and only its unread tail is read.
  A copy shorter than that position (lines read in the original between the copy and the
  truncate, or before a restart) holds nothing unread: it is not read at all. Bytes seen in the
  original past both the copy's end and the position read are counted (``copytruncate_lost``).
  A released (deleted, rotated away) file leaves a hash of its last ``SAMPLE_BYTES`` read: a
  later file with the same first line but other bytes there is a new file (delete and recreate
  with a constant first line), read from 0.
- Rename rotation: the descriptor stays open and the file is read to its end. It is let go once
  fully read, no longer reachable under its path (or deleted), and idle for ``rotated_grace``.
  A file still reachable under a globbed name is closed after ``close_idle`` and reopened when
  it changes. Positions of closed files are remembered, so a file seen again resumes there.
- Truncation (size below the read offset, or a different first line): the file is read again
  from 0 under its new identity; unread bytes are gone unless a copy turns up.
- Nothing here commits: ``lookup`` gives the committed offset of an identity the tailer has
  never seen in this process (restart), and the tailer's own positions win over it afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from inferwatch.agent.files.compressed import MAGIC_BYTES, UNDECIDED, compression_of, head_of, size_of
from inferwatch.agent.files.identity import DEFAULT_FINGERPRINT_BYTES, fingerprint, fingerprint_of
from inferwatch.agent.files.lines import HEAD_BYTES, split_lines
from inferwatch.agent.model import Checkpoint, FileId, LineBatch, OversizedLine

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (device, inode) of an open file
MAX_REMEMBERED = 10_000  # positions of closed files kept in memory (~200 B each)
PATH_CHECK_INTERVAL = 1.0  # seconds between stat()s of an idle file's path
VERIFY_INTERVAL = 1.0  # seconds between first-line checks of an idle file
SAMPLE_BYTES = 1024  # bytes before a released file's position that a copy must also hold


@dataclass(frozen=True, slots=True)
class FileStatus:
    """An open file, for lag metrics: ``size - position`` bytes are not yet handed out."""

    path: str
    file_id: FileId | None  # None until the file has a complete first line
    position: int
    size: int


@dataclass(slots=True)
class _Closed:
    end: int  # offset after the last line handed out
    path: str | None  # where the file can still be found; None when its bytes are gone
    key: Key | None
    size: int
    mtime_ns: int
    # (length, blake2b) of the bytes just before ``end``, taken when a deleted or rotated-away
    # file was let go: a later file with the same first line continues at ``end`` only if it
    # holds the same bytes there (a copy), else it is a new file that starts the same way
    sample: tuple[int, bytes] | None = None
    # Of a file truncated while open (copytruncate): its (device, inode), and its size when last
    # seen before the truncation. A file elsewhere with its identity is a copy of its bytes.
    origin: Key | None = None
    seen_size: int = 0


class _Open:
    __slots__ = (
        "fd",
        "file_id",
        "input_index",
        "key",
        "last_growth",
        "line_start",
        "mtime_ns",
        "next_path_check",
        "next_verify",
        "partial",
        "path",
        "pos",
        "size",
        "skip_head",
        "start_hint",
        "start_skip",
        "tried_size",
        "truncated_from",
    )

    def __init__(self, fd: int, path: str, input_index: int, key: Key, size: int, now: float) -> None:
        self.fd = fd
        self.path = path
        self.input_index = input_index
        self.key = key
        self.file_id: FileId | None = None
        self.line_start = 0  # offset after the last consumed newline
        self.pos = 0  # next byte to read: line_start + len(partial), or further while skipping
        self.partial = b""  # the unfinished last line
        self.skip_head: bytes | None = None  # head of an oversized line being skipped
        self.size = size
        self.mtime_ns = 0
        self.next_verify = 0.0
        self.last_growth = now
        self.next_path_check = 0.0
        self.start_hint = 0  # where to start when nothing is known of the identity
        self.start_skip = False
        self.tried_size = -1  # size at the last fingerprint attempt
        self.truncated_from: FileId | None = None


class Tailer:
    def __init__(
        self,
        max_line_bytes: int,
        read_buffer_bytes: int,
        lookup: Callable[[FileId], Checkpoint | None],
        fingerprint_bytes: int = DEFAULT_FINGERPRINT_BYTES,
        rotated_grace: float = 5.0,
        close_idle: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_line = max_line_bytes
        self._read_buffer = read_buffer_bytes
        self._lookup = lookup
        self._fp_bytes = fingerprint_bytes
        self._grace = rotated_grace
        self._close_idle = max(close_idle, rotated_grace)
        self._clock = clock
        self._open: dict[Key, _Open] = {}
        self._by_id: dict[FileId, _Open] = {}
        self._closed: dict[FileId, _Closed] = {}
        self._closed_keys: dict[Key, FileId] = {}
        self._copies: dict[FileId, dict[str, int]] = {}  # deferred copies: path -> input index
        self._compressed: dict[Key, tuple[int, int]] = {}  # skipped files -> (size, mtime_ns)
        self._batches: dict[tuple[Key, FileId], tuple[LineBatch, int]] = {}
        self._rr = 0
        self._warned: set[str] = set()
        self.counts: Counter[str] = Counter()  # events and drops by reason, for metrics

    # -- discovery side -------------------------------------------------------------------------

    def add_path(
        self, path: str, input_index: int, first_start: bool = False, start_at: str = "beginning"
    ) -> None:
        """Start tailing ``path`` unless it is a file already known; idempotent and cheap for known
        files (one ``stat``). ``first_start`` with ``start_at="end"`` starts a file nothing is known
        of after its last complete line."""
        try:
            st = os.stat(path)
        except OSError:
            return
        if not stat.S_ISREG(st.st_mode):
            return
        key = (st.st_dev, st.st_ino)
        w = self._open.get(key)
        if w is not None:
            w.path = path  # renamed to another globbed name
            return
        if self._compressed.get(key) == (st.st_size, st.st_mtime_ns):
            return  # a compressed file, unchanged since it was skipped
        fid = self._closed_keys.get(key)
        if fid is not None:
            rec = self._closed[fid]
            if rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns:
                rec.path = path  # unchanged since it was closed
                return
        self._open_path(path, input_index, first_start and start_at == "end")

    def _open_path(self, path: str, input_index: int, from_end: bool) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as e:
            self.counts["open_failed"] += 1
            self._warn_once(path, "cannot open %s: %s", path, e)
            return
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if key in self._open or not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return
            w = _Open(fd, path, input_index, key, st.st_size, self._clock())
            if from_end:
                w.start_hint, w.start_skip = self._last_line_end(fd, st.st_size)
            self._open[key] = w
            self._resolve(w)
        except OSError as e:
            self.counts["open_failed"] += 1
            self._warn_once(path, "cannot read %s: %s", path, e)
            if key in self._open and self._open[key].fd == fd:
                self._discard(self._open[key])
            else:
                os.close(fd)

    def _last_line_end(self, fd: int, size: int) -> tuple[int, bool]:
        window = min(size, self._max_line + 1)
        tail = os.pread(fd, window, size - window)
        newline = tail.rfind(b"\n")
        if newline >= 0:
            return size - window + newline + 1, False
        if size <= self._max_line:
            return 0, False  # one unfinished line: it is new data
        return size, True  # inside an oversized line: skip to its end

    def _resolve(self, w: _Open, final: bool = False) -> bool:
        """Give ``w`` its identity and start offset once it has a first line. False if ``w`` was
        dropped as a copy of a file already being read, or as a compressed file."""
        head = os.pread(w.fd, max(self._fp_bytes, MAGIC_BYTES), 0)
        size = os.fstat(w.fd).st_size
        w.tried_size = size
        kind = compression_of(head)
        if kind == UNDECIDED and not final:
            return True
        if kind is not None and kind != UNDECIDED:
            self._skip_compressed(w, kind)
            return False
        self._compressed.pop(w.key, None)
        fid = fingerprint_of(head[: self._fp_bytes], self._fp_bytes, final)
        if fid is None:
            return True
        holder = self._by_id.get(fid)
        rec = self._closed.get(fid)
        if (holder is not None and holder is not w) or (
            rec is not None and rec.key is not None and rec.key != w.key and self._still_holds(rec)
        ):
            # A copy of a file that still has its bytes (or `cp` of a live log): reading both
            # would duplicate. It takes over if the original loses them.
            self._copies.setdefault(fid, {})[w.path] = w.input_index
            self.counts["copy_deferred"] += 1
            self._discard(w)
            return False
        skip = False
        if fid == w.truncated_from:
            start = 0  # rewritten with the same first line
        elif rec is not None:
            self._forget(fid)
            start = rec.end
            if rec.sample is not None and _sample(w.fd, start) != rec.sample:
                # Deleted and recreated (or rotated, then a new file) with the same first line:
                # not a copy of the old bytes, so none of it has been read.
                start = 0
                self.counts["same_first_line_new_file"] += 1
                log.info("%s starts like a file already read but is a new file; reading it from 0", w.path)
        else:
            cp = self._lookup(fid)
            start, skip = (cp.offset, False) if cp is not None else (w.start_hint, w.start_skip)
            if cp is not None and (cp.device, cp.inode) != w.key and cp.path != w.path:
                # Read elsewhere before a restart: this is a copy of that file (copytruncate).
                rec = _Closed(cp.offset, None, None, 0, 0, origin=(cp.device, cp.inode))
        if rec is not None and rec.origin is not None and rec.origin != w.key:
            # A copy of a file truncated after it was read (copytruncate): the copy holds its
            # bytes up to where it was made. Read past that point, the copy holds nothing unread;
            # bytes seen in the original past both are lost (written between copy and truncate).
            if rec.seen_size > max(size, start):
                self.counts["copytruncate_lost"] += 1
                log.warning(
                    "%s: %d bytes written to the original after this copy was made were never read "
                    "(lost in the copytruncate)",
                    w.path,
                    rec.seen_size - max(size, start),
                )
            if start > size:
                start, skip = size, False
                self.counts["copy_already_read"] += 1
        if start > size:
            start, skip = 0, False
            self.counts["truncated_while_away"] += 1
        w.file_id = fid
        w.line_start = w.pos = start
        w.partial = b""
        w.skip_head = b"" if skip else None
        w.truncated_from = None
        self._by_id[fid] = w
        return True

    def _skip_compressed(self, w: _Open, kind: str) -> None:
        """Let go of a compressed file (a rotation compressed by logrotate): its bytes are not
        lines. Its lines were read from the plain file before it was compressed, as long as the
        agent ran (``delaycompress`` keeps that file one more rotation for an agent that was down)."""
        st = os.fstat(w.fd)
        if w.key not in self._compressed:
            self.counts["compressed"] += 1
            if "compressed" not in self._warned:
                self._warned.add("compressed")
                log.warning(
                    "%s is %s-compressed: skipped, as is every compressed file the globs match (its "
                    "lines are read from the file before it was compressed; see delaycompress in the "
                    "README's rotation advice)",
                    w.path,
                    kind,
                )
            else:
                log.info("%s is %s-compressed: skipped", w.path, kind)
            self._check_finished(w.path, kind)
        self._compressed[w.key] = (st.st_size, st.st_mtime_ns)
        while len(self._compressed) > MAX_REMEMBERED:
            del self._compressed[next(iter(self._compressed))]
        self._discard(w)

    def _check_finished(self, path: str, kind: str) -> None:
        """Say so when a compressed file is the rotation of a log the agent had not finished
        (compressed while the agent was down): its lines past the checkpoint are not read. Known
        by the identity of its first line; a log being read, or let go once read to its end, is
        finished."""
        head = head_of(path, kind, self._fp_bytes)
        fid = None if head is None else fingerprint_of(head, self._fp_bytes, final=True)
        if fid is None or fid in self._by_id:
            return
        rec = self._closed.get(fid)
        if rec is not None and rec.sample is not None:
            return  # rotated away and let go after it was read to its end
        cp = self._lookup(fid) if rec is None else None
        offset = rec.end if rec is not None else cp.offset if cp is not None else None
        if offset is None:
            return  # a log this agent never read: history, not a loss
        size = size_of(path, kind)
        if size is not None and size <= offset:
            return  # read to its end before it was compressed
        self.counts["compressed_unfinished"] += 1
        log.warning(
            "%s was compressed before the agent finished reading it (read up to offset %d of the "
            "uncompressed log): its later lines are not read. Decompress it next to the logs to "
            "have them read; use logrotate's delaycompress so it does not happen again",
            path,
            offset,
        )

    # -- reading --------------------------------------------------------------------------------

    def step(self, max_bytes: int) -> list[LineBatch]:
        """Read what is available, at most ``max_bytes`` in all, in turns of ``read_buffer_bytes``
        per file; return the complete lines per file in file order."""
        now = self._clock()
        self._batches = {}
        ready: list[_Open] = []
        seen: set[Key] = set()
        while todo := [w for k, w in self._open.items() if k not in seen]:  # copies opened below
            for w in todo:
                seen.add(w.key)
                try:
                    if self._prepare(w, now):
                        ready.append(w)
                except OSError as e:
                    self._fail(w, e)
        if ready:
            k = self._rr % len(ready)
            ready = ready[k:] + ready[:k]
            self._rr += 1
        budget = max_bytes
        while ready and budget > 0:
            more = []
            for w in ready:
                if budget <= 0:
                    break
                n = min(self._read_buffer, budget)
                try:
                    got = self._read(w, n)
                except OSError as e:
                    self._fail(w, e)
                    continue
                budget -= got
                if got == n:
                    more.append(w)
            ready = more
        out = [b for b, start in self._batches.values() if b.lines or b.oversized or b.end_offset != start]
        self._batches = {}
        for b in out:
            self.counts["oversized"] += len(b.oversized)
        return out

    def _prepare(self, w: _Open, now: float) -> bool:
        """Notice growth, truncation, a first line, rotation. True if ``w`` has bytes to read."""
        st = os.fstat(w.fd)
        size = st.st_size
        seen_size = w.size
        if size > w.size:
            w.last_growth = now
        changed = size != w.size or st.st_mtime_ns != w.mtime_ns
        w.size, w.mtime_ns = size, st.st_mtime_ns
        if w.file_id is not None:
            # Truncated and rewritten to the very size we had read shows neither as a shorter
            # file nor as new bytes: its first line tells, checked on a change and now and then
            # (timestamps may be too coarse to show the change).
            verify = size > w.pos or changed or now >= w.next_verify
            if verify and size >= w.pos:
                w.next_verify = now + VERIFY_INTERVAL
            if size < w.pos or (verify and fingerprint(w.fd, self._fp_bytes, final=True) != w.file_id):
                self._truncated(w, seen_size)
        if w.file_id is None and size != w.tried_size and not self._resolve(w):
            return False
        if w.file_id is not None and size > w.pos:
            return True
        self._maybe_release(w, st, now)
        return False

    def _truncated(self, w: _Open, seen_size: int) -> None:
        old = w.file_id
        assert old is not None
        self.counts["truncated"] += 1
        log.info("%s was truncated at offset %d; reading it again from the start", w.path, w.line_start)
        del self._by_id[old]
        self._remember(old, _Closed(w.line_start, None, None, 0, 0, origin=w.key, seen_size=seen_size))
        w.file_id = None
        w.line_start = w.pos = 0
        w.partial = b""
        w.skip_head = None
        w.start_hint, w.start_skip = 0, False
        w.tried_size = -1
        w.truncated_from = old
        self._retry_copies(old)

    def _read(self, w: _Open, n: int) -> int:
        chunk = os.pread(w.fd, n, w.pos)
        got = len(chunk)
        if not got:
            return 0
        batch = self._batch(w)
        w.pos += got
        if w.skip_head is not None:
            newline = chunk.find(b"\n")
            if newline < 0:
                return got
            end = w.pos - got + newline + 1
            batch.oversized.append(OversizedLine(w.line_start, end - 1 - w.line_start, w.skip_head))
            w.skip_head = None
            w.line_start = end
            chunk = chunk[newline + 1 :]
        data = w.partial + chunk if w.partial else chunk
        used = split_lines(data, w.line_start, self._max_line, batch.offsets, batch.lines, batch.oversized)
        w.line_start += used
        rest = data[used:] if used else data
        if len(rest) > self._max_line:
            w.skip_head = rest[:HEAD_BYTES]  # never buffer a line over the limit whole
            w.partial = b""
        else:
            w.partial = rest
        batch.end_offset = w.line_start
        return got

    def _batch(self, w: _Open) -> LineBatch:
        assert w.file_id is not None
        entry = self._batches.get((w.key, w.file_id))
        if entry is None:
            batch = LineBatch(
                w.file_id, w.path, w.input_index, [], [], w.line_start, device=w.key[0], inode=w.key[1]
            )
            entry = self._batches[(w.key, w.file_id)] = (batch, w.line_start)
        return entry[0]

    # -- letting go -----------------------------------------------------------------------------

    def _maybe_release(self, w: _Open, st: os.stat_result, now: float) -> None:
        idle = now - w.last_growth
        if idle < self._grace or now < w.next_path_check:
            return
        w.next_path_check = now + PATH_CHECK_INTERVAL
        if st.st_nlink > 0 and self._path_names(w.path, w.key):
            if idle >= self._close_idle:
                self._close(w, st, reachable=True)
            return
        self._close(w, st, reachable=False)

    def _close(self, w: _Open, st: os.stat_result, reachable: bool) -> None:
        if not reachable:
            # Rotated away or deleted, read to its end and quiet: nothing more can be read, so an
            # unfinished last line is handed out as it is (the decoder dead-letters it if broken).
            if w.file_id is None and w.size > 0 and (not self._resolve(w, final=True) or w.pos < w.size):
                return  # a copy, or its bytes are read first
            if w.file_id is not None and w.pos == w.size > w.line_start:
                self._flush_fragment(w)
        fid = w.file_id
        sample = None
        if not reachable and fid is not None:
            with contextlib.suppress(OSError):
                sample = _sample(w.fd, w.line_start)
        self._discard(w)
        if fid is None:
            return
        self.counts["closed_idle" if reachable else "released_rotated"] += 1
        log.debug("closing %s at offset %d (%s)", w.path, w.line_start, "idle" if reachable else "rotated")
        if reachable:
            self._remember(fid, _Closed(w.line_start, w.path, w.key, st.st_size, st.st_mtime_ns))
        else:
            self._remember(fid, _Closed(w.line_start, None, None, 0, 0, sample))
            self._retry_copies(fid)

    def _flush_fragment(self, w: _Open) -> None:
        batch = self._batch(w)
        if w.skip_head is not None:
            batch.oversized.append(OversizedLine(w.line_start, w.pos - w.line_start, w.skip_head))
        else:
            line = w.partial[:-1] if w.partial.endswith(b"\r") else w.partial
            if line:
                batch.offsets.append(w.line_start)
                batch.lines.append(line)
        self.counts["unterminated_last_line"] += 1
        w.line_start = w.pos
        w.partial = b""
        w.skip_head = None
        batch.end_offset = w.pos

    def _fail(self, w: _Open, e: OSError) -> None:
        self.counts["read_errors"] += 1
        self._warn_once(w.path, "cannot read %s, will retry after the next scan: %s", w.path, e)
        fid = w.file_id
        self._discard(w)
        if fid is not None:
            self._remember(fid, _Closed(w.line_start, None, None, 0, 0))

    def _discard(self, w: _Open) -> None:
        if self._open.get(w.key) is w:
            del self._open[w.key]
        if w.file_id is not None and self._by_id.get(w.file_id) is w:
            del self._by_id[w.file_id]
        with contextlib.suppress(OSError):  # already gone; nothing to release
            os.close(w.fd)

    def _retry_copies(self, fid: FileId) -> None:
        for path, input_index in self._copies.pop(fid, {}).items():
            self.add_path(path, input_index)

    def _remember(self, fid: FileId, rec: _Closed) -> None:
        self._forget(fid)
        self._closed[fid] = rec
        if rec.key is not None:
            self._closed_keys[rec.key] = fid
        while len(self._closed) > MAX_REMEMBERED:
            self._forget(next(iter(self._closed)))

    def _forget(self, fid: FileId) -> None:
        rec = self._closed.pop(fid, None)
        if rec is not None and rec.key is not None and self._closed_keys.get(rec.key) == fid:
            del self._closed_keys[rec.key]

    @staticmethod
    def _path_names(path: str, key: Key | None) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == key

    @staticmethod
    def _still_holds(rec: _Closed) -> bool:
        if rec.path is None:
            return False
        try:
            st = os.stat(rec.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == rec.key and st.st_size >= rec.end

    def _warn_once(self, path: str, msg: str, *args: object) -> None:
        if path not in self._warned and len(self._warned) < MAX_REMEMBERED:
            self._warned.add(path)
            log.warning(msg, *args)

    # -- state ----------------------------------------------------------------------------------

    def files(self) -> list[FileStatus]:
        """The open files with their size now (an ``fstat`` each: true also while not read)."""
        return [FileStatus(w.path, w.file_id, w.line_start, _size_now(w)) for w in self._open.values()]

    def alive_ids(self) -> set[FileId]:
        """Identities whose files still exist: open ones, and closed ones still under their path
        (their registry entries must not be pruned, or a restart would read them again)."""
        alive = set(self._by_id)
        for fid, rec in self._closed.items():
            if rec.path is not None and self._path_names(rec.path, rec.key):
                alive.add(fid)
        return alive

    def close(self) -> None:
        for w in list(self._open.values()):
            self._discard(w)
        self._by_id.clear()


def _size_now(w: _Open) -> int:
    try:
        return os.fstat(w.fd).st_size
    except OSError:
        return w.size


def _sample(fd: int, end: int) -> tuple[int, bytes]:
    """(length, hash) of the up to ``SAMPLE_BYTES`` bytes of ``fd`` that end at ``end``."""
    n = min(end, SAMPLE_BYTES)
    data = os.pread(fd, n, end - n)
    return len(data), hashlib.blake2b(data, digest_size=16).digest()
