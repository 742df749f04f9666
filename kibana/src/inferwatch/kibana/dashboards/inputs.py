"""A model's Inputs dashboard: per feature, missing share, categories or numeric percentiles."""

from __future__ import annotations

from inferwatch.core.config import ModelConfig
from inferwatch.kibana.dashboard import VERSION_CONTROL, DashboardBuilder
from inferwatch.kibana.dashboards.panels import categories, percentiles, presence, unseen_table


def inputs_dashboard(model: str, cfg: ModelConfig) -> DashboardBuilder | None:
    feats = [(f, k) for f, k in cfg.features.items() if k != "text"]
    if not feats:
        return None
    d = DashboardBuilder(
        f"inputs:{model}",
        f"inferwatch: Inputs ({model})",
        f"Per-feature missing share, categories and numeric percentiles of model {model}.",
        controls=list(VERSION_CONTROL),
    )
    for f, kind in sorted(feats):
        key = f"inputs.{f}"
        presence(d, model, key)
        if kind == "categorical":
            categories(d, model, key)
        else:
            percentiles(d, model, key)
    d.newline()
    unseen_table(d, model)
    return d
