"""Panels several dashboards share: per feature (present vs missing, top categories over time,
percentiles over time, the unseen-category table), and the open count and open-by-severity bars
of alerts (Overview) and incidents (Alerts)."""

from __future__ import annotations

from inferwatch.kibana.dashboard import DashboardBuilder, model_query
from inferwatch.kibana.lens import (
    Layer,
    LensPanel,
    count,
    datatable,
    date_histogram,
    filters,
    metric,
    metric_vis,
    percentile,
    terms,
    xy,
)
from inferwatch.kibana.saved_objects import ALERTS, LOGS

OPEN = 'status : "open"'


def open_count(d: DashboardBuilder, title: str, view: str, label: str) -> LensPanel:
    """A metric: how many documents of ``view`` (alerts or incidents) are open."""
    c = d.col(title, "count")
    lay = Layer(d.layer(title), view, (count(c, label),))
    return LensPanel(title, "lnsMetric", (lay,), metric_vis(lay, c), query=OPEN)


def open_by_severity(d: DashboardBuilder, title: str, view: str, label: str) -> LensPanel:
    """Horizontal bars: the open documents of ``view`` by severity."""
    s, c = d.col(title, "severity"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        view,
        (terms(s, "severity", c, size=3, label="Severity", other=False), count(c, label)),
    )
    return LensPanel(title, "lnsXY", (lay,), xy(lay, "bar_horizontal", s, [c]), query=OPEN)


def presence(d: DashboardBuilder, model: str, key: str) -> None:
    title = f"{key}: present vs missing"
    t, f, c = d.col(title, "time"), d.col(title, "filters"), d.col(title, "count")
    fld = f"ml.{key}"
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (
            date_histogram(t),
            filters(f, [("present", f"{fld} : *"), ("missing", f"not {fld} : *")], label="Value"),
            count(c, "Predictions"),
        ),
    )
    d.add_lens(
        LensPanel(
            title,
            "lnsXY",
            (lay,),
            xy(lay, "area_percentage_stacked", t, [c], split=f),
            query=model_query(model),
            description="The share of predictions where the field is missing or null, over time.",
        ),
        w=24,
        h=10,
    )


def categories(d: DashboardBuilder, model: str, key: str) -> None:
    title = f"{key}: top categories over time"
    t, v, c = d.col(title, "time"), d.col(title, "value"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (date_histogram(t), terms(v, f"ml.{key}", c, size=10, label=key), count(c, "Predictions")),
    )
    d.add_lens(
        LensPanel(
            title,
            "lnsXY",
            (lay,),
            xy(lay, "bar_percentage_stacked", t, [c], split=v),
            query=model_query(model),
        ),
        w=24,
        h=10,
    )


def percentiles(d: DashboardBuilder, model: str, key: str, split_version: bool = False) -> None:
    title = f"{key}: percentiles over time" + (" by version" if split_version else "")
    t = d.col(title, "time")
    fld = f"ml.{key}"
    if split_version:
        v, p50 = d.col(title, "version"), d.col(title, "p50")
        cols = (
            date_histogram(t),
            terms(v, "ml.model.version", p50, size=5, label="Version"),
            percentile(p50, fld, 50),
        )
        lay = Layer(d.layer(title), LOGS.id, cols)
        vis = xy(lay, "line", t, [p50], split=v)
    else:
        pcts = [(p, d.col(title, f"p{p}")) for p in (5, 50, 95)]
        lay = Layer(
            d.layer(title), LOGS.id, (date_histogram(t), *(percentile(cid, fld, p) for p, cid in pcts))
        )
        vis = xy(lay, "line", t, [cid for _, cid in pcts])
    d.add_lens(LensPanel(title, "lnsXY", (lay,), vis, query=model_query(model)), w=24, h=10)


def unseen_table(d: DashboardBuilder, model: str) -> None:
    title = "Unseen categories (values never seen in training)"
    feat, key, n, w = (d.col(title, n) for n in ("feature", "key", "count", "windows"))
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (
            terms(feat, "feature", w, size=20, label="Feature", other=False),
            terms(key, "key", w, size=50, label="Unseen value", other=False),
            metric(w, "max", "windows", "Windows seen"),
            metric(n, "max", "statistic.value", "Count in the latest firing window"),
        ),
    )
    query = f'model : "{model}" and detector : "unseen_category"'
    d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay), query=query), w=48, h=10)
