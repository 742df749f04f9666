"""A baseline from a past window of logs, from count tables only (no documents pulled)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

import pandas as pd

from inferwatch.analytics.baseline.builder import QUANTILES, good_turing_unseen, top_vocabulary
from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind, Window
from inferwatch.analytics.sources.base import BaselineCountSource


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
