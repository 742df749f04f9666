from __future__ import annotations

from pathlib import Path

from inferwatch.analytics.demo.report import Marker, Series, Shade, render, write


def test_report_has_one_chart_per_series_with_shades_markers_and_escaped_text(tmp_path: Path) -> None:
    page = render(
        "demo <run>",
        [Series("null rate", [1.0, None, 100.0, 2.0]), Series("requests", [400.0, 400.0, 400.0, 400.0], "")],
        [Shade(2, 3, "horsepower vanished")],
        [Marker(2, "opened: inputs.horsepower <gone>", "opened"), Marker(3, "resolved", "resolved")],
        [("2", "opened", "feature_vanished", "inputs.horsepower & co")],
        ["1 alerts opened"],
    )
    assert page.count("<svg") == 2
    assert page.count('#fde68a" opacity') == 2  # the shade, once per chart
    assert page.count('stroke="#dc2626"') == 2 and page.count('stroke="#16a34a"') == 2
    assert "demo &lt;run&gt;" in page and "inputs.horsepower &amp; co" in page
    assert "<gone>" not in page
    # a window without a value is left out of the line, not drawn as zero
    assert page.split('<polyline points="')[1].split('"')[0].count(",") == 3
    out = write(tmp_path / "sub" / "report.html", page)
    assert out.read_text(encoding="utf-8") == page


def test_a_feature_chart_marks_only_the_alerts_on_its_feature() -> None:
    page = render(
        "t",
        [Series("hp", [1.0, 2.0], feature="inputs.horsepower"), Series("all", [1.0, 2.0])],
        [],
        [Marker(1, "hp", "opened", "inputs.horsepower"), Marker(1, "origin", "opened", "inputs.origin")],
        [],
        [],
    )
    hp_chart, all_chart = page.split("<svg")[1:]
    assert hp_chart.count('stroke="#dc2626"') == 1 and "<title>hp</title>" in hp_chart
    assert all_chart.count('stroke="#dc2626"') == 2
