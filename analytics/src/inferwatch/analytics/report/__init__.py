"""``inferwatch report``: a self-contained HTML report of one model over a period, for a data
scientist. ``collect`` gathers what it shows from the backends, ``render`` draws it with plotly,
``readers`` reads the alerts and incidents back; ``build_report`` wires them from a config."""

from inferwatch.analytics.report.build import build_report, write_report
from inferwatch.analytics.report.render import Shade

__all__ = ["Shade", "build_report", "write_report"]
