"""The alert lifecycle: findings of one window -> alert states and the changes to write.

Pure: no clock, no I/O. One alert per (detector, model, version, feature, key) with a
deterministic id. An alert opens on one strong window (p < alpha/100) or on two consecutive
firing windows; it is updated in place while the condition holds; it resolves after
``RESOLVE_AFTER`` clean windows. An alert that fires again within ``cooldown`` seconds of its
resolution is reopened at once (``reopened``, ``recurrences`` + 1): the same document, no new
alert. Re-applying a window that was already applied changes nothing, so re-running an
evaluation never duplicates an alert or a history event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from inferwatch.analytics.model import Finding, Severity, Status

RESOLVE_AFTER = 3  # clean windows before an open alert resolves
OPEN_AFTER = 2  # consecutive firing windows that open an alert without a strong one

AlertStatus = Literal["pending", "open", "resolved"]
Transition = Literal["opened", "reopened", "updated", "escalated", "resolved"]
OPENING: frozenset[Transition] = frozenset({"opened", "reopened"})
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def alert_id(detector: str, model: str, version: str, feature: str | None, key: str | None) -> str:
    """Deterministic id: the same series always maps to the same alert document."""
    raw = "\x1f".join([detector, model, version, feature or "", key or ""])
    return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class AlertState:
    """What is remembered of one alert between windows (also the alert document's core)."""

    id: str
    detector: str
    model: str
    version: str
    feature: str | None
    key: str | None
    status: AlertStatus
    severity: Severity
    first_seen: str  # ISO-8601 window end of the first firing window
    last_seen: str  # ISO-8601 window end of the latest firing window
    last_window: str  # ISO-8601 end of the latest window applied (idempotence)
    windows: int  # firing windows while pending or open
    consecutive: int  # consecutive firing windows (to open without a strong one)
    clean: int  # consecutive clean windows while open
    finding: Mapping[str, Any]  # the latest firing finding, as a dict
    incident: str | None = None  # id of the incident the alert belongs to (alerts/incidents.py)
    recurrences: int = 0  # times the alert came back within the cooldown of its resolution
    resolved_at: str | None = None  # window end at which it last resolved (after having opened)
    acknowledged: bool = False  # inferwatch alerts ack (alerts/controls.py)
    muted_until: str | None = None  # the end of an active inferwatch alerts mute covering it

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "detector": self.detector,
            "model": self.model,
            "version": self.version,
            "feature": self.feature,
            "key": self.key,
            "status": self.status,
            "severity": self.severity,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_window": self.last_window,
            "windows": self.windows,
            "consecutive": self.consecutive,
            "clean": self.clean,
            "finding": dict(self.finding),
            "incident": self.incident,
            "recurrences": self.recurrences,
            "resolved_at": self.resolved_at,
            "acknowledged": self.acknowledged,
            "muted_until": self.muted_until,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AlertState:
        return cls(
            id=d["id"],
            detector=d["detector"],
            model=d["model"],
            version=d["version"],
            feature=d.get("feature"),
            key=d.get("key"),
            status=d["status"],
            severity=d["severity"],
            first_seen=d["first_seen"],
            last_seen=d["last_seen"],
            last_window=d["last_window"],
            windows=int(d["windows"]),
            consecutive=int(d["consecutive"]),
            clean=int(d["clean"]),
            finding=dict(d.get("finding") or {}),
            incident=d.get("incident"),
            recurrences=int(d.get("recurrences") or 0),
            resolved_at=d.get("resolved_at"),
            acknowledged=d.get("acknowledged") is True,
            muted_until=d.get("muted_until"),
        )


@dataclass(frozen=True)
class AlertChange:
    """A transition worth writing: the alert document after it, and one history event."""

    transition: Transition
    state: AlertState
    window_end: str

    @property
    def history_id(self) -> str:
        raw = f"{self.state.id}\x1f{self.window_end}\x1f{self.transition}"
        return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).hexdigest()


def apply_window(
    states: Mapping[str, AlertState],
    findings: Iterable[Finding],
    window_end: datetime,
    evaluated: Iterable[tuple[str, str]] = (),
    cooldown: float = 0.0,
) -> tuple[dict[str, AlertState], list[AlertChange]]:
    """Apply one window's findings to the alert states.

    ``evaluated`` lists the (model, version) pairs this window evaluated: an open or pending
    alert of such a pair with no firing finding counts a clean window (a value that was not
    seen again is clean). Skipped findings leave their alert untouched. A resolved alert that
    fires within ``cooldown`` seconds of its resolution reopens on that window.
    """
    end = window_end.astimezone(UTC).isoformat()  # one offset, so ISO strings compare as instants
    out = dict(states)
    changes: list[AlertChange] = []
    firing: dict[str, Finding] = {}
    skipped: set[str] = set()
    for f in findings:
        aid = alert_id(f.detector, f.model, f.version, f.feature, f.key)
        if f.status is Status.FIRING:
            prev = firing.get(aid)
            if prev is None or _SEVERITY_RANK[f.severity] > _SEVERITY_RANK[prev.severity]:
                firing[aid] = f
        elif f.status is Status.SKIPPED:
            skipped.add(aid)

    for aid, f in firing.items():
        old = out.get(aid)
        if old is not None and old.last_window >= end:
            continue  # this window was applied already
        new, transition = _fire(old, aid, f, end, _recurs(old, window_end, cooldown))
        out[aid] = new
        if transition is not None:
            changes.append(AlertChange(transition, new, end))

    pairs = set(evaluated)
    for aid, old in list(out.items()):
        if aid in firing or aid in skipped or old.status == "resolved":
            continue
        if (old.model, old.version) not in pairs or old.last_window >= end:
            continue
        new, transition = _clean(old, end)
        out[aid] = new
        if transition is not None:
            changes.append(AlertChange(transition, new, end))
    return out, changes


