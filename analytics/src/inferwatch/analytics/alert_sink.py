"""Where alert documents go: the ``inferwatch-alerts`` index and its history stream, or the local
store in embedded mode. Both are idempotent: alert documents are keyed by the alert id and
history events by (alert, window, transition), so a replayed window writes nothing new."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from inferwatch.analytics.alerts import AlertChange, alert_document, history_document
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes

log = logging.getLogger(__name__)

ALERTS_INDEX = "inferwatch-alerts"
HISTORY_STREAM = "logs-inferwatch_alerts.history-default"


class AlertSink(Protocol):
    def write(self, changes: Sequence[AlertChange], timestamp: str) -> None: ...


class LocalAlertSink:
    """``alerts.json`` (current alert documents by id) and ``history.ndjson`` under a directory."""

    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.directory = directory
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self.alerts_path = directory / "alerts.json"
        self.history_path = directory / "history.ndjson"
        self._lock = threading.Lock()  # jobs of several models may write at once

    def alerts(self) -> dict[str, dict[str, Any]]:
        raw = read_state_bytes(self.alerts_path)
        if raw is None:
            return {}
        data: dict[str, dict[str, Any]] = json.loads(raw)
        return data

    def history(self) -> list[dict[str, Any]]:
        """The history events; a last line without its newline (torn by a crash) is not one."""
        try:
            data = self.history_path.read_bytes()
        except FileNotFoundError:
            return []
        return [orjson.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]

    def _drop_torn_tail(self) -> None:
        """Cut a last line without its newline: the crash that tore it came before the state
        was saved, so the window is replayed and its events are written again, whole."""
        try:
            with self.history_path.open("r+b") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return
                fh.seek(size - 1)
                if fh.read(1) == b"\n":
                    return
                fh.seek(0)
                keep = fh.read().rfind(b"\n") + 1
                fh.truncate(keep)
                log.warning("history %s: dropped a torn last line (%d bytes)", self.history_path, size - keep)
        except FileNotFoundError:
            return

    def write(self, changes: Sequence[AlertChange], timestamp: str) -> None:
        if not changes:
            return
        with self._lock:
            self._write(changes, timestamp)

    def _write(self, changes: Sequence[AlertChange], timestamp: str) -> None:
        self._drop_torn_tail()
        current = self.alerts()
        seen = {h.get("history_id") for h in self.history()}
        new_lines: list[bytes] = []
        for change in changes:
            current[change.state.id] = alert_document(change.state, timestamp)
            if change.history_id in seen:
                continue
            event = history_document(change)
            event["history_id"] = change.history_id
            new_lines.append(orjson.dumps(event) + b"\n")
            seen.add(change.history_id)
        atomic_write_bytes(self.alerts_path, orjson.dumps(current, option=orjson.OPT_INDENT_2), self.fsync)
        if new_lines:
            with self.history_path.open("ab") as fh:
                fh.write(b"".join(new_lines))
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())


def json_safe(value: Any) -> Any:
    """``value`` with every NaN and infinite float replaced by None, at any depth.

    Elasticsearch's JSON parser does not accept the ``NaN``/``Infinity`` tokens that Python's
    ``json`` (the client's serializer) writes for them (Jackson's ALLOW_NON_NUMERIC_NUMBERS is off
    in elastic/elasticsearch ``JsonXContentImpl``), so one infinite effect size would make the
    alert document fail to parse on every window. The local sink writes with orjson, which also
    turns them into null: both stores hold the same documents."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class ElasticsearchAlertSink:
    """Alert documents are indexed by id (updated in place); history events are created with a
    deterministic id in an append-only data stream, so a replay answers 409 and stores nothing."""

    def __init__(
        self, client: Any, alerts_index: str = ALERTS_INDEX, history_stream: str = HISTORY_STREAM
    ) -> None:
        self.client = client
        self.alerts_index = alerts_index
        self.history_stream = history_stream

    def operations(self, changes: Sequence[AlertChange], timestamp: str) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = []
        for change in changes:
            ops.append({"index": {"_index": self.alerts_index, "_id": change.state.id}})
            ops.append(json_safe(alert_document(change.state, timestamp)))
            ops.append({"create": {"_index": self.history_stream, "_id": change.history_id}})
            ops.append(json_safe(history_document(change)))
        return ops

    def write(self, changes: Sequence[AlertChange], timestamp: str) -> None:
        if not changes:
            return
        resp = self.client.bulk(operations=self.operations(changes, timestamp), refresh="wait_for")
        failures = []
        for item in resp.get("items", []):
            ((op, result),) = item.items()
            status = result.get("status", 0)
            if status >= 300 and not (op == "create" and status == 409):
                failures.append(f"{op} {result.get('_id')}: {status} {result.get('error')}")
        if failures:
            raise RuntimeError("alert documents were refused: " + "; ".join(failures[:5]))
