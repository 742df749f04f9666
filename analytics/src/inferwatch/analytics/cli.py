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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click

from inferwatch.analytics.alert_sink import AlertSink, LocalAlertSink, json_safe
from inferwatch.analytics.baseline_store import BaselineStore, LocalBaselineStore
from inferwatch.analytics.jobs import Evaluation, Evaluator, aligned_window, model_features
from inferwatch.analytics.model import Finding, Status
from inferwatch.analytics.sources.base import CountSource
from inferwatch.analytics.state_store import StateStore
from inferwatch.core.clitools import EXIT_CONFIG, config_option, fail, hosts_text, load_or_exit
from inferwatch.core.config import Config, ModelConfig
from inferwatch.core.configschema import Duration

log = logging.getLogger(__name__)

EXIT_USAGE = EXIT_CONFIG


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
        from inferwatch.analytics.alert_sink import ElasticsearchAlertSink
        from inferwatch.analytics.baseline_store import ElasticsearchBaselineStore
        from inferwatch.analytics.es import make_client
        from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource

        client = make_client(cfg.elasticsearch)
        return Backends(
            source=ElasticsearchSource(client, namespace=cfg.agent.namespace),
            sink=ElasticsearchAlertSink(client),
            baselines=ElasticsearchBaselineStore(client, cfg.baselines_dir),
            description=f"Elasticsearch {hosts_text(cfg.elasticsearch.hosts)}",
        )
    from inferwatch.analytics.sources.local import LocalSource

    return Backends(
        source=LocalSource(store_dir(cfg), namespace=cfg.agent.namespace),
        sink=LocalAlertSink(cfg.agent.data_dir / "alerts"),
        baselines=LocalBaselineStore(cfg.baselines_dir),
        description=f"local store {store_dir(cfg)}",
    )


