"""Incidents: the alerts of one model version whose causes overlap, as one thing to act on.

Pure: no clock, no I/O. Applied after ``lifecycle.apply_window`` on the same window:

- An alert that opens (or reopens) joins an open incident of its model and version when their
  causes overlap: it is on a feature the incident already holds, it is a prediction shift
  (``outputs.*``: it follows an input failure), or one of the incident's alerts fired in this
  same window (the two conditions hold at once: features that move together, or one cause
  seen by several detectors). Otherwise it opens a new incident.
- An incident's severity is its worst member's; it escalates when that rises. When every
  member has resolved it is ``resolving``: it resolves (and says so) once ``cooldown`` seconds
  pass with none of them back. An alert that reopens within its cooldown goes back to its own
  incident, which reopens silently (``reopened``, ``recurrences`` + 1): a flapping cause is one
  incident with one "opened" and one "resolved" message, not one pair per flap.
- Its message names the likely cause first: the member earliest in ``CAUSE_ORDER`` (a vanished
  input before a null surge before a drift, inputs before outputs), then what follows.

Notifications are per incident: ``IncidentChange`` events (``opened``, ``escalated``,
``resolved``; ``reopened`` and ``joined`` are recorded, not meant to notify) are what the
history stream and its Kibana rules receive.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from inferwatch.analytics.alerts.lifecycle import OPENING, AlertChange, AlertState
from inferwatch.analytics.model import Severity

IncidentStatus = Literal["open", "resolving", "resolved"]
IncidentTransition = Literal["opened", "joined", "escalated", "reopened", "resolving", "resolved"]
INCIDENT_TRANSITIONS: tuple[IncidentTransition, ...] = get_args(IncidentTransition)  # in a life's order
NOTIFYING: frozenset[str] = frozenset({"opened", "escalated", "resolved"})
_RANK = {"info": 0, "warning": 1, "critical": 2}

# Likely causes first: what breaks an input outright, then what shifts it, then what follows.
CAUSE_ORDER = (
    "feature_vanished",
    "null_surge",
    "null_creep",
    "unseen_category",
    "unseen_rate",
    "oov_rate",
    "category_drift",
    "numeric_drift",
    "vocabulary_drift",
    "version",
    "volume",
    "latency",
    "prediction_drift",
)
_PHRASES = {
    "feature_vanished": "{f} vanished",
    "null_surge": "missing values surged on {f}",
    "null_creep": "missing values creeping up on {f}",
    "unseen_category": "new value {k} on {f}",
    "unseen_rate": "unseen values surged on {f}",
    "oov_rate": "out-of-vocabulary texts surged on {f}",
    "category_drift": "value distribution shifted on {f}",
    "numeric_drift": "value distribution shifted on {f}",
    "vocabulary_drift": "vocabulary shifted on {f}",
    "prediction_drift": "prediction drift on {f}",
    "volume": "prediction volume changed",
    "version": "version change ({k})",
    "latency": "predictions got slower",
}


def incident_id(model: str, version: str, first_alert: str, opened: str) -> str:
    raw = "\x1f".join(["incident", model, version, first_alert, opened])
    return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class IncidentState:
    id: str
    model: str
    version: str
    status: IncidentStatus
    severity: Severity
    opened: str  # window end at which it opened
    resolved: str | None  # window end at which its last member resolved (resolving, resolved)
    last_window: str
    members: tuple[str, ...]  # alert ids, in the order they joined
    cause: str  # alert id of the likely cause
    message: str
    recurrences: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "severity": self.severity,
            "opened": self.opened,
            "resolved": self.resolved,
            "last_window": self.last_window,
            "members": list(self.members),
            "cause": self.cause,
            "message": self.message,
            "recurrences": self.recurrences,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IncidentState:
        return cls(
            id=d["id"],
            model=d["model"],
            version=d["version"],
            status=d["status"],
            severity=d["severity"],
            opened=d["opened"],
            resolved=d.get("resolved"),
            last_window=d["last_window"],
            members=tuple(d.get("members") or ()),
            cause=d["cause"],
            message=d.get("message", ""),
            recurrences=int(d.get("recurrences") or 0),
        )


@dataclass(frozen=True)
class IncidentChange:
    transition: IncidentTransition
    incident: IncidentState
    cause: AlertState  # the cause's alert state (detector, feature, key of the document)
    window_end: str

    @property
    def notifies(self) -> bool:
        return self.transition in NOTIFYING

    @property
    def history_id(self) -> str:
        raw = f"{self.incident.id}\x1f{self.window_end}\x1f{self.transition}"
        return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).hexdigest()


def cause_rank(a: AlertState) -> tuple[int, int, str]:
    rank = CAUSE_ORDER.index(a.detector) if a.detector in CAUSE_ORDER else len(CAUSE_ORDER)
    output = 1 if (a.feature or "").startswith("outputs.") else 0
    return (output, rank, a.first_seen)


def _phrase(a: AlertState) -> str:
    text = _PHRASES.get(a.detector, a.detector + " on {f}")
    return text.format(f=a.feature or a.model, k=repr(a.key) if a.key is not None else "")


def incident_message(members: Iterable[AlertState]) -> tuple[str, str]:
    """(cause alert id, message): the likely cause first, then what follows, one phrase per
    feature (other detectors on the cause's feature are named in brackets)."""
    ranked = sorted(members, key=cause_rank)
    if not ranked:
        return "", ""
    cause = ranked[0]
    same = sorted(
        {a.detector for a in ranked[1:] if a.feature == cause.feature and a.detector != cause.detector}
    )
    head = _phrase(cause) + (f" (also {', '.join(same)})" if same else "")
    rest: list[str] = []
    seen = {cause.feature}
    for a in ranked[1:]:
        if a.feature in seen:
            continue
        seen.add(a.feature)
        rest.append(_phrase(a))
    if not rest:
        return cause.id, head
    verb = "follows" if len(rest) == 1 else "follow"
    return cause.id, f"{head}; {', '.join(rest)} {verb}"


def _worst(members: Iterable[AlertState]) -> Severity:
    worst: Severity = "info"
    for a in members:
        if _RANK[a.severity] > _RANK[worst]:
            worst = a.severity
    return worst


def _quiet_for(inc: IncidentState, end: datetime) -> float:
    return (end - datetime.fromisoformat(inc.resolved)).total_seconds() if inc.resolved else 0.0


def _related(inc: IncidentState, alert: AlertState, alerts: Mapping[str, AlertState], end: str) -> bool:
    if inc.status != "open" or (inc.model, inc.version) != (alert.model, alert.version):
        return False
    members = [alerts[m] for m in inc.members if m in alerts]
    if (alert.feature or "").startswith("outputs."):
        return True  # a prediction shift follows what moved its inputs
    if any(m.feature == alert.feature for m in members):
        return True
    return any(m.last_seen == end for m in members)  # firing together in this window


def apply_incidents(
    incidents: Mapping[str, IncidentState],
    alerts: Mapping[str, AlertState],
    changes: Iterable[AlertChange],
    window_end: datetime,
    cooldown: float = 0.0,
) -> tuple[dict[str, IncidentState], dict[str, AlertState], list[IncidentChange]]:
    """Group this window's alert changes into incidents.

    Returns the incidents, the alerts with their ``incident`` set, and the incident changes.
    Re-applying a window changes nothing (the alert changes of a replay are empty).
    """
    end_dt = window_end.astimezone(UTC)
    end = end_dt.isoformat()
    out = dict(incidents)
    states = dict(alerts)
    touched: dict[str, IncidentState] = {}  # id -> the incident as it was before this window
    joined: dict[str, list[str]] = {}
    changed = list(changes)
    events: list[IncidentChange] = []
    _resolve_quiet(out, states, end_dt, cooldown, events)

    def live_own(alert: AlertState) -> IncidentState | None:
        own = out.get(alert.incident) if alert.incident else None
        return own if own is not None and own.status in ("open", "resolving") else None

    # Alerts going back to their own incident first: a resolving incident one of them reopens is
    # open again for the other alerts of this window (a new alert on the same cause joins it
    # instead of opening, and notifying, a second incident).
    opening = sorted(
        (c for c in changed if c.transition in OPENING),
        key=lambda c: (live_own(states[c.state.id]) is None, cause_rank(c.state)),
    )
    for change in opening:
        alert = states[change.state.id]
        target: IncidentState | None = None
        own = live_own(alert)
        if own is not None:
            target = own
        else:
            target = next((i for i in out.values() if _related(i, alert, states, end)), None)
        if target is None:
            iid = incident_id(alert.model, alert.version, alert.id, end)
            target = IncidentState(
                id=iid,
                model=alert.model,
                version=alert.version,
                status="open",
                severity=alert.severity,
                opened=end,
                resolved=None,
                last_window=end,
                members=(),
                cause=alert.id,
                message="",
            )
            touched.setdefault(iid, replace(target, status="resolved", severity="info"))
        else:
            touched.setdefault(target.id, target)
        ids = target.members if alert.id in target.members else (*target.members, alert.id)
        out[target.id] = replace(target, members=ids, last_window=end, status="open")
        states[alert.id] = replace(alert, incident=target.id)
        joined.setdefault(target.id, []).append(alert.id)
    for change in changed:
        member_of = states[change.state.id].incident
        if member_of is not None and member_of in out:
            touched.setdefault(member_of, out[member_of])
    for iid, before in touched.items():
        inc = out[iid]
        members = [states[m] for m in inc.members if m in states]
        cause_id, message = incident_message(members)
        is_open = any(m.status == "open" for m in members)
        severity = _worst(members)
        quiet = not is_open and before.status == "open"
        settled: IncidentStatus = "resolving" if cooldown > 0 else "resolved"
        status: IncidentStatus = "open" if is_open else (settled if quiet else inc.status)
        new = replace(
            inc,
            severity=severity,
            cause=cause_id or inc.cause,
            message=message or inc.message,
            status=status,
            resolved=end if quiet else inc.resolved,
            last_window=end,
        )
        transition: IncidentTransition | None = None
        if before.status != "open" and is_open:
            if iid in incidents:
                new = replace(new, recurrences=inc.recurrences + 1)
                transition = "reopened"
            else:
                transition = "opened"
        elif quiet:
            transition = "resolving" if cooldown > 0 else "resolved"
        elif is_open and _RANK[severity] > _RANK[before.severity]:
            transition = "escalated"
        elif iid in joined:
            transition = "joined"
        out[iid] = new
        if transition is not None:
            events.append(IncidentChange(transition, new, states.get(new.cause, members[0]), end))
    return out, states, events


def _resolve_quiet(
    incidents: dict[str, IncidentState],
    alerts: Mapping[str, AlertState],
    end: datetime,
    cooldown: float,
    events: list[IncidentChange],
) -> None:
    """Resolving incidents whose cooldown passed with no member back are resolved: say so now.
    Before this window's alerts join anything, so an alert back after that is a new incident."""
    iso = end.isoformat()
    for iid, inc in list(incidents.items()):
        if inc.status != "resolving" or inc.last_window >= iso or _quiet_for(inc, end) <= cooldown:
            continue
        done = replace(inc, status="resolved", last_window=iso)
        incidents[iid] = done
        cause = alerts.get(done.cause) or alerts[done.members[0]]
        events.append(IncidentChange("resolved", done, cause, iso))


def incident_document(inc: IncidentState, cause: AlertState, timestamp: str) -> dict[str, Any]:
    """The incident as one document (the ``inferwatch-incidents`` index, and the history event
    of its transitions): the fields a Kibana rule's message reads are the cause's."""
    return {
        "@timestamp": timestamp,
        "incident": {
            "id": inc.id,
            "status": inc.status,
            "opened": inc.opened,
            "resolved": inc.resolved,
            "members": list(inc.members),
            "alerts": len(inc.members),
            "recurrences": inc.recurrences,
        },
        "status": inc.status,
        "severity": inc.severity,
        "model": inc.model,
        "version": inc.version,
        "detector": cause.detector,
        "feature": cause.feature,
        "key": cause.key,
        "message": inc.message,
        "first_seen": inc.opened,
        "last_seen": inc.last_window,
    }


def incident_history_document(change: IncidentChange) -> dict[str, Any]:
    doc = incident_document(change.incident, change.cause, change.window_end)
    doc["event"] = {"action": change.transition, "kind": "incident"}
    return doc
