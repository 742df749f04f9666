"""``inferwatch baseline ...`` and ``inferwatch analytics ...``: the analytics entry points.

The composition root of the worker: reads the config, chooses the backends (Elasticsearch when
the config has an ``elasticsearch`` section, else the local store under ``agent.data_dir``),
builds the ``Evaluator`` and installs signal handlers. Everything else is in the modules it wires.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click

from agent.cli.common import config_option, load_or_exit
from agent.config import Config
from agent.configschema import Duration
from analytics.alert_sink import AlertSink, LocalAlertSink
from analytics.baseline_store import BaselineStore, LocalBaselineStore
from analytics.jobs import Evaluation, Evaluator, aligned_window, model_features
from analytics.model import Finding, Status
from analytics.sources.base import CountSource
from analytics.state_store import StateStore

log = logging.getLogger(__name__)

EXIT_USAGE = 2


@dataclass(frozen=True)
class Backends:
    source: CountSource
    sink: AlertSink
    baselines: BaselineStore
    description: str


def store_dir(cfg: Config) -> Path:
    """The agent's local store (embedded mode): ``<agent.data_dir>/store``."""
    return cfg.agent.data_dir / "store"


def backends(cfg: Config) -> Backends:
    """Elasticsearch when the config has an ``elasticsearch`` section, else the local store."""
    if cfg.elasticsearch is not None:
        from analytics.alert_sink import ElasticsearchAlertSink
        from analytics.baseline_store import ElasticsearchBaselineStore
        from analytics.es import make_client
        from analytics.sources.elasticsearch import ElasticsearchSource

        client = make_client(cfg.elasticsearch)
        return Backends(
            source=ElasticsearchSource(client, namespace=cfg.agent.namespace),
            sink=ElasticsearchAlertSink(client),
            baselines=ElasticsearchBaselineStore(client, cfg.baselines_dir),
            description=f"Elasticsearch {', '.join(cfg.elasticsearch.hosts)}",
        )
    from analytics.sources.local import LocalSource

    return Backends(
        source=LocalSource(store_dir(cfg), namespace=cfg.agent.namespace),
        sink=LocalAlertSink(cfg.agent.data_dir / "alerts"),
        baselines=LocalBaselineStore(cfg.baselines_dir),
        description=f"local store {store_dir(cfg)}",
    )


def build_evaluator(cfg: Config, chosen: Backends | None = None) -> Evaluator:
    chosen = chosen or backends(cfg)
    features, closed = model_features(cfg)
    return Evaluator(
        source=chosen.source,
        baselines=chosen.baselines,
        sink=chosen.sink,
        states=StateStore(cfg.agent.data_dir / "analytics-state"),
        features=features,
        closed=closed,
        false_alarms_per_week=cfg.analytics.false_alarms_per_week,
        interval=float(cfg.analytics.interval),
    )


# ----------------------------------------------------------------------------------- output


def finding_rows(findings: Sequence[Finding]) -> list[tuple[str, ...]]:
    return [
        (f.severity, f.detector, f.version, f.feature or "-", f.key or "", f.status.value, f.message)
        for f in findings
    ]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 80) -> str:
    """A plain aligned text table; long cells are cut with an ellipsis."""
    cut = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cut)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cut]
    return "\n".join(lines)


FINDING_HEADER = ("severity", "detector", "version", "feature", "key", "status", "message")


def print_evaluation(ev: Evaluation, as_json: bool, include_all: bool) -> list[dict[str, Any]]:
    shown = [f for f in ev.findings if include_all or f.status is Status.FIRING]
    dicts = [f.to_dict() for f in shown]
    if as_json:
        return dicts
    click.echo(f"model {ev.model}, window {ev.window.start.isoformat()} .. {ev.window.end.isoformat()}")
    if shown:
        click.echo(render_table(FINDING_HEADER, finding_rows(shown)))
    else:
        click.echo("  no findings" if include_all else "  nothing firing")
    for change in ev.changes:
        click.echo(
            f"  alert {change.transition}: {change.state.detector} {change.state.feature or ''}".rstrip()
        )
    return dicts


