"""The detectors' statistics against scipy and against simulation, on literal numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from inferwatch.analytics.detectors.stats import (
    Cusum,
    binom_upper_p,
    chi2_homogeneity,
    cusum_p_value,
    cusum_step,
    cusum_threshold,
    effective_n,
    js_distance,
    js_quantile,
    merge_small_bins,
    min_rate_n,
    poisson_two_sided_p,
    rate_upper_p,
)


def test_binomial_upper_tail_is_scipy_sf_of_k_minus_one() -> None:
    assert binom_upper_p(10, 1000, 0.005) == pytest.approx(0.03146523851129169, rel=1e-9)
    assert binom_upper_p(10, 1000, 0.005) == pytest.approx(float(sps.binom.sf(9, 1000, 0.005)))


def test_binomial_edges() -> None:
    assert binom_upper_p(0, 10, 0.3) == 1.0
    assert binom_upper_p(1, 10, 0.0) == 0.0  # any event against an impossible rate
    assert binom_upper_p(11, 10, 0.5) == 0.0
    assert binom_upper_p(3, 10, 1.0) == 1.0


def test_fisher_rate_is_the_hypergeometric_tail() -> None:
    # 30 of 1,000 in the window against 100 of 10,000 in the reference
    p = rate_upper_p(30, 1000, 100, 10000)
    assert p == pytest.approx(1.3280319253301547e-06, rel=1e-9)
    assert p == pytest.approx(float(sps.hypergeom.sf(29, 11000, 130, 1000)))
    # a small reference knows the rate less well than a known p0 would: larger p-value
    assert p > binom_upper_p(30, 1000, 0.01)


def test_fisher_rate_tends_to_binomial_for_a_huge_reference() -> None:
    assert rate_upper_p(30, 1000, 1_000_000, 100_000_000) == pytest.approx(
        binom_upper_p(30, 1000, 0.01), rel=0.02
    )


def test_fisher_rate_with_zero_reference_rate_and_small_reference_is_not_certain() -> None:
    # 5 nulls in 1,000 against 0 of 280: all five nulls landing in the window is quite likely
    assert rate_upper_p(5, 1000, 0, 280) == pytest.approx((1000 / 1280) ** 5, rel=0.01)


def test_poisson_two_sided() -> None:
    assert poisson_two_sided_p(30, 20.0) == pytest.approx(0.043636435051114836, rel=1e-9)
    assert poisson_two_sided_p(10, 20.0) == pytest.approx(0.021623437653305447, rel=1e-9)
    assert poisson_two_sided_p(20, 20.0) == 1.0
    assert poisson_two_sided_p(0, 0.0) == 1.0
    assert poisson_two_sided_p(3, 0.0) == 0.0


def test_js_distance_equals_scipy() -> None:
    assert js_distance([10, 20, 30], [30, 20, 10]) == pytest.approx(0.29531004717204934, rel=1e-9)
    assert js_distance([1, 0, 5], [0, 3, 3]) == pytest.approx(float(jensenshannon([1, 0, 5], [0, 3, 3])))
    assert js_distance([10, 20], [1, 2]) == 0.0  # proportional counts
    assert js_distance([0, 0], [1, 2]) == 0.0
    # smoothing: a pseudo-count on every bin of both sides
    assert js_distance([0, 4], [4, 0], smoothing=1.0) == pytest.approx(float(jensenshannon([1, 5], [5, 1])))


def _js_rows(draws: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = draws / draws.sum(axis=1, keepdims=True)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=1)
    kq = (q * np.log(q / m)).sum(axis=1)
    return np.sqrt(np.maximum((kp + kq) / 2, 0.0))


@pytest.mark.parametrize(("k", "n"), [(5, 400), (20, 2000), (50, 5000)])
def test_js_quantile_matches_simulation(k: int, n: int) -> None:
    """The chi-square approximation of the JS distance's 1 - alpha quantile at alpha = 1%."""
    rng = np.random.default_rng(11)
    q = np.full(k, 1.0 / k)
    draws = rng.multinomial(n, q, size=4000)
    js = _js_rows(draws, q)
    assert js[0] == pytest.approx(js_distance(draws[0], q))
    simulated = float(np.quantile(js, 0.99))
    assert js_quantile(0.01, k, n) == pytest.approx(simulated, rel=0.08)


def test_js_quantile_with_a_sampled_reference_uses_the_effective_n() -> None:
    assert effective_n(1000, 1000) == 500.0
    assert effective_n(1000, None) == 1000.0
    assert js_quantile(1e-4, 10, 1000, 1000) == pytest.approx(js_quantile(1e-4, 10, 500))
    assert js_quantile(1e-4, 10, 2000) == pytest.approx(math.sqrt(float(sps.chi2.isf(1e-4, 9)) / 16000))
    assert js_quantile(1e-4, 1, 2000) == math.inf


def test_chi2_goodness_of_fit_equals_scipy_chisquare() -> None:
    stat, df, p = chi2_homogeneity([30, 50, 20], [1, 2, 1], reference_exact=True)
    assert (stat, df) == (pytest.approx(2.0), 2)
    assert p == pytest.approx(0.36787944117144245)


