"""Typed constructors of the count tables (columns in ``analytics.model``), shared by every source.

Both sources build their tables here, so the dtypes and the row order are the same whichever
path computed them: rows are sorted by their key columns (``feature`` then ``value`` / ``bin`` /
``token``; ``version``; ``start``) and the index is a plain range. Tests compare tables with
``pandas.testing.assert_frame_equal`` and rely on this.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from inferwatch.analytics.model import (
    CATEGORY_COLUMNS,
    NUMERIC_COLUMNS,
    PRESENCE_COLUMNS,
    TEXT_DOC_COLUMNS,
    TOKEN_COLUMNS,
    VERSION_COLUMNS,
    VOLUME_COLUMNS,
)
from inferwatch.core.contract import category_str as agent_category_str

KEYWORD_IGNORE_ABOVE = 1024  # strings longer than this are not indexed as keywords (template)
_DTYPES: dict[str, str] = {
    "feature": "object",
    "value": "object",
    "token": "object",
    "version": "object",
    "present": "int64",
    "missing": "int64",
    "count": "int64",
    "doc_count": "int64",
    "docs": "int64",
    "oov_docs": "int64",
    "bin": "int64",
    "lower": "float64",
    "upper": "float64",
    "in_baseline": "bool",
    "in_vocab": "bool",
}


def category_str(value: Any) -> str | None:
    """A categorical value as the string every part of inferwatch compares: the one rule,
    ``inferwatch.core.contract.category_str``, applied to what pandas and Elasticsearch hand
    back: numpy scalars become Python ones first (pandas widens an int
    column with nulls to float, and Elasticsearch maps JSON numbers to double, so ``4`` comes back
    as ``4.0`` and still reads ``"4"``); null/NaN -> None.
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return agent_category_str(bool(value))
    if isinstance(value, int | np.integer):
        return agent_category_str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) else agent_category_str(f)
    if isinstance(value, str):
        return agent_category_str(str(value))
    return str(value)


def _frame(rows: Iterable[Sequence[Any]], columns: tuple[str, ...], sort: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(columns))
    df = df.astype({c: _DTYPES[c] for c in columns})
    if len(df):
        df = df.sort_values(sort, kind="stable")
    return df.reset_index(drop=True)


def presence_table(rows: Iterable[tuple[str, int, int]]) -> pd.DataFrame:
    return _frame(rows, PRESENCE_COLUMNS, ["feature"])


def categories_table(rows: Iterable[tuple[str, str, int, bool]]) -> pd.DataFrame:
    return _frame(rows, CATEGORY_COLUMNS, ["feature", "value"])


def numeric_table(rows: Iterable[tuple[str, int, float, float, int]]) -> pd.DataFrame:
    return _frame(rows, NUMERIC_COLUMNS, ["feature", "bin"])


def tokens_table(rows: Iterable[tuple[str, str, int, bool]]) -> pd.DataFrame:
    return _frame(rows, TOKEN_COLUMNS, ["feature", "token"])


def text_docs_table(rows: Iterable[tuple[str, int, int]]) -> pd.DataFrame:
    return _frame(rows, TEXT_DOC_COLUMNS, ["feature"])


def versions_table(rows: Iterable[tuple[str, int]]) -> pd.DataFrame:
    return _frame(rows, VERSION_COLUMNS, ["version"])


def volume_table(rows: Iterable[tuple[pd.Timestamp, int]]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(VOLUME_COLUMNS))
    df["start"] = pd.to_datetime(df["start"], utc=True).astype("datetime64[ns, UTC]")
    df["docs"] = df["docs"].astype("int64")
    return df.sort_values("start", kind="stable").reset_index(drop=True)


def bin_bounds(edges: Sequence[float]) -> list[tuple[float, float]]:
    """(lower, upper) of every bin for these edges: bin 0 is (-inf, e0), bin i is [e(i-1), e(i)),
    the last bin is [e_last, inf). No edges -> one bin (-inf, inf)."""
    bounds = [-math.inf, *edges, math.inf]
    return [(bounds[i], bounds[i + 1]) for i in range(len(edges) + 1)]


def hour_starts(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Every UTC hour that overlaps [start, end): what an hourly date_histogram with
    ``extended_bounds`` [start, end - 1ms] returns."""
    last = end - pd.Timedelta(milliseconds=1)
    return pd.date_range(start.floor("h"), last.floor("h"), freq="h", tz="UTC")
