"""Missing values: a vanished feature, a null surge, a slow null creep.

- feature_vanished: no document of the window has a value (or the field is gone from the
  presence table) with at least ``vanish_min_n`` documents, and that is improbable under the
  baseline null rate -> critical. Never an exception.
- null_surge: m missing of n, one-sided Fisher exact test against the baseline's nulls/rows
  (the exact binomial when the reference is large), effect m/n - p0 >= max(1 pp, 0.5 p0).
- null_creep: a Bernoulli CUSUM of p0 -> p0 + creep_fraction * floor, threshold
  h = ln(1/alpha) (average run length >= 1/alpha windows); p0 is the reference rate's 99.9%
  upper bound so a small reference does not creep by its own error. After an alarm the
  statistic restarts at 0; the alarm holds (FIRING, not strong) only while the current window
  itself is above the floor and favours the shifted rate: judged on the window, not on the
  run since the alarm (a bad day in that run kept "still rising" alive on days below the
  baseline), so it ends with the first window that looks like the baseline.

One cause, one detector: a window where the feature vanished reports null_surge and null_creep
SKIPPED ("covered by feature_vanished"), and a window where null_surge fires reports null_creep
SKIPPED and keeps that window out of the CUSUM, so a surge never also opens a creep.
"""

from __future__ import annotations

from functools import lru_cache

from scipy import special

from inferwatch.analytics.detectors.common import Context, num, pct, rate_fields, rate_series, rate_severity
from inferwatch.analytics.detectors.slices import FeatureCounts
from inferwatch.analytics.detectors.stats import (
    Cusum,
    cusum_p_value,
    cusum_step,
    cusum_threshold,
    rate_upper_p,
)
from inferwatch.analytics.model import FeatureBaseline, Finding, Status


def evaluate(ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts, docs: int) -> list[Finding]:
    if fb.rows <= 0:
        return [ctx.skipped("null_surge", key, "the baseline has no rows for this feature")]
    if fb.nulls >= fb.rows:
        return [ctx.skipped("null_surge", key, "always missing in the baseline: nothing to compare")]
    present = fc.present if fc.in_presence else 0
    missing = fc.missing if fc.in_presence else docs
    n = present + missing
    if n <= 0:
        return [ctx.skipped("null_surge", key, "no documents in this window")]
    out: list[Finding] = []
    vanished = _vanished(ctx, key, fb, fc, n, present)
    if vanished is not None:
        out.append(vanished)
        if vanished.status is Status.FIRING:
            covered = "covered by feature_vanished in this window"
            return [*out, ctx.skipped("null_surge", key, covered), ctx.skipped("null_creep", key, covered)]
    surge = _surge(ctx, key, fb, missing, n)
    out.append(surge)
    if surge.status is Status.FIRING:
        out.append(ctx.skipped("null_creep", key, "covered by null_surge in this window"))
        return out
    out.append(_creep(ctx, key, fb, missing, n))
    return out


def _vanished(
    ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts, n: int, present: int
) -> Finding | None:
    if present > 0:
        return None
    how = "has no value in" if fc.in_presence else "is absent from"
    if n < ctx.params.vanish_min_n:
        return ctx.skipped(
            "feature_vanished",
            key,
            f"{how} all {num(n)} documents, too few to call it vanished (needs {ctx.params.vanish_min_n})",
        )
    p = rate_upper_p(n, n, fb.nulls, fb.rows)
    if p >= ctx.params.alpha:
        return ctx.skipped(
            "feature_vanished",
            key,
            f"{how} all {num(n)} documents, plausible at its baseline null rate {pct(fb.null_rate)}",
        )
    return ctx.finding(
        "feature_vanished",
        key,
        Status.FIRING,
        "critical",
        f"{key} {how} all {num(n)} documents: the feature vanished (baseline {pct(fb.null_rate)} missing); "
        "check the caller or the feature pipeline",
        statistic_name="missing_rate",
        statistic=1.0,
        p_value=p,
        effect=1.0 - fb.null_rate,
        effect_floor=ctx.params.null_floor(fb.null_rate),
        strong=p < ctx.params.strong_alpha,
        observed={"missing": n, "n": n, "field_present": fc.in_presence},
        expected={"rate": fb.null_rate},
    )


