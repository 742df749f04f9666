"""Values never seen in training: one finding per new value, and an unseen-rate surge.

p0, the rate at which unseen values are expected, is the baseline's ``unseen_rate`` (from a
validation split or Good-Turing N1/N), at least 1/N of the reference (a reference of N values
cannot tell a rate below that from zero); 0 for closed vocabularies, where a new value is
impossible by declaration.

- unseen_category: a new value with count c >= c_min (1 closed, 3 open) and
  P(U >= c) < alpha for U ~ Binomial(n, p0), U the unseen count of the values tested: any single
  new value's count is at most U, so this p-value is valid whatever the unseen values are. Key =
  the value, so each value is its own alert. The evidence accumulates across windows: from a
  value's first sighting on, c counts its sightings and n every value of the feature since
  (``DetectorState.unseen``), so a value seen once a day for a week alerts once, by name. A
  value is forgotten once its evidence is no better than chance (p >= 0.5), and at most
  ``unseen_memory_values`` values are remembered per feature (the strongest evidence kept).
- Values acknowledged with ``inferwatch alerts ack`` (``accepted``) count as seen in training.
- unseen_rate: U of n non-null values against p0, exact binomial, effect U/n - p0 >=
  max(0.5 pp, p0).
- A feature with ``high_cardinality_values`` or more distinct unseen values in one window
  (identifiers, free text in a categorical field) is recorded as high-cardinality and from
  then on watched by rate only.
"""

from __future__ import annotations

from inferwatch.analytics.detectors.common import Context, num, pct, rate_fields, rate_series, rate_severity
from inferwatch.analytics.detectors.slices import FeatureCounts
from inferwatch.analytics.detectors.stats import binom_upper_p
from inferwatch.analytics.model import FeatureBaseline, Finding, Status


def expected_unseen_rate(fb: FeatureBaseline, closed: bool) -> float:
    if closed:
        return 0.0
    total = sum(fb.categories.values())
    return max(fb.unseen_rate, 1.0 / total) if total > 0 else fb.unseen_rate


def evaluate(
    ctx: Context,
    key: str,
    fb: FeatureBaseline,
    fc: FeatureCounts,
    closed: bool,
    accepted: frozenset[str] = frozenset(),
) -> list[Finding]:
    if not fb.categories:
        return [ctx.skipped("unseen_rate", key, "the baseline has no values for this feature")]
    n = sum(fc.categories.values())
    if n <= 0:
        return [ctx.skipped("unseen_rate", key, "no non-null values in this window")]
    unseen = {v: c for v, c in fc.categories.items() if v not in fb.categories and v not in accepted}
    ranked = sorted(unseen.items(), key=lambda vc: (-vc[1], vc[0]))
    p0 = expected_unseen_rate(fb, closed)
    params = ctx.params
    out: list[Finding] = []
    if not closed and len(unseen) >= params.high_cardinality_values:
        ctx.state.high_cardinality.add(key)
    high = key in ctx.state.high_cardinality
    if high:
        ctx.state.unseen.pop(key, None)
    else:
        total_unseen = sum(unseen.values())
        memory = _remember(ctx, key, unseen, n, p0, accepted)
        seen = sorted(((v, memory[v]) for v in unseen), key=lambda vm: (-vm[1][0], vm[0]))
        for value, (c_all, n_all, windows) in seen[: params.max_value_findings]:
            if c_all < params.c_min(closed):
                continue
            now = unseen[value]
            out.append(_new_value(ctx, key, value, now, n, total_unseen, p0, closed, c_all, n_all, windows))
    out.append(_rate(ctx, key, fb, ranked, n, p0, closed, high))
    return out


