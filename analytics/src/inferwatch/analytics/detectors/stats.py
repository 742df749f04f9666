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
from scipy import special

_EPS = 1e-12


def binom_upper_p(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided exact p-value of k events in n."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return float(special.bdtrc(k - 1, n, p))


def rate_upper_p(k: int, n: int, k0: float, n0: float) -> float:
    """One-sided Fisher exact p-value that the window rate k/n exceeds the reference k0/n0.

    Conditional on the k + k0 events, the window's share is hypergeometric; as n0 grows this
    tends to ``binom_upper_p(k, n, k0 / n0)``. Using it keeps a small reference (a few hundred
    training rows) from turning its own sampling error into alarms.
    """
    if k <= 0 or n0 <= 0:
        return 1.0
    return hypergeom_upper_p(k, n + round(n0), k + round(k0), n)


def _lbinom(a: NDArray[np.float64] | float, b: NDArray[np.float64] | float) -> NDArray[np.float64]:
    return np.asarray(
        special.gammaln(np.add(a, 1)) - special.gammaln(np.add(b, 1)) - special.gammaln(np.subtract(a, b) + 1)
    )


def hypergeom_upper_p(k: int, total: int, successes: int, draws: int) -> float:
    """P(X >= k) for X ~ Hypergeometric(total, successes, draws), summed in log space
    (equals ``scipy.stats.hypergeom.sf(k - 1, total, successes, draws)``, ~50x faster)."""
    lo = max(k, 0, draws - (total - successes))
    hi = min(draws, successes)
    if lo > hi:
        return 0.0
    x = np.arange(lo, hi + 1, dtype=float)
    logs = _lbinom(successes, x) + _lbinom(total - successes, draws - x) - _lbinom(total, draws)
    top = float(logs.max())
    return float(min(1.0, math.exp(top + math.log(float(np.exp(logs - top).sum())))))


def poisson_two_sided_p(k: int, mu: float) -> float:
    """Two-sided p-value of k events against Poisson(mu): twice the smaller tail, capped at 1."""
    if mu <= 0.0:
        return 1.0 if k <= 0 else 0.0
    low = float(special.pdtr(k, mu))
    high = float(special.pdtrc(k - 1, mu)) if k > 0 else 1.0
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
    return math.sqrt(chi2_isf(alpha, bins - 1) / (8.0 * effective_n(n, n_ref)))


@lru_cache(maxsize=4096)
def chi2_isf(alpha: float, df: int) -> float:
    """The 1 - alpha quantile of chi2(df) (``scipy.stats.chi2.isf``)."""
    return float(special.chdtri(df, alpha))


@dataclass(frozen=True)
class MergedBins:
    observed: NDArray[np.float64]
    reference: NDArray[np.float64]
    kept: NDArray[np.int64]  # original indices of the bins not empty on both sides
    group_of: NDArray[np.int64]  # merged bin of each kept bin

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        """Original bin indices in each merged bin."""
        return tuple(tuple(int(i) for i in self.kept[self.group_of == g]) for g in range(len(self.observed)))


def merge_small_bins(
    observed: ArrayLike, reference: ArrayLike, n: float, min_expected: float, n_ref: float | None = None
) -> MergedBins:
    """Merge the bins whose expected count on the smaller side, min(n, n_ref) * q_j, is below
    ``min_expected``.

    Both rows of the two-sample table need the expected counts: a reference of a few hundred
    values cannot resolve a bin it holds twice, however large the window (``n_ref`` None: the
    reference is exact and only the window's n counts). The grouping depends on the reference
    and the sizes only, never on what was observed. The small bins become one bin; if that bin
    is itself still small it joins the smallest large bin. Bins empty on both sides are dropped.
    """
    obs = np.asarray(observed, dtype=float)
    ref = np.asarray(reference, dtype=float)
    idx = np.flatnonzero((obs > 0) | (ref > 0))
    total = ref[idx].sum()
    size = min(n, n_ref) if n_ref is not None and n_ref > 0 else n
    expected = size * ref[idx] / total if total > 0 else np.zeros(len(idx))
    small = expected < min_expected
    big_idx = idx[~small]
    small_idx = idx[small]
    # group id per kept bin: large bins are their own group, small ones share the last group
    group_of = np.empty(len(idx), dtype=np.int64)
    group_of[~small] = np.arange(len(big_idx))
    n_groups = len(big_idx)
    if len(small_idx):
        if float(expected[small].sum()) >= min_expected or n_groups == 0:
            group_of[small] = n_groups
            n_groups += 1
        else:
            group_of[small] = int(np.argmin(ref[big_idx]))  # the smallest large bin (first on ties)
    merged_obs = np.bincount(group_of, weights=obs[idx], minlength=n_groups).astype(float)
    merged_ref = np.bincount(group_of, weights=ref[idx], minlength=n_groups).astype(float)
    return MergedBins(merged_obs, merged_ref, idx, group_of)


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
    return stat, df, float(special.chdtrc(df, stat))


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
    for p1 against p0; ``m``/``n`` count events/values since the run started (s left 0).
    ``alarm``: the statistic reached h and was reset to 0; the alarm holds while the evidence
    gathered since the reset still favours p1 (s > 0)."""

    s: float = 0.0
    m: int = 0
    n: int = 0
    alarm: bool = False

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
