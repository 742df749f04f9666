"""Write prediction log lines from a model server, in the shape the agent reads by default.

Three ways in, one line format (docs/architecture.md, "The prediction log line")::

    logger = PredictionLogger("/var/log/models/predictions.jsonl", model="churn-classifier", version="1.4.2")
    pid = logger.log({"age": 41, "country": "DE"}, {"score": 0.82}, latency_ms=12.7)

    log_prediction("/var/log/models/predictions.jsonl", "churn-classifier", inputs, outputs)

    logging.getLogger("predictions").addHandler(PredictionLogHandler(path, model="churn-classifier"))
    logging.getLogger("predictions").info("prediction", extra={"inputs": ..., "outputs": ...})

Guarantees the agent relies on:

- Each line is written with one ``write()`` of the complete line, newline included, on an
  unbuffered ``O_APPEND`` file, under a lock: the tailer never sees half a line from this
  process, and lines of concurrent threads never interleave. Nothing waits in a user-space
  buffer, so a crash of the server loses no logged prediction.
  A write that fails half-way (disk full) raises; the next line starts with a newline, so the
  torn piece stays one bad line (dead-lettered by the agent) and never swallows a good one.
- Values JSON cannot express natively are written as JSON anyway: numpy scalars and arrays
  (``.tolist()``/``.item()``), datetimes (ISO-8601), anything else as ``str(value)``;
  NaN and infinities become ``null``.
- Optional size rotation by rename (``path`` -> ``path.1`` -> ... -> ``path.<backup_count>``),
  which the agent follows with a glob such as ``*.jsonl*``. Rotation is safe between threads of
  one process; processes sharing one file must not rotate it (give each process its own file,
  e.g. ``predictions-<pid>.jsonl``, and let one glob match them all).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

# Model servers import this module: it uses the standard library only (a test checks), so adding
# prediction logging to a server adds no dependency and no native extension.

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, date | time):
        return key.isoformat()
    return str(key)


def plain(value: Any) -> Any:
    """``value`` as what JSON can hold: numpy scalars and arrays through ``.tolist()``/``.item()``,
    datetimes as ISO-8601, sets and tuples as lists, non-string keys as strings, NaN and
    infinities as null, anything else as ``str(value)``."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, date | time):
        return value.isoformat()
    for method in ("tolist", "item"):
        convert = getattr(value, method, None)
        if callable(convert):
            return plain(convert())
    return str(value)


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One JSON line (UTF-8, newline included) of ``record``, made plain first."""
    return (_ENCODER.encode(plain(record)) + "\n").encode("utf-8")


def timestamp_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return format_time(datetime.now(UTC))


def format_time(value: datetime | float | str) -> str:
    """A timestamp for the line: datetimes (naive = UTC) and epoch seconds become
    ``YYYY-MM-DDTHH:MM:SS.mmmZ``; strings are written as given."""
    if isinstance(value, str):
        return value
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    elif value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class PredictionLogger:
    """Appends prediction lines to one file; thread-safe; optional rotation by size.

    ``max_bytes``: rotate before a line would make the file larger than this (None: never).
    ``backup_count``: rotated files kept (``path.1`` newest); older ones are deleted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        version: str | None = None,
        max_bytes: int | None = None,
        backup_count: int = 5,
    ) -> None:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if backup_count < 1:
            raise ValueError("backup_count must be at least 1")
        self.path = Path(path)
        self.model = model
        self.version = version
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._torn = False  # the file ends inside a line a failed write left behind

    def log(
        self,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any] | Any,
        latency_ms: float | None = None,
        prediction_id: str | None = None,
        timestamp: datetime | float | str | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
    ) -> str:
        """Write one line and return its prediction id (a new uuid4 hex unless given).
        ``model``/``version`` override the logger's for this line."""
        pid = prediction_id if prediction_id is not None else uuid.uuid4().hex
        record: dict[str, Any] = {
            "timestamp": timestamp_now() if timestamp is None else format_time(timestamp),
            "model": model or self.model,
        }
        line_version = version if version is not None else self.version
        if line_version is not None:
            record["model_version"] = line_version
        record["prediction_id"] = pid
        record["inputs"] = inputs
        record["outputs"] = outputs
        if latency_ms is not None:
            record["latency_ms"] = latency_ms
        self.write_line(encode_line(record))
        return pid

    def write_line(self, line: bytes) -> None:
        """Append one complete line (it must end with ``\\n``) in a single write."""
        with self._lock:
            if self._fd is None:
                self._open()
            elif self.max_bytes is not None and self._size > 0 and self._size + len(line) > self.max_bytes:
                self._rotate()
            assert self._fd is not None
            if self._torn:
                line = b"\n" + line  # end the torn piece so it cannot swallow this line
            written = 0
            try:
                written = os.write(self._fd, line)
                while written < len(line):  # only on a full disk or a signal; keep the line whole
                    written += os.write(self._fd, line[written:])
            except OSError:
                # Part of the line reached the file (ENOSPC after a short write): other processes
                # may have appended since, so it is not cut away; the next line ends it instead.
                self._size += written
                self._torn = self._torn if written == 0 else not line[:written].endswith(b"\n")
                raise
            self._size += len(line)
            self._torn = False

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._torn = False
        if self.max_bytes is not None and self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for i in range(self.backup_count - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = 0
        self._torn = False


_loggers: dict[tuple[Path, str], PredictionLogger] = {}
_loggers_lock = threading.Lock()


def log_prediction(
    path: str | os.PathLike[str],
    model: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any] | Any,
    *,
    version: str | None = None,
    latency_ms: float | None = None,
    prediction_id: str | None = None,
    timestamp: datetime | float | str | None = None,
) -> str:
    """Write one prediction line to ``path`` (one shared logger per path and model, opened on
    first use, never rotated) and return the prediction id."""
    key = (Path(path).absolute(), model)
    with _loggers_lock:
        logger = _loggers.get(key)
        if logger is None:
            logger = _loggers[key] = PredictionLogger(key[0], model)
    return logger.log(inputs, outputs, latency_ms, prediction_id, timestamp, version=version)


class PredictionLogHandler(logging.Handler):
    """A logging handler that writes records carrying ``inputs`` (and usually ``outputs``,
    ``latency_ms``, ``prediction_id``, ``model``, ``model_version``) passed with ``extra=`` as
    prediction lines; records without ``inputs`` are ignored. The line's timestamp is the
    record's creation time."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        version: str | None = None,
        max_bytes: int | None = None,
        backup_count: int = 5,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.prediction_logger = PredictionLogger(path, model, version, max_bytes, backup_count)

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        inputs = fields.get("inputs")
        if inputs is None:
            return
        try:
            self.prediction_logger.log(
                inputs,
                fields.get("outputs"),
                latency_ms=fields.get("latency_ms"),
                prediction_id=fields.get("prediction_id"),
                timestamp=record.created,
                model=fields.get("model"),
                version=fields.get("model_version"),
            )
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.prediction_logger.close()
        super().close()


__all__ = ["PredictionLogHandler", "PredictionLogger", "format_time", "log_prediction", "timestamp_now"]