def test_chi2_homogeneity_equals_scipy_contingency() -> None:
    stat, df, p = chi2_homogeneity([30, 50, 20], [250, 500, 250])
    assert stat == pytest.approx(1.8187830687830688)
    assert df == 2
    assert p == pytest.approx(0.4027692207090016)


def test_chi2_degenerate_inputs() -> None:
    assert chi2_homogeneity([0, 0], [1, 2]) == (0.0, 0, 1.0)
    assert chi2_homogeneity([5], [7]) == (0.0, 0, 1.0)  # one bin: nothing to compare
    stat, _, p = chi2_homogeneity([3, 1], [5, 0], reference_exact=True)
    assert math.isinf(stat) and p == 0.0  # a value the exact reference calls impossible


def test_merge_small_bins_groups_by_expected_count() -> None:
    # n = 100: expected 50, 40, 4, 3, 2, 1 -> the last four (10 together) become one bin
    merged = merge_small_bins([55, 35, 1, 2, 3, 4], [500, 400, 40, 30, 20, 10], 100, 5.0)
    assert merged.groups == ((0,), (1,), (2, 3, 4, 5))
    assert merged.observed.tolist() == [55, 35, 10]
    assert merged.reference.tolist() == [500, 400, 100]


def test_merge_small_bins_folds_a_still_small_merged_bin_into_the_smallest_large_one() -> None:
    merged = merge_small_bins([60, 30, 2, 8], [600, 300, 20, 0], 100, 5.0)
    # expected 60, 30, 2, 0 -> small {2, 3} total 2 < 5 -> joins bin 1 (the smaller large bin)
    assert merged.groups == ((0,), (1, 2, 3))
    assert merged.observed.tolist() == [60, 40]


def test_merge_small_bins_drops_bins_empty_on_both_sides() -> None:
    merged = merge_small_bins([10, 0, 10], [10, 0, 10], 20, 1.0)
    assert merged.groups == ((0,), (2,))


def test_min_rate_n_is_where_an_effect_at_the_floor_becomes_significant() -> None:
    n = min_rate_n(0.01, 0.01, 1e-4)
    k = math.ceil(n * 0.02 - 1e-9)
    assert binom_upper_p(k, n, 0.01) < 1e-4
    # about z^2 p0 q0 / floor^2 with z = 3.72 (alpha 1e-4): ~1,370
    assert 1000 < n < 2000
    assert min_rate_n(0.01, 0.01, 1e-6) > n  # stricter alpha needs more values
    assert min_rate_n(0.0, 0.01, 1e-4) <= 300  # from zero, a few events are already decisive
    assert min_rate_n(0.5, 0.5, 1e-4, lowest=30) >= 30


def test_cusum_step_accumulates_the_log_likelihood_ratio() -> None:
    h = cusum_threshold(1e-3)
    assert h == pytest.approx(math.log(1e3))
    llr = 20 * math.log(0.02 / 0.01) + 980 * math.log(0.98 / 0.99)  # 3.91 nats
    s1, alarm = cusum_step(Cusum(), 20, 1000, 0.01, 0.02, h)
    assert s1.s == pytest.approx(llr) and (s1.m, s1.n) == (20, 1000) and not alarm
    s2, alarm = cusum_step(s1, 20, 1000, 0.01, 0.02, h)
    assert s2.s == pytest.approx(2 * llr) and (s2.m, s2.n) == (40, 2000) and alarm
    reset, alarm = cusum_step(s2, 0, 5000, 0.01, 0.02, h)
    assert reset == Cusum() and not alarm  # a clean stretch pulls it back to zero
    assert cusum_p_value(s2.s) == pytest.approx(math.exp(-2 * llr))
    assert cusum_step(s1, 0, 0, 0.01, 0.02, h) == (s1, False)  # an empty window changes nothing


def test_cusum_false_alarm_rate_per_window_is_below_alpha() -> None:
    rng = np.random.default_rng(5)
    alpha, windows, n, p0 = 1e-3, 40_000, 500, 0.02
    h = cusum_threshold(alpha)
    state, alarms = Cusum(), 0
    for m in rng.binomial(n, p0, size=windows):
        state, alarm = cusum_step(state, int(m), n, p0, p0 + 0.01, h)
        if alarm:
            alarms += 1
            state = Cusum()
    assert alarms <= sps.binom.ppf(0.999, windows, alpha)


@given(
    k=st.integers(1, 200),
    n=st.integers(200, 2000),
    k0=st.integers(0, 500),
    n0=st.integers(1000, 50_000),
    scale=st.integers(2, 6),
)
def test_scaling_an_excess_rate_never_weakens_the_evidence(
    k: int, n: int, k0: int, n0: int, scale: int
) -> None:
    if k / n <= k0 / n0:
        return
    assert binom_upper_p(k * scale, n * scale, k0 / n0) <= binom_upper_p(k, n, k0 / n0) + 1e-12
    assert rate_upper_p(k * scale, n * scale, k0, n0) <= rate_upper_p(k, n, k0, n0) + 1e-12
