"""The Overview dashboard: prediction volume and latency per model and version, open alerts."""

from __future__ import annotations

from inferwatch.kibana.dashboard import MODEL_CONTROLS, DashboardBuilder
from inferwatch.kibana.dashboards.panels import open_by_severity, open_count
from inferwatch.kibana.lens import (
    Grid,
    Layer,
    LensPanel,
    count,
    datatable,
    date_histogram,
    metric,
    percentile,
    terms,
    xy,
)
from inferwatch.kibana.saved_objects import ALERT_LIST, ALERTS, LOGS


def overview() -> DashboardBuilder:
    d = DashboardBuilder(
        "overview",
        "inferwatch: Overview",
        "Prediction volume and latency per model and version, open alerts, the newest alerts.",
        controls=list(MODEL_CONTROLS),
    )
    title = "Predictions per minute by model and version"
    t, c, m = d.col(title, "time"), d.col(title, "count"), d.col(title, "model")
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (
            date_histogram(t),
            terms(m, "ml.model.name", c, size=10, secondary=["ml.model.version"], label="Model / version"),
            count(c, "Predictions per minute", per="m"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsXY", (lay,), xy(lay, "bar_stacked", t, [c], split=m)), w=32, h=14)

    d.add_lens(open_count(d, "Open alerts", ALERTS.id, "Open alerts"), w=16, h=5)
    # under the metric, beside the volume chart
    d.add_lens_at(
        open_by_severity(d, "Open alerts by severity", ALERTS.id, "Open alerts"), Grid(32, 5, 16, 9)
    )

    d.newline()
    title = "Latency percentiles (ms)"
    t = d.col(title, "time")
    pcts = [(p, d.col(title, f"p{p}")) for p in (50, 95, 99)]
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (date_histogram(t), *(percentile(cid, "ml.prediction.latency_ms", p) for p, cid in pcts)),
    )
    d.add_lens(LensPanel(title, "lnsXY", (lay,), xy(lay, "line", t, [cid for _, cid in pcts])), w=24, h=12)

    title = "Models and versions"
    m, v, c, lat = (d.col(title, n) for n in ("model", "version", "count", "latency"))
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (
            terms(m, "ml.model.name", c, size=20, label="Model", other=False),
            terms(v, "ml.model.version", c, size=10, label="Version", other=False),
            count(c, "Predictions"),
            metric(lat, "average", "ml.prediction.latency_ms", "Mean latency (ms)"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay)), w=24, h=12)
    d.newline()
    d.add_search(ALERT_LIST, w=48, h=14)
    return d