def _surge(ctx: Context, key: str, fb: FeatureBaseline, missing: int, n: int) -> Finding:
    p0 = fb.null_rate
    floor = ctx.params.null_floor(p0)
    v = rate_series(
        ctx,
        f"null_surge|{key}",
        missing,
        n,
        p0,
        floor,
        lambda k, m: rate_upper_p(k, m, fb.nulls, fb.rows),
        "missing-value",
    )
    fields = rate_fields(v, "missing_rate")
    if v.status is Status.SKIPPED:
        return ctx.skipped("null_surge", key, v.reason, **fields)
    if v.status is Status.FIRING:
        msg = (
            f"{key}: {pct(v.rate)} of {num(v.n)} documents have no value (baseline {pct(p0)}, "
            f"+{pct(v.effect)} >= floor {pct(floor)})"
        )
        return ctx.finding("null_surge", key, v.status, rate_severity(v), msg, **fields)
    msg = f"{key}: {pct(v.rate)} missing of {num(v.n)} (baseline {pct(p0)})"
    return ctx.finding("null_surge", key, v.status, "info", msg, **fields)


def _creep(ctx: Context, key: str, fb: FeatureBaseline, missing: int, n: int) -> Finding:
    params = ctx.params
    p0 = fb.null_rate
    p0_hi = min(max(_upper_rate(fb.nulls, fb.rows), p0), 1.0 - 1e-9)
    floor = params.creep_fraction * params.null_floor(p0)
    p1 = min(p0_hi + floor, 1.0 - 1e-9)
    h = cusum_threshold(params.alpha)
    state = ctx.state.cusum.get(key, Cusum())
    run, crossed = cusum_step(Cusum(state.s, state.m, state.n), missing, n, p0_hi, p1, h)
    effect = run.run_rate - p0 if run.n else 0.0
    above = effect >= floor - 1e-12
    # The hold is judged on this window alone: above the floor and favouring p1 over p0_hi.
    now_rate = missing / n if n > 0 else 0.0
    now_favours = cusum_step(Cusum(), missing, n, p0_hi, p1, h)[0].s > 0
    now_above = now_rate - p0 >= floor - 1e-12 and now_favours
    holds = False
    if crossed and above:
        # An alarm: report it and restart the statistic at 0 (standard CUSUM practice), so a
        # past shift never holds the alarm; it holds only while the new evidence favours p1.
        ctx.state.cusum[key] = Cusum(alarm=True)
    elif crossed:
        # Past h on a run rate still under the floor: hold at h, ready to alarm, never beyond.
        run = Cusum(h, run.m, run.n)
        ctx.state.cusum[key] = run
    elif state.alarm and now_above:
        holds = True
        ctx.state.cusum[key] = Cusum(run.s, run.m, run.n, alarm=True)
    elif run.s > 0:
        ctx.state.cusum[key] = run
    else:
        ctx.state.cusum.pop(key, None)
    alarm = crossed and above
    p = cusum_p_value(run.s)
    strong = alarm and p < params.strong_alpha
    fields = {
        "statistic_name": "cusum_llr",
        "statistic": run.s,
        "p_value": p,
        "threshold": params.alpha,
        "effect": effect,
        "effect_floor": floor,
        "strong": strong,
        "observed": {
            "missing": run.m,
            "n": run.n,
            "rate": run.run_rate,
            "cusum": run.s,
            "h": h,
            "alarm_holds": holds,
            "window_rate": now_rate,
        },
        "expected": {"rate": p0, "shift_to": p1},
    }
    if alarm:
        msg = (
            f"{key}: missing values creeping up: {pct(run.run_rate)} of {num(run.n)} documents since the "
            f"drift began (baseline {pct(p0)}, CUSUM {run.s:.1f} >= {h:.1f})"
        )
    elif holds:
        msg = (
            f"{key}: missing values still raised: {pct(now_rate)} of {num(n)} documents in this window "
            f"(baseline {pct(p0)})"
        )
    if alarm or holds:
        return ctx.finding(
            "null_creep", key, Status.FIRING, "critical" if strong else "warning", msg, **fields
        )
    msg = f"{key}: no missing-value creep (CUSUM {run.s:.1f} < {h:.1f})"
    return ctx.finding("null_creep", key, Status.OK, "info", msg, **fields)


@lru_cache(maxsize=4096)
def _upper_rate(events: int, rows: int) -> float:
    """The 99.9% Clopper-Pearson upper bound of events/rows."""
    if events >= rows:
        return 1.0
    return float(special.betaincinv(events + 1, rows - events, 0.999))
