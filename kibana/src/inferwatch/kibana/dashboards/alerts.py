"""The Alerts dashboard: open incidents (one per cause), incident events over time and the ones
the incident rule notifies, then the member alerts by detector and feature, and their evidence.

The history stream holds incident events only (``inferwatch.analytics.alerts.incidents``:
opened, joined, escalated, reopened, resolving, resolved); the per-window evidence of each alert
lives in its alert document."""

from __future__ import annotations

from inferwatch.analytics.alerts.incidents import INCIDENT_TRANSITIONS
from inferwatch.kibana.dashboard import MODEL_CONTROLS, DashboardBuilder
from inferwatch.kibana.dashboards.panels import open_by_severity, open_count
from inferwatch.kibana.lens import (
    Layer,
    LensPanel,
    count,
    datatable,
    date_histogram,
    metric,
    terms,
    xy,
)
from inferwatch.kibana.rules import NOTIFIED_ACTIONS, NOTIFIED_SEVERITIES
from inferwatch.kibana.saved_objects import ALERT_EVIDENCE, ALERTS, HISTORY, INCIDENTS, OPEN_INCIDENTS

INCIDENT_ACTIONS = INCIDENT_TRANSITIONS


def _any_of(field: str, values: tuple[str, ...]) -> str:
    return f"{field} : (" + " or ".join(f'"{v}"' for v in values) + ")"


# The history events the incident rule tells (rules.new_alerts_query), in KQL.
NOTIFIED_KQL = f"{_any_of('event.action', NOTIFIED_ACTIONS)} and {_any_of('severity', NOTIFIED_SEVERITIES)}"


def _events_over_time(
    d: DashboardBuilder, title: str, actions: tuple[str, ...], label: str, query: str, description: str
) -> LensPanel:
    """Stacked bars of incident history events per interval, split by action."""
    t, a, c = d.col(title, "time"), d.col(title, "action"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        HISTORY.id,
        (
            date_histogram(t),
            terms(a, "event.action", c, size=len(actions), label=label, other=False),
            count(c, "Incident events"),
        ),
    )
    return LensPanel(
        title, "lnsXY", (lay,), xy(lay, "bar_stacked", t, [c], split=a), query=query, description=description
    )


def alerts_dashboard() -> DashboardBuilder:
    d = DashboardBuilder(
        "alerts",
        "inferwatch: Alerts",
        "Open incidents (alerts of one cause grouped, the likely cause first), incident events over "
        "time and the ones notified, then the member alerts by detector and feature with their evidence.",
        controls=list(MODEL_CONTROLS),
    )
    d.add_lens(open_count(d, "Open incidents", INCIDENTS.id, "Open incidents"), w=12, h=8)
    d.add_lens(open_by_severity(d, "Open incidents by severity", INCIDENTS.id, "Open incidents"), w=12, h=8)

    d.add_lens(
        _events_over_time(
            d,
            "Incidents notified (opened, escalated, resolved)",
            NOTIFIED_ACTIONS,
            "Notified",
            NOTIFIED_KQL,
            "The history events the incident rule notifies: one per incident opened, "
            "per escalation and per incident resolved (warning and critical), at the end of the "
            "window they describe.",
        ),
        w=24,
        h=8,
    )
    d.add_search(OPEN_INCIDENTS, w=48, h=12)

    d.add_lens(
        _events_over_time(
            d,
            "Incident events over time",
            INCIDENT_ACTIONS,
            "Event",
            'event.kind : "incident"',
            "Every incident event: " + ", ".join(INCIDENT_ACTIONS) + " (joined, reopened "
            "and resolving are recorded, not notified).",
        ),
        w=24,
        h=12,
    )

    title = "Open alerts by detector and severity"
    det, sev, c = d.col(title, "detector"), d.col(title, "severity"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (
            terms(det, "detector", c, size=15, label="Detector", other=False),
            terms(sev, "severity", c, size=3, label="Severity", other=False),
            count(c, "Alerts"),
        ),
    )
    d.add_lens(
        LensPanel(
            title, "lnsXY", (lay,), xy(lay, "bar_stacked", det, [c], split=sev), query='status : "open"'
        ),
        w=24,
        h=12,
    )

    title = "Alerts by detector and feature"
    det, feat, c, op, w = (d.col(title, n) for n in ("detector", "feature", "count", "open", "windows"))
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (
            terms(det, "detector", c, size=20, label="Detector", other=False),
            terms(feat, "feature", c, size=50, label="Feature", other=False),
            count(c, "Alerts"),
            count(op, "Open", kql='status : "open"'),
            metric(w, "max", "windows", "Most firing windows"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay)), w=48, h=12)
    d.add_search(ALERT_EVIDENCE, w=48, h=16)
    return d