def _recurs(old: AlertState | None, window_end: datetime, cooldown: float) -> bool:
    """A resolved alert that had opened, firing again within ``cooldown`` of its resolution."""
    if old is None or old.status != "resolved" or old.resolved_at is None or cooldown <= 0:
        return False
    since = (window_end - datetime.fromisoformat(old.resolved_at)).total_seconds()
    return 0 < since <= cooldown


def _fire(
    old: AlertState | None, aid: str, f: Finding, end: str, recurs: bool
) -> tuple[AlertState, Transition | None]:
    finding = f.to_dict()
    if old is not None and recurs:
        reopened = replace(
            old,
            status="open",
            severity=f.severity,
            last_seen=end,
            last_window=end,
            windows=old.windows + 1,
            consecutive=1,
            clean=0,
            finding=finding,
            recurrences=old.recurrences + 1,
        )
        return reopened, "reopened"
    if old is None or old.status == "resolved":
        consecutive = 1
        state = AlertState(
            id=aid,
            detector=f.detector,
            model=f.model,
            version=f.version,
            feature=f.feature,
            key=f.key,
            status="pending",
            severity=f.severity,
            first_seen=end,
            last_seen=end,
            last_window=end,
            windows=1,
            consecutive=consecutive,
            clean=0,
            finding=finding,
            resolved_at=old.resolved_at if old is not None else None,
        )
    else:
        consecutive = old.consecutive + 1
        severity = f.severity if _SEVERITY_RANK[f.severity] > _SEVERITY_RANK[old.severity] else old.severity
        state = replace(
            old,
            last_seen=end,
            last_window=end,
            windows=old.windows + 1,
            consecutive=consecutive,
            clean=0,
            severity=severity,
            finding=finding,
        )
    if state.status == "pending":
        if f.strong or consecutive >= OPEN_AFTER:
            return replace(state, status="open"), "opened"
        return state, None
    escalated = old is not None and _SEVERITY_RANK[state.severity] > _SEVERITY_RANK[old.severity]
    return state, "escalated" if escalated else "updated"


def _clean(old: AlertState, end: str) -> tuple[AlertState, Transition | None]:
    if old.status == "pending":
        # A single non-strong window followed by a clean one never opens: forget it.
        return replace(old, status="resolved", consecutive=0, last_window=end), None
    clean = old.clean + 1
    if clean >= RESOLVE_AFTER:
        resolved = replace(
            old, status="resolved", clean=clean, consecutive=0, last_window=end, resolved_at=end
        )
        return resolved, "resolved"
    return replace(old, clean=clean, consecutive=0, last_window=end), None


def alert_document(state: AlertState, timestamp: str) -> dict[str, Any]:
    """The ``inferwatch-alerts`` document for a state (fields of ``alert_mappings`` in the alert index templates)."""
    f = state.finding
    return {
        "@timestamp": timestamp,
        "alert": {
            "id": state.id,
            "recurrences": state.recurrences,
            "acknowledged": state.acknowledged,
            "muted_until": state.muted_until,
        },
        "incident": {"id": state.incident},
        "status": state.status,
        "detector": state.detector,
        "severity": state.severity,
        "model": state.model,
        "version": state.version,
        "feature": state.feature,
        "key": state.key,
        "message": f.get("message", ""),
        "first_seen": state.first_seen,
        "last_seen": state.last_seen,
        "windows": state.windows,
        "clean_windows": state.clean,
        "window": {"start": (f.get("window") or {}).get("gte"), "end": (f.get("window") or {}).get("lt")},
        "observed": f.get("observed") or {},
        "expected": f.get("expected") or {},
        "statistic": {"name": f.get("statistic_name"), "value": f.get("statistic")},
        "p_value": f.get("p_value"),
        "threshold": f.get("threshold"),
        "effect": f.get("effect"),
        "effect_floor": f.get("effect_floor"),
        "examples": list(f.get("examples") or []),
    }


def history_document(change: AlertChange) -> dict[str, Any]:
    """One append-only event for Kibana rules: what happened to which alert in which window."""
    doc = alert_document(change.state, change.window_end)
    doc["event"] = {"action": change.transition, "kind": "alert"}
    return doc
