"""A static HTML report of a demo run: one small SVG chart per monitored rate, with the windows
where a failure was injected shaded and the moments alerts opened (red) and resolved (green)
marked. No plotting library: the charts are a few lines of SVG."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Series:
    title: str
    values: Sequence[float | None]  # one per window; None where not measured
    unit: str = "%"
    feature: str | None = None  # alerts on this feature are marked; None marks every alert


@dataclass(frozen=True)
class Marker:
    window: int
    label: str
    kind: str  # "opened" | "resolved"
    feature: str | None = None


@dataclass(frozen=True)
class Shade:
    start: int
    end: int
    label: str


W, H, PAD = 720, 160, 36


def _chart(series: Series, shades: Sequence[Shade], markers: Sequence[Marker]) -> str:
    n = max(len(series.values), 1)
    known = [v for v in series.values if v is not None]
    top = max([*known, 1e-9]) * 1.15

    def x(i: float) -> float:
        return PAD + (W - 2 * PAD) * i / max(n - 1, 1)

    def y(v: float) -> float:
        return H - PAD + (-(H - 2 * PAD) * v / top)

    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">']
    for s in shades:
        parts.append(
            f'<rect x="{x(s.start - 0.5):.1f}" y="{PAD / 2}" width="{x(s.end - 0.5) - x(s.start - 0.5):.1f}" '
            f'height="{H - 1.5 * PAD}" fill="#fde68a" opacity="0.6"><title>{html.escape(s.label)}</title></rect>'
        )
    parts.append(f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#999"/>')
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(series.values) if v is not None)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#2563eb" stroke-width="2"/>')
    for m in markers:
        if series.feature is not None and m.feature != series.feature:
            continue
        color = "#dc2626" if m.kind == "opened" else "#16a34a"
        parts.append(
            f'<line x1="{x(m.window):.1f}" y1="{PAD / 2}" x2="{x(m.window):.1f}" y2="{H - PAD}" '
            f'stroke="{color}" stroke-dasharray="4 3"><title>{html.escape(m.label)}</title></line>'
        )
    parts.append(
        f'<text x="{PAD}" y="14" font-size="12">max {top / 1.15:.3g}{html.escape(series.unit)}</text>'
    )
    for i in range(0, n, 5):
        parts.append(
            f'<text x="{x(i):.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{i}</text>'
        )
    parts.append(f'<text x="{PAD - 4}" y="{H - PAD + 4}" font-size="10" text-anchor="end">0</text>')
    parts.append(f'<text x="{W - PAD}" y="{H - 6}" font-size="11" text-anchor="end">window</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(
    title: str,
    series: Sequence[Series],
    shades: Sequence[Shade],
    markers: Sequence[Marker],
    alerts_table: Sequence[tuple[str, str, str, str]],
    summary: Sequence[str],
) -> str:
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in alerts_table
    )
    charts = "".join(f"<h3>{html.escape(s.title)}</h3>{_chart(s, shades, markers)}" for s in series)
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#111}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ddd;padding:4px 6px}}
.legend span{{margin-right:1.5em}}</style></head><body>
<h1>{html.escape(title)}</h1><ul>{items}</ul>
<p class="legend"><span style="background:#fde68a">&nbsp;&nbsp;&nbsp;</span> failure injected
<span style="color:#dc2626">- - alert opened</span> <span style="color:#16a34a">- - alert resolved</span></p>
{charts}
<h2>Alerts</h2><table><tr><th>window</th><th>event</th><th>detector</th><th>message</th></tr>{rows}</table>
</body></html>"""


def write(path: Path, page: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
