"""Traffic volume against the hour-of-week baseline (documents per hour, taken from logs).

Expected documents of a window = the sum over the hours it overlaps of the baseline's rate for
that hour of the week times the overlap (hours the baseline lacks use its mean hour). Observed
= documents of every version. Two-sided Poisson test, effect |observed/expected - 1| >=
``volume_floor``; no documents at all while at least ``volume_min_expected`` were expected is
critical. Real traffic is overdispersed against Poisson: the relative floor carries that.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, timedelta

from inferwatch.analytics.detectors.common import Context, num
from inferwatch.analytics.detectors.stats import poisson_two_sided_p
from inferwatch.analytics.model import Baseline, Finding, Status, Window

MODEL_LEVEL = "*"  # version of model-level findings


def hour_of_week_expected(hourly: Mapping[int, float], window: Window) -> float:
    if not hourly:
        return 0.0
    mean = sum(hourly.values()) / len(hourly)
    t = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    total = 0.0
    while t < end:
        hour_start = t.replace(minute=0, second=0, microsecond=0)
        nxt = min(hour_start + timedelta(hours=1), end)
        how = t.weekday() * 24 + t.hour
        total += float(hourly.get(how, mean)) * (nxt - t).total_seconds() / 3600.0
        t = nxt
    return total


def pick_baseline(baselines: Mapping[str, Baseline]) -> Baseline | None:
    """The newest baseline that has an hourly volume profile."""
    with_volume = [b for b in baselines.values() if b.hourly_volume]
    return max(with_volume, key=lambda b: (b.created, b.version)) if with_volume else None


def evaluate(ctx: Context, observed: int, baselines: Mapping[str, Baseline]) -> Finding:
    params = ctx.params
    baseline = pick_baseline(baselines)
    if baseline is None:
        return ctx.skipped("volume", None, "no baseline has an hour-of-week volume (build one --from-logs)")
    mu = hour_of_week_expected(baseline.hourly_volume, ctx.window)
    if mu <= 0:
        return ctx.skipped("volume", None, "the baseline expects no traffic in this window")
    p = poisson_two_sided_p(observed, mu)
    effect = observed / mu - 1.0
    fields = {
        "statistic_name": "documents",
        "statistic": float(observed),
        "p_value": p,
        "effect": effect,
        "effect_floor": params.volume_floor,
        "observed": {"docs": observed},
        "expected": {"docs": mu, "baseline": baseline.doc_id},
    }
    if observed == 0 and mu >= params.volume_min_expected:
        msg = (
            f"{ctx.model}: no predictions at all in this window (expected ~{num(mu)}); is the model serving?"
        )
        return ctx.finding("volume", None, Status.FIRING, "critical", msg, strong=True, **fields)
    firing = p < params.alpha and abs(effect) >= params.volume_floor
    if firing:
        direction = "above" if effect > 0 else "below"
        msg = (
            f"{ctx.model}: {num(observed)} predictions, {abs(effect) * 100:.0f}% {direction} the usual "
            f"~{num(mu)} for this hour of the week"
        )
        return ctx.finding(
            "volume", None, Status.FIRING, "warning", msg, strong=p < params.strong_alpha, **fields
        )
    msg = f"{ctx.model}: {num(observed)} predictions (usual ~{num(mu)})"
    return ctx.finding("volume", None, Status.OK, "info", msg, **fields)
