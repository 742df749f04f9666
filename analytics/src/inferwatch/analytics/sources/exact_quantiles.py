"""Exact percentiles from Elasticsearch aggregations (for baselines taken from logs).

Elasticsearch's ``percentiles`` aggregation is a t-digest estimate (bin edges 828 vs 852 on real
data), so a baseline built ``--from-logs`` would differ by backend. This computes them exactly as
the local source does (``numpy.percentile``, linear interpolation between the order statistics
``x[k]`` and ``x[k+1]``, ``k = floor((n - 1) * p / 100)``), from exact counts only:

1. ``stats`` per feature: the number of values ``n``, ``min`` and ``max``.
2. The order statistics needed are located by refinement: each unresolved rank lies in an
   interval ``[lo, hi)`` with ``below`` values under ``lo``; one ``range`` aggregation splits it
   in ``SPLIT`` equal-width sub-intervals with exact counts (``from`` inclusive, ``to``
   exclusive) and the ``stats`` (min, max) of each, and the rank moves into the sub-interval that
   holds it, narrowed to its values' min and max; one that holds a single distinct value is it.
3. When an interval holds at most ``EXACT_VALUES`` values, a ``terms`` aggregation under a
   ``range`` filter lists them with their counts (exact: its size is at least the number of
   distinct values there, so no shard leaves any out), and the rank is read off.

Every round sends one request for all features and intervals (split to stay under the bucket
budget); each round narrows an interval ``SPLIT`` times, so the number of requests grows with the
spread of the values (about ``log(n) / log(SPLIT)`` rounds), never with the count. An interval
too narrow to split further (one double) is that value. The results are exact, so the two sources
agree to the bit; one difference remains, documented: a value repeated inside one document's array
counts once in step 3 (terms count documents), as every value in the rest of inferwatch does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SPLIT = 1000
EXACT_VALUES = 10_000
MAX_ROUNDS = 64

Search = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class _Interval:
    feature: int
    lo: float
    hi: float  # exclusive
    below: int  # values of the feature under lo
    count: int  # values in [lo, hi)


def virtual_index(n: int, percent: float) -> float:
    """Where ``numpy.percentile`` (method linear) reads percent ``p`` among ``n`` sorted values."""
    return float((n - 1) * np.true_divide(percent, 100))


def lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation (``numpy.lib._function_base_impl._lerp``), bit for bit."""
    diff = b - a
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def _ranks(n: int, percents: Sequence[float]) -> set[int]:
    out: set[int] = set()
    for p in percents:
        h = virtual_index(n, p)
        k = min(math.floor(h), n - 1)
        out.add(k)
        if k + 1 < n:
            out.add(k + 1)
    return out


def _budgeted(
    aggs: Mapping[str, dict[str, Any]], cost: Mapping[str, int], budget: int
) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    used = 0
    for name, agg in aggs.items():
        if not groups or used + cost[name] > budget:
            groups.append({})
            used = 0
        groups[-1][name] = agg
        used += cost[name]
    return groups


def _split_edges(lo: float, hi: float) -> list[float]:
    edges = sorted({float(e) for e in np.linspace(lo, hi, SPLIT + 1)} | {lo, hi})
    return [e for e in edges if lo <= e <= hi]