def _remember(
    ctx: Context, key: str, unseen: dict[str, int], n: int, p0: float, accepted: frozenset[str]
) -> dict[str, tuple[int, int, int]]:
    """Add this window to the feature's memory of new values: (sightings, values, windows) since
    each one's first sighting. Forget what is no better than chance, keep the strongest."""
    params = ctx.params
    old = ctx.state.unseen.get(key, {})
    memory: dict[str, tuple[int, int, int]] = {}
    for value, (c, m, w) in old.items():
        if value in accepted:
            continue
        memory[value] = (c + unseen.get(value, 0), m + n, w + 1)
    for value, c in unseen.items():
        memory.setdefault(value, (c, n, 1))
    kept = {v: cmw for v, cmw in memory.items() if v in unseen or binom_upper_p(cmw[0], cmw[1], p0) < 0.5}
    if len(kept) > params.unseen_memory_values:
        strongest = sorted(kept, key=lambda v: (binom_upper_p(kept[v][0], kept[v][1], p0), v))
        kept = {v: kept[v] for v in strongest[: params.unseen_memory_values]}
    if kept:
        ctx.state.unseen[key] = kept
    else:
        ctx.state.unseen.pop(key, None)
    return kept


def _new_value(
    ctx: Context,
    key: str,
    value: str,
    now: int,
    n_now: int,
    total_unseen: int,
    p0: float,
    closed: bool,
    c: int,
    n: int,
    windows: int,
) -> Finding:
    params = ctx.params
    p = binom_upper_p(c, n, p0)
    firing = p < params.alpha
    strong = p < params.strong_alpha
    fields = {
        "key": value,
        "statistic_name": "count",
        "statistic": float(c),
        "p_value": p,
        "effect": float(c),
        "effect_floor": float(params.c_min(closed)),
        "strong": firing and strong,
        "observed": {
            "count": c,
            "n": n,
            "share": c / n,
            "windows": windows,
            "window_count": now,
            "window_n": n_now,
            "unseen_total": total_unseen,
        },
        "expected": {"unseen_rate": p0, "closed_vocabulary": closed},
        "examples": (value,),
    }
    over = f" over {windows} windows" if windows > 1 else ""
    if not firing:
        msg = (
            f"{key}: new value {value!r} seen {num(c)} times in {num(n)}{over}, within the expected "
            f"unseen rate {pct(p0)}"
        )
        return ctx.finding("unseen_category", key, Status.OK, "info", msg, **fields)
    what = "outside the closed vocabulary" if closed else "never seen in training"
    msg = f"{key}: new value {value!r} seen {num(c)} times in {num(n)} values{over} ({pct(c / n)}), {what}"
    return ctx.finding(
        "unseen_category", key, Status.FIRING, "critical" if strong else "warning", msg, **fields
    )


def _rate(
    ctx: Context,
    key: str,
    fb: FeatureBaseline,
    ranked: list[tuple[str, int]],
    n: int,
    p0: float,
    closed: bool,
    high: bool,
) -> Finding:
    k = sum(c for _, c in ranked)
    floor = ctx.params.unseen_floor(fb.unseen_rate if not closed else 0.0)
    v = rate_series(
        ctx, f"unseen_rate|{key}", k, n, p0, floor, lambda a, b: binom_upper_p(a, b, p0), "unseen-value"
    )
    examples = tuple(value for value, _ in ranked[: ctx.params.examples])
    fields = rate_fields(v, "unseen_rate")
    fields["examples"] = examples
    fields["observed"] = {**fields["observed"], "distinct_unseen": len(ranked), "high_cardinality": high}
    new = ", ".join(f"{value!r} {num(c)}" for value, c in ranked[:3])
    if v.status is Status.SKIPPED:
        return ctx.skipped("unseen_rate", key, v.reason, **fields)
    if v.status is Status.FIRING:
        msg = (
            f"{key}: {pct(v.rate)} of {num(v.n)} values were never seen in training (baseline {pct(p0)})"
            + (f", new: {new}" if new else "")
            + (" [high-cardinality: watched by rate only]" if high else "")
        )
        return ctx.finding("unseen_rate", key, v.status, rate_severity(v), msg, **fields)
    msg = f"{key}: {pct(v.rate)} unseen of {num(v.n)} values (baseline {pct(p0)})"
    return ctx.finding("unseen_rate", key, v.status, "info", msg, **fields)
