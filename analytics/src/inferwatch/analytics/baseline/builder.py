"""The baseline accumulator: chunks of qualified columns -> ``Baseline`` (rules in
``analytics.baseline``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import numpy as np
import pandas as pd

from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind
from inferwatch.analytics.sources.tables import category_str
from inferwatch.core.tokenize import tokenize

QUANTILES: dict[str, float] = {"p1": 1, "p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95, "p99": 99}
SAMPLE_SIZE = 100_000
MIN_ROWS_FOR_UNIQUE_RULE = 20
_U64 = np.uint64


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
    """Numbers as float64, NaN where missing. A non-finite number is missing too: the agent
    writes null for one (JSON has no Infinity), so production never holds it."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    return out.where(np.isfinite(out.to_numpy()))


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
