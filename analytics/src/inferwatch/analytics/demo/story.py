"""What a demo run tells: per window the monitored rates and the alert changes, and at the end
which injected failure opened which alert. Pure functions over count tables and alert changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inferwatch.analytics.alerts import AlertChange
from inferwatch.analytics.demo.stream import Injection
from inferwatch.analytics.model import WindowCounts

# The three rates the demo plots: (series title, feature, how it is measured)
HORSEPOWER = "inputs.horsepower"
ORIGIN = "inputs.origin"
NAME = "inputs.name"
RATE_TITLES = {
    "null": "inputs.horsepower: share of requests without a value",
    "unseen": "inputs.origin: share of values never seen in training",
    "oov": "inputs.name: share of texts with a token outside the training vocabulary",
}


def _share(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole > 0 else None


def monitored_rates(counts: WindowCounts | None) -> dict[str, float | None]:
    """Percentages of one window: horsepower missing, origin unseen, name out-of-vocabulary."""
    rates: dict[str, float | None] = dict.fromkeys(RATE_TITLES)
    if counts is None:
        return rates
    p = counts.presence[counts.presence["feature"] == HORSEPOWER]
    if len(p):
        rates["null"] = _share(float(p["missing"].sum()), float(p["present"].sum() + p["missing"].sum()))
    elif counts.docs:
        rates["null"] = 100.0  # the field is absent from every document
    c = counts.categories[counts.categories["feature"] == ORIGIN]
    if len(c):
        rates["unseen"] = _share(
            float(c.loc[~c["in_baseline"].astype(bool), "count"].sum()), float(c["count"].sum())
        )
    t = counts.text_docs[counts.text_docs["feature"] == NAME]
    if len(t):
        rates["oov"] = _share(float(t["oov_docs"].sum()), float(t["docs"].sum()))
    return rates


@dataclass(frozen=True)
class ChangeLine:
    """One alert transition as the demo prints and stores it."""

    window: int
    transition: str
    detector: str
    feature: str | None
    key: str | None
    severity: str
    message: str
    first_seen: str

    @classmethod
    def of(cls, window: int, change: AlertChange) -> ChangeLine:
        s = change.state
        message = str(s.finding.get("message", ""))
        return cls(window, change.transition, s.detector, s.feature, s.key, s.severity, message, s.first_seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "transition": self.transition,
            "detector": self.detector,
            "feature": self.feature,
            "key": self.key,
            "severity": self.severity,
            "message": self.message,
            "first_seen": self.first_seen,
        }


@dataclass(frozen=True)
class IncidentLine:
    """One incident transition that notifies (opened, escalated, resolved): what a person hears."""

    window: int
    transition: str
    severity: str
    message: str
    members: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "transition": self.transition,
            "severity": self.severity,
            "message": self.message,
            "members": self.members,
        }


@dataclass
class WindowRecord:
    index: int
    start: str
    end: str
    written: int
    shipped: int
    docs: int
    injections: list[str]
    rates: dict[str, float | None]
    changes: list[ChangeLine] = field(default_factory=list)
    incidents: list[IncidentLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "written": self.written,
            "shipped": self.shipped,
            "docs": self.docs,
            "injections": list(self.injections),
            "rates": dict(self.rates),
            "changes": [c.to_dict() for c in self.changes],
            "incidents": [i.to_dict() for i in self.incidents],
        }


@dataclass(frozen=True)
class Verdict:
    injection: Injection
    evaluated: bool  # the run lasted until the injection started
    detected_by: tuple[str, ...]  # detectors whose alert on the injected feature opened in time

    @property
    def detected(self) -> bool:
        return bool(self.detected_by)


def verdicts(schedule: Sequence[Injection], records: Sequence[WindowRecord], grace: int = 1) -> list[Verdict]:
    """For each injection: did an alert of an expected detector on its feature open while it was
    active (or within ``grace`` windows after, the time an open on two windows takes)?"""
    evaluated = {r.index for r in records}
    out = []
    for inj in schedule:
        found = sorted(
            {
                c.detector
                for r in records
                for c in r.changes
                if c.transition == "opened"
                and c.feature == inj.feature
                and c.detector in inj.detectors
                and inj.start <= r.index < inj.end + grace
            }
        )
        out.append(Verdict(inj, inj.start in evaluated, tuple(found)))
    return out


def false_alarms(schedule: Sequence[Injection], records: Sequence[WindowRecord]) -> list[ChangeLine]:
    """Alerts opened before the first injection started: the demo's stable traffic should open none."""
    first = min((i.start for i in schedule), default=len(records))
    return [c for r in records if r.index < first for c in r.changes if c.transition == "opened"]


def summary_lines(
    schedule: Sequence[Injection], records: Sequence[WindowRecord], written: int, shipped: int
) -> list[str]:
    lines = [f"{len(records)} windows evaluated; {written} prediction lines written, {shipped} shipped"]
    opened = [c for r in records for c in r.changes if c.transition == "opened"]
    resolved = [c for r in records for c in r.changes if c.transition == "resolved"]
    lines.append(f"{len(opened)} alerts opened, {len(resolved)} resolved")
    told = [i for r in records for i in r.incidents]
    incidents_opened = sum(1 for i in told if i.transition == "opened")
    lines.append(
        f"{incidents_opened} incidents opened (alerts of one cause are one incident); "
        f"{len(told)} notifications in all (opened, escalated, resolved)"
    )
    for v in verdicts(schedule, records):
        if not v.evaluated:
            lines.append(f"not reached: {v.injection.describe}")
        elif v.detected:
            lines.append(f"detected ({', '.join(v.detected_by)}): {v.injection.describe}")
        else:
            lines.append(f"MISSED: {v.injection.describe}")
    early = false_alarms(schedule, records)
    lines.append(
        "no alert opened on normal traffic before the first failure"
        if not early
        else f"{len(early)} alert(s) opened before the first failure: " + "; ".join(c.message for c in early)
    )
    return lines