def parse_at(text: str | None) -> datetime:
    if text is None or text == "now":
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"expected an ISO-8601 time such as 2026-11-22T10:00:00Z, got {text!r}"
        ) from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def parse_duration(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(Duration.parse(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


# ------------------------------------------------------------------------------ analytics


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def analytics() -> None:
    """Evaluate prediction logs against their baselines and write alerts.

    \b
    Examples:
      inferwatch analytics run --config inferwatch.yml
      inferwatch analytics once --config inferwatch.yml --model churn_classifier --window 1h
      inferwatch analytics once --config inferwatch.yml --at 2026-11-22T10:00:00Z --json
    """


@analytics.command()
@config_option
def run(config_path: Path) -> None:
    """Evaluate every model of this worker's shard on a schedule (analytics.interval) over the
    last analytics.window of logs. SIGTERM or Ctrl-C stops after the running evaluations.

    \b
    Example:
      inferwatch analytics run --config inferwatch.yml
    """
    from analytics.scheduler import Worker, my_models

    cfg = load_or_exit(config_path)
    models = my_models(cfg.models, cfg.analytics.shard)
    if not models:
        click.echo(f"no model of the config belongs to shard {cfg.analytics.shard}; nothing to do", err=True)
        sys.exit(EXIT_USAGE)
    chosen = backends(cfg)
    evaluator = build_evaluator(cfg, chosen)
    span, step = float(cfg.analytics.window), float(cfg.analytics.interval)

    def run_model(model: str, at: datetime) -> None:
        ev = evaluator.evaluate(model, aligned_window(at, span, step))
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

    worker = Worker(models, step, run_model)

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
    worker.run_until_stopped()
    log.info("worker stopped: %d runs, %d errors", worker.counts["runs"], worker.counts["errors"])


@analytics.command()
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
def once(
    config_path: Path,
    models: tuple[str, ...],
    at_text: str | None,
    window_text: str | None,
    as_json: bool,
    include_all: bool,
) -> None:
    """Run one evaluation now and print the findings (firing ones unless --all).

    The window ends at the last multiple of analytics.interval before --at, like the scheduled
    worker's, so running it again changes no alert.

    \b
    Examples:
      inferwatch analytics once --config inferwatch.yml
      inferwatch analytics once -c inferwatch.yml --model churn_classifier --at 2026-11-22T10:00Z --window 1h
      inferwatch analytics once -c inferwatch.yml --json | jq '.[] | .message'
    """
    cfg = load_or_exit(config_path)
    unknown = [m for m in models if m not in cfg.models]
    if unknown:
        click.echo(
            f"not in the config's models: {', '.join(unknown)} (known: {', '.join(cfg.models)})", err=True
        )
        sys.exit(EXIT_USAGE)
    at = parse_at(at_text)
    span = parse_duration(window_text, float(cfg.analytics.window))
    evaluator = build_evaluator(cfg)
    window = aligned_window(at, span, float(cfg.analytics.interval))
    out: list[dict[str, Any]] = []
    for model in models or tuple(cfg.models):
        out += print_evaluation(evaluator.evaluate(model, window), as_json, include_all)
    if as_json:
        click.echo(json.dumps(out, indent=1, default=str))


# ------------------------------------------------------------------------------- baseline


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def baseline() -> None:
    """Build and show the reference a model version is compared with.

    \b
    Examples:
      inferwatch baseline build --config inferwatch.yml --model churn_classifier --version 1.4.2 --data train.parquet
      inferwatch baseline build -c inferwatch.yml -m churn_classifier -v 1.4.2 --from-logs 2026-11-01 2026-11-08
      inferwatch baseline show -c inferwatch.yml -m churn_classifier -v 1.4.2
    """


def _file_rows(path: Path) -> int | None:
    """Rows of a training file for the progress bar: Parquet metadata, or the newlines of an
    uncompressed CSV (a fast byte scan); None when unknown (compressed CSV)."""
    from analytics.baseline import training_rows

    rows = training_rows(path)
    if rows is not None or path.suffix.lower() not in (".csv", ".tsv"):
        return rows
    lines = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
    return max(lines - 1, 0)  # the header


class _Progress:
    """A progress bar over the rows of one or two passes (the builder may read the file twice)."""

    def __init__(self, rows: int | None) -> None:
        self.rows = rows
        self.done = 0
        self.passes = 1
        self.bar = click.progressbar(length=rows or 1, label="reading (pass 1)", file=sys.stderr)
        self.bar.__enter__()

    def __call__(self, n: int) -> None:
        if self.rows:
            if self.done >= self.rows:  # a second pass began
                self.passes += 1
                self.done = 0
                self.bar.pos = 0
                self.bar.label = f"reading (pass {self.passes})"
            self.done += n
            self.bar.update(n)
        else:
            self.done += n
            self.bar.label = f"read {self.done:,} rows"
            self.bar.render_progress()

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


@baseline.command()
@config_option
@click.option("--model", "-m", required=True, help="The model's name as in the config's models section.")
@click.option("--version", "-v", "version", required=True, help="The model version this baseline describes.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Training data: .csv (optionally compressed) or .parquet; columns named as the features.",
)
@click.option(
    "--from-logs",
    nargs=2,
    metavar="START END",
    help="Take the baseline from the prediction logs of this past window instead (ISO-8601 times).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the baseline JSON here."
)
@click.option(
    "--chunksize", type=click.IntRange(min=1), default=100_000, show_default=True, help="Rows per chunk."
)
def build(
    config_path: Path,
    model: str,
    version: str,
    data: Path | None,
    from_logs: tuple[str, str] | None,
    out: Path | None,
    chunksize: int,
) -> None:
    """Build the baseline of one model version and store it (the local baselines directory, and
    the inferwatch-baselines index when the config has an elasticsearch section).

    \b
    Examples:
      inferwatch baseline build -c inferwatch.yml -m churn_classifier -v 1.4.2 --data train.parquet
      inferwatch baseline build -c inferwatch.yml -m churn_classifier -v 1.4.2 --data train.csv.gz --out b.json
      inferwatch baseline build -c inferwatch.yml -m churn_classifier -v 1.4.2 \\
          --from-logs 2026-11-01T00:00Z 2026-11-08T00:00Z
    """
    from agent.config import ModelConfig
    from analytics import baseline as bl
    from analytics.model import Window

    cfg = load_or_exit(config_path)
    if (data is None) == (from_logs is None):
        raise click.UsageError("give either --data FILE or --from-logs START END")
    chosen = backends(cfg)
    created = datetime.now(UTC)
    notes: list[str] = []
    if data is not None:
        model_config = cfg.models.get(model)
        if model_config is None:
            notes.append(f"{model} is not in the config's models: every column is an input of inferred kind")
            model_config = ModelConfig()
        progress = _Progress(_file_rows(data))
        try:
            result, more = bl.build_baseline_from_file(
                data, model, version, model_config, created, chunksize=chunksize, progress=progress
            )
        except (ValueError, OSError) as exc:
            progress.close()
            click.echo(f"cannot build the baseline from {data}: {exc}", err=True)
            sys.exit(1)
        progress.close()
        notes += more
    else:
        assert from_logs is not None
        features, _ = model_features(cfg)
        if model not in features:
            click.echo(f"{model} is not in the config's models: its features' kinds are needed", err=True)
            sys.exit(EXIT_USAGE)
        start, end = parse_at(from_logs[0]), parse_at(from_logs[1])
        if end <= start:
            raise click.BadParameter("END must be after START", param_hint="--from-logs")
        source: Any = chosen.source
        result = bl.build_from_counts(source, model, version, Window(start, end), features[model], created)
        if result.rows == 0:
            click.echo(f"no prediction logs of {model} {version} between {start} and {end}", err=True)
            sys.exit(1)
    chosen.baselines.save(result)
    click.echo(bl.summary_table(result))
    for note in notes:
        click.echo(f"note: {note}")
    where = [str(LocalBaselineStore(cfg.baselines_dir).path(model, version))]
    if cfg.elasticsearch is not None:
        where.append(f"Elasticsearch index inferwatch-baselines (id {result.doc_id})")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(bl.baseline_to_json(result))
        where.append(str(out))
    click.echo("stored: " + "; ".join(where))


@baseline.command()
@config_option
@click.option("--model", "-m", required=True, help="The model's name.")
@click.option("--version", "-v", "version", required=True, help="The model version.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored JSON instead of the summary table.")
def show(config_path: Path, model: str, version: str, as_json: bool) -> None:
    """Print the stored baseline of one model version.

    \b
    Example:
      inferwatch baseline show -c inferwatch.yml -m churn_classifier -v 1.4.2
    """
    from analytics import baseline as bl

    cfg = load_or_exit(config_path)
    found = backends(cfg).baselines.load(model, version)
    if found is None:
        click.echo(
            f"no baseline for {model} {version}; build one with "
            f"`inferwatch baseline build --model {model} --version {version} --data train.csv`",
            err=True,
        )
        sys.exit(1)
    click.echo(bl.baseline_to_json(found).decode() if as_json else bl.summary_table(found))


__all__ = ["Backends", "analytics", "backends", "baseline", "build_evaluator", "render_table"]
