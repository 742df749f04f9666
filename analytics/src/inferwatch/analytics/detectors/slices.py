"""The count tables of one window cut into per-feature plain dicts, once per window.

Tolerant of what a source may hand over on a bad day: missing tables or columns, NaN counts,
non-string values. A feature absent from ``presence`` is reported as such (``in_presence``
False): the field is gone from every document.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from inferwatch.analytics.model import WindowCounts


@dataclass
class FeatureCounts:
    present: int = 0
    missing: int = 0
    in_presence: bool = False
    categories: dict[str, int] = field(default_factory=dict)  # value -> count (non-null values)
    numeric: dict[int, int] = field(default_factory=dict)  # baseline bin -> count
    tokens: dict[str, int] = field(default_factory=dict)  # in-vocabulary token -> documents
    oov_tokens: dict[str, int] = field(default_factory=dict)  # out-of-vocabulary token -> documents
    text_docs: int = 0
    oov_docs: int = 0


def _column(df: pd.DataFrame, name: str, counts: tuple[str, ...]) -> list[Any]:
    if name not in counts:
        return df[name].tolist()
    v = pd.to_numeric(df[name], errors="coerce").astype("float64").to_numpy()
    v = np.where(np.isfinite(v) & (v > 0), v, 0.0)
    return v.astype(np.int64).tolist()


def _rows(
    df: pd.DataFrame | None, columns: tuple[str, ...], counts: tuple[str, ...]
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``columns``; the ``counts`` columns cleaned to non-negative ints (NaN, text -> 0)."""
    if df is None or not isinstance(df, pd.DataFrame) or df.empty:
        return
    if any(c not in df.columns for c in columns):
        return
    yield from zip(*(_column(df, c, counts) for c in columns), strict=True)


def split_counts(counts: WindowCounts) -> dict[str, FeatureCounts]:
    out: dict[str, FeatureCounts] = defaultdict(FeatureCounts)
    for feature, present, missing in _rows(
        counts.presence, ("feature", "present", "missing"), ("present", "missing")
    ):
        fc = out[str(feature)]
        fc.present += present
        fc.missing += missing
        fc.in_presence = True
    for feature, value, c in _rows(counts.categories, ("feature", "value", "count"), ("count",)):
        if c and value is not None and not (isinstance(value, float) and math.isnan(value)):
            cats = out[str(feature)].categories
            cats[str(value)] = cats.get(str(value), 0) + c
    for feature, b, c in _rows(counts.numeric, ("feature", "bin", "count"), ("bin", "count")):
        if c:
            nums = out[str(feature)].numeric
            nums[b] = nums.get(b, 0) + c
    token_columns = ("feature", "token", "doc_count", "in_vocab")
    for feature, token, c, in_vocab in _rows(counts.tokens, token_columns, ("doc_count",)):
        if c and token is not None:
            fc = out[str(feature)]
            target = fc.tokens if bool(in_vocab) else fc.oov_tokens
            target[str(token)] = target.get(str(token), 0) + c
    for feature, docs, oov_docs in _rows(
        counts.text_docs, ("feature", "docs", "oov_docs"), ("docs", "oov_docs")
    ):
        fc = out[str(feature)]
        fc.text_docs += docs
        fc.oov_docs += oov_docs
    return dict(out)
