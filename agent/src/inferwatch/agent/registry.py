"""The offset registry: per file identity, the offset after the last line durably spooled.

One JSON file written atomically (``agent.atomic``), so after a crash it holds either the previous
flush or the new one::

    {"version": 1,
     "files": {"<FileId.fingerprint>": {"offset": 123, "path": "/var/log/m/a.jsonl",
                                        "device": 64768, "inode": 131, "updated": 1763850000.5}},
     "dead_letter": {"inode": 140, "size": 5120}}

``dead_letter`` (optional) is the dead letter's position when the offsets were checkpointed
(``DeadLetterMark``): entries after it are for lines past the offsets, read again after a crash.

``set``/``remove``/``prune`` change memory and mark the registry dirty; ``flush`` writes it (the
read loop after each batch is spooled, without fsync; durably about once a second). ``prune`` drops
files that are gone and have not changed for a while, so the file never grows without bound.

A registry that does not parse (or has the wrong shape) is moved aside to
``registry.json.corrupt-<UTC time>``, logged and counted (``counts["corrupt"]``); the agent then
starts fresh: files are read again from their beginning and the deterministic document ids turn
the replay into 409 duplicates. A registry written by a newer format version is refused with
``RegistryError`` instead, because starting fresh would silently re-read everything after a
downgrade. A leftover ``registry.json.tmp`` (a flush interrupted before its rename) is ignored
and removed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import orjson

from inferwatch.agent.deadletter import DeadLetterMark, mark_from_json, mark_to_json
from inferwatch.agent.model import Checkpoint, FileId
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes

log = logging.getLogger(__name__)

VERSION = 1


class RegistryError(Exception):
    """The registry file exists but this version of the agent must not use or replace it."""


def encode(entries: Mapping[FileId, Checkpoint], dead_letter: DeadLetterMark | None = None) -> bytes:
    files = {
        str(fid): {
            "offset": c.offset,
            "path": c.path,
            "device": c.device,
            "inode": c.inode,
            "updated": c.updated,
        }
        for fid, c in entries.items()
    }
    doc: dict[str, Any] = {"version": VERSION, "files": files}
    if dead_letter is not None:
        doc["dead_letter"] = mark_to_json(dead_letter)
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def decode(data: bytes) -> dict[FileId, Checkpoint]:
    """The entries of a registry file; ValueError when it is not one, RegistryError when newer."""
    return decode_all(data)[0]


def decode_all(data: bytes) -> tuple[dict[FileId, Checkpoint], DeadLetterMark | None]:
    """The entries and the dead-letter mark of a registry file (see ``decode``)."""
    doc = orjson.loads(data)  # JSONDecodeError is a ValueError
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise ValueError("not a registry document (no integer 'version')")
    if doc["version"] > VERSION:
        raise RegistryError(
            f"registry format version {doc['version']} is newer than this agent understands ({VERSION})"
        )
    if doc["version"] != VERSION or not isinstance(doc.get("files"), dict):
        raise ValueError(f"unexpected registry version {doc['version']!r} or missing 'files'")
    entries = {FileId(key): _checkpoint(key, value) for key, value in doc["files"].items()}
    return entries, mark_from_json(doc.get("dead_letter"))


def _checkpoint(key: str, value: Any) -> Checkpoint:
    try:
        checkpoint = Checkpoint(
            offset=value["offset"],
            path=value["path"],
            device=value["device"],
            inode=value["inode"],
            updated=float(value["updated"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"entry {key!r}: {e!r}") from None
    ints = (checkpoint.offset, checkpoint.device, checkpoint.inode)
    if not all(isinstance(n, int) and n >= 0 for n in ints) or not isinstance(checkpoint.path, str):
        raise ValueError(f"entry {key!r}: offset/device/inode must be non-negative integers, path a string")
    return checkpoint


class Registry:
    """File offsets, in memory with an atomic JSON file behind them. Thread-safe."""

    def __init__(self, path: Path, fsync: bool = True, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.fsync = fsync
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one writer of the file at a time
        self._dirty = False
        self._unsynced = False  # written by flush(durable=False) and not fsynced since
        path.parent.mkdir(parents=True, exist_ok=True)
        self._dead_letter: DeadLetterMark | None = None
        self._entries = self._load()

    def _load(self) -> dict[FileId, Checkpoint]:
        data = read_state_bytes(self.path)
        if data is None:
            return {}
        try:
            entries, self._dead_letter = decode_all(data)
            return entries
        except RegistryError as e:
            raise RegistryError(f"{self.path}: {e}; use that agent version or move the file away") from None
        except ValueError as e:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            os.replace(self.path, aside)
            self.counts["corrupt"] += 1
            log.error("registry %s is unreadable (%s); moved to %s, starting fresh", self.path, e, aside.name)
            return {}

    def get(self, file_id: FileId) -> Checkpoint | None:
        with self._lock:
            return self._entries.get(file_id)

    def set(self, file_id: FileId, checkpoint: Checkpoint) -> None:
        with self._lock:
            if self._entries.get(file_id) != checkpoint:
                self._entries[file_id] = checkpoint
                self._dirty = True

    @property
    def dead_letter_mark(self) -> DeadLetterMark | None:
        """The dead letter's position at the checkpoint of these offsets."""
        with self._lock:
            return self._dead_letter

    def set_dead_letter_mark(self, mark: DeadLetterMark) -> None:
        with self._lock:
            if self._dead_letter != mark:
                self._dead_letter = mark
                self._dirty = True

    def remove(self, file_id: FileId) -> None:
        with self._lock:
            if self._entries.pop(file_id, None) is not None:
                self._dirty = True

    def prune(self, keep: AbstractSet[FileId], now: float, older_than: float) -> int:
        """Drop entries not in ``keep`` whose ``updated`` is more than ``older_than`` s before ``now``."""
        cutoff = now - older_than
        with self._lock:
            gone = [fid for fid, c in self._entries.items() if fid not in keep and c.updated < cutoff]
            for fid in gone:
                del self._entries[fid]
            if gone:
                self._dirty = True
        return len(gone)

    def items(self) -> dict[FileId, Checkpoint]:
        """A copy of every entry."""
        with self._lock:
            return dict(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def dirty(self) -> bool:
        with self._lock:
            return self._dirty

    def flush(self, durable: bool = True) -> bool:
        """Write the file atomically if anything changed, or fsync a prompt write not yet
        durable; True if written. An OSError (disk full) propagates and the registry stays
        dirty, so the next flush tries again.

        ``durable=False`` is the per-batch checkpoint: the rename is atomic, and what a process
        crash (kill -9) needs is there at once, in the page cache; only a power cut can lose it,
        so the fsyncs (of the file and of its directory) wait for the next durable flush, about
        a second later (``agent.upkeep``). Order still holds: the spool is fsynced before any
        checkpoint of its offsets is written, so a durable registry never points past durable
        spool data; a power cut only takes the registry back by up to that second, whose lines
        are read again and answered 409 by their deterministic ids."""
        with self._flush_lock:
            with self._lock:
                if not self._dirty and not (durable and self._unsynced):
                    return False
                snapshot = dict(self._entries)
                mark = self._dead_letter
                was_dirty, self._dirty = self._dirty, False
            fsync = self.fsync and durable
            try:
                atomic_write_bytes(self.path, encode(snapshot, mark), fsync=fsync)
            except BaseException:
                with self._lock:
                    self._dirty = self._dirty or was_dirty
                raise
            with self._lock:
                self._unsynced = self.fsync and not durable
            return True

    def close(self) -> None:
        """Flush; the registry has no other resources."""
        self.flush()
