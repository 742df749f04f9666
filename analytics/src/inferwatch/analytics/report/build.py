"""A report from a config: the same backends, baselines, detector parameters and window grid as
the worker's (``analytics.wiring``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inferwatch.analytics.jobs import model_features
from inferwatch.analytics.model import Window
from inferwatch.analytics.report.collect import AlertReader, ReportData, collect
from inferwatch.analytics.report.render import Shade, render
from inferwatch.analytics.wiring import Backends, backends, build_evaluator
from inferwatch.core.atomic import atomic_write_bytes
from inferwatch.core.config import Config
from inferwatch.core.layout import DataDir


def alert_reader(cfg: Config, chosen: Backends) -> AlertReader:
    if cfg.elasticsearch is not None:
        from inferwatch.analytics.report.readers import ElasticsearchAlertReader
        from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource

        assert isinstance(chosen.source, ElasticsearchSource)
        return ElasticsearchAlertReader(chosen.source.client)
    from inferwatch.analytics.report.readers import LocalAlertReader

    return LocalAlertReader(DataDir(cfg.agent.data_dir).alerts)


def report_data(cfg: Config, model: str, period: Window, step: float | None = None) -> ReportData:
    """What the report of ``model`` over ``period`` shows; windows of ``step`` seconds (default
    ``analytics.window``, widened to keep at most 500 per chart)."""
    chosen = backends(cfg)
    evaluator = build_evaluator(cfg, chosen)
    features, closed = model_features(cfg)
    return collect(
        chosen.source,
        chosen.baselines,
        alert_reader(cfg, chosen),
        model,
        period,
        float(step or cfg.analytics.window),
        features.get(model, {}),
        evaluator.params_for,
        closed.get(model, frozenset()),
        evaluator.floors.get(model, {}),
    )


def build_report(
    cfg: Config,
    model: str,
    period: Window,
    step: float | None = None,
    title: str | None = None,
    summary: Sequence[str] = (),
    shades: Sequence[Shade] = (),
) -> str:
    data = report_data(cfg, model, period, step)
    return render(data, title or f"inferwatch report: {model}", summary, shades)


def write_report(path: Path, page: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, page.encode("utf-8"), fsync=False)
    return path
