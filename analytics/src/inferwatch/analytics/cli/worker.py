"""``inferwatch analytics run|once``: the scheduled worker and one evaluation now."""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click

from inferwatch.analytics.alerts.sink import json_safe
from inferwatch.analytics.baseline.store import BaselineUnreadable
from inferwatch.analytics.cli.common import (
    EXIT_USAGE,
    configured_model,
    elasticsearch_errors,
    no_models_exit,
    parse_at,
    parse_duration,
)
from inferwatch.analytics.display import evaluation_notes, print_evaluation
from inferwatch.analytics.held_writes import HeldWrites
from inferwatch.analytics.jobs import Evaluation
from inferwatch.analytics.metrics import WorkerMetrics, endpoint
from inferwatch.analytics.model import Status
from inferwatch.analytics.sources.local import LocalSource
from inferwatch.analytics.windows import aligned_window, zone
from inferwatch.analytics.wiring import backends, build_evaluator
from inferwatch.core.clitools import config_option, fail, load_or_exit
from inferwatch.core.config import Config

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def analytics() -> None:
    """Evaluate prediction logs against their baselines and write alerts.

    \b
    Examples:
      inferwatch analytics run --config inferwatch.yml
      inferwatch analytics once --config inferwatch.yml --model churn_classifier --window 1h
      inferwatch analytics once --config inferwatch.yml --at 2026-11-22T10:00:00Z --json

    Exit codes: 0 done, 1 failed (Elasticsearch unreachable...), 2 invalid config or usage.
    """


@analytics.command(short_help="Evaluate every model on a schedule and write alerts.")
@config_option
def run(config_path: Path) -> None:
    """Evaluate every model of this worker's shard on a schedule (analytics.interval) over the
    last analytics.window of logs. SIGTERM or Ctrl-C stops after the running evaluations.

    \b
    Example:
      inferwatch analytics run --config inferwatch.yml
    Exit codes: 0 stopped by a signal, 2 invalid config or no model to evaluate. A failing
    evaluation is not fatal (an Elasticsearch that is down, an unreadable baseline: the message
    names the file and the fix): it is logged when it starts failing and when it succeeds again,
    retried at each interval, and the other models keep being evaluated.
    """
    from inferwatch.analytics.scheduler import Worker, my_models

    cfg = load_or_exit(config_path)
    if not cfg.models:
        no_models_exit(config_path)
    models = my_models(cfg.models, cfg.analytics.shard)
    if not models:
        fail(
            f"no model of the config belongs to shard {cfg.analytics.shard}; nothing to do",
            "check analytics.shard (i/n: this worker takes the models whose hash % n == i)",
            code=EXIT_USAGE,
        )
    chosen = backends(cfg)
    evaluator = build_evaluator(cfg, chosen)
    span, step = float(cfg.analytics.window), float(cfg.analytics.interval)
    tz = zone(cfg.analytics.timezone)

    def run_model(model: str, at: datetime) -> Evaluation:
        ev = evaluator.evaluate(model, aligned_window(at, span, step, tz))
        firing = sum(f.status is Status.FIRING for f in ev.findings)
        log.info(
            "model %s window %s..%s: %d firing, %s",
            model,
            ev.window.start.isoformat(),
            ev.window.end.isoformat(),
            firing,
            ", ".join(f"{c.transition} {c.state.detector} {c.state.feature or ''}" for c in ev.changes)
            or "no alert change",
        )
        return ev

    if not log.isEnabledFor(logging.DEBUG):
        # The worker logs each failed evaluation in one line (an Elasticsearch that is down fails
        # every interval until it is back); APScheduler would add a traceback each time, and
        # its job bookkeeping at info. --log-level debug shows both.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    worker_metrics = WorkerMetrics(models)
    worker = Worker(models, step, worker_metrics.measure(run_model), tz)
    server = None
    if cfg.analytics.metrics.listen:
        try:  # bound before the scheduler starts: an address in use fails now
            server = endpoint(cfg.analytics.metrics.listen, worker_metrics, lambda: worker.scheduler.running)
        except OSError as e:
            fail(
                f"analytics.metrics.listen {cfg.analytics.metrics.listen}: {e.strerror or e}",
                "stop what uses that address, or choose another host:port",
            )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the running evaluations", signum)
        worker.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "worker: %d models (%s) every %gs over %gs windows, %s",
        len(models),
        ", ".join(models),
        step,
        span,
        chosen.description,
    )
    if server is not None:
        server.start()
    try:
        worker.run_until_stopped()
    finally:
        if server is not None:
            server.stop()
    log.info("worker stopped: %d runs, %d errors", worker.counts["runs"], worker.counts["errors"])


