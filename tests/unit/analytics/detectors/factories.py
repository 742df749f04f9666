"""Literal count tables and baselines for the detector tests (synthetic, built from dicts)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pandas as pd

from inferwatch.analytics.model import (
    CATEGORY_COLUMNS,
    NUMERIC_COLUMNS,
    PRESENCE_COLUMNS,
    TEXT_DOC_COLUMNS,
    TOKEN_COLUMNS,
    VERSION_COLUMNS,
    VOLUME_COLUMNS,
    Baseline,
    FeatureBaseline,
    Finding,
    ModelCounts,
    Status,
    Window,
    WindowCounts,
)

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)  # a Monday, 10:00 UTC -> hour-of-week 10
MODEL = "churn"
VERSION = "1"


def window(i: int = 0, hours: float = 1.0) -> Window:
    start = T0 + timedelta(hours=i * hours)
    return Window(start, start + timedelta(hours=hours))


def categorical(
    key: str, categories: Mapping[str, int], nulls: int = 0, unseen_rate: float = 0.0
) -> FeatureBaseline:
    return FeatureBaseline(
        key=key,
        kind="categorical",
        rows=sum(categories.values()) + nulls,
        nulls=nulls,
        categories=MappingProxyType(dict(categories)),
        unseen_rate=unseen_rate,
    )


def numeric(
    key: str, edges: tuple[float, ...], bin_counts: tuple[int, ...], nulls: int = 0
) -> FeatureBaseline:
    return FeatureBaseline(
        key=key, kind="numeric", rows=sum(bin_counts) + nulls, nulls=nulls, edges=edges, bin_counts=bin_counts
    )


def text(
    key: str,
    vocabulary: Mapping[str, int],
    text_docs: int,
    heldout_docs: int,
    heldout_oov_docs: int,
    nulls: int = 0,
) -> FeatureBaseline:
    return FeatureBaseline(
        key=key,
        kind="text",
        rows=text_docs + nulls,
        nulls=nulls,
        vocabulary=MappingProxyType(dict(vocabulary)),
        text_docs=text_docs,
        heldout_docs=heldout_docs,
        heldout_oov_docs=heldout_oov_docs,
    )


def baseline(
    *features: FeatureBaseline,
    version: str = VERSION,
    hourly_volume: Mapping[int, float] | None = None,
    created: datetime | None = None,
) -> Baseline:
    rows = max((f.rows for f in features), default=0)
    return Baseline(
        model=MODEL,
        version=version,
        created=created or datetime(2026, 11, 1, tzinfo=UTC),
        source="training:test.csv",
        rows=rows,
        features=MappingProxyType({f.key: f for f in features}),
        hourly_volume=MappingProxyType(dict(hourly_volume or {})),
    )


def counts(
    docs: int,
    *,
    base: Baseline | None = None,
    categories: Mapping[str, Mapping[str, int]] | None = None,
    numeric: Mapping[str, Mapping[int, int]] | None = None,
    tokens: Mapping[str, Mapping[str, int]] | None = None,
    text_docs: Mapping[str, tuple[int, int]] | None = None,
    presence: Mapping[str, tuple[int, int]] | None = None,
    absent: tuple[str, ...] = (),
    win: Window | None = None,
    version: str = VERSION,
) -> WindowCounts:
    """A window's tables. Presence defaults to "every document has a value" for each feature of
    ``base`` (and the non-null count of categories/numeric when given); ``absent`` features are
    left out of the presence table entirely."""
    categories = categories or {}
    numeric = numeric or {}
    tokens = tokens or {}
    text_docs = text_docs or {}
    pres: dict[str, tuple[int, int]] = {}
    for key in base.features if base else ():
        pres[key] = (docs, 0)
    for key, cats in categories.items():
        present = sum(cats.values())
        pres[key] = (present, docs - present)
    for key, bins in numeric.items():
        present = sum(bins.values())
        pres[key] = (present, docs - present)
    pres.update(presence or {})
    for key in absent:
        pres.pop(key, None)
    known = base.features if base else {}
    cat_rows = [
        (k, v, c, k in known and v in known[k].categories)
        for k, cats in categories.items()
        for v, c in cats.items()
    ]
    num_rows = [(k, b, float("nan"), float("nan"), c) for k, bins in numeric.items() for b, c in bins.items()]
    tok_rows = [
        (k, t, c, k in known and t in known[k].vocabulary)
        for k, toks in tokens.items()
        for t, c in toks.items()
    ]
    return WindowCounts(
        model=MODEL,
        version=version,
        window=win or window(),
        docs=docs,
        presence=pd.DataFrame([(k, p, m) for k, (p, m) in pres.items()], columns=list(PRESENCE_COLUMNS)),
        categories=pd.DataFrame(cat_rows, columns=list(CATEGORY_COLUMNS)),
        numeric=pd.DataFrame(num_rows, columns=list(NUMERIC_COLUMNS)),
        tokens=pd.DataFrame(tok_rows, columns=list(TOKEN_COLUMNS)),
        text_docs=pd.DataFrame(
            [(k, d, o) for k, (d, o) in text_docs.items()], columns=list(TEXT_DOC_COLUMNS)
        ),
    )


def model_counts(versions: Mapping[str, int], win: Window | None = None) -> ModelCounts:
    w = win or window()
    total = sum(versions.values())
    return ModelCounts(
        model=MODEL,
        window=w,
        versions=pd.DataFrame(list(versions.items()), columns=list(VERSION_COLUMNS)),
        volume=pd.DataFrame([(pd.Timestamp(w.start), total)], columns=list(VOLUME_COLUMNS)),
    )


def pick(
    findings: list[Finding], detector: str, feature: str | None = None, key: str | None = None
) -> Finding:
    """The one finding of ``detector`` (for ``feature``/``key`` when given); fails loudly otherwise."""
    hits = [
        f
        for f in findings
        if f.detector == detector
        and (feature is None or f.feature == feature)
        and (key is None or f.key == key)
    ]
    assert len(hits) == 1, (
        f"expected one {detector} finding, got {[(f.detector, f.key, f.status) for f in hits]}"
    )
    return hits[0]


def firing(findings: list[Finding]) -> list[tuple[str, str | None, str | None]]:
    return sorted((f.detector, f.feature, f.key) for f in findings if f.status is Status.FIRING)
