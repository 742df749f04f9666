"""Baselines: the reference a window is compared with, built with pandas from training data (CSV
or Parquet, read in chunks) or from a past window of logs (count tables of a source).

Decisions (each one matters to a detector):

- Kind: from the config where configured; otherwise inferred from the first chunk holding the
  column: bool -> categorical, other numeric dtypes -> numeric, strings -> text when their mean
  token count exceeds 3 or (with at least 20 values) more than half of them are distinct, else
  categorical; a column with no values -> categorical.
- Categorical values are compared as ``category_str`` (``analytics.sources.tables``): bool ->
  ``"true"``/``"false"``, integral numbers -> ``"4"`` (also 4.0: pandas widens int columns with
  nulls to float and Elasticsearch maps JSON numbers to double), other floats ``str(float)``.
  CSV files are read with every configured categorical/text column as text, exactly as written
  (so ``"007"`` stays ``"007"``), except that a categorical ``"4.0"`` becomes ``"4"`` (the rule
  above; pandas writes an int column with nulls that way).
- Nulls: null, NaN and (for numeric features) values that are not numbers, as the agent turns
  those into null.
- ``unseen_rate``: Good-Turing, N1/N over the baseline's own counts (N1 = values seen exactly
  once, N = non-null rows): the probability that the next value is one the baseline never saw.
  It needs no split, streams, and means the same for training data and for logs.
- Held-out split: row i is held out when splitmix64(seed, i) falls under ``heldout_fraction``; the
  split depends only on the row number, so chunking never changes a baseline. The vocabulary is
  fitted on the other rows (document frequencies, top ``top_k_vocab`` by frequency then token);
  ``text_docs`` is the number of fit documents with at least one token (the frequencies'
  denominator); ``heldout_docs`` counts held-out documents with at least one token and
  ``heldout_oov_docs`` those of them with a token outside the vocabulary. Categories, nulls and
  numeric bins use every row.
- Numeric edges: the quantiles 1/bins .. (bins-1)/bins (numpy's linear interpolation), duplicates
  removed, so ``bins`` equal-mass bins; ``bin_counts`` follow the numeric table convention of
  ``analytics.model`` (bin 0 is (-inf, e0), the last is [e_last, inf)). Edges and quantiles come
  from a bottom-k sample: the ``sample_size`` (100k) values whose row hash is smallest, a uniform
  sample that is also independent of chunking; when a feature has at most ``sample_size`` values
  the sample is all of them and everything is exact. Bin counts are always exact: counted on the
  sample when it holds every value, otherwise in a second pass over the data.
- A second pass (re-reading the file) happens only when there are text features to measure on
  the held-out rows or numeric features with more values than the sample; memory stays bounded
  by the number of distinct categories and tokens plus the samples, never by the file size.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from agent.config import ModelConfig
from agent.tokenize import tokenize
from analytics.model import Baseline, FeatureBaseline, FeatureKind, Window
from analytics.sources.base import BaselineCountSource
from analytics.sources.tables import category_str

FORMAT = 1
QUANTILES: dict[str, float] = {"p1": 1, "p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}
SAMPLE_SIZE = 100_000
MIN_ROWS_FOR_UNIQUE_RULE = 20
_INTEGRAL_FLOAT = r"^(-?[0-9]+)\.0+$"
_U64 = np.uint64


# --- rows, hashing, kinds ------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a well-spread 64-bit hash of each uint64."""
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _row_hashes(first_row: int, n: int, seed: int) -> np.ndarray:
    rows = np.arange(first_row, first_row + n, dtype=np.uint64)
    return _mix(rows ^ _mix(np.array([seed], dtype=np.uint64))[0])


def _uniform(hashes: np.ndarray) -> np.ndarray:
    return (hashes >> _U64(11)).astype(np.float64) / float(2**53)


