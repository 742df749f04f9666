"""Where alert documents go: the ``inferwatch-alerts`` index (one document per alert), the
``inferwatch-incidents`` index (one per incident) and the history stream, or files under
``<data_dir>/alerts`` in embedded mode.

The history stream holds incident events only (opened, joined, escalated, reopened, resolved):
it is what Kibana rules watch, so a person is told once per incident, not once per alert.
Both sinks are idempotent: documents are keyed by alert or incident id and history events by
(incident, window, transition), so a replayed window writes nothing new.

Each history event also carries ``event.created``, the time it was written (``WriteClock``), and
that is the time field of the Kibana rule that watches the stream: its ``@timestamp`` is the end
of the window it describes, which can be long before the worker writes it (a late or backfilled
window) and the same for every model evaluated on that window end. A rule counting "events newer
than the newest one I saw" by ``@timestamp`` would skip both. Write times are strictly increasing
(milliseconds, Kibana's resolution) and, in Elasticsearch, stamped and made visible
(``refresh=wait_for``) one write at a time, so an event a rule has not seen yet is always newer than
every event it has seen."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from inferwatch.analytics.alerts.incidents import incident_document, incident_history_document
from inferwatch.analytics.alerts.lifecycle import alert_document
from inferwatch.analytics.alerts.window import AlertUpdate
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes
from inferwatch.core.contract import ALERTS_INDEX, HISTORY_STREAM, INCIDENTS_INDEX

log = logging.getLogger(__name__)

_MS = timedelta(milliseconds=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WriteClock:
    """Write times for history events: ISO-8601 UTC with milliseconds, strictly increasing (a
    clock that steps back or two writes in one millisecond still give ordered, distinct times)."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def stamp(self) -> str:
        with self._lock:
            now = self._clock().astimezone(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last is not None and now <= self._last:
                now = self._last + _MS
            self._last = now
            return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamped(event_doc: dict[str, Any], created: str) -> dict[str, Any]:
    """A history event with its write time in ``event.created``."""
    return {**event_doc, "event": {**event_doc.get("event", {}), "created": created}}


class AlertSink(Protocol):
    def write(self, update: AlertUpdate, timestamp: str) -> None: ...

    def mark(self, marks: Mapping[str, Mapping[str, Any]]) -> int: ...


class LocalAlertSink:
    """``alerts.json`` and ``incidents.json`` (current documents by id) and ``history.ndjson``
    (incident events) under a directory."""

    def __init__(self, directory: Path, fsync: bool = True, clock: WriteClock | None = None) -> None:
        self.directory = directory
        self.fsync = fsync
        self.clock = clock or WriteClock()
        directory.mkdir(parents=True, exist_ok=True)
        self.alerts_path = directory / "alerts.json"
        self.incidents_path = directory / "incidents.json"
        self.history_path = directory / "history.ndjson"
        self._lock = threading.Lock()  # jobs of several models may write at once

    def alerts(self) -> dict[str, dict[str, Any]]:
        return _read_json(self.alerts_path)

    def incidents(self) -> dict[str, dict[str, Any]]:
        return _read_json(self.incidents_path)

    def mark(self, marks: Mapping[str, Mapping[str, Any]]) -> int:
        """Set ``alert.*`` fields of alert documents in place (``inferwatch alerts ack|mute``);
        returns how many documents were there to mark."""
        with self._lock:
            current = self.alerts()
            found = 0
            for alert_id, fields in marks.items():
                doc = current.get(alert_id)
                if doc is not None:
                    doc.setdefault("alert", {}).update(fields)
                    found += 1
            if found:
                data = orjson.dumps(current, option=orjson.OPT_INDENT_2)
                atomic_write_bytes(self.alerts_path, data, self.fsync)
            return found

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

    def write(self, update: AlertUpdate, timestamp: str) -> None:
        if not update:
            return
        with self._lock:
            self._write(update, timestamp)

    def _write(self, update: AlertUpdate, timestamp: str) -> None:
        self._drop_torn_tail()
        alerts = self.alerts()
        for change in update.alerts:
            alerts[change.state.id] = alert_document(change.state, timestamp)
        incidents = self.incidents()
        seen = {h.get("history_id") for h in self.history()}
        new_lines: list[bytes] = []
        for event in update.incidents:
            incidents[event.incident.id] = incident_document(event.incident, event.cause, timestamp)
            if event.history_id in seen:
                continue
            doc = stamped(incident_history_document(event), self.clock.stamp())
            doc["history_id"] = event.history_id
            new_lines.append(orjson.dumps(doc) + b"\n")
            seen.add(event.history_id)
        atomic_write_bytes(self.alerts_path, orjson.dumps(alerts, option=orjson.OPT_INDENT_2), self.fsync)
        if update.incidents:
            data = orjson.dumps(incidents, option=orjson.OPT_INDENT_2)
            atomic_write_bytes(self.incidents_path, data, self.fsync)
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
    """Alert and incident documents are indexed by id (updated in place); history events are
    created with a deterministic id in an append-only data stream, so a replay answers 409 and
    stores nothing."""

    def __init__(
        self,
        client: Any,
        alerts_index: str = ALERTS_INDEX,
        history_stream: str = HISTORY_STREAM,
        incidents_index: str = INCIDENTS_INDEX,
        clock: WriteClock | None = None,
    ) -> None:
        self.client = client
        self.alerts_index = alerts_index
        self.history_stream = history_stream
        self.incidents_index = incidents_index
        self.clock = clock or WriteClock()
        # One write at a time: a history event is stamped and made visible before the next one
        # is stamped (see the module docstring).
        self._lock = threading.Lock()

    def operations(self, update: AlertUpdate, timestamp: str, created: str) -> list[dict[str, Any]]:
        """The bulk operations of one write; ``created`` is its history events' write time."""
        ops: list[dict[str, Any]] = []
        for change in update.alerts:
            ops.append({"index": {"_index": self.alerts_index, "_id": change.state.id}})
            ops.append(json_safe(alert_document(change.state, timestamp)))
        for event in update.incidents:
            ops.append({"index": {"_index": self.incidents_index, "_id": event.incident.id}})
            ops.append(json_safe(incident_document(event.incident, event.cause, timestamp)))
            ops.append({"create": {"_index": self.history_stream, "_id": event.history_id}})
            ops.append(json_safe(stamped(incident_history_document(event), created)))
        return ops

    def write(self, update: AlertUpdate, timestamp: str) -> None:
        if not update:
            return
        with self._lock:
            ops = self.operations(update, timestamp, self.clock.stamp())
            resp = self.client.bulk(operations=ops, refresh="wait_for")
        failures = []
        for item in resp.get("items", []):
            ((op, result),) = item.items()
            status = result.get("status", 0)
            if status >= 300 and not (op == "create" and status == 409):
                failures.append(f"{op} {result.get('_id')}: {status} {result.get('error')}")
        if failures:
            raise RuntimeError("alert documents were refused: " + "; ".join(failures[:5]))

    def mark(self, marks: Mapping[str, Mapping[str, Any]]) -> int:
        """Partial updates of ``alert.*`` (the object is merged); a document not there yet
        (404) is skipped: the worker writes the marks with its next change of that alert."""
        if not marks:
            return 0
        ops: list[dict[str, Any]] = []
        for alert_id, fields in marks.items():
            ops.append({"update": {"_index": self.alerts_index, "_id": alert_id}})
            ops.append({"doc": {"alert": json_safe(dict(fields))}})
        resp = self.client.bulk(operations=ops, refresh="wait_for")
        found, failures = 0, []
        for item in resp.get("items", []):
            ((_op, result),) = item.items()
            status = result.get("status", 0)
            if status < 300:
                found += 1
            elif status != 404:
                failures.append(f"update {result.get('_id')}: {status} {result.get('error')}")
        if failures:
            raise RuntimeError("alert documents were refused: " + "; ".join(failures[:5]))
        return found


def _read_json(path: Path) -> dict[str, dict[str, Any]]:
    raw = read_state_bytes(path)
    if raw is None:
        return {}
    data: dict[str, dict[str, Any]] = json.loads(raw)
    return data
