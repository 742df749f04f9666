"""The report as one self-contained HTML file: plotly charts (plotly.js inlined once, so it opens
offline), tables of alerts and incidents, nothing fetched.

Per model version: documents per window (with the model-level alerts), then per feature, inputs
first and prediction outputs after, the baseline vs the period's distribution and the statistic
each detector monitors over the windows with its threshold. Alerts are marked where they opened
(a dashed line labelled with their severity and detector, coloured by severity) and, once
resolved, where they were last seen; periods given by the caller (the demo's injected failures)
are shaded and labelled. A script error while drawing shows in a banner at the top of the page
(``#report-errors``) and ``body[data-charts-drawn]`` counts the charts drawn.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

from inferwatch.analytics.report.collect import Distribution, ReportData, Series

SEVERITY_COLOURS = {"critical": "#dc2626", "warning": "#d97706", "info": "#2563eb"}
RESOLVED_COLOUR = "#16a34a"
BASELINE_COLOUR = "#94a3b8"
CURRENT_COLOUR = "#2563eb"
STAT_NAMES = {
    "missing_rate": "documents without a value",
    "unseen_rate": "values never seen in the baseline",
    "oov_rate": "texts with a token outside the vocabulary",
    "rate": "share",
}
MODEL_DETECTORS = frozenset({"volume", "version"})


@dataclass(frozen=True)
class Shade:
    """A period to shade on every time chart (e.g. a failure the demo injected)."""

    start: datetime
    end: datetime
    label: str


def _iso(t: datetime | str) -> str:
    return t if isinstance(t, str) else t.isoformat()


def _marks(
    fig: go.Figure, alerts: Sequence[Mapping[str, Any]], shades: Sequence[Shade], label_shades: bool = False
) -> None:
    """Shaded periods (labelled on the traffic chart), and one labelled dashed line per alert
    opening (and resolution)."""
    for n, s in enumerate(shades):
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=_iso(s.start),
            x1=_iso(s.end),
            y0=0,
            y1=1,
            fillcolor="#fde68a",
            opacity=0.45,
            line_width=0,
            layer="below",
        )
        if label_shades:
            fig.add_annotation(
                x=_iso(s.start),
                y=1.0 - 0.12 * (n % 3),
                xref="x",
                yref="paper",
                text=html.escape(s.label),
                showarrow=False,
                xanchor="left",
                yanchor="top",
                font={"size": 10, "color": "#92400e"},
                bgcolor="rgba(255,251,235,0.85)",
            )
    for i, a in enumerate(sorted(alerts, key=lambda d: str(d.get("first_seen")))):
        severity = str(a.get("severity", "info"))
        colour = SEVERITY_COLOURS.get(severity, "#6b7280")
        label = f"{severity} {a.get('detector')}" + (f" {a.get('key')}" if a.get("key") else "")
        points = [(a.get("first_seen"), colour, f"{label} opened", "right")]
        if a.get("status") == "resolved" and a.get("last_seen"):
            points.append((a.get("last_seen"), RESOLVED_COLOUR, f"{label} resolved (last seen)", "left"))
        for x, c, text, side in points:
            if not x:
                continue
            fig.add_shape(
                type="line",
                xref="x",
                yref="paper",
                x0=x,
                x1=x,
                y0=0,
                y1=1,
                line={"color": c, "dash": "dash", "width": 1.5},
            )
            fig.add_annotation(
                x=x,
                y=1 - 0.11 * (i % 4),
                xref="x",
                yref="paper",
                text=html.escape(text),
                showarrow=False,
                xanchor=side,
                yanchor="top",
                font={"size": 10, "color": c},
                bgcolor="rgba(255,255,255,0.8)",
            )


def _time_axis(fig: go.Figure, data: ReportData) -> go.Figure:
    fig.update_xaxes(range=[_iso(data.period.start), _iso(data.period.end)], type="date")
    return fig


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 300) -> go.Figure:
    fig.update_layout(
        title={"text": html.escape(title), "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        legend={"orientation": "h", "y": -0.25},
        modebar={"orientation": "v"},
        template="plotly_white",
        yaxis_title=y_title,
    )
    fig.update_xaxes(showline=True, ticks="outside", linecolor="#999")
    fig.update_yaxes(showline=True, ticks="outside", linecolor="#999", rangemode="tozero")
    return fig


def distribution_figure(d: Distribution) -> go.Figure:
    fig = go.Figure()
    if d.baseline:
        fig.add_bar(
            name=f"baseline (n={d.baseline_n:,})",
            x=d.labels,
            y=[100 * v for v in d.baseline],
            marker_color=BASELINE_COLOUR,
        )
    fig.add_bar(
        name=f"this period (n={d.current_n:,})",
        x=d.labels,
        y=[100 * v for v in d.current],
        marker_color=CURRENT_COLOUR,
    )
    fig.update_layout(barmode="group")
    what = {
        "numeric": "values per baseline bin",
        "categorical": "values",
        "text": "texts containing the token",
    }
    title = f"{d.feature}: distribution ({what[d.kind]}, %)" + (f" - {d.note}" if d.note else "")
    return _layout(fig, title, "%")


def series_figure(
    data: ReportData,
    feature: str | None,
    series: Sequence[Series],
    alerts: Sequence[Mapping[str, Any]],
    shades: Sequence[Shade],
) -> go.Figure:
    """One statistic family (rates in %, or JS distance) of one feature over the windows."""
    fig = go.Figure()
    scale = 1.0 if series[0].statistic == "js_distance" else 100.0
    for s in series:
        x = [_iso(t) for t in s.ends]
        fig.add_scatter(
            x=x,
            y=[None if v is None else scale * v for v in s.values],
            mode="lines+markers",
            name=f"{s.detector}: {STAT_NAMES.get(s.statistic, s.statistic)}",
            line={"width": 2},
            marker={"size": 4},
            connectgaps=False,
        )
        if any(t is not None for t in s.thresholds):
            fig.add_scatter(
                x=x,
                y=[None if t is None else scale * t for t in s.thresholds],
                mode="lines",
                name=f"{s.detector} threshold",
                line={"dash": "dot", "width": 1.5, "color": "#dc2626"},
            )
        if any(b is not None for b in s.baseline):
            fig.add_scatter(
                x=x,
                y=[None if b is None else scale * b for b in s.baseline],
                mode="lines",
                name=f"{s.detector} baseline",
                line={"dash": "dash", "width": 1, "color": BASELINE_COLOUR},
            )
    _marks(fig, alerts, shades)
    _time_axis(fig, data)
    what = "drift: Jensen-Shannon distance to the baseline" if scale == 1.0 else "monitored rates (%)"
    return _layout(fig, f"{feature or 'model'}: {what} per window", "%" if scale == 100.0 else "JS distance")


def volume_figure(
    data: ReportData, alerts: Sequence[Mapping[str, Any]], shades: Sequence[Shade]
) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(
        x=[_iso(t) for t, _ in data.volume],
        y=[n for _, n in data.volume],
        name="documents",
        marker_color=CURRENT_COLOUR,
    )
    _marks(fig, alerts, shades, label_shades=True)
    _time_axis(fig, data)
    return _layout(fig, f"documents per window ({data.step / 60:g} min, window end)", "documents")


def incidents_figure(data: ReportData) -> go.Figure:
    """One bar per incident from its opening to its resolution (or the period's end), coloured
    and labelled by severity, with its message (the likely cause first)."""
    fig = go.Figure()
    rows = sorted(
        data.incidents, key=lambda d: str((d.get("incident") or {}).get("opened") or d.get("first_seen"))
    )
    for n, doc in enumerate(rows):
        inc = doc.get("incident") or {}
        start = _when(inc.get("opened") or doc.get("first_seen")) or data.period.start
        end = _when(inc.get("resolved")) or data.period.end
        severity = str(doc.get("severity", "info"))
        message = str(doc.get("message", ""))
        label = f"{n + 1}. {severity}: {message[:70]}{'...' if len(message) > 70 else ''}"
        fig.add_bar(
            x=[max((end - start).total_seconds(), 60.0) * 1000],
            base=[_iso(start)],
            y=[label],
            orientation="h",
            marker_color=SEVERITY_COLOURS.get(severity, "#6b7280"),
            name=f"{severity} ({doc.get('status', '')})",
            hovertext=[html.escape(message)],
            showlegend=False,
        )
    fig.update_yaxes(autorange="reversed", automargin=True)
    _time_axis(fig, data)
    return _layout(fig, "incidents: opened .. resolved", "", height=max(160, 60 + 36 * len(rows)))


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


_HEAD = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#111}}
h1{{font-size:1.5em}} h2{{margin-top:1.6em;border-bottom:1px solid #ddd}} h3{{margin:1.2em 0 .2em}}
.row{{display:grid;grid-template-columns:1fr 1fr;gap:12px}} .row>div{{min-width:0}}
table{{border-collapse:collapse;font-size:13px;width:100%}} td,th{{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}}
.critical{{color:#dc2626;font-weight:600}} .warning{{color:#d97706;font-weight:600}} .info{{color:#2563eb}}
#report-errors{{background:#fee2e2;color:#991b1b;padding:.6em 1em;border:1px solid #fca5a5}}
.muted{{color:#555;font-size:.9em}}
</style>
<script>
window.__reportErrors = [];
function __showReportErrors() {{
  var b = document.getElementById("report-errors");
  if (b && window.__reportErrors.length) {{
    b.textContent = "This report could not draw everything: " + window.__reportErrors.join("; ");
    b.hidden = false;
  }}
}}
window.addEventListener("error", function (e) {{ window.__reportErrors.push(String(e.message)); __showReportErrors(); }});
window.addEventListener("unhandledrejection", function (e) {{ window.__reportErrors.push(String(e.reason)); __showReportErrors(); }});
window.addEventListener("load", function () {{
  __showReportErrors();
  var charts = Array.prototype.slice.call(document.querySelectorAll(".iw-chart"));
  document.body.dataset.chartsDrawn = String(charts.filter(function (c) {{ return c.querySelector(".main-svg"); }}).length);
}});
</script>
<script>{plotly}</script>
</head><body>
<div id="report-errors" hidden></div>
"""


class _Page:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def chart(self, fig: go.Figure, title: str) -> str:
        self.charts += 1
        div = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=f"chart-{self.charts}",
            config={"displaylogo": False, "responsive": True},
        )
        return f'<div class="iw-chart" data-title="{html.escape(title)}">{div}</div>'


