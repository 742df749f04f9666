"""Categorical, numeric and prediction drift; the identical-window and scaling laws."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.analytics.alerts import AlertState, apply_window
from inferwatch.analytics.detectors import DetectorState, evaluate_version
from inferwatch.analytics.detectors.drift import UNSEEN_BIN, bin_labels
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.model import Status

from .factories import baseline, categorical, counts, firing, numeric, pick, window

P = DetectorParams(alpha=1e-4)
KEY = "inputs.plan"
PLAN = categorical(KEY, {"free": 6000, "pro": 3000, "team": 1000})
BASE = baseline(PLAN)


def test_a_category_shift_fires_with_the_shares_that_moved() -> None:
    window = counts(3000, base=BASE, categories={KEY: {"free": 1200, "pro": 1200, "team": 600}})
    findings, _ = evaluate_version(window, BASE, P)
    f = pick(findings, "category_drift")
    assert f.status is Status.FIRING and f.severity == "warning" and f.strong
    assert f.message.startswith("inputs.plan: value distribution shifted (JS 0.15 >= 0.13, n=3,000): ")
    assert "'free' 40% (was 60%)" in f.message
    assert f.examples == ("pro", "team")  # the bins that grew, largest change first
    assert f.threshold == P.alpha


def test_proportional_counts_are_stable_with_zero_distance() -> None:
    window = counts(3000, base=BASE, categories={KEY: {"free": 1800, "pro": 900, "team": 300}})
    findings, _ = evaluate_version(window, BASE, P)
    f = pick(findings, "category_drift")
    assert f.status is Status.OK and f.statistic == 0.0 and f.p_value == 1.0


def test_a_significant_but_small_shift_stays_under_the_js_floor() -> None:
    # 60/30/10 -> 58/31/11 at n = 200,000 against 1M reference rows: p ~ 1e-80 but JS ~ 0.016
    big = baseline(categorical(KEY, {"free": 600_000, "pro": 300_000, "team": 100_000}))
    window = counts(200_000, base=big, categories={KEY: {"free": 116_000, "pro": 62_000, "team": 22_000}})
    f = pick(evaluate_version(window, big, P)[0], "category_drift")
    assert f.p_value is not None and f.p_value < 1e-20
    assert f.statistic is not None and f.statistic < 0.1
    assert f.status is Status.OK


def test_unseen_values_land_in_their_own_bin() -> None:
    window = counts(3000, base=BASE, categories={KEY: {"free": 900, "pro": 450, "team": 150, "gold": 1500}})
    f = pick(evaluate_version(window, BASE, P)[0], "category_drift")
    assert f.status is Status.FIRING
    assert f.observed["shares"][UNSEEN_BIN] == 0.5


def test_a_single_category_baseline_cannot_drift() -> None:
    one = baseline(categorical(KEY, {"only": 500}))
    f = pick(
        evaluate_version(counts(300, base=one, categories={KEY: {"only": 300}}), one, P)[0], "category_drift"
    )
    assert f.status is Status.SKIPPED and "single category bin" in f.message


AGE = numeric("inputs.age", (10.0, 20.0, 30.0), (2500, 2500, 2500, 2500))
SCORE = numeric("outputs.score", (0.5,), (5000, 5000))


def test_numeric_bins_are_labelled_by_the_baseline_edges() -> None:
    assert bin_labels((10.0, 20.0, 30.0)) == ["< 10", "[10, 20)", "[20, 30)", ">= 30"]


def test_a_numeric_shift_fires() -> None:
    base = baseline(AGE)
    window = counts(2000, base=base, numeric={"inputs.age": {0: 100, 1: 200, 2: 700, 3: 1000}})
    f = pick(evaluate_version(window, base, P)[0], "numeric_drift")
    assert f.status is Status.FIRING
    assert "'>= 30' 50% (was 25%)" in f.message


def test_outputs_drift_is_reported_as_prediction_drift() -> None:
    base = baseline(AGE, SCORE)
    window = counts(
        2000,
        base=base,
        numeric={"inputs.age": {0: 500, 1: 500, 2: 500, 3: 500}, "outputs.score": {0: 1600, 1: 400}},
    )
    findings, _ = evaluate_version(window, base, P)
    assert firing(findings) == [("prediction_drift", "outputs.score", None)]
    assert pick(findings, "numeric_drift").status is Status.OK


def test_a_numeric_feature_without_bins_is_skipped() -> None:
    base = baseline(numeric("inputs.age", (), ()))
    f = pick(evaluate_version(counts(100, base=base), base, P)[0], "numeric_drift")
    assert f.status is Status.SKIPPED and "no numeric bins" in f.message


category_tables = st.lists(st.integers(1, 20_000), min_size=2, max_size=25)


@settings(max_examples=60, deadline=None)
@given(ref=category_tables, nulls=st.integers(0, 5000), scale=st.integers(1, 4))
def test_a_window_proportional_to_the_baseline_never_fires(ref: list[int], nulls: int, scale: int) -> None:
    cats = {f"c{i}": c for i, c in enumerate(ref)}
    base = baseline(categorical(KEY, cats, nulls=nulls, unseen_rate=0.001))
    rows = sum(ref) + nulls
    window = counts(
        rows * scale,
        base=base,
        categories={KEY: {v: c * scale for v, c in cats.items()}},
        presence={KEY: (sum(ref) * scale, nulls * scale)},
    )
    findings, _ = evaluate_version(window, base, DetectorParams(alpha=0.05))
    assert firing(findings) == []


@settings(max_examples=80, deadline=None)
@given(
    ref=st.lists(st.integers(50, 20_000), min_size=2, max_size=12),
    obs=st.lists(st.integers(0, 3_000), min_size=12, max_size=12),
    scale=st.integers(2, 5),
)
def test_scaling_all_counts_keeps_a_firing_drift_firing_in_the_same_direction(
    ref: list[int], obs: list[int], scale: int
) -> None:
    cats = {f"c{i}": c for i, c in enumerate(ref)}
    base = baseline(categorical(KEY, cats))
    window = {f"c{i}": obs[i] for i in range(len(ref)) if obs[i] > 0}
    if not window:
        return
    params = DetectorParams(alpha=1e-3)
    n = sum(window.values())
    one = pick(
        evaluate_version(counts(n, base=base, categories={KEY: window}), base, params)[0], "category_drift"
    )
    big = {v: c * scale for v, c in window.items()}
    many = pick(
        evaluate_version(counts(n * scale, base=base, categories={KEY: big}), base, params)[0],
        "category_drift",
    )
    if one.status is not Status.FIRING:
        return
    assert many.status is Status.FIRING
    assert many.p_value is not None and one.p_value is not None and many.p_value <= one.p_value
    assert many.observed["shares"] == one.observed["shares"]  # the same bins moved the same way
    assert many.expected["shares"] == one.expected["shares"]


def test_a_drift_alert_on_a_small_reference_resolves_after_three_clean_windows() -> None:
    """280 reference values, windows of 400. A clean window's distance sits at ~0.14 from the
    reference's own noise: above js_floor, below the cut (0.1 + ~0.17). Such a window is tested
    (it holds more values than the reference; merging could not resolve more) and is OK, so the
    alert resolves on the third one instead of waiting for merged windows."""
    age = numeric("inputs.age", tuple(float(e) for e in range(1, 10)), (28,) * 10)
    base = baseline(age)
    params = DetectorParams.from_budget(1.0, series=30, windows_per_week=2016)
    shifted = {b: (400 if b == 9 else 0) for b in range(10)}
    clean = {b: (25 if b % 2 == 0 else 55) for b in range(10)}
    state, alerts = DetectorState(), dict[str, AlertState]()
    transitions, statuses = [], []
    for i, bins in enumerate([shifted, clean, clean, clean]):
        findings, state = evaluate_version(
            counts(400, base=base, numeric={"inputs.age": bins}, win=window(i)), base, params, state=state
        )
        statuses.append(pick(findings, "numeric_drift").status)
        alerts, changes = apply_window(alerts, findings, window(i).end, [("churn", "1")])
        transitions += [(i, c.transition) for c in changes]
    assert statuses == [Status.FIRING, Status.OK, Status.OK, Status.OK]
    assert transitions == [(0, "opened"), (3, "resolved")]


# Epoch seconds (or any large value with a narrow spread): ``{:g}`` prints six significant
# digits, so every edge below reads "1.7e+09" and the bins would share one label.
EPOCH_EDGES = tuple(1_700_000_000.0 + 1000.0 * i for i in range(9))


def test_bin_labels_stay_distinct_when_edges_agree_in_six_digits() -> None:
    labels = bin_labels(EPOCH_EDGES)
    assert len(set(labels)) == len(labels) == 10
    assert labels[:2] == ["< 1.7e+09", "[1.7e+09, 1.700001e+09)"]
    assert bin_labels((0.1, 0.30000000000000004)) == ["< 0.1", "[0.1, 0.3)", ">= 0.3"]


def test_a_window_shaped_like_its_baseline_is_stable_when_edges_are_large_numbers() -> None:
    """Colliding labels made the reference keep one bin's count while the window summed them
    all: a false drift alarm on every window of an epoch-valued feature."""
    base = baseline(numeric("inputs.signup_ts", EPOCH_EDGES, (1000,) * 10))
    window = counts(2000, base=base, numeric={"inputs.signup_ts": dict.fromkeys(range(10), 200)})
    f = pick(evaluate_version(window, base, P)[0], "numeric_drift")
    assert f.status is Status.OK and f.statistic == 0.0


def test_a_slight_shift_no_window_can_show_is_reported_once_on_the_long_horizon() -> None:
    """JS 0.16 in windows of 150 values: one window's noise floor puts its cut near 0.23 (and
    two merged ones near 0.19), so the window test stays clean for ever. The week's decayed
    sum reaches the cut after a few windows: one alert (key 'week'), open while it lasts."""
    ref = categorical("inputs.tier", {"a": 8000, "b": 6000, "c": 4000, "d": 2000})
    base = baseline(ref)
    params = DetectorParams(alpha=1e-4, horizon_windows=168)
    state, alerts = DetectorState(), dict[str, AlertState]()
    window_statuses, week_statuses, transitions = [], [], []
    for i in range(30):
        shifted = {"a": 38, "b": 45, "c": 30, "d": 37}  # 25%, 30%, 20%, 25% of 150
        findings, state = evaluate_version(
            counts(150, base=base, categories={"inputs.tier": shifted}, win=window(i)),
            base,
            params,
            state=state,
        )
        (own,) = [f for f in findings if f.detector == "category_drift" and f.key is None]
        window_statuses.append(own.status)
        week = pick(findings, "category_drift", key="week")
        week_statuses.append(week.status)
        alerts, changes = apply_window(alerts, findings, window(i).end, [("churn", "1")])
        transitions += [(c.transition, c.state.key) for c in changes]
    assert Status.FIRING not in window_statuses
    first = week_statuses.index(Status.FIRING)
    assert week_statuses[0] is Status.SKIPPED and 1 < first < 15
    assert week_statuses[first:] == [Status.FIRING] * (30 - first)
    assert transitions[0] == ("opened", "week") and {t for t, _ in transitions[1:]} <= {"updated"}
    assert week.message.startswith("inputs.tier: value distribution over the last week shifted (JS 0.16 >= ")
    assert DetectorState.from_dict(state.to_dict()) == state


def test_the_long_horizon_is_clean_on_stable_traffic() -> None:
    ref = categorical("inputs.tier", {"a": 8000, "b": 6000, "c": 4000, "d": 2000})
    base = baseline(ref)
    params = DetectorParams(alpha=1e-4, horizon_windows=168)
    state = DetectorState()
    for i in range(30):
        stable = {"a": 60, "b": 45, "c": 30, "d": 15}
        findings, state = evaluate_version(
            counts(150, base=base, categories={"inputs.tier": stable}, win=window(i)),
            base,
            params,
            state=state,
        )
        assert pick(findings, "category_drift", key="week").status in (Status.SKIPPED, Status.OK)
