"""Frequency drift of categorical and numeric features; on ``outputs.*`` the same tests are
reported as prediction_drift.

- category_drift: bins = the baseline's categories + one bin for values never seen in training
  (expected share = the baseline unseen rate).
- numeric_drift: bins = the baseline's quantile bins (the ``numeric`` table is already binned
  on the baseline edges).

Both use ``common.dist_series``: chi-square homogeneity against the baseline counts with small
bins merged (expected counts on both sides), effect = JS distance held to js_floor + its 1 - alpha
sampling quantile at the two-sample n_eff = n m / (n + m) (``common.js_cut``), so a reference of
a few hundred rows does not turn its own noise into drift.

Two horizons: the window, and a long one (about a week of windows, ``common.horizon_series``)
reported under the key ``week``. A slow or slight shift that no single window can show (its
noise floor is above the shift) adds up on the long horizon and is reported once there, and
kept open while it lasts.
"""

from __future__ import annotations

import itertools
import math

from inferwatch.analytics.detectors.common import (
    Context,
    DistVerdict,
    describe_changes,
    dist_fields,
    dist_series,
    horizon_series,
    num,
)
from inferwatch.analytics.detectors.slices import FeatureCounts
from inferwatch.analytics.model import FeatureBaseline, Finding, Status

UNSEEN_BIN = "(never seen in training)"
HORIZON_KEY = "week"  # the alert key of the long-horizon drift test


def detector_name(key: str, base: str) -> str:
    return "prediction_drift" if key.startswith("outputs.") else base


def category(ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts) -> list[Finding]:
    name = detector_name(key, "category_drift")
    reference: dict[str, float] = {str(v): float(c) for v, c in fb.categories.items() if c > 0}
    total = sum(reference.values())
    reference[UNSEEN_BIN] = fb.unseen_rate * total
    current: dict[str, float] = {}
    for value, c in fc.categories.items():
        label = value if value in reference and value != UNSEEN_BIN else UNSEEN_BIN
        current[label] = current.get(label, 0.0) + c
    v = dist_series(ctx, f"{name}|{key}", current, reference, "category")
    return _with_horizon(ctx, name, key, v, current, reference, "category")


def _edge_format(edges: tuple[float, ...]) -> str:
    """The shortest ``g`` format (6 significant digits or more) that tells every edge apart:
    ``{:g}`` alone prints epoch seconds 1700000000 and 1700001000 both as ``1.7e+09``."""
    for digits in range(6, 18):
        if len({f"{e:.{digits}g}" for e in edges}) == len(set(edges)):
            return f".{digits}g"
    return ".17g"


def bin_labels(edges: tuple[float, ...]) -> list[str]:
    if not edges:
        return ["all"]
    fmt = _edge_format(edges)
    labels = [f"< {edges[0]:{fmt}}"]
    labels += [f"[{a:{fmt}}, {b:{fmt}})" for a, b in itertools.pairwise(edges)]
    labels.append(f">= {edges[-1]:{fmt}}")
    return labels


def numeric(ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts) -> list[Finding]:
    name = detector_name(key, "numeric_drift")
    if not fb.bin_counts:
        return [ctx.skipped(name, key, "the baseline has no numeric bins for this feature")]
    labels = bin_labels(fb.edges)
    if len(labels) != len(fb.bin_counts) or len(set(labels)) != len(labels):
        # Labels key the bins: two bins under one label would lose a reference count.
        labels = [f"bin {i}" for i in range(len(fb.bin_counts))]
    reference = {labels[i]: float(c) for i, c in enumerate(fb.bin_counts)}
    current: dict[str, float] = {}
    for b, c in fc.numeric.items():
        label = labels[b] if 0 <= b < len(labels) else f"bin {b}"
        current[label] = current.get(label, 0.0) + c
    v = dist_series(ctx, f"{name}|{key}", current, reference, "numeric")
    return _with_horizon(ctx, name, key, v, current, reference, "numeric")


def _with_horizon(
    ctx: Context,
    name: str,
    key: str,
    v: DistVerdict,
    current: dict[str, float],
    reference: dict[str, float],
    what: str,
) -> list[Finding]:
    out = [_finding(ctx, name, key, v, "value distribution")]
    if ctx.params.horizon_windows > 1:
        long = horizon_series(ctx, f"{name}|{key}", current, reference, what)
        out.append(_finding(ctx, name, key, long, "value distribution over the last week", HORIZON_KEY))
    return out


def _finding(
    ctx: Context, name: str, key: str, v: DistVerdict, what: str, horizon: str | None = None
) -> Finding:
    fields = dist_fields(v)
    fields["examples"] = tuple(label for label, o, e in v.changes if o > e)[: ctx.params.examples]
    if horizon is not None:
        fields["key"] = horizon
    if v.status is Status.SKIPPED:
        return ctx.skipped(name, key, v.reason, **fields)
    cut = "inf" if math.isinf(v.cut) else f"{v.cut:.2f}"
    if v.status is Status.FIRING:
        msg = f"{key}: {what} shifted (JS {v.statistic:.2f} >= {cut}, n={num(v.n)}): {describe_changes(v)}"
        return ctx.finding(name, key, v.status, "warning", msg, **fields)
    msg = f"{key}: {what} stable (JS {v.statistic:.2f} < {cut}, n={num(v.n)})"
    return ctx.finding(name, key, v.status, "info", msg, **fields)
