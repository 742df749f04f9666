"""Training files (CSV or Parquet) read in chunks and mapped to qualified feature keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from inferwatch.analytics.baseline.builder import build_baseline_chunks
from inferwatch.analytics.model import Baseline, FeatureKind
from inferwatch.core.config import ModelConfig

_INTEGRAL_FLOAT = r"^(-?[0-9]+)\.0+$"
_CSV_BOOLEANS = {"True": "true", "False": "false"}


def read_training(
    path: Path,
    chunksize: int = 100_000,
    progress: Callable[[int], None] | None = None,
    string_columns: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """The rows of a CSV (``.csv``, ``.csv.gz``...) or Parquet file in chunks of at most
    ``chunksize`` rows (Parquet: record batches of its row groups via pyarrow). ``progress`` gets
    the row count of each chunk; ``string_columns`` are read as text exactly as written (CSV)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            for batch in pf.iter_batches(batch_size=chunksize):
                chunk = batch.to_pandas()
                if progress is not None:
                    progress(len(chunk))
                yield chunk
        return
    if ".csv" not in name and not name.endswith(".tsv"):
        raise ValueError(f"{path}: expected a .csv or .parquet training file")
    dtypes = dict.fromkeys(string_columns, "object")
    sep = "\t" if name.endswith(".tsv") else ","
    with pd.read_csv(path, chunksize=chunksize, dtype=dtypes, sep=sep, keep_default_na=True) as reader:
        for chunk in reader:
            if progress is not None:
                progress(len(chunk))
            yield chunk


def training_rows(path: Path) -> int | None:
    """Rows of a Parquet file from its metadata (for a progress bar); None for CSV."""
    if path.name.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            return int(pf.metadata.num_rows)
    return None


def column_keys(
    columns: Sequence[str], model_config: ModelConfig
) -> tuple[dict[str, str], dict[str, FeatureKind], list[str]]:
    """Training columns -> qualified keys: a column named in ``features`` is ``inputs.<col>``, in
    ``outputs`` ``outputs.<col>``; other columns are ignored (noted). With no features configured,
    every column that is not an output is an input of inferred kind. Returns (column -> key,
    configured kinds by key, notes)."""
    mapping: dict[str, str] = {}
    kinds: dict[str, FeatureKind] = {}
    notes: list[str] = []
    ignored: list[str] = []
    for col in columns:
        if col in model_config.outputs:
            mapping[col] = f"outputs.{col}"
            kinds[mapping[col]] = model_config.outputs[col]
        elif col in model_config.features:
            mapping[col] = f"inputs.{col}"
            kinds[mapping[col]] = model_config.features[col]
        elif not model_config.features:
            mapping[col] = f"inputs.{col}"
        else:
            ignored.append(col)
    if not model_config.features:
        notes.append("no features configured for the model: every non-output column is an input")
    if ignored:
        notes.append(
            f"columns not in the model's features or outputs, ignored: {', '.join(map(str, ignored))}"
        )
    configured = {**{f"inputs.{k}": v for k, v in model_config.features.items()}}
    configured.update({f"outputs.{k}": v for k, v in model_config.outputs.items()})
    absent = sorted(set(configured) - set(mapping.values()))
    if absent:
        notes.append(f"configured but not in the training file: {', '.join(absent)}")
    return mapping, kinds, notes


def _columns(path: Path) -> list[str]:
    if path.name.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as pf:
            return [str(n) for n in pf.schema_arrow.names]
    sep = "\t" if path.name.lower().endswith(".tsv") else ","
    return [str(c) for c in pd.read_csv(path, nrows=0, sep=sep).columns]


def build_baseline_from_file(
    path: Path,
    model: str,
    version: str,
    model_config: ModelConfig,
    created: datetime,
    chunksize: int = 100_000,
    progress: Callable[[int], None] | None = None,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    top_k_vocab: int = 2000,
    bins: int = 10,
) -> tuple[Baseline, list[str]]:
    """The baseline of a training file, read in chunks (twice when a second pass is needed; the
    progress callback sees both passes). Returns the baseline and notes for the person."""
    mapping, kinds, notes = column_keys(_columns(path), model_config)
    strings = [c for c, k in mapping.items() if kinds.get(k) in ("categorical", "text")]

    categorical = [c for c, k in mapping.items() if kinds.get(k) == "categorical"]
    is_csv = not path.name.lower().endswith((".parquet", ".pq"))

    def chunks() -> Iterator[pd.DataFrame]:
        for chunk in read_training(path, chunksize, progress, strings):
            if is_csv:
                for col in categorical:  # "4.0" is how pandas writes an int column with nulls
                    chunk[col] = chunk[col].str.replace(_INTEGRAL_FLOAT, r"\1", regex=True)
                    # and True/False a boolean one; the agent and category_str say true/false
                    chunk[col] = chunk[col].replace(_CSV_BOOLEANS)
            yield chunk[list(mapping)].rename(columns=mapping)

    baseline = build_baseline_chunks(
        chunks,
        model,
        version,
        kinds,
        f"training:{path.name}",
        created,
        heldout_fraction,
        seed,
        top_k_vocab,
        bins,
    )
    return baseline, notes
