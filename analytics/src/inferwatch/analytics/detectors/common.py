"""What every detector shares: the evaluation context, number formatting for messages, and the
two test shapes (a rate against a baseline rate; a distribution against baseline bins) with the
merging of windows too small for the test's power.

The rule for every firing: p < alpha AND effect >= floor; ``strong`` when p < alpha / 100. For a
distribution the floor is met with confidence: the distance must pass js_floor + its sampling
quantile at the two-sample n_eff (``js_cut``).
A window is tested when an effect exactly at the floor could reach alpha at its size; a
smaller window is merged with the following ones (its counts wait in ``DetectorState``) and
reported as SKIPPED, unless the merged counts already pass the strong alpha with an effect
above the floor: a blatant shift does not wait.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.state import DetectorState
from inferwatch.analytics.detectors.stats import (
    chi2_homogeneity,
    js_distance,
    js_quantile,
    merge_small_bins,
    min_rate_n,
)
from inferwatch.analytics.model import Finding, Severity, Status, Window


@dataclass(frozen=True)
class Context:
    model: str
    version: str
    window: Window
    params: DetectorParams
    state: DetectorState  # mutated by the detectors of this window (a private copy)

    def finding(
        self, detector: str, feature: str | None, status: Status, severity: Severity, message: str, **kw: Any
    ) -> Finding:
        return Finding(
            detector=detector,
            model=self.model,
            version=self.version,
            feature=feature,
            status=status,
            severity=severity,
            message=message,
            window=self.window,
            threshold=kw.pop("threshold", self.params.alpha),
            **kw,
        )

    def skipped(self, detector: str, feature: str | None, reason: str, **kw: Any) -> Finding:
        return self.finding(
            detector,
            feature,
            Status.SKIPPED,
            "info",
            f"{feature or self.model}: {reason}",
            reason=reason,
            **kw,
        )


def pct(x: float) -> str:
    """A rate for a message: 4.1%, 0.25%, 0.003%."""
    v = 100.0 * x
    if v == 0:
        return "0%"
    if abs(v) >= 9.95:  # what rounds to 10.0 at one decimal is written as the other tens
        return f"{v:.0f}%"
    if abs(v) >= 1:
        return f"{v:.1f}%"
    digits = max(1, min(4, 1 - math.floor(math.log10(abs(v)))))
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") + "%"


def num(x: float) -> str:
    return f"{round(x):,}"


# --- rates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateVerdict:
    status: Status
    k: int
    n: int
    p0: float
    p_value: float | None
    effect: float
    floor: float
    strong: bool
    windows: int  # windows whose counts this verdict covers
    min_n: int
    reason: str = ""

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else 0.0


def rate_series(
    ctx: Context,
    series: str,
    k: int,
    n: int,
    p0: float,
    floor: float,
    p_value: Callable[[int, int], float],
    what: str,
) -> RateVerdict:
    """Test k events in n (plus merged small windows) against p0: p < alpha and k/n - p0 >= floor."""
    params = ctx.params
    pending = ctx.state.pending.pop(series, None) or {}
    windows = int(pending.get("windows", 0)) + 1
    k_all, n_all = int(pending.get("k", 0)) + int(k), int(pending.get("n", 0)) + int(n)
    need = max(min_rate_n(p0, floor, params.alpha, params.min_rate_n), params.min_window_docs)
    if n_all <= 0:
        return RateVerdict(Status.SKIPPED, 0, 0, p0, None, 0.0, floor, False, windows, need, f"no {what}")
    if pending and n > 0:
        # A blatant window fires on its own counts, not diluted by the merged stable ones.
        p_now = p_value(k, n)
        if k / n - p0 >= floor - 1e-12 and p_now < params.strong_alpha:
            return RateVerdict(Status.FIRING, k, n, p0, p_now, k / n - p0, floor, True, 1, need)
    p = p_value(k_all, n_all)
    effect = k_all / n_all - p0
    above = effect >= floor - 1e-12
    if n_all >= need or windows >= params.max_merge_windows:
        status = Status.FIRING if p < params.alpha and above else Status.OK
        strong = above and p < params.strong_alpha
        return RateVerdict(status, k_all, n_all, p0, p, effect, floor, strong, windows, need)
    if above and p < params.strong_alpha:
        return RateVerdict(Status.FIRING, k_all, n_all, p0, p, effect, floor, True, windows, need)
    ctx.state.pending[series] = {"windows": windows, "k": k_all, "n": n_all}
    if not above or effect <= 0:
        # At or below the baseline rate, or below the floor: no sample size could make it fire.
        # Clean (it counts towards resolving an open alert), though still merged for power.
        return RateVerdict(Status.OK, k_all, n_all, p0, p, effect, floor, False, windows, need)
    reason = (
        f"window too small for the {what} test ({num(n_all)} values over {windows} window(s), "
        f"needs ~{num(need)}); merged with the next window"
    )
    return RateVerdict(Status.SKIPPED, k_all, n_all, p0, p, effect, floor, False, windows, need, reason)


def rate_fields(v: RateVerdict, statistic_name: str = "rate") -> dict[str, Any]:
    """The Finding fields every rate detector fills the same way."""
    return {
        "statistic_name": statistic_name,
        "statistic": v.rate,
        "p_value": v.p_value,
        "effect": v.effect,
        "effect_floor": v.floor,
        "strong": v.strong,
        "observed": {"count": v.k, "n": v.n, "rate": v.rate, "windows": v.windows},
        "expected": {"rate": v.p0, "count": v.p0 * v.n},
    }


# --- distributions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DistVerdict:
    status: Status
    n: float
    bins: int  # bins after merging the small ones
    statistic: float  # JS distance on the merged bins
    cut: float  # js floor + the statistic's 1 - alpha sampling quantile at n_eff (js_cut)
    quantile: float
    p_value: float | None
    strong: bool
    windows: int
    changes: tuple[tuple[str, float, float], ...]  # (bin label, observed share, expected share)
    reason: str = ""


@dataclass(frozen=True)
class _DistStats:
    n: float
    bins: int
    js: float
    quantile: float
    cut: float
    p: float
    changes: tuple[tuple[str, float, float], ...]

    def above(self) -> bool:
        return self.bins >= 2 and self.js >= self.cut


def _dist_stats(
    params: DetectorParams, counts: Mapping[str, float], reference: Mapping[str, float]
) -> _DistStats:
    labels = list(dict.fromkeys([*reference.keys(), *counts.keys()]))
    obs = np.array([counts.get(x, 0.0) for x in labels], dtype=float)
    ref = np.array([float(reference.get(x, 0.0)) for x in labels], dtype=float)
    n, m = float(obs.sum()), float(ref.sum())
    merged = merge_small_bins(obs, ref, n, params.min_expected_per_bin, m)
    k = len(merged.observed)
    _stat, _df, p = chi2_homogeneity(merged.observed, merged.reference)
    js = js_distance(merged.observed, merged.reference)
    quantile = js_quantile(params.alpha, k, n, m)
    changes = _changes(labels, obs, ref, params.examples)
    return _DistStats(n, k, js, quantile, js_cut(params.js_floor, quantile), p, changes)


def js_cut(js_floor: float, quantile: float) -> float:
    """The distance a window must reach: the floor plus the statistic's 1 - alpha sampling
    quantile at the two-sample n_eff.

    The JS distance is a metric, so the distance between the populations is at least the
    observed one minus the sampling error of the window *and of the reference*
    (d(P, Q) >= d(p, q) - d(p, P) - d(q, Q)); that error stays under ``quantile`` with
    probability 1 - alpha. A firing therefore means "the populations are at least ``js_floor``
    apart" with that confidence, not merely "the point estimate passed the floor". With a
    reference of thousands of rows the quantile is small and the cut is ~``js_floor``; with a
    few hundred rows it grows with the reference's own noise, which no window size can remove
    (n_eff = n m / (n + m) < m), so two honest samples of a small population do not alarm.
    """
    return js_floor + quantile


def dist_series(
    ctx: Context,
    series: str,
    current: Mapping[str, float],
    reference: Mapping[str, float],
    what: str,
) -> DistVerdict:
    """Test the window's counts per bin against the reference counts per bin.

    Pearson chi-square homogeneity (the reference is a sample of ``sum(reference)`` values) on
    bins merged to an expected count >= ``min_expected_per_bin`` on both sides; the effect is
    the JS distance on the same bins, held to js_floor + its 1 - alpha quantile at the
    two-sample n_eff (``js_cut``). A window is tested once that quantile is below the floor, or
    once it holds as many values as the reference (a small reference's noise dominates from
    there), or after ``max_merge_windows``; smaller windows are merged.
    """
    params = ctx.params
    pending = ctx.state.pending.pop(series, None) or {}
    windows = int(pending.get("windows", 0)) + 1
    now = {str(a): float(b) for a, b in current.items() if b}
    counts: dict[str, float] = {str(a): float(b) for a, b in (pending.get("counts") or {}).items()}
    for label, c in now.items():
        counts[label] = counts.get(label, 0.0) + c
    ref_total = sum(float(v) for v in reference.values())
    n = sum(counts.values())

    if ref_total <= 0:
        return _skipped(n, windows, f"the baseline has no {what} to compare with")
    if sum(1 for v in reference.values() if v > 0) < 2:
        return _skipped(n, windows, f"the baseline has a single {what} bin: nothing to drift between")
    if n <= 0:
        return _skipped(n, windows, f"no {what} values in this window")

    if pending and now:
        alone = _dist_stats(params, now, reference)  # a blatant window fires on its own counts
        if alone.above() and alone.p < params.strong_alpha:
            return _verdict(Status.FIRING, alone, True, 1)
    d = _dist_stats(params, counts, reference)
    # Tested once the noise is under the floor, or once the window holds as many values as the
    # reference: from there the reference's own noise dominates (n_eff = n m / (n + m) can at
    # most double), so merging more windows would only delay the verdict, and the all-clear.
    enough = d.quantile <= params.js_floor or n >= ref_total
    powerful = d.bins >= 2 and enough and n >= params.min_window_docs
    if powerful or windows >= params.max_merge_windows:
        firing = d.above() and d.p < params.alpha
        return _verdict(
            Status.FIRING if firing else Status.OK, d, firing and d.p < params.strong_alpha, windows
        )
    if d.above() and d.p < params.strong_alpha:
        return _verdict(Status.FIRING, d, True, windows)
    ctx.state.pending[series] = {"windows": windows, "counts": counts}
    if d.bins >= 2 and d.js < params.js_floor:
        # Below the floor no sample size could make it fire: clean, though still merged for power.
        return _verdict(Status.OK, d, False, windows)
    reason = (
        f"window too small for the {what} drift test ({num(n)} values over {windows} window(s), "
        f"JS noise floor {d.quantile:.2f} > {params.js_floor:.2f}); merged with the next window"
    )
    return _verdict(Status.SKIPPED, d, False, windows, reason)


def horizon_series(
    ctx: Context,
    series: str,
    current: Mapping[str, float],
    reference: Mapping[str, float],
    what: str,
) -> DistVerdict:
    """The drift test on the long horizon: this window's counts join the series' decayed sum
    (``DetectorState.horizon``; weight 1 - 1/horizon_windows per window, so about a week of
    windows), which is tested like a window. The decayed sum counts fewer values than the
    window's it stands for, so its noise floor is conservative. Until the horizon holds twice
    this window's values it says nothing the window test did not: SKIPPED."""
    params = ctx.params
    keep = 1.0 - 1.0 / params.horizon_windows
    acc = {label: c * keep for label, c in (ctx.state.horizon.get(series) or {}).items()}
    now = {str(a): float(b) for a, b in current.items() if b}
    for label, c in now.items():
        acc[label] = acc.get(label, 0.0) + c
    acc = {label: c for label, c in acc.items() if c >= 1e-3}
    if acc:
        ctx.state.horizon[series] = acc
    else:
        ctx.state.horizon.pop(series, None)
    n = sum(acc.values())

    if sum(1 for v in reference.values() if v > 0) < 2 or n <= 0:
        return _skipped(n, 0, f"no {what} values to compare over the long horizon")
    if n < 2 * sum(now.values()):
        return _skipped(n, 0, "the long horizon holds little more than this window yet")
    d = _dist_stats(params, acc, reference)
    firing = d.above() and d.p < params.alpha
    return _verdict(Status.FIRING if firing else Status.OK, d, False, 0)


