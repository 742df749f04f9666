"""One window's findings -> alert and incident states, and the update to write. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from inferwatch.analytics.alerts.incidents import IncidentChange, IncidentState, apply_incidents
from inferwatch.analytics.alerts.lifecycle import AlertChange, AlertState, apply_window
from inferwatch.analytics.model import Finding


@dataclass(frozen=True)
class AlertUpdate:
    """What one window changed: alert documents to rewrite, incident events to record."""

    alerts: tuple[AlertChange, ...] = ()
    incidents: tuple[IncidentChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.alerts or self.incidents)

    @property
    def notifications(self) -> tuple[IncidentChange, ...]:
        return tuple(c for c in self.incidents if c.notifies)


def apply_findings(
    alerts: Mapping[str, AlertState],
    incidents: Mapping[str, IncidentState],
    findings: Iterable[Finding],
    window_end: datetime,
    evaluated: Iterable[tuple[str, str]] = (),
    cooldown: float = 0.0,
) -> tuple[dict[str, AlertState], dict[str, IncidentState], AlertUpdate]:
    states, changes = apply_window(alerts, findings, window_end, evaluated, cooldown)
    new_incidents, states, events = apply_incidents(incidents, states, changes, window_end, cooldown)
    # The alert documents carry the incident they joined in this same window.
    written = tuple(replace(c, state=states[c.state.id]) for c in changes)
    return states, new_incidents, AlertUpdate(written, tuple(events))
