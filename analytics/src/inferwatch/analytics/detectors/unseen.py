"""Values never seen in training: one finding per new value, and an unseen-rate surge.

p0, the rate at which unseen values are expected, is the baseline's ``unseen_rate`` (from a
validation split or Good-Turing N1/N), at least 1/N of the reference (a reference of N values
cannot tell a rate below that from zero); 0 for closed vocabularies, where a new value is
impossible by declaration.

- unseen_category: a new value with count c >= c_min (1 closed, 3 open) and
  P(U >= c) < alpha for U ~ Binomial(n, p0), U the unseen count of the window: any single new
  value's count is at most U, so this p-value is valid whatever the unseen values are. Key =
  the value, so each value is its own alert.
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


def evaluate(ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts, closed: bool) -> list[Finding]:
    if not fb.categories:
        return [ctx.skipped("unseen_rate", key, "the baseline has no values for this feature")]
    n = sum(fc.categories.values())
    if n <= 0:
        return [ctx.skipped("unseen_rate", key, "no non-null values in this window")]
    unseen = {v: c for v, c in fc.categories.items() if v not in fb.categories}
    ranked = sorted(unseen.items(), key=lambda vc: (-vc[1], vc[0]))
    p0 = expected_unseen_rate(fb, closed)
    params = ctx.params
    out: list[Finding] = []
    if not closed and len(unseen) >= params.high_cardinality_values:
        ctx.state.high_cardinality.add(key)
    high = key in ctx.state.high_cardinality
    if not high:
        total_unseen = sum(unseen.values())
        for value, c in ranked[: params.max_value_findings]:
            if c < params.c_min(closed):
                break
            out.append(_new_value(ctx, key, value, c, n, total_unseen, p0, closed))
    out.append(_rate(ctx, key, fb, ranked, n, p0, closed, high))
    return out


def _new_value(
    ctx: Context, key: str, value: str, c: int, n: int, total_unseen: int, p0: float, closed: bool
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
        "observed": {"count": c, "n": n, "share": c / n, "unseen_total": total_unseen},
        "expected": {"unseen_rate": p0, "closed_vocabulary": closed},
        "examples": (value,),
    }
    if not firing:
        msg = f"{key}: new value {value!r} seen {num(c)} times in {num(n)}, within the expected unseen rate {pct(p0)}"
        return ctx.finding("unseen_category", key, Status.OK, "info", msg, **fields)
    what = "outside the closed vocabulary" if closed else "never seen in training"
    msg = f"{key}: new value {value!r} seen {num(c)} times in {num(n)} values ({pct(c / n)}), {what}"
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
