"""``inferwatch report``: a real history (the demo's cars with failures injected, evaluated by the
worker's evaluator) -> one self-contained HTML page, opened in headless Chromium: it renders
without script errors, every chart is drawn, every alert is labelled with its severity."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from inferwatch.analytics.model import Finding, Status, Window
from inferwatch.analytics.report import Shade, build_report, write_report
from inferwatch.analytics.report.build import report_data
from inferwatch.analytics.report.collect import report_windows, series_of
from inferwatch.analytics.report.readers import LocalAlertReader
from inferwatch.core.layout import DataDir
from tests.unit.analytics.report_scenario import SPAN, Scenario, write_scenario

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return write_scenario(tmp_path_factory.mktemp("history"), windows=21, per_window=300)


def chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def the_report(scenario: Scenario, tmp: Path) -> tuple[Path, str]:
    shades = [
        Shade(scenario.window_start(f.start), scenario.window_start(f.end), f.describe)
        for f in scenario.failures
    ]
    page = build_report(
        scenario.config, "cars_mpg", scenario.period, SPAN, "cars report", ["a summary line"], shades
    )
    return write_report(tmp / "report.html", page), page


@needs_chromium
def test_the_report_renders_in_chromium_with_every_chart_and_alert_label(
    scenario: Scenario, tmp_path: Path
) -> None:
    path, page = the_report(scenario, tmp_path)
    charts = page.count('class="iw-chart"')
    alerts = LocalAlertReader(DataDir(scenario.config.agent.data_dir).alerts).alerts(
        "cars_mpg", scenario.period
    )
    assert {a["detector"] for a in alerts} >= {"feature_vanished", "unseen_category", "oov_rate"}

    dom = chromium(path, tmp_path, "--dump-dom").stdout
    shot = chromium(path, tmp_path, "--window-size=1300,2400", f"--screenshot={tmp_path / 'report.png'}")
    assert (tmp_path / "report.png").stat().st_size > 50_000  # kept with the test's files
    assert "Uncaught" not in shot.stderr, shot.stderr

    assert re.search(r'<div id="report-errors" hidden="">\s*</div>', dom), "a script error was shown"
    assert f'data-charts-drawn="{charts}"' in dom
    assert charts >= 1 + 8 + 2  # traffic, at least one chart per input feature, the outputs
    svg_text = html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", dom)))
    for a in alerts:
        label = f"{a['severity']} {a['detector']}"
        assert label in svg_text, f"no label {label!r} on any chart"
        assert html.escape(str(a["message"]), quote=False) in dom  # and in the alerts table
    for f in scenario.failures:
        assert f.describe in svg_text
    incidents = LocalAlertReader(DataDir(scenario.config.agent.data_dir).alerts).incidents(
        "cars_mpg", scenario.period
    )
    assert len(incidents) == len(scenario.failures)  # one incident per injected failure
    for inc in incidents:
        assert f"{inc['severity']}: {inc['message'][:70]}" in svg_text  # its bar on the incidents chart
    for title in (
        "documents per window",
        "inputs.horsepower: monitored rates (%) per window",
        "outputs.score",
    ):
        assert title in svg_text


@needs_chromium
def test_a_script_error_is_shown_and_caught_by_this_check(scenario: Scenario, tmp_path: Path) -> None:
    """The check above would fail on a broken page: an error while drawing shows in the banner."""
    _, page = the_report(scenario, tmp_path)
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("</body>", '<script>throw new Error("drawing failed")</script></body>'))
    dom = chromium(broken, tmp_path, "--dump-dom").stdout
    assert "This report could not draw everything: " in dom and "drawing failed" in dom


def test_the_monitored_series_are_the_detectors_statistics_with_their_thresholds(scenario: Scenario) -> None:
    data = report_data(scenario.config, "cars_mpg", scenario.period, SPAN)
    series = {(s.feature, s.detector): s for s in data.series["1.0"]}
    vanished = series[("inputs.horsepower", "feature_vanished")]
    assert len(vanished.values) == 21
    assert [i for i, v in enumerate(vanished.values) if v is not None] == [3, 4]  # the injected windows
    assert vanished.values[3] == 1.0  # 100% missing
    hp = series[("inputs.horsepower", "null_surge")]
    assert [v for v in hp.values if v is not None] and all(v < 0.1 for v in hp.values if v is not None)
    assert all(t is not None and 0 < t < 0.2 for t in hp.thresholds if t is not None)  # baseline + floor
    drift = series[("inputs.origin", "category_drift")]
    assert drift.statistic == "js_distance" and drift.thresholds[0] is not None
    assert data.volume == [(w.end, 300) for w in report_windows(scenario.period, SPAN)]
    dist = {d.feature: d for d in data.distributions["1.0"]}
    origin = dist["inputs.origin"]
    assert origin.labels[-1] == "unseen in baseline" and origin.current[-1] > 0
    assert "'Korea'" in origin.note
    assert abs(sum(dist["inputs.weight"].current) - 1.0) < 1e-9 and len(dist["inputs.weight"].baseline) == 10
    assert {d.feature for d in data.distributions["1.0"]} >= {"outputs.score", "outputs.label"}


def test_windows_end_at_the_period_end_and_stay_under_the_point_budget() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    windows = report_windows(Window(start, start + timedelta(hours=10, minutes=30)), 3600)
    assert windows[-1].end == start + timedelta(hours=10, minutes=30) and windows[0].start == start
    assert windows[0].seconds == 1800 and all(w.seconds == 3600 for w in windows[1:])
    many = report_windows(Window(start, start + timedelta(days=30)), 300, max_points=500)
    assert len(many) <= 500 and many[-1].seconds % 300 == 0


def test_series_skip_keyed_and_unplotted_statistics() -> None:
    w = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))

    def finding(detector: str, name: str, key: str | None = None) -> Finding:
        return Finding(
            detector,
            "m",
            "1",
            "inputs.x",
            Status.OK,
            "info",
            "",
            w,
            key=key,
            statistic_name=name,
            statistic=0.5,
            effect_floor=0.1,
            expected={"rate": 0.2},
        )

    out = series_of(
        [w],
        [
            [
                finding("null_surge", "missing_rate"),
                finding("unseen_category", "count", "v"),
                finding("null_creep", "cusum_llr"),
            ]
        ],
    )
    assert [(s.detector, s.values, s.thresholds, s.baseline) for s in out] == [
        ("null_surge", [0.5], [pytest.approx(0.3)], [0.2])
    ]


def test_the_report_command_writes_the_page_and_refuses_an_unknown_model(
    scenario: Scenario, tmp_path: Path
) -> None:
    from inferwatch.analytics.cli.report import report

    cfg = str(scenario.config.source)
    out = tmp_path / "r" / "cars.html"
    args = [
        "-c",
        cfg,
        "-m",
        "cars_mpg",
        "--from",
        scenario.period.start.isoformat(),
        "--to",
        scenario.period.end.isoformat(),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(report, args)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "cars_mpg" in text
    assert "<script src=" not in text  # self-contained: plotly.js is inlined
    bad = CliRunner().invoke(report, ["-c", cfg, "-m", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "not in the config's models" in bad.output


def test_the_elasticsearch_reader_returns_the_alerts_and_incidents_of_the_period() -> None:
    from elasticsearch import Elasticsearch

    from inferwatch.analytics.report.readers import ElasticsearchAlertReader
    from tests.fakes.search_server import SearchServer

    start = datetime(2026, 11, 20, tzinfo=UTC)
    period = Window(start, start + timedelta(days=1))

    def alert(model: str, first: datetime, last: datetime, detector: str = "null_surge") -> dict[str, object]:
        return {
            "model": model,
            "detector": detector,
            "severity": "critical",
            "first_seen": first.isoformat(),
            "last_seen": last.isoformat(),
        }

    inside = alert("cars_mpg", start + timedelta(hours=3), start + timedelta(hours=5))
    spanning = alert("cars_mpg", start - timedelta(days=2), start + timedelta(hours=1), "numeric_drift")
    before = alert("cars_mpg", start - timedelta(days=3), start - timedelta(days=2))
    after = alert("cars_mpg", period.end + timedelta(hours=1), period.end + timedelta(hours=2))
    other = alert("other", start + timedelta(hours=3), start + timedelta(hours=4))
    with SearchServer() as server:
        server.add("inferwatch-alerts", [inside, spanning, before, after, other])
        server.add("inferwatch-incidents", [{**inside, "message": "inputs.horsepower vanished"}])
        reader = ElasticsearchAlertReader(Elasticsearch(server.url, max_retries=0))
        found = reader.alerts("cars_mpg", period)
        incidents = reader.incidents("cars_mpg", period)
    assert sorted(a["detector"] for a in found) == ["null_surge", "numeric_drift"]
    assert [i["message"] for i in incidents] == ["inputs.horsepower vanished"]