@analytics.command(short_help="Run one evaluation now and print the findings.")
@config_option
@click.option("--model", "-m", "models", multiple=True, help="Evaluate only this model (repeatable).")
@click.option(
    "--at", "at_text", metavar="TIME", help="Evaluate the window ending before TIME (ISO-8601; default now)."
)
@click.option(
    "--window", "window_text", metavar="DURATION", help="Window span, e.g. 1h (default analytics.window)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of findings instead of a table.")
@click.option("--all", "include_all", is_flag=True, help="Also show clean (ok) and skipped verdicts.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Evaluate and print, write nothing: no alert or incident documents, no detector state.",
)
def once(
    config_path: Path,
    models: tuple[str, ...],
    at_text: str | None,
    window_text: str | None,
    as_json: bool,
    include_all: bool,
    dry_run: bool,
) -> None:
    """Run one evaluation now and print the findings (firing ones unless --all).

    The window ends at the last multiple of analytics.interval before --at (on the wall clock of
    analytics.timezone), like the scheduled worker's, so running it again changes no alert.

    Without --dry-run it writes what the scheduled worker writes, after printing the findings:
    the alert and incident documents (<agent.data_dir>/alerts, or the Elasticsearch alert
    indices) and each model's detector state (<agent.data_dir>/analytics-state).

    \b
    Examples:
      inferwatch analytics once --config inferwatch.yml
      inferwatch analytics once -c inferwatch.yml --model churn_classifier --at 2026-11-22T10:00Z --window 1h
      inferwatch analytics once -c inferwatch.yml --json | jq '.[] | .message'
    When a model has no logs in the window, or a version no baseline, a note says so (on
    stderr with --json).
    Exit codes: 0 done (whatever was found), 1 Elasticsearch failed, a baseline unreadable or the
    data dir not writable (the other models are still evaluated), 2 invalid config or usage.
    """
    at = parse_at(at_text)  # usage errors first: they need no config
    cfg = load_or_exit(config_path)
    span = parse_duration(window_text, float(cfg.analytics.window))
    if not cfg.models:
        no_models_exit(config_path)
    names = [configured_model(cfg, m)[0] for m in models] or list(cfg.models)
    try:
        chosen = backends(cfg)
        evaluator = build_evaluator(cfg, chosen)
    except OSError as exc:  # the data dir's folders cannot be created
        fail(
            f"cannot prepare {exc.filename or cfg.agent.data_dir}: {exc.strerror or exc}", _writable_fix(cfg)
        )
    held = HeldWrites(evaluator.sink, evaluator.states)  # written after the findings are printed
    evaluator = replace(evaluator, sink=held.sink, states=held.states)
    window = aligned_window(at, span, float(cfg.analytics.interval), zone(cfg.analytics.timezone))
    out: list[dict[str, Any]] = []
    skipped: list[str] = []  # models not evaluated (an unreadable baseline): the others still are
    unwritten: list[str] = []  # models evaluated and printed whose alerts or state were not written
    with elasticsearch_errors(cfg):
        for model in names:
            try:
                ev = evaluator.evaluate(model, window)
            except BaselineUnreadable as exc:
                click.echo(f"model {model} skipped: {exc.args[0]}", err=True)
                click.echo(f"fix: {exc.fix(str(config_path))}", err=True)
                skipped.append(model)
                continue
            out += print_evaluation(ev, as_json, include_all, evaluation_notes(ev, chosen, config_path))
            if isinstance(chosen.source, LocalSource):  # a damaged segment is never silent
                for lines in chosen.source.skipped_lines(model):
                    said = f"store {lines.describe()}: {lines.FIX}"
                    click.echo(f"note: {said}" if as_json else f"  note: {said}", err=as_json)
            if dry_run:
                if held.discard():
                    said = "nothing written (alerts, detector state)"
                    click.echo(f"note: dry run: {said}" if as_json else f"  dry run: {said}", err=as_json)
                continue
            try:
                held.commit()
            except OSError as exc:
                where = exc.filename or cfg.agent.data_dir
                click.echo(
                    f"model {model}: its alerts and detector state could not be written, the findings "
                    f"above are not recorded: {where}: {exc.strerror or exc}",
                    err=True,
                )
                unwritten.append(model)
    if as_json:
        # strict JSON: a skipped test's infinite cut is null, not the Infinity token
        click.echo(json.dumps(json_safe(out), indent=1, default=str, allow_nan=False))
    problems = []
    if skipped:
        problems.append(f"{len(skipped)} skipped ({BaselineUnreadable.reason}): {', '.join(skipped)}")
    if unwritten:
        problems.append(f"{len(unwritten)} evaluated but not written: {', '.join(unwritten)}")
    if problems:
        fail(f"of {len(names)} models, {'; '.join(problems)}", _writable_fix(cfg) if unwritten else None)


def _writable_fix(cfg: Config) -> str:
    return (
        f"make {cfg.agent.data_dir} and what is under it writable by the user running inferwatch "
        "(or set agent.data_dir to a writable directory); --dry-run evaluates without writing"
    )