def exact_percentiles(
    search: Search,
    query: Mapping[str, Any],
    fields: Sequence[str],
    keys: Sequence[str],
    percents: Sequence[float],
    budget: int = 50_000,
) -> pd.DataFrame:
    """DataFrame(feature, percent, value) of ``keys`` (their fields in ``fields``), exact; no row
    for a feature without values. ``search`` sends one body (``size`` 0 with ``query``)."""

    def run(aggs: dict[str, dict[str, Any]], cost: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group in _budgeted(aggs, cost, budget):
            response = search({"size": 0, "query": dict(query), "aggs": group})
            out.update(response.get("aggregations") or {})
        return out

    stats = run(
        {f"s{i}": {"stats": {"field": f}} for i, f in enumerate(fields)},
        {f"s{i}": 1 for i in range(len(fields))},
    )
    counts: list[int] = []
    values: dict[tuple[int, int], float] = {}  # (feature, rank) -> value
    open_: dict[_Interval, set[int]] = {}
    for i in range(len(fields)):
        s = stats.get(f"s{i}") or {}
        n = int(s.get("count") or 0)
        counts.append(n)
        if n == 0:
            continue
        lo, hi = float(s["min"]), float(s["max"])
        ranks = _ranks(n, percents)
        if lo == hi:
            values.update({(i, r): lo for r in ranks})
            continue
        open_[_Interval(i, lo, math.nextafter(hi, math.inf), 0, n)] = ranks

    for _ in range(MAX_ROUNDS):
        if not open_:
            break
        intervals = list(open_)
        aggs: dict[str, dict[str, Any]] = {}
        cost: dict[str, int] = {}
        edges: dict[str, list[float]] = {}
        for j, iv in enumerate(intervals):
            field = fields[iv.feature]
            if iv.count <= EXACT_VALUES:
                aggs[f"t{j}"] = {
                    "filter": {"range": {field: {"gte": iv.lo, "lt": iv.hi}}},
                    "aggs": {"v": {"terms": {"field": field, "size": iv.count, "order": {"_key": "asc"}}}},
                }
                cost[f"t{j}"] = iv.count + 1
            else:
                e = edges[f"r{j}"] = _split_edges(iv.lo, iv.hi)
                ranges = [{"from": a, "to": b} for a, b in itertools.pairwise(e)]
                aggs[f"r{j}"] = {
                    "range": {"field": field, "ranges": ranges},
                    "aggs": {"s": {"stats": {"field": field}}},
                }
                cost[f"r{j}"] = len(ranges)
        answer = run(aggs, cost)
        next_open: dict[_Interval, set[int]] = {}
        for j, iv in enumerate(intervals):
            ranks = open_[iv]
            if f"t{j}" in aggs:
                buckets = ((answer.get(f"t{j}") or {}).get("v") or {}).get("buckets", [])
                pairs = sorted((float(b["key"]), int(b["doc_count"])) for b in buckets)
                cum = iv.below
                for value, count in pairs:
                    for r in [r for r in ranks if cum <= r < cum + count]:
                        values[(iv.feature, r)] = value
                    cum += count
                if pairs:  # a rank past the listed values (multi-valued documents): the largest
                    values.update(
                        {(iv.feature, r): pairs[-1][0] for r in ranks if (iv.feature, r) not in values}
                    )
                continue
            buckets = (answer.get(f"r{j}") or {}).get("buckets", [])
            e = edges[f"r{j}"]
            cum = iv.below
            for b, (a, z) in enumerate(itertools.pairwise(e)):
                bucket = buckets[b] if b < len(buckets) else {}
                count = int(bucket.get("doc_count", 0))
                inside = {r for r in ranks if cum <= r < cum + count}
                if inside:
                    # the values' own min and max in the bucket tighten the next interval; one
                    # distinct value there resolves its ranks at once (ties, repeated values)
                    s_ = bucket.get("s") or {}
                    low = max(a, float(s_["min"])) if s_.get("min") is not None else a
                    high = (
                        min(z, math.nextafter(float(s_["max"]), math.inf)) if s_.get("max") is not None else z
                    )
                    if math.nextafter(low, math.inf) >= high:
                        values.update({(iv.feature, r): low for r in inside})
                    else:
                        next_open.setdefault(_Interval(iv.feature, low, high, cum, count), set()).update(
                            inside
                        )
                cum += count
        open_ = next_open

    rows: list[tuple[str, float, float]] = []
    for i, key in enumerate(keys):
        n = counts[i]
        if n == 0:
            continue
        for p in percents:
            h = virtual_index(n, p)
            k = min(math.floor(h), n - 1)
            below = values.get((i, k))
            if below is None:
                continue
            above = values.get((i, k + 1), below)
            rows.append((key, float(p), lerp(below, above, h - k)))
    df = pd.DataFrame(rows, columns=["feature", "percent", "value"])
    df = df.astype({"feature": "object", "percent": "float64", "value": "float64"})
    return df.sort_values(["feature", "percent"], kind="stable").reset_index(drop=True)
