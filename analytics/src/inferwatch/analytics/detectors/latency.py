"""Latency regressions: p50/p95/p99 of ``ml.prediction.latency_ms`` per model version, against
the version's own recent history (a training baseline knows nothing of serving latency).

The history (``DetectorState.latency``) keeps, per percentile, the log latency of the last
``latency_recent`` clean windows and of the last ``latency_weeks`` clean windows of each hour of
the week. The expected value of a window is the median of its hour-of-week slot when that slot
has two values or more (traffic has daily and weekly cycles, like volume), else the median of
the recent windows; the spread is the recent windows' MAD (robust to the regressions it must
find). A percentile regresses when its robust z-score passes the normal 1 - alpha quantile and
it is at least ``latency_floor`` times its expected value. One finding per version (feature
``prediction.latency_ms``), naming every percentile that regressed: one alert per regression.
Regressed windows stay out of the history, so the alert stays open while the regression lasts.
Until ``latency_min_history`` clean windows are known the test is SKIPPED, with the reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from scipy import special

from inferwatch.analytics.detectors.common import Context, num
from inferwatch.analytics.model import Finding, Status

FEATURE = "prediction.latency_ms"
PERCENTS = (50.0, 95.0, 99.0)
_MAD_NORMAL = 1.4826  # MAD -> standard deviation of a normal
_MIN_SPREAD = 0.02  # log units: a perfectly steady history still has ~2% of noise


def _z(alpha: float) -> float:
    return float(-special.ndtri(alpha))  # the normal 1 - alpha quantile


def hour_of_week(ctx: Context) -> str:
    start = ctx.window.start
    return str(start.weekday() * 24 + start.hour)


def evaluate(ctx: Context, percentiles: Mapping[float, float], docs: int) -> Finding:
    params = ctx.params
    values = {p: v for p, v in percentiles.items() if p in PERCENTS and v > 0 and math.isfinite(v)}
    if not values or docs <= 0:
        return ctx.skipped("latency", FEATURE, "no latency_ms in this window's predictions")
    history = ctx.state.latency
    recent: dict[str, list[float]] = history.setdefault("recent", {})
    slots: dict[str, dict[str, list[float]]] = history.setdefault("how", {})
    how = hour_of_week(ctx)
    known = min((len(recent.get(_label(p), [])) for p in values), default=0)
    if known < params.latency_min_history:
        _remember(ctx, values, how)
        reason = f"learning its latency: {known} of {params.latency_min_history} windows seen"
        return ctx.skipped("latency", FEATURE, reason)
    z_cut, z_strong = _z(params.alpha), _z(params.strong_alpha)
    regressed: list[tuple[float, float, float, float]] = []  # (percent, observed, expected, z)
    observed: dict[str, float] = {}
    expected: dict[str, float] = {}
    worst_z = 0.0
    for p, v in sorted(values.items()):
        label = _label(p)
        past = recent[label]
        slot = slots.get(how, {}).get(label, [])
        center = statistics.median(slot if len(slot) >= 2 else past)
        spread = max(
            _MAD_NORMAL * statistics.median([abs(x - statistics.median(past)) for x in past]), _MIN_SPREAD
        )
        z = (math.log(v) - center) / spread
        worst_z = max(worst_z, z)
        observed[label] = v
        expected[label] = math.exp(center)
        if z > z_cut and v >= params.latency_floor * math.exp(center):
            regressed.append((p, v, math.exp(center), z))
    fields = {
        "statistic_name": "robust_z",
        "statistic": worst_z,
        "p_value": float(special.ndtr(-worst_z)),
        "effect": max(observed[_label(p)] / expected[_label(p)] for p in values),
        "effect_floor": params.latency_floor,
        "observed": {**observed, "docs": docs},
        "expected": expected,
    }
    if not regressed:
        _remember(ctx, values, how)
        return ctx.finding(
            "latency", FEATURE, Status.OK, "info", f"latency as usual ({_describe(observed)})", **fields
        )
    strong = any(z > z_strong for *_, z in regressed)
    critical = strong or any(p >= 99.0 and v >= 2 * e for p, v, e, _ in regressed)
    parts = ", ".join(f"{_label(p)} {_ms(v)} (usually {_ms(e)}, x{v / e:.1f})" for p, v, e, _ in regressed)
    msg = f"{ctx.model} {ctx.version}: predictions got slower: {parts} over {num(docs)} predictions"
    return ctx.finding(
        "latency", FEATURE, Status.FIRING, "critical" if critical else "warning", msg, strong=strong, **fields
    )


def _label(p: float) -> str:
    return f"p{p:g}"


def _ms(v: float) -> str:
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _describe(observed: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {_ms(v)}" for k, v in observed.items())


def _remember(ctx: Context, values: Mapping[float, float], how: str) -> None:
    params = ctx.params
    history = ctx.state.latency
    recent = history.setdefault("recent", {})
    slot = history.setdefault("how", {}).setdefault(how, {})
    for p, v in values.items():
        label = _label(p)
        recent[label] = [*recent.get(label, []), math.log(v)][-params.latency_recent :]
        slot[label] = [*slot.get(label, []), math.log(v)][-params.latency_weeks :]
