"""The dead letter: lines and documents that can never be indexed, kept with the reason.

One NDJSON line per item, appended to ``<data_dir>/dead-letter.ndjson``::

    {"@timestamp": "2026-11-22T22:15:00.123Z", "reason": "invalid_json", "detail": "...",
     "log": {"file": {"path": "/var/log/m/a.jsonl", "fingerprint": "<file id>"}, "offset": 4096},
     "raw": "<the line, utf-8 with replacement, at most 64 KiB>", "raw_bytes": 70000,
     "document": {...}, "_id": "..."}

``log``, ``raw``/``raw_bytes``, ``document`` and ``_id`` appear when given (and ``index``, and
``spool``: ``{"seq": N}`` of an undecodable spool record). ``raw_truncated`` is true when ``raw``
is not the whole line: cut at 64 KiB, or the head of a line over ``max_line_bytes``. Each line is
one ``write`` to an O_APPEND file (so a crash loses at most the lines of the current call, never
corrupts earlier ones); ``flush`` fsyncs.
A write that fails half-way (disk full) is cut back off the file, so the next entry starts on a
line of its own. Creating or rotating the file fsyncs the directory, so the entries fsynced
afterwards are not lost with a file name a power cut forgot.
When the file passes ``max_bytes`` it is renamed to ``dead-letter.ndjson.1`` (replacing the
previous one), so a flood of bad input cannot fill the disk; ``counts`` still tells how many.

Once per line: a rejected log line's entry carries its file's identity
(``log.file.fingerprint``) and offset. The read loop checkpoints ``position()`` in the registry
with the offsets of the lines it covers; after a crash, ``lines_after(mark)`` names the lines
dead-lettered past the checkpoint, which the read loop reads again and must not write twice.

Once per document: a document the output rejected carries its target ``index`` and ``_id``. The
ship loop saves a mark with each spool acknowledgement; after a crash, ``documents_after(mark)``
counts the documents dead-lettered past it, which the ship loop sends again and must not write
twice (``agent.shipper``).

Once per spool record: a record the ship loop cannot decode carries its ``spool.seq`` (and its
length, ``raw_bytes``); ``records_after(mark)``, read as ``documents_after``, names those the ship
loop reads again after a crash.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from inferwatch.agent.normalize import format_epoch
from inferwatch.agent.oserrors import name_file
from inferwatch.core.atomic import fsync_dir

RAW_CAP = 64 * 1024
DEFAULT_MAX_BYTES = 256 * 1024**2


@dataclass(frozen=True, slots=True)
class DeadLetterMark:
    """A position in the dead letter: the file (by inode) and its size at that moment."""

    inode: int
    size: int


WHOLE_DEAD_LETTER = DeadLetterMark(0, 0)  # no file has inode 0: both files are read whole
LineKey = tuple[str, int]  # (file fingerprint, offset) of a rejected log line
DocumentKey = tuple[str, str]  # (index, _id) of a document the output rejected
RecordKey = tuple[int, int]  # (seq, length) of a spool record the ship loop could not decode
K = TypeVar("K", LineKey, RecordKey)


def mark_from_json(value: Any) -> DeadLetterMark | None:
    """A mark saved as ``{"inode": int, "size": int}``; None when absent or not that (a mark only
    avoids duplicates: a state file is not refused for it)."""
    if not isinstance(value, dict):
        return None
    inode, size = value.get("inode"), value.get("size")
    if type(inode) is not int or type(size) is not int or inode < 0 or size < 0:
        return None
    return DeadLetterMark(inode, size)


def mark_to_json(mark: DeadLetterMark) -> dict[str, int]:
    return {"inode": mark.inode, "size": mark.size}


@dataclass(frozen=True, slots=True)
class DeadLetterItem:
    """One item for the dead letter: why it was rejected, and what is kept of it. The one list of
    an entry's fields: ``entry`` writes it, ``DeadLetter.write`` appends it,
    ``agent.deadletter_index`` sends it."""

    reason: str
    detail: str
    _: KW_ONLY
    # A rejected log line: where it was read.
    source: str | None = None  # the file's path
    offset: int | None = None  # of the line in that file
    fingerprint: str | None = None  # the file's identity: with ``offset``, the line's key
    # The bytes rejected (a line, a spool record), or what may be kept of them (redacted, a head).
    raw: bytes | None = None
    raw_bytes: int | None = None  # their length when ``raw`` is not the bytes as read
    raw_truncated: bool = False  # ``raw`` is their head as read (of a line over max_line_bytes)
    # A document the output rejected: with ``index``, ``doc_id`` is its key.
    document: bytes | None = None
    doc_id: str | None = None  # its ``_id``
    index: str | None = None  # where it was to go
    # A spool record that is not a bulk body (``raw``: its payload): with its length, its key.
    spool_seq: int | None = None


def entry(item: DeadLetterItem, ts: float) -> dict[str, Any]:
    """The dead-letter document for one item written at ``ts`` (pure). ``raw_bytes`` is the
    line's length when ``raw`` is not the line as read (redacted, withheld: None, or only its
    head, which ``raw_truncated`` says); ``index`` is where a rejected ``document`` was to go."""
    doc: dict[str, Any] = {"@timestamp": format_epoch(ts), "reason": item.reason, "detail": item.detail}
    if item.source is not None or item.offset is not None:
        log_field: dict[str, Any] = {}
        if item.source is not None:
            log_field["file"] = {"path": item.source}
            if item.fingerprint is not None:
                log_field["file"]["fingerprint"] = item.fingerprint
        if item.offset is not None:
            log_field["offset"] = item.offset
        doc["log"] = log_field
    if item.spool_seq is not None:
        doc["spool"] = {"seq": item.spool_seq}
    raw = item.raw
    if raw is not None:
        doc["raw"] = raw[:RAW_CAP].decode("utf-8", errors="replace")
        doc["raw_bytes"] = len(raw)
        if item.raw_truncated or len(raw) > RAW_CAP:
            doc["raw_truncated"] = True
    if item.raw_bytes is not None:
        doc["raw_bytes"] = item.raw_bytes
    document = item.document
    if document is not None:
        try:
            doc["document"] = orjson.loads(document)
        except orjson.JSONDecodeError:  # keep it readable even if it is not JSON
            doc["document"] = document[:RAW_CAP].decode("utf-8", errors="replace")
    if item.doc_id is not None:
        doc["_id"] = item.doc_id
    if item.index is not None:
        doc["index"] = item.index
    return doc


class DeadLetter:
    """An append-only NDJSON file of rejected items, with counts by reason. Thread-safe."""

    def __init__(
        self,
        path: Path,
        fsync: bool = True,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.counts: Counter[str] = Counter()
        self.rotations = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._unsynced = False
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self._fd: int | None = self._open()
        self._size = os.fstat(self._fd).st_size
        if created and fsync:
            fsync_dir(path.parent)  # fsyncing the file alone does not make its name durable
        # A piece of a line left by a failed write that could not be cut away, or by a crash
        # (power cut) in the middle of a write: the next entry first ends it with a newline.
        self._torn = self._size > 0 and os.pread(self._fd, 1, self._size - 1) != b"\n"

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)  # read: the last byte

    def write(self, item: DeadLetterItem) -> None:
        """Append the entry of ``item`` (one ``write``), counted by its reason."""
        doc = entry(item, self._clock())
        line = orjson.dumps(doc) + b"\n"
        with self._lock:
            if self._fd is None:
                raise ValueError(f"dead letter {self.path} is closed")
            if self._size > 0 and self._size + len(line) > self.max_bytes:
                self._rotate()
            if self._torn:
                line = b"\n" + line  # end the torn piece: it must not swallow this entry
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                self._cut_back()
                name_file(exc, self.path)
                raise
            self._size += len(line)
            self._torn = False
            self._unsynced = True
            self.counts[item.reason] += 1

    def _cut_back(self) -> None:
        """After a failed write (disk full), remove the part of the line that was written: this
        object is the file's only writer, so ``_size`` is where the last whole entry ends."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            self._torn = True

    def _rotate(self) -> None:
        assert self._fd is not None
        if self.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fd = self._open()
        self._size = 0
        self._torn = False
        self.rotations += 1
        if self.fsync:
            fsync_dir(self.path.parent)  # the rename and the new name, before entries rely on them

    def position(self) -> DeadLetterMark:
        """Where the next entry goes: entries written so far are before this mark."""
        with self._lock:
            if self._fd is None:
                raise ValueError(f"dead letter {self.path} is closed")
            return DeadLetterMark(os.fstat(self._fd).st_ino, self._size)

    def lines_after(self, mark: DeadLetterMark) -> set[LineKey]:
        """The (fingerprint, offset) of the log lines dead-lettered after ``mark``, in this file
        and, when it was rotated since, in ``.1`` after the mark. A mark whose file is gone
        (rotated twice since) counts both files whole."""
        return self._keys_after(mark, _line_key)

    def documents_after(self, mark: DeadLetterMark) -> Counter[DocumentKey]:
        """How many entries each rejected document (index, _id) has after ``mark``, read as
        ``lines_after`` reads (``WHOLE_DEAD_LETTER``: both files whole)."""
        keys: Counter[DocumentKey] = Counter()
        for row in self._rows_after(mark):
            key = _document_key(row)
            if key is not None:
                keys[key] += 1
        return keys

    def records_after(self, mark: DeadLetterMark) -> set[RecordKey]:
        """The (seq, length) of the spool records dead-lettered after ``mark``, read as
        ``lines_after`` reads."""
        return self._keys_after(mark, _record_key)

    def _keys_after(self, mark: DeadLetterMark, key_of: Callable[[bytes], K | None]) -> set[K]:
        """The distinct keys ``key_of`` finds in the rows after ``mark`` (None: not its kind)."""
        return {key for row in self._rows_after(mark) if (key := key_of(row)) is not None}

    def _rows_after(self, mark: DeadLetterMark) -> Iterator[bytes]:
        """The rows (entries, and torn pieces) after ``mark`` in ``.1`` and this file."""
        files = [(self.path, 0)]
        rotated = self.path.with_name(self.path.name + ".1")
        with self._lock:
            current = None if self._fd is None else os.fstat(self._fd).st_ino
        if current == mark.inode:
            files = [(self.path, mark.size)]
        else:
            try:
                same = os.stat(rotated).st_ino == mark.inode
                files.insert(0, (rotated, mark.size if same else 0))
            except FileNotFoundError:
                pass
        for path, start in files:
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    data = f.read()
            except FileNotFoundError:
                continue
            yield from data.split(b"\n")

    def flush(self) -> None:
        """Make every written line durable (fsync when ``fsync``)."""
        with self._lock:
            if self._fd is not None and self._unsynced and self.fsync:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    name_file(exc, self.path)
                    raise
            self._unsynced = False

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _line_key(row: bytes) -> LineKey | None:
    """(fingerprint, offset) of an entry for a log line; None for other entries and torn pieces."""
    if b'"fingerprint"' not in row:
        return None
    try:
        doc = orjson.loads(row)
        log = doc["log"]
        fingerprint, offset = log["file"]["fingerprint"], log["offset"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if type(fingerprint) is not str or type(offset) is not int:
        return None
    return fingerprint, offset


def _document_key(row: bytes) -> DocumentKey | None:
    """(index, _id) of an entry for a document the output rejected; None for other entries (log
    lines carry ``log``) and torn pieces."""
    if b'"index"' not in row or b'"_id"' not in row:
        return None
    try:
        doc = orjson.loads(row)
        index, doc_id = doc["index"], doc["_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if type(index) is not str or type(doc_id) is not str or "log" in doc:
        return None
    return index, doc_id


def _record_key(row: bytes) -> RecordKey | None:
    """(seq, length) of an entry for an undecodable spool record; None for other entries and
    torn pieces."""
    if b'"spool"' not in row:
        return None
    try:
        doc = orjson.loads(row)
        seq, length = doc["spool"]["seq"], doc["raw_bytes"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if type(seq) is not int or type(length) is not int:
        return None
    return seq, length