def _verdict(status: Status, d: _DistStats, strong: bool, windows: int, reason: str = "") -> DistVerdict:
    return DistVerdict(status, d.n, d.bins, d.js, d.cut, d.quantile, d.p, strong, windows, d.changes, reason)


def _skipped(n: float, windows: int, reason: str) -> DistVerdict:
    """A test not run: no statistic, an infinite cut."""
    return DistVerdict(Status.SKIPPED, n, 0, 0.0, math.inf, math.inf, None, False, windows, (), reason)


def _changes(
    labels: list[str], obs: np.ndarray, ref: np.ndarray, limit: int
) -> tuple[tuple[str, float, float], ...]:
    po = obs / obs.sum() if obs.sum() > 0 else obs
    pr = ref / ref.sum() if ref.sum() > 0 else ref
    order = np.argsort(-np.abs(po - pr), kind="stable")[:limit]
    return tuple((labels[i], float(po[i]), float(pr[i])) for i in order if po[i] != pr[i])


def dist_fields(v: DistVerdict) -> dict[str, Any]:
    return {
        "statistic_name": "js_distance",
        "statistic": v.statistic,
        "p_value": v.p_value,
        "effect": v.statistic,
        "effect_floor": v.cut,
        "strong": v.strong,
        "observed": {
            "n": v.n,
            "bins": v.bins,
            "windows": v.windows,
            "shares": {label: o for label, o, _ in v.changes},
        },
        "expected": {"shares": {label: e for label, _, e in v.changes}, "js_quantile": v.quantile},
    }


def describe_changes(v: DistVerdict, limit: int = 3) -> str:
    return ", ".join(f"{label!r} {pct(o)} (was {pct(e)})" for label, o, e in v.changes[:limit])


def rate_severity(v: RateVerdict) -> Severity:
    return "critical" if v.strong else "warning"
