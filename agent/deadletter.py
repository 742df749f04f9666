"""The dead letter: lines and documents that can never be indexed, kept with the reason.

One NDJSON line per item, appended to ``<data_dir>/dead-letter.ndjson``::

    {"@timestamp": "2026-11-22T22:15:00.123Z", "reason": "invalid_json", "detail": "...",
     "log": {"file": {"path": "/var/log/m/a.jsonl"}, "offset": 4096},
     "raw": "<the line, utf-8 with replacement, at most 64 KiB>", "raw_bytes": 70000,
     "document": {...}, "_id": "..."}

``log``, ``raw``/``raw_bytes``, ``document`` and ``_id`` appear when given. ``raw_truncated`` is
true when the line was cut at 64 KiB. Each line is one ``write`` to an O_APPEND file (so a crash
loses at most the lines of the current call, never corrupts earlier ones); ``flush`` fsyncs.
When the file passes ``max_bytes`` it is renamed to ``dead-letter.ndjson.1`` (replacing the
previous one), so a flood of bad input cannot fill the disk; ``counts`` still tells how many.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

RAW_CAP = 64 * 1024
DEFAULT_MAX_BYTES = 256 * 1024**2


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry(
    reason: str,
    detail: str,
    ts: float,
    *,
    source: str | None = None,
    offset: int | None = None,
    raw: bytes | None = None,
    document: bytes | None = None,
    doc_id: str | None = None,
) -> dict[str, Any]:
    """The dead-letter document for one item (pure)."""
    doc: dict[str, Any] = {"@timestamp": iso_ms(ts), "reason": reason, "detail": detail}
    if source is not None or offset is not None:
        log_field: dict[str, Any] = {}
        if source is not None:
            log_field["file"] = {"path": source}
        if offset is not None:
            log_field["offset"] = offset
        doc["log"] = log_field
    if raw is not None:
        doc["raw"] = raw[:RAW_CAP].decode("utf-8", errors="replace")
        doc["raw_bytes"] = len(raw)
        if len(raw) > RAW_CAP:
            doc["raw_truncated"] = True
    if document is not None:
        try:
            doc["document"] = orjson.loads(document)
        except orjson.JSONDecodeError:  # keep it readable even if it is not JSON
            doc["document"] = document[:RAW_CAP].decode("utf-8", errors="replace")
    if doc_id is not None:
        doc["_id"] = doc_id
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
        self._fd: int | None = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(
        self,
        reason: str,
        detail: str,
        *,
        source: str | None = None,
        offset: int | None = None,
        raw: bytes | None = None,
        document: bytes | None = None,
        doc_id: str | None = None,
    ) -> None:
        doc = entry(
            reason,
            detail,
            self._clock(),
            source=source,
            offset=offset,
            raw=raw,
            document=document,
            doc_id=doc_id,
        )
        line = orjson.dumps(doc) + b"\n"
        with self._lock:
            if self._fd is None:
                raise ValueError(f"dead letter {self.path} is closed")
            if self._size > 0 and self._size + len(line) > self.max_bytes:
                self._rotate()
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            self._size += len(line)
            self._unsynced = True
            self.counts[reason] += 1

    def _rotate(self) -> None:
        assert self._fd is not None
        if self.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fd = self._open()
        self._size = 0
        self.rotations += 1

    def flush(self) -> None:
        """Make every written line durable (fsync when ``fsync``)."""
        with self._lock:
            if self._fd is not None and self._unsynced and self.fsync:
                os.fsync(self._fd)
            self._unsynced = False

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