def heldout_mask(first_row: int, n: int, seed: int, fraction: float) -> np.ndarray:
    """Which of the rows ``first_row .. first_row + n - 1`` are held out (a function of the row
    number and the seed only, so any chunking gives the same split)."""
    return _uniform(_row_hashes(first_row, n, seed)) < fraction


def infer_kind(values: pd.Series) -> FeatureKind:
    """The kind of an unconfigured column (rules in the module docstring)."""
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    present = values.dropna()
    if present.empty:
        return "categorical"
    if present.map(lambda v: isinstance(v, bool)).all():
        return "categorical"
    if present.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).all():
        return "numeric"
    strings = present.map(str)
    head = strings.iloc[:1000]
    mean_tokens = float(np.mean([len(tokenize(s)) for s in head]))
    unique_share = strings.nunique() / len(strings)
    if mean_tokens > 3 or (len(strings) >= MIN_ROWS_FOR_UNIQUE_RULE and unique_share > 0.5):
        return "text"
    return "categorical"


def _numbers(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _edges(sample: np.ndarray, bins: int) -> tuple[float, ...]:
    finite = sample[np.isfinite(sample)]
    if finite.size == 0 or bins < 2:
        return ()
    qs = np.quantile(finite, [i / bins for i in range(1, bins)])
    return tuple(float(q) for q in np.unique(qs))


def _bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


def good_turing_unseen(counts: Mapping[str, int]) -> float:
    """N1/N: the share of observations that are values seen exactly once."""
    total = sum(counts.values())
    return sum(1 for n in counts.values() if n == 1) / total if total else 0.0


def top_vocabulary(doc_freq: Mapping[str, int], top_k: int) -> dict[str, int]:
    """The ``top_k`` tokens by document frequency (ties by token, so the choice is stable)."""
    ranked = sorted(doc_freq.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return dict(ranked)


# --- the accumulator -----------------------------------------------------------------------------


@dataclass
class _Feature:
    key: str
    kind: FeatureKind
    rows: int = 0
    nulls: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    values: int = 0  # non-null numeric values
    sample_priority: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    sample: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    edges: tuple[float, ...] = ()
    bin_counts: np.ndarray | None = None
    doc_freq: Counter[str] = field(default_factory=Counter)
    vocabulary: dict[str, int] = field(default_factory=dict)
    text_docs: int = 0
    heldout_docs: int = 0
    heldout_oov_docs: int = 0


class BaselineBuilder:
    """Accumulates a baseline chunk by chunk (first pass), then, if ``needs_second_pass``, takes
    the same chunks again in the same order (``add_second``), then ``finish``."""

    def __init__(
        self,
        kinds: Mapping[str, FeatureKind],
        heldout_fraction: float = 0.2,
        seed: int = 0,
        top_k_vocab: int = 2000,
        bins: int = 10,
        sample_size: int = SAMPLE_SIZE,
    ) -> None:
        if not 0.0 <= heldout_fraction < 1.0:
            raise ValueError("heldout_fraction must be in [0, 1)")
        self.kinds = dict(kinds)
        self.heldout_fraction = heldout_fraction
        self.seed = seed
        self.top_k_vocab = top_k_vocab
        self.bins = bins
        self.sample_size = sample_size
        self.rows = 0
        self.features: dict[str, _Feature] = {}
        self._second_row = 0
        self._fitted = False

    def _split(self, first_row: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        hashes = _row_hashes(first_row, n, self.seed)
        return hashes, _uniform(hashes) < self.heldout_fraction

    def add(self, chunk: pd.DataFrame) -> None:
        """First pass over one chunk whose columns are qualified keys."""
        n = len(chunk)
        hashes, heldout = self._split(self.rows, n)
        for key in chunk.columns:
            if key not in self.features:
                kind = self.kinds.get(key) or infer_kind(chunk[key])
                self.kinds[key] = kind
                self.features[key] = _Feature(key, kind, rows=self.rows, nulls=self.rows)
            self._add_column(self.features[key], chunk[key], hashes, heldout)
        for key, feat in self.features.items():
            if key not in chunk.columns:  # a column missing from this chunk (Parquet schemas vary)
                feat.rows += n
                feat.nulls += n
        self.rows += n

    def _add_column(self, feat: _Feature, col: pd.Series, hashes: np.ndarray, heldout: np.ndarray) -> None:
        feat.rows += len(col)
        if feat.kind == "numeric":
            numbers = _numbers(col)
            ok = numbers.notna().to_numpy()
            feat.nulls += int((~ok).sum())
            feat.values += int(ok.sum())
            self._sample(feat, numbers.to_numpy()[ok], _mix(hashes[ok] ^ _U64(0x5EED)))
            return
        present = col.notna().to_numpy()
        feat.nulls += int((~present).sum())
        if feat.kind == "categorical":
            values = col[present].map(category_str).dropna()
            feat.categories.update({str(k): int(v) for k, v in values.value_counts(sort=False).items()})
            return
        fit = present & ~heldout
        docs = 0
        for text in col[fit]:
            tokens = tokenize(text if isinstance(text, str) else str(text))
            if tokens:
                docs += 1
                feat.doc_freq.update(tokens)
        feat.text_docs += docs

    def _sample(self, feat: _Feature, values: np.ndarray, priority: np.ndarray) -> None:
        prio = np.concatenate([feat.sample_priority, priority])
        vals = np.concatenate([feat.sample, values])
        if prio.size > self.sample_size:
            keep = np.sort(np.argsort(prio, kind="stable")[: self.sample_size])
            prio, vals = prio[keep], vals[keep]
        feat.sample_priority, feat.sample = prio, vals

    def _fit(self) -> None:
        if self._fitted:
            return
        for feat in self.features.values():
            if feat.kind == "numeric":
                feat.edges = _edges(feat.sample, self.bins)
                if feat.values <= self.sample_size:  # the sample is every value: count on it
                    feat.bin_counts = _bin_counts(feat.sample, feat.edges)
            elif feat.kind == "text":
                feat.vocabulary = top_vocabulary(feat.doc_freq, self.top_k_vocab)
        self._fitted = True

    @property
    def needs_second_pass(self) -> bool:
        self._fit()
        text = self.heldout_fraction > 0 and any(f.kind == "text" for f in self.features.values())
        return text or any(f.bin_counts is None for f in self.features.values() if f.kind == "numeric")

    def add_second(self, chunk: pd.DataFrame) -> None:
        """Second pass over one chunk (same chunks, same order): exact bins, held-out OOV."""
        self._fit()
        n = len(chunk)
        _, heldout = self._split(self._second_row, n)
        self._second_row += n
        for key, feat in self.features.items():
            if key not in chunk.columns:
                continue
            col = chunk[key]
            if feat.kind == "numeric" and feat.values > self.sample_size:
                numbers = _numbers(col).to_numpy()
                counts = _bin_counts(numbers[~np.isnan(numbers)], feat.edges)
                feat.bin_counts = counts if feat.bin_counts is None else feat.bin_counts + counts
            elif feat.kind == "text":
                for text in col[col.notna().to_numpy() & heldout]:
                    tokens = tokenize(text if isinstance(text, str) else str(text))
                    if tokens:
                        feat.heldout_docs += 1
                        feat.heldout_oov_docs += any(t not in feat.vocabulary for t in tokens)

    def finish(self, model: str, version: str, source: str, created: datetime) -> Baseline:
        self._fit()
        features = {key: _feature_baseline(feat, self.bins) for key, feat in sorted(self.features.items())}
        return Baseline(model, version, created, source, self.rows, MappingProxyType(features))


def _feature_baseline(feat: _Feature, bins: int) -> FeatureBaseline:
    if feat.kind == "numeric":
        finite = feat.sample[np.isfinite(feat.sample)]
        quantiles = (
            {
                name: float(q)
                for name, q in zip(QUANTILES, np.percentile(finite, list(QUANTILES.values())), strict=True)
            }
            if finite.size
            else {}
        )
        counts = (
            feat.bin_counts if feat.bin_counts is not None else np.zeros(len(feat.edges) + 1, dtype=np.int64)
        )
        return FeatureBaseline(
            feat.key,
            "numeric",
            feat.rows,
            feat.nulls,
            edges=feat.edges,
            bin_counts=tuple(int(c) for c in counts),
            quantiles=MappingProxyType(quantiles),
        )
    if feat.kind == "categorical":
        cats = dict(sorted(feat.categories.items()))
        return FeatureBaseline(
            feat.key,
            "categorical",
            feat.rows,
            feat.nulls,
            categories=MappingProxyType(cats),
            unseen_rate=good_turing_unseen(cats),
        )
    return FeatureBaseline(
        feat.key,
        "text",
        feat.rows,
        feat.nulls,
        vocabulary=MappingProxyType(feat.vocabulary),
        text_docs=feat.text_docs,
        heldout_docs=feat.heldout_docs,
        heldout_oov_docs=feat.heldout_oov_docs,
    )


def build_baseline_chunks(
    chunks: Callable[[], Iterable[pd.DataFrame]],
    model: str,
    version: str,
    kinds: Mapping[str, FeatureKind],
    source: str,
    created: datetime,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    top_k_vocab: int = 2000,
    bins: int = 10,
    sample_size: int = SAMPLE_SIZE,
) -> Baseline:
    """A baseline from chunks with qualified column keys; ``chunks()`` is called once, or twice
    when a second pass is needed, and must yield the same chunks each time."""
    builder = BaselineBuilder(kinds, heldout_fraction, seed, top_k_vocab, bins, sample_size)
    for chunk in chunks():
        builder.add(_qualified_only(chunk))
    if builder.needs_second_pass:
        for chunk in chunks():
            builder.add_second(_qualified_only(chunk))
    return builder.finish(model, version, source, created)


def _qualified_only(frame: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in frame.columns if isinstance(c, str) and c.startswith(("inputs.", "outputs."))]
    return frame[keep]


def build_baseline(
    frame: pd.DataFrame,
    model: str,
    version: str,
    kinds: Mapping[str, FeatureKind],
    source: str,
    created: datetime,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    top_k_vocab: int = 2000,
    bins: int = 10,
) -> Baseline:
    """A baseline from one in-memory frame whose columns are qualified keys (``inputs.age``,
    ``outputs.label``); other columns are ignored. ``kinds`` may leave features out (inferred)."""
    return build_baseline_chunks(
        lambda: [frame], model, version, kinds, source, created, heldout_fraction, seed, top_k_vocab, bins
    )


# --- training files ------------------------------------------------------------------------------


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


# --- from logs -----------------------------------------------------------------------------------


def build_from_counts(
    source: BaselineCountSource,
    model: str,
    version: str,
    window: Window,
    kinds: Mapping[str, FeatureKind],
    created: datetime,
    heldout_fraction: float = 0.2,
    top_k_vocab: int = 2000,
    bins: int = 10,
) -> Baseline:
    """A baseline from a past window of logs, from count tables only (no documents pulled):
    categories and nulls over the whole window, numeric edges from its percentiles and exact bin
    counts on them, the vocabulary from the first ``1 - heldout_fraction`` of the window and the
    OOV rate on the rest (a split in time), and the hour-of-week volume."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError("heldout_fraction must be in [0, 1)")
    full = source.window_counts(model, version, window, None, kinds)
    numeric = sorted(k for k, v in kinds.items() if v == "numeric")
    text = sorted(k for k, v in kinds.items() if v == "text")
    missing = dict(zip(full.presence["feature"], full.presence["missing"], strict=True))
    edge_pcts = [100.0 * i / bins for i in range(1, bins)]
    pct = source.percentiles(model, version, window, numeric, sorted({*edge_pcts, *QUANTILES.values()}))

    features: dict[str, FeatureBaseline] = {}
    for key in sorted(kinds):
        nulls = int(missing.get(key, full.docs))
        if kinds[key] == "categorical":
            rows = full.categories[full.categories["feature"] == key]
            cats = {str(v): int(n) for v, n in sorted(zip(rows["value"], rows["count"], strict=True))}
            features[key] = FeatureBaseline(
                key, "categorical", full.docs, nulls, categories=cats, unseen_rate=good_turing_unseen(cats)
            )
        elif kinds[key] == "numeric":
            p = pct[pct["feature"] == key]
            by_pct = dict(zip(p["percent"].astype(float), p["value"].astype(float), strict=True))
            edges = tuple(sorted({by_pct[q] for q in edge_pcts if q in by_pct}))
            quantiles = {name: by_pct[q] for name, q in QUANTILES.items() if q in by_pct}
            features[key] = FeatureBaseline(
                key, "numeric", full.docs, nulls, edges=edges, quantiles=quantiles
            )
        else:
            features[key] = FeatureBaseline(key, "text", full.docs, nulls)

    provisional = Baseline(model, version, created, "provisional", full.docs, features)
    if numeric:
        counted = source.window_counts(model, version, window, provisional, {k: "numeric" for k in numeric})
        for key in numeric:
            rows = counted.numeric[counted.numeric["feature"] == key]
            features[key] = _replace(features[key], bin_counts=tuple(int(n) for n in rows["count"]))
    if text:
        split = window.start + (window.end - window.start) * (1.0 - heldout_fraction)
        text_kinds: dict[str, FeatureKind] = {k: "text" for k in text}
        fit = source.window_counts(model, version, Window(window.start, split), None, text_kinds)
        for key in text:
            toks = fit.tokens[fit.tokens["feature"] == key]
            vocab = top_vocabulary(
                dict(zip(toks["token"], toks["doc_count"].astype(int), strict=True)), top_k_vocab
            )
            docs = fit.text_docs[fit.text_docs["feature"] == key]["docs"]
            features[key] = _replace(features[key], vocabulary=vocab, text_docs=int(docs.sum()))
        if heldout_fraction > 0:
            with_vocab = Baseline(model, version, created, "provisional", full.docs, features)
            held = source.window_counts(model, version, Window(split, window.end), with_vocab, text_kinds)
            for key in text:
                row = held.text_docs[held.text_docs["feature"] == key]
                features[key] = _replace(
                    features[key],
                    heldout_docs=int(row["docs"].sum()),
                    heldout_oov_docs=int(row["oov_docs"].sum()),
                )
    volume = hourly_volume(source.model_counts(model, window).volume, window)
    return Baseline(
        model,
        version,
        created,
        f"logs:{window.start.isoformat()}/{window.end.isoformat()}",
        full.docs,
        MappingProxyType(features),
        MappingProxyType(volume),
    )


def _replace(fb: FeatureBaseline, **changes: Any) -> FeatureBaseline:
    return replace(fb, **changes)


def hourly_volume(volume: pd.DataFrame, window: Window) -> dict[int, float]:
    """Mean documents per hour-of-week (0 = Monday 00:00 UTC) over the hours lying wholly
    inside the window."""
    if volume.empty:
        return {}
    start = pd.Timestamp(window.start)
    end = pd.Timestamp(window.end)
    whole = volume[(volume["start"] >= start) & (volume["start"] + pd.Timedelta(hours=1) <= end)]
    how = whole["start"].dt.day_of_week * 24 + whole["start"].dt.hour
    means = whole["docs"].groupby(how.to_numpy()).mean()
    return {int(h): float(v) for h, v in zip(means.index, means.to_numpy(), strict=True)}


# --- JSON and the summary ------------------------------------------------------------------------


def _feature_to_dict(fb: FeatureBaseline) -> dict[str, Any]:
    return {
        "kind": fb.kind,
        "rows": fb.rows,
        "nulls": fb.nulls,
        "categories": dict(fb.categories),
        "unseen_rate": fb.unseen_rate,
        "edges": list(fb.edges),
        "bin_counts": list(fb.bin_counts),
        "quantiles": dict(fb.quantiles),
        "vocabulary": dict(fb.vocabulary),
        "text_docs": fb.text_docs,
        "heldout_docs": fb.heldout_docs,
        "heldout_oov_docs": fb.heldout_oov_docs,
    }


def baseline_to_dict(b: Baseline) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": b.model,
        "version": b.version,
        "created": b.created.isoformat(),
        "source": b.source,
        "rows": b.rows,
        "hourly_volume": {str(h): v for h, v in sorted(b.hourly_volume.items())},
        "features": {k: _feature_to_dict(fb) for k, fb in sorted(b.features.items())},
    }


def baseline_to_json(b: Baseline) -> bytes:
    """Stable (sorted keys), versioned (``format``) UTF-8 JSON."""
    return json.dumps(baseline_to_dict(b), sort_keys=True, ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def baseline_from_dict(raw: Mapping[str, Any]) -> Baseline:
    if raw.get("format") != FORMAT:
        raise ValueError(f"unsupported baseline format {raw.get('format')!r} (this version reads {FORMAT})")
    features = {}
    for key, f in raw["features"].items():
        features[key] = FeatureBaseline(
            key=key,
            kind=f["kind"],
            rows=int(f["rows"]),
            nulls=int(f["nulls"]),
            categories=MappingProxyType({str(k): int(v) for k, v in f.get("categories", {}).items()}),
            unseen_rate=float(f.get("unseen_rate", 0.0)),
            edges=tuple(float(e) for e in f.get("edges", ())),
            bin_counts=tuple(int(c) for c in f.get("bin_counts", ())),
            quantiles=MappingProxyType({str(k): float(v) for k, v in f.get("quantiles", {}).items()}),
            vocabulary=MappingProxyType({str(k): int(v) for k, v in f.get("vocabulary", {}).items()}),
            text_docs=int(f.get("text_docs", 0)),
            heldout_docs=int(f.get("heldout_docs", 0)),
            heldout_oov_docs=int(f.get("heldout_oov_docs", 0)),
        )
    return Baseline(
        model=str(raw["model"]),
        version=str(raw["version"]),
        created=datetime.fromisoformat(raw["created"]),
        source=str(raw["source"]),
        rows=int(raw["rows"]),
        features=MappingProxyType(features),
        hourly_volume=MappingProxyType({int(h): float(v) for h, v in raw.get("hourly_volume", {}).items()}),
    )


def baseline_from_json(data: bytes) -> Baseline:
    return baseline_from_dict(json.loads(data))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def summary_table(b: Baseline) -> str:
    """A printable table: one row per feature with its kind, rows, null rate, what the baseline
    holds (categories / quantiles / vocabulary) and the expected unseen or OOV rate."""
    header = ("feature", "kind", "rows", "nulls", "reference", "unseen/oov")
    rows: list[tuple[str, ...]] = []
    for key, fb in sorted(b.features.items()):
        if fb.kind == "categorical":
            top = sorted(fb.categories.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            ref = f"{len(fb.categories)} categories (top: {', '.join(v for v, _ in top)})"
            rate = _pct(fb.unseen_rate)
        elif fb.kind == "numeric":
            q = fb.quantiles
            ref = " ".join(f"{name}={_num(q[name])}" for name in ("p5", "p50", "p95") if name in q)
            ref = f"{ref} ({len(fb.bin_counts)} bins)".strip()
            rate = ""
        else:
            ref = f"vocabulary {len(fb.vocabulary)} tokens over {fb.text_docs} docs"
            rate = f"{_pct(fb.oov_rate)} of {fb.heldout_docs}" if fb.heldout_docs else "n/a"
        rows.append((key, fb.kind, str(fb.rows), _pct(fb.null_rate), ref, rate))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3}
    lines = [f"baseline {b.model}@{b.version}  ({b.source}, {b.rows} rows, created {b.created.isoformat()})"]
    for r in [header, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
