"""The Alerts dashboard: alert events over time, open alerts by detector, the evidence."""

from __future__ import annotations

from inferwatch.kibana.dashboard import MODEL_CONTROLS, DashboardBuilder
from inferwatch.kibana.lens import Layer, LensPanel, count, datatable, date_histogram, metric, terms, xy
from inferwatch.kibana.saved_objects import ALERT_EVIDENCE, ALERTS, HISTORY


def alerts_dashboard() -> DashboardBuilder:
    d = DashboardBuilder(
        "alerts",
        "inferwatch: Alerts",
        "Alerts opened and resolved over time, by detector and feature, with the message and the evidence.",
        controls=list(MODEL_CONTROLS),
    )
    title = "Alert events over time (opened, escalated, updated, resolved)"
    t, a, c = d.col(title, "time"), d.col(title, "action"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        HISTORY.id,
        (
            date_histogram(t),
            terms(a, "event.action", c, size=4, label="Event", other=False),
            count(c, "Events"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsXY", (lay,), xy(lay, "bar_stacked", t, [c], split=a)), w=24, h=12)

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
