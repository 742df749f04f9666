"""``inferwatch baseline build|show``: build a model version's baseline from training data or logs."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from inferwatch.analytics.baseline.store import LocalBaselineStore
from inferwatch.analytics.cli.common import EXIT_USAGE, configured_model, elasticsearch_errors, parse_at
from inferwatch.analytics.jobs import model_features
from inferwatch.analytics.wiring import backends
from inferwatch.core.clitools import config_option, fail, load_or_exit
from inferwatch.core.config import ModelConfig


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