@contextmanager
def elasticsearch_errors(cfg: Config) -> Iterator[None]:
    """Turn a failed request to Elasticsearch into one line with the fix, exit 1 (no traceback)."""
    try:
        yield
    except Exception as exc:
        if cfg.elasticsearch is None:
            raise
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        from inferwatch.analytics.es import ElasticsearchError

        if not isinstance(exc, ElasticsearchError | ApiError | TransportError):
            raise
        hosts = hosts_text(cfg.elasticsearch.hosts)
        fail(
            f"Elasticsearch at {hosts} failed: {exc}",
            "is Elasticsearch running and reachable there, and do the credentials in the "
            "elasticsearch section allow it? `inferwatch agent check` tests the connection; "
            "without an elasticsearch section the local store under agent.data_dir is used",
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
        min_window_docs=cfg.analytics.min_window_docs,
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


def evaluation_notes(ev: Evaluation, chosen: Backends, config_path: Path) -> list[str]:
    """What kept an evaluation from testing anything: no logs in the window, or versions without
    a baseline. "nothing firing" alone would read as "all is well" when nothing was checked."""
    if not ev.counts:
        return [
            f"no prediction logs of {ev.model} in this window ({chosen.description}): nothing was "
            "tested; is the agent shipping (`inferwatch agent check`), is the model named "
            f"{ev.model!r} in the logs, or try another --at / --window"
        ]
    missing = [v for v in sorted(ev.counts) if chosen.baselines.load(ev.model, v) is None]
    if not missing:
        return []
    return [
        f"no baseline for {ev.model} version {', '.join(missing)}: its drift tests were skipped; "
        f"build one with `inferwatch baseline build -c {config_path} -m {ev.model} -v {missing[0]} "
        "--data train.csv`"
    ]


def print_evaluation(
    ev: Evaluation, as_json: bool, include_all: bool, notes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    shown = [f for f in ev.findings if include_all or f.status is Status.FIRING]
    dicts = [f.to_dict() for f in shown]
    if as_json:
        for note in notes:  # stdout stays a JSON array
            click.echo(f"note: {note}", err=True)
        return dicts
    click.echo(f"model {ev.model}, window {ev.window.start.isoformat()} .. {ev.window.end.isoformat()}")
    if shown:
        click.echo(render_table(FINDING_HEADER, finding_rows(shown)))
    else:
        click.echo("  no findings" if include_all else "  nothing firing")
    for note in notes:
        click.echo(f"  note: {note}")
    for change in ev.changes:
        click.echo(
            f"  alert {change.transition}: {change.state.detector} {change.state.feature or ''}".rstrip()
        )
    return dicts


def parse_at(text: str | None, param_hint: str = "--at") -> datetime:
    if text is None or text == "now":
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO-8601 time such as 2026-11-22T10:00:00Z (UTC unless an offset is "
            f"given) or 'now', got {text!r}",
            param_hint=param_hint,
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def parse_duration(text: str | None, default: float, param_hint: str = "--window") -> float:
    if text is None:
        return default
    try:
        value = float(Duration.parse(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    if value <= 0:
        raise click.BadParameter(f"must be positive, got {text!r}", param_hint=param_hint)
    return value


def configured_model(cfg: Config, model: str) -> tuple[str, ModelConfig]:
    """The ``models`` entry of ``model`` (named as in the config or as its data stream part), or
    exit 2 listing the known models: a baseline or evaluation of an unconfigured model would
    never be used by the worker, which evaluates the configured models only."""
    for name, m in cfg.models.items():
        if name == model:
            return name, m
    found = cfg.model_config(model)
    if found is not None:
        return next(name for name, m in cfg.models.items() if m is found), found
    known = ", ".join(cfg.models) or "none: the config has no models section"
    fail(
        f"model {model!r} is not in the config's models (known: {known})",
        f"give a model named under models:, or add it there with its features, e.g.\n"
        f"  models:\n    {model}:\n      features: {{country: categorical, age: numeric}}",
        code=EXIT_USAGE,
    )


def no_models_exit(config_path: Path) -> None:
    fail(
        f"{config_path}: the config has no models section: there is nothing to evaluate",
        "name each model and its features under models:, e.g.\n"
        "  models:\n    churn_classifier:\n      features: {country: categorical, age: numeric}",
        code=EXIT_USAGE,
    )


# ------------------------------------------------------------------------------ analytics


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
    Exit codes: 0 stopped by a signal, 2 invalid config or no model to evaluate. An Elasticsearch
    that is down is not fatal: the failed evaluation is logged and retried at the next interval.
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

    if not log.isEnabledFor(logging.DEBUG):
        # The worker logs each failed evaluation in one line (an Elasticsearch that is down fails
        # every interval until it is back); APScheduler would add a traceback each time, and
        # its job bookkeeping at info. --log-level debug shows both.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
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
    When a model has no logs in the window, or a version no baseline, a note says so (on
    stderr with --json).
    Exit codes: 0 done (whatever was found), 1 Elasticsearch failed, 2 invalid config or usage.
    """
    at = parse_at(at_text)  # usage errors first: they need no config
    cfg = load_or_exit(config_path)
    span = parse_duration(window_text, float(cfg.analytics.window))
    if not cfg.models:
        no_models_exit(config_path)
    names = [configured_model(cfg, m)[0] for m in models] or list(cfg.models)
    chosen = backends(cfg)
    evaluator = build_evaluator(cfg, chosen)
    window = aligned_window(at, span, float(cfg.analytics.interval))
    out: list[dict[str, Any]] = []
    with elasticsearch_errors(cfg):
        for model in names:
            ev = evaluator.evaluate(model, window)
            out += print_evaluation(ev, as_json, include_all, evaluation_notes(ev, chosen, config_path))
    if as_json:
        # strict JSON: a skipped test's infinite cut is null, not the Infinity token
        click.echo(json.dumps(json_safe(out), indent=1, default=str, allow_nan=False))


# ------------------------------------------------------------------------------- baseline


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def baseline() -> None:
    """Build and show the reference a model version is compared with.

    \b
    Examples:
      inferwatch baseline build --config inferwatch.yml --model churn_classifier --version 1.4.2 --data train.parquet
      inferwatch baseline build -c inferwatch.yml -m churn_classifier -v 1.4.2 --from-logs 2026-11-01 2026-11-08
      inferwatch baseline show -c inferwatch.yml -m churn_classifier -v 1.4.2

    The model must be named under models: in the config (its features' kinds come from there).
    Exit codes: 0 done, 1 failed (unusable training file, no logs, Elasticsearch), 2 invalid
    config or usage.
    """


def _file_rows(path: Path) -> int | None:
    """Rows of a training file for the progress bar: Parquet metadata, or the newlines of an
    uncompressed CSV (a fast byte scan); None when unknown (compressed CSV)."""
    from inferwatch.analytics.baseline import training_rows

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


@baseline.command(short_help="Build a model version's baseline from training data or logs.")
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
    The model must be named under models: in the config; the training file needs a header row
    naming its features (columns of other names are ignored, and noted).
    Exit codes: 0 stored, 1 the data is unusable (empty, none of the features, no logs in the
    window) or Elasticsearch failed, 2 invalid config or usage (unknown model, no such file).
    """
    from inferwatch.analytics import baseline as bl
    from inferwatch.analytics.model import Window

    if (data is None) == (from_logs is None):
        raise click.UsageError("give either --data FILE or --from-logs START END")
    cfg = load_or_exit(config_path)
    model, model_config = configured_model(cfg, model)
    chosen = backends(cfg)
    created = datetime.now(UTC)
    notes: list[str] = []
    if data is not None:
        check_training_columns(data, model, model_config)
        rows = _file_rows(data)
        if rows == 0:
            fail(f"{data} has a header but no rows: nothing to build a baseline from", _TRAINING_FIX)
        progress = _Progress(rows)
        try:
            result, more = bl.build_baseline_from_file(
                data, model, version, model_config, created, chunksize=chunksize, progress=progress
            )
        except (ValueError, OSError) as exc:
            progress.close()
            fail(f"cannot build the baseline from {data}: {exc}", _TRAINING_FIX)
        progress.close()
        if result.rows == 0:
            fail(f"{data} has no rows: nothing to build a baseline from", _TRAINING_FIX)
        notes += more
    else:
        assert from_logs is not None
        features, _ = model_features(cfg)
        start = parse_at(from_logs[0], "--from-logs")
        end = parse_at(from_logs[1], "--from-logs")
        if end <= start:
            raise click.BadParameter("END must be after START", param_hint="--from-logs")
        source: Any = chosen.source
        with elasticsearch_errors(cfg):
            result = bl.build_from_counts(
                source, model, version, Window(start, end), features[model], created
            )
        if result.rows == 0:
            fail(
                f"no prediction logs of {model} {version} between {start} and {end} ({chosen.description})",
                "choose a window in which the agent shipped logs of this version, or build from "
                "the training data with --data",
            )
    with elasticsearch_errors(cfg):
        chosen.baselines.save(result)
    click.echo(bl.summary_table(result))
    for note in notes:
        click.echo(f"note: {note}")
    where = [str(LocalBaselineStore(cfg.baselines_dir).path(model, version))]
    if cfg.elasticsearch is not None:
        where.append(f"Elasticsearch index inferwatch-baselines (id {result.doc_id})")
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(bl.baseline_to_json(result))
        except OSError as exc:
            fail(f"the baseline is stored, but --out {out} could not be written: {exc.strerror or exc}")
        where.append(str(out))
    click.echo("stored: " + "; ".join(where))


_TRAINING_FIX = (
    "give the training data: a .csv (optionally .gz/.bz2/.zip/.xz/.zst) or .parquet file with a "
    "header row naming the features and one row per training example"
)


def training_columns(path: Path) -> list[str]:
    """The column names of a training file, or exit 1 saying why it cannot be read."""
    import pandas as pd

    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            with pq.ParquetFile(path) as pf:
                return [str(n) for n in pf.schema_arrow.names]
        if ".csv" not in name and not name.endswith(".tsv"):
            fail(
                f"{path}: not a training file inferwatch reads (by its name)", _TRAINING_FIX, code=EXIT_USAGE
            )
        sep = "\t" if name.endswith(".tsv") else ","
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=sep).columns]
    except pd.errors.EmptyDataError:
        fail(f"{path} is empty: expected a header row naming the features", _TRAINING_FIX)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        fail(f"cannot read {path}: {exc}", _TRAINING_FIX)


def check_training_columns(path: Path, model: str, model_config: ModelConfig) -> None:
    """Exit 1 when the file has none of the model's configured features and outputs: the
    baseline would describe nothing and replace a good one (a few missing ones are noted)."""
    columns = training_columns(path)
    configured = [*model_config.features, *model_config.outputs]
    if not configured:
        return  # no features configured: every column is an input of inferred kind
    if not set(configured) & set(columns):
        shown = ", ".join(columns[:20]) + (f" ... ({len(columns)} columns)" if len(columns) > 20 else "")
        fail(
            f"{path} has none of the columns of model {model} (features and outputs: "
            f"{', '.join(configured)}); its columns: {shown or 'none'}",
            f"name the columns after the features in models.{model} of the config, or correct the "
            "features there (a wrong separator? .csv is read comma-separated, .tsv tab-separated)",
        )


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
    Exit codes: 0 shown, 1 no such baseline (or Elasticsearch failed), 2 invalid config or usage.
    """
    from inferwatch.analytics import baseline as bl

    cfg = load_or_exit(config_path)
    with elasticsearch_errors(cfg):
        found = backends(cfg).baselines.load(model, version)
    if found is None:
        fail(
            f"no baseline for {model} {version} ({backends(cfg).description}, {cfg.baselines_dir})",
            f"build one with `inferwatch baseline build -c {config_path} --model {model} "
            f"--version {version} --data train.csv`",
        )
    click.echo(bl.baseline_to_json(found).decode() if as_json else bl.summary_table(found))


__all__ = ["Backends", "analytics", "backends", "baseline", "build_evaluator", "render_table"]
