"""A model's Outputs dashboard: score distributions and percentiles, label frequencies, by version."""

from __future__ import annotations

from inferwatch.core.config import ModelConfig
from inferwatch.kibana.dashboard import VERSION_CONTROL, DashboardBuilder, model_query
from inferwatch.kibana.dashboards.panels import categories, percentiles, presence
from inferwatch.kibana.lens import Layer, LensPanel, count, histogram, terms, xy
from inferwatch.kibana.saved_objects import LOGS


def outputs_dashboard(model: str, cfg: ModelConfig) -> DashboardBuilder | None:
    if not cfg.outputs:
        return None
    d = DashboardBuilder(
        f"outputs:{model}",
        f"inferwatch: Outputs ({model})",
        f"Prediction score distribution and percentiles, label frequencies, by version, of model {model}.",
        controls=list(VERSION_CONTROL),
    )
    for name, kind in sorted(cfg.outputs.items()):
        key = f"outputs.{name}"
        fld = f"ml.{key}"
        if kind == "numeric":
            title = f"{key}: distribution by version"
            b, v, c = d.col(title, "bins"), d.col(title, "version"), d.col(title, "count")
            lay = Layer(
                d.layer(title),
                LOGS.id,
                (
                    histogram(b, fld),
                    terms(v, "ml.model.version", c, size=5, label="Version"),
                    count(c, "Predictions"),
                ),
            )
            d.add_lens(
                LensPanel(title, "lnsXY", (lay,), xy(lay, "bar", b, [c], split=v), query=model_query(model)),
                w=24,
                h=10,
            )
            percentiles(d, model, key, split_version=True)
            percentiles(d, model, key)
        else:
            title = f"{key}: label frequencies by version"
            v, lab, c = d.col(title, "version"), d.col(title, "label"), d.col(title, "count")
            lay = Layer(
                d.layer(title),
                LOGS.id,
                (
                    terms(v, "ml.model.version", c, size=10, label="Version"),
                    terms(lab, fld, c, size=10, label=key),
                    count(c, "Predictions"),
                ),
            )
            d.add_lens(
                LensPanel(
                    title,
                    "lnsXY",
                    (lay,),
                    xy(lay, "bar_percentage_stacked", v, [c], split=lab),
                    query=model_query(model),
                ),
                w=24,
                h=10,
            )
            categories(d, model, key)
        presence(d, model, key)
        d.newline()
    return d
