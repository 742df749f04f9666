"""Pure statistics of the detectors: exact tails, the Jensen-Shannon distance and its sampling
quantile, a chi-square homogeneity test with small bins merged, and a Bernoulli CUSUM.

No pandas here: plain numbers and numpy arrays in, floats out. Each function is tested against
scipy (tests/unit/analytics/detectors/test_stats.py).

The JS noise floor. For a window of n values P drawn from a reference Q over K bins, with
M = (P + Q) / 2, a second-order expansion of KL(P || M) and KL(Q || M) around P = Q gives

    JS(P, Q) = (KL(P||M) + KL(Q||M)) / 2  ~  (1/8) * sum_j (P_j - Q_j)^2 / Q_j  =  X^2 / (8 n)

(natural log), where X^2 is Pearson's statistic, ~ chi2(K - 1) under H0. So the 1 - alpha
quantile of the JS *distance* sqrt(JS) is about sqrt(chi2.isf(alpha, K - 1) / (8 n)). When Q is
itself estimated from m reference values, the variance of P - Q is Q (1/n + 1/m), so n is
replaced by n_eff = n m / (n + m). The test file checks this against simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

_EPS = 1e-12


def binom_upper_p(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided exact p-value of k events in n."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return float(sps.binom.sf(k - 1, n, p))


def rate_upper_p(k: int, n: int, k0: float, n0: float) -> float:
    """One-sided Fisher exact p-value that the window rate k/n exceeds the reference k0/n0.

    Conditional on the k + k0 events, the window's share is hypergeometric; as n0 grows this
    tends to ``binom_upper_p(k, n, k0 / n0)``. Using it keeps a small reference (a few hundred
    training rows) from turning its own sampling error into alarms.
    """
    if k <= 0:
        return 1.0
    if n0 <= 0:
        return 1.0
    ki0, ni0 = round(k0), round(n0)
    return float(sps.hypergeom.sf(k - 1, n + ni0, k + ki0, n))


def poisson_two_sided_p(k: int, mu: float) -> float:
    """Two-sided p-value of k events against Poisson(mu): twice the smaller tail, capped at 1."""
    if mu <= 0.0:
        return 1.0 if k <= 0 else 0.0
    low = float(sps.poisson.cdf(k, mu))
    high = float(sps.poisson.sf(k - 1, mu)) if k > 0 else 1.0
    return min(1.0, 2.0 * min(low, high))


def js_distance(p: ArrayLike, q: ArrayLike, smoothing: float = 0.0) -> float:
    """Jensen-Shannon distance (sqrt of the divergence, natural log) between two count vectors.

    Zero bins need no smoothing (the mixture is positive wherever either side is); ``smoothing``
    adds a pseudo-count to every bin of both sides when asked. Equals
    ``scipy.spatial.distance.jensenshannon``.
    """
    a = np.asarray(p, dtype=float) + smoothing
    b = np.asarray(q, dtype=float) + smoothing
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return 0.0
    a, b = a / sa, b / sb
    m = (a + b) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ka = np.where(a > 0, a * np.log(a / m), 0.0).sum()
        kb = np.where(b > 0, b * np.log(b / m), 0.0).sum()
    return float(math.sqrt(max((ka + kb) / 2.0, 0.0)))


def effective_n(n: float, n_ref: float | None) -> float:
    """n m / (n + m): the sample size of a comparison whose reference is itself a sample."""
    if n_ref is None or n_ref <= 0 or math.isinf(n_ref):
        return float(n)
    return float(n) * n_ref / (n + n_ref)


def js_quantile(alpha: float, bins: int, n: float, n_ref: float | None = None) -> float:
    """Approximate 1 - alpha quantile of the JS distance under H0 at this window size."""
    if bins < 2 or n <= 0:
        return math.inf
    return math.sqrt(float(sps.chi2.isf(alpha, bins - 1)) / (8.0 * effective_n(n, n_ref)))


@dataclass(frozen=True)
class MergedBins:
    observed: NDArray[np.float64]
    reference: NDArray[np.float64]
    groups: tuple[tuple[int, ...], ...]  # original bin indices in each merged bin


def merge_small_bins(observed: ArrayLike, reference: ArrayLike, n: float, min_expected: float) -> MergedBins:
    """Merge the bins whose expected window count n * q_j is below ``min_expected``.

    The grouping depends on the reference and n only, never on what was observed. The small
    bins become one bin; if that bin is itself still small it joins the smallest large bin.
    Bins empty on both sides are dropped.
    """
    obs = np.asarray(observed, dtype=float)
    ref = np.asarray(reference, dtype=float)
    keep = (obs > 0) | (ref > 0)
    idx = np.flatnonzero(keep)
    total = ref[idx].sum()
    expected = n * ref[idx] / total if total > 0 else np.zeros(len(idx))
    small = expected < min_expected
    big_idx = [int(i) for i in idx[~small]]
    groups: list[tuple[int, ...]] = [(i,) for i in big_idx]
    small_idx = tuple(int(i) for i in idx[small])
    if small_idx:
        small_expected = float(expected[small].sum())
        if small_expected >= min_expected or not groups:
            groups.append(small_idx)
        else:
            j = min(range(len(groups)), key=lambda g: float(ref[list(groups[g])].sum()))
            groups[j] = tuple(sorted(groups[j] + small_idx))
    merged_obs = np.array([obs[list(g)].sum() for g in groups], dtype=float)
    merged_ref = np.array([ref[list(g)].sum() for g in groups], dtype=float)
    return MergedBins(merged_obs, merged_ref, tuple(groups))


def chi2_homogeneity(
    observed: ArrayLike, reference: ArrayLike, reference_exact: bool = False
) -> tuple[float, int, float]:
    """Pearson chi-square that ``observed`` was drawn from the reference distribution.

    With ``reference_exact`` the reference is a known distribution (goodness of fit, equals
    ``scipy.stats.chisquare``); otherwise it is a sample of counts and the test is the 2 x K
    homogeneity test (equals ``scipy.stats.chi2_contingency`` without continuity correction).
    Returns (statistic, degrees of freedom, p-value).
    """
    obs = np.asarray(observed, dtype=float)
    ref = np.asarray(reference, dtype=float)
    n, m = obs.sum(), ref.sum()
    if n <= 0 or m <= 0:
        return 0.0, 0, 1.0
    if reference_exact:
        live = ref > 0
        if (obs[~live] > 0).any():
            return math.inf, int(live.sum()), 0.0
        exp = n * ref[live] / m
        stat = float(((obs[live] - exp) ** 2 / exp).sum())
        df = int(live.sum()) - 1
    else:
        tot = obs + ref
        live = tot > 0
        eo = n * tot[live] / (n + m)
        er = m * tot[live] / (n + m)
        stat = float(((obs[live] - eo) ** 2 / eo).sum() + ((ref[live] - er) ** 2 / er).sum())
        df = int(live.sum()) - 1
    if df < 1:
        return 0.0, 0, 1.0
    return stat, df, float(sps.chi2.sf(stat, df))


@lru_cache(maxsize=4096)
def _min_rate_n(p0: float, floor: float, alpha: float, lowest: int) -> int:
    def significant(n: int) -> bool:
        k = min(n, math.ceil(n * (p0 + floor) - 1e-9))
        return binom_upper_p(k, n, p0) < alpha

    lo, hi = lowest, lowest
    while not significant(hi):
        hi *= 2
        if hi > 10**9:
            return hi
    if hi == lo:
        return lo
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if significant(mid):
            hi = mid
        else:
            lo = mid
    return hi


def min_rate_n(p0: float, floor: float, alpha: float, lowest: int = 1) -> int:
    """The smallest n at which a rate exactly ``floor`` above ``p0`` would pass ``alpha``.

    Below it a rate test cannot fire on an effect at the floor: the window is merged with the
    next instead of tested. Approximately z_alpha^2 p0 (1 - p0) / floor^2 for large n.
    """
    p = min(max(p0, 0.0), 1.0)
    return _min_rate_n(round(p, 9), round(floor, 9), float(alpha), max(int(lowest), 1))


@dataclass(frozen=True)
class Cusum:
    """A one-sided Bernoulli CUSUM: ``s`` is the log-likelihood ratio (nats) of the current run
    for p1 against p0; ``m``/``n`` count events/values since the run started (s left 0)."""

    s: float = 0.0
    m: int = 0
    n: int = 0

    @property
    def run_rate(self) -> float:
        return self.m / self.n if self.n else 0.0


def cusum_threshold(alpha: float) -> float:
    """h = ln(1 / alpha): the CUSUM's in-control average run length is at least e^h steps
    (Lorden), so a step raises a false alarm with probability about alpha or less."""
    return math.log(1.0 / alpha)


def cusum_step(state: Cusum, m: int, n: int, p0: float, p1: float, h: float) -> tuple[Cusum, bool]:
    """Add a window of m events in n to the CUSUM; True when the statistic reaches h."""
    if n <= 0:
        return state, state.s >= h
    a = min(max(p0, 1e-9), 1 - 1e-9)
    b = min(max(p1, a + 1e-12), 1 - 1e-9)
    llr = m * math.log(b / a) + (n - m) * math.log((1 - b) / (1 - a))
    s = state.s + llr
    if s <= 0.0:
        return Cusum(), False
    new = Cusum(s, m, n) if state.s <= 0.0 else Cusum(s, state.m + m, state.n + n)
    return new, s >= h


def cusum_p_value(s: float) -> float:
    """exp(-s): the likelihood-ratio bound on reaching s under p0 (Ville's inequality)."""
    return math.exp(-s) if s > 0 else 1.0


def bonferroni(alpha: float, tests: int) -> float:
    return alpha / max(tests, 1)
