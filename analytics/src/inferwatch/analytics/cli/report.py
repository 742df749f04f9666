"""``inferwatch report``: a self-contained HTML report of one model over a period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from inferwatch.analytics.cli.common import (
    configured_model,
    elasticsearch_errors,
    no_models_exit,
    parse_at,
    parse_duration,
)
from inferwatch.analytics.model import Window
from inferwatch.analytics.windows import aligned_window, zone
from inferwatch.core.clitools import config_option, fail, load_or_exit

DEFAULT_DAYS = 7


@click.command(short_help="Write an HTML report of a model over a period.")
@config_option
@click.option("--model", "-m", required=True, help="The model's name as in the config's models section.")
@click.option(
    "--from", "from_text", metavar="TIME", help=f"Start (ISO-8601; default {DEFAULT_DAYS} days before --to)."
)
@click.option(
    "--to", "to_text", metavar="TIME", help="End (ISO-8601; default the last window end before now)."
)
@click.option(
    "--step",
    "step_text",
    metavar="DURATION",
    help="Window of each point, e.g. 1h (default analytics.window).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the report (default <model>-report.html in the current directory).",
)
def report(
    config_path: Path,
    model: str,
    from_text: str | None,
    to_text: str | None,
    step_text: str | None,
    out: Path | None,
) -> None:
    """Write a self-contained HTML report of one model over a period: per feature (inputs and
    prediction outputs) its baseline vs this period's distribution and the statistic each
    detector monitors per window with its threshold; documents per window; alerts and
    incidents marked and labelled with their severity. It opens offline in any browser.

    \b
    Examples:
      inferwatch report --config inferwatch.yml --model churn_classifier
      inferwatch report -c inferwatch.yml -m churn_classifier --from 2026-11-01 --to 2026-11-08 --out nov.html
      inferwatch report -c inferwatch.yml -m churn_classifier --step 1d --from 2026-09-01
    Windows follow the worker's (analytics.window on the grid of analytics.interval and
    analytics.timezone) unless --step is given.
    Exit codes: 0 written, 1 failed (Elasticsearch, the file cannot be written), 2 invalid config or usage.
    """
    from inferwatch.analytics.report import build_report, write_report

    to_at = parse_at(to_text, "--to")
    cfg = load_or_exit(config_path)
    if not cfg.models:
        no_models_exit(config_path)
    name, _ = configured_model(cfg, model)
    step = parse_duration(step_text, float(cfg.analytics.window), "--step")
    if to_text is None:  # the last window end of the worker's grid
        to_at = aligned_window(to_at, step, float(cfg.analytics.interval), zone(cfg.analytics.timezone)).end
    start = parse_at(from_text, "--from") if from_text else to_at - timedelta(days=DEFAULT_DAYS)
    if to_at <= start:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    with elasticsearch_errors(cfg):
        page = build_report(cfg, name, Window(start, to_at), step)
    target = out or Path(f"{name}-report.html")
    try:
        write_report(target, page)
    except OSError as exc:
        fail(f"cannot write the report to {target}: {exc.strerror or exc}", "give a writable --out path")
    click.echo(f"report: {target.resolve()}")