def _table(
    header: Sequence[str], rows: Sequence[tuple[str, ...]], classes: Sequence[str] | None = None
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f'<tr class="{html.escape(classes[i]) if classes else ""}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _anchor(version: str, feature: str) -> str:
    return f"v{version}-{feature}".replace(" ", "_")


def _families(series: Sequence[Series]) -> dict[tuple[str | None, str], list[Series]]:
    out: dict[tuple[str | None, str], list[Series]] = {}
    for s in series:
        family = "js" if s.statistic == "js_distance" else "rate"
        out.setdefault((s.feature, family), []).append(s)
    return out


def render(data: ReportData, title: str, summary: Sequence[str] = (), shades: Sequence[Shade] = ()) -> str:
    """The whole page."""
    page = _Page()
    period = f"{data.period.start.isoformat()} .. {data.period.end.isoformat()}"
    page.add(f"<h1>{html.escape(title)}</h1>")
    page.add(f'<p class="muted">model {html.escape(data.model)}, {html.escape(period)}; ')
    page.add(
        html.escape(
            ", ".join(f"version {v}: {n:,} documents" for v, n in data.versions.items()) or "no documents"
        )
        + "</p>"
    )
    if summary or data.notes:
        page.add("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in [*summary, *data.notes]) + "</ul>")
    page.add(
        '<p class="muted">Dashed lines mark alerts where they opened, labelled with their severity '
        '(<span class="critical">critical</span>, <span class="warning">warning</span>, '
        '<span class="info">info</span>) and, in green, where a resolved alert was last seen; dotted '
        "red lines are the thresholds the detectors hold each window to"
        + ("; shaded periods are labelled" if shades else "")
        + ".</p>"
    )
    model_alerts = [
        a for a in data.alerts if a.get("feature") is None or a.get("detector") in MODEL_DETECTORS
    ]
    page.add("<h2>Traffic</h2>")
    page.add(page.chart(volume_figure(data, model_alerts, shades), "documents per window"))
    for version in data.distributions:
        version_alerts = [a for a in data.alerts if str(a.get("version")) in (version, "*")]
        families = _families(data.series.get(version, []))
        dists = {d.feature: d for d in data.distributions[version]}
        for section, prefix in (("Inputs", "inputs."), ("Prediction outputs", "outputs.")):
            features = sorted(f for f in dists if f.startswith(prefix))
            if not features:
                continue
            page.add(f"<h2>{section} (version {html.escape(version)})</h2>")
            for feature in features:
                page.add(
                    f'<h3 id="{html.escape(_anchor(version, feature))}">{html.escape(feature)} '
                    f'<span class="muted">({dists[feature].kind})</span></h3>'
                )
                row = [page.chart(distribution_figure(dists[feature]), f"{feature} distribution")]
                alerts = [a for a in version_alerts if a.get("feature") == feature]
                for family in ("rate", "js"):
                    group = families.get((feature, family))
                    if group:
                        row.append(
                            page.chart(
                                series_figure(data, feature, group, alerts, shades), f"{feature} {family}"
                            )
                        )
                if len(row) == 1 and alerts:  # alerts on a feature without a plotted statistic
                    row.append(page.chart(_alerts_only(feature, data, alerts, shades), f"{feature} alerts"))
                page.add('<div class="row">' + "".join(f"<div>{r}</div>" for r in row) + "</div>")
    page.add("<h2>Alerts</h2>")
    rows: list[tuple[str, ...]] = [
        (
            str(a.get("first_seen", "")),
            str(a.get("last_seen", "")),
            str(a.get("severity", "")),
            str(a.get("status", "")),
            str(a.get("detector", "")),
            str(a.get("feature") or "-"),
            str(a.get("message", "")),
        )
        for a in sorted(data.alerts, key=lambda d: str(d.get("first_seen")))
    ]
    header: tuple[str, ...] = ("opened", "last seen", "severity", "status", "detector", "feature", "message")
    page.add(_table(header, rows, [r[2] for r in rows]) if rows else "<p>No alert in this period.</p>")
    if data.incidents:
        page.add("<h2>Incidents</h2>")
        page.add(page.chart(incidents_figure(data), "incidents"))
        rows = [
            (
                str((i.get("incident") or {}).get("opened", i.get("first_seen", ""))),
                str((i.get("incident") or {}).get("resolved") or ""),
                str(i.get("severity", "")),
                str(i.get("status", "")),
                str((i.get("incident") or {}).get("alerts", "")),
                str(i.get("message", "")),
            )
            for i in sorted(data.incidents, key=lambda d: str(d.get("first_seen")))
        ]
        header = ("opened", "resolved", "severity", "status", "alerts", "message")
        page.add(_table(header, rows, [r[2] for r in rows]))
    head = _HEAD.format(title=html.escape(title), plotly=plotly.offline.get_plotlyjs())
    return head + "".join(page.parts) + "</body></html>"


def _alerts_only(
    feature: str, data: ReportData, alerts: Sequence[Mapping[str, Any]], shades: Sequence[Shade]
) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(
        x=[_iso(data.period.start), _iso(data.period.end)], y=[0, 0], mode="lines", showlegend=False
    )
    _marks(fig, alerts, shades)
    _time_axis(fig, data)
    return _layout(fig, f"{feature}: alerts", "")


__all__ = ["Shade", "distribution_figure", "render", "series_figure", "volume_figure"]
