"""inferwatch's dashboards, one module each.

- Overview and Alerts serve every model (an options-list control on ``ml.model.name`` and
  ``ml.model.version``; the alert index aliases those names, so the same filter narrows the alert
  panels).
- Inputs, Outputs and Text exist per configured model (``models:`` in the config), one panel per
  feature, because Lens panels name their fields; ``panels`` holds the per-feature panels they share.
"""

from __future__ import annotations

from collections.abc import Mapping

from inferwatch.core.config import ModelConfig
from inferwatch.kibana.dashboard import DashboardBuilder
from inferwatch.kibana.dashboards.alerts import alerts_dashboard
from inferwatch.kibana.dashboards.inputs import inputs_dashboard
from inferwatch.kibana.dashboards.outputs import outputs_dashboard
from inferwatch.kibana.dashboards.overview import overview
from inferwatch.kibana.dashboards.text import text_dashboard

PER_MODEL = (inputs_dashboard, outputs_dashboard, text_dashboard)


def dashboards(models: Mapping[str, ModelConfig]) -> list[DashboardBuilder]:
    """The shared dashboards, then each model's (in model name order) that has panels to show."""
    out = [overview(), alerts_dashboard()]
    for name in sorted(models):
        for build in PER_MODEL:
            d = build(name, models[name])
            if d is not None:
                out.append(d)
    return out
