"""Missing values: vanished feature, null surge, null creep, small-window merging."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.analytics.alerts import AlertState, apply_window
from inferwatch.analytics.detectors import DetectorState, evaluate_version
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.stats import Cusum, rate_upper_p
from inferwatch.analytics.model import Status, WindowCounts

from .factories import baseline, categorical, counts, firing, pick, window

P = DetectorParams(alpha=1e-4)
PLAN = categorical("inputs.plan", {"free": 60_000, "pro": 30_000, "team": 9_000}, nulls=1_000)  # 1.0% null
BASE = baseline(PLAN)
KEY = "inputs.plan"


def plan_counts(docs: int, missing: int, i: int = 0) -> WindowCounts:
    present = docs - missing
    free = present * 6 // 10
    pro = present * 3 // 10
    return counts(
        docs,
        base=BASE,
        categories={KEY: {"free": free, "pro": pro, "team": present - free - pro}},
        win=window(i),
    )


def test_a_surge_of_missing_values_fires_strong_and_critical() -> None:
    findings, _ = evaluate_version(plan_counts(3000, 120), BASE, P)
    f = pick(findings, "null_surge")
    assert f.status is Status.FIRING and f.strong and f.severity == "critical"
    assert f.p_value == rate_upper_p(120, 3000, 1000, 100_000)
    assert f.effect is not None and abs(f.effect - 0.03) < 1e-12
    assert f.effect_floor == 0.01
    assert f.observed["count"] == 120 and f.observed["n"] == 3000
    assert (
        f.message == "inputs.plan: 4.0% of 3,000 documents have no value (baseline 1.0%, +3.0% >= floor 1.0%)"
    )


def test_a_rate_inside_the_noise_is_ok() -> None:
    findings, _ = evaluate_version(plan_counts(3000, 36), BASE, P)
    assert pick(findings, "null_surge").status is Status.OK
    assert firing(findings) == []


def test_significant_but_below_the_floor_does_not_fire() -> None:
    # 1.6% of 200,000: p ~ 1e-100, but +0.6 pp is under the 1 pp floor
    findings, _ = evaluate_version(plan_counts(200_000, 3_200), BASE, P)
    f = pick(findings, "null_surge")
    assert f.p_value is not None and f.p_value < 1e-20
    assert f.status is Status.OK


def test_a_feature_with_no_value_in_any_document_vanished() -> None:
    findings, _ = evaluate_version(counts(500, base=BASE, presence={KEY: (0, 500)}), BASE, P)
    f = pick(findings, "feature_vanished")
    assert f.status is Status.FIRING and f.severity == "critical" and f.strong
    assert f.message.startswith("inputs.plan has no value in all 500 documents: the feature vanished")
    # one cause, one alert: the surge and the creep are covered by the vanished feature
    for detector in ("null_surge", "null_creep"):
        covered = pick(findings, detector)
        assert (
            covered.status is Status.SKIPPED
            and covered.reason == "covered by feature_vanished in this window"
        )
    assert pick(findings, "category_drift").status is Status.SKIPPED  # no values to compare


def test_a_surge_covers_the_creep_and_stays_out_of_its_cusum() -> None:
    state = DetectorState()
    for i in range(2):
        _, state = evaluate_version(plan_counts(3000, 51, i), BASE, P, state=state)  # 1.7%: creeping
    before = state.cusum[KEY]
    findings, state = evaluate_version(plan_counts(3000, 300, 2), BASE, P, state=state)  # 10%: a surge
    assert pick(findings, "null_surge").status is Status.FIRING
    creep = pick(findings, "null_creep")
    assert creep.status is Status.SKIPPED and creep.reason == "covered by null_surge in this window"
    assert state.cusum[KEY] == before


def test_a_field_gone_from_the_presence_table_vanished() -> None:
    findings, _ = evaluate_version(counts(500, base=BASE, absent=(KEY,)), BASE, P)
    f = pick(findings, "feature_vanished")
    assert f.status is Status.FIRING and f.observed["field_present"] is False
    assert "is absent from all 500 documents" in f.message


def test_too_few_documents_to_call_it_vanished_is_a_skip_with_the_reason() -> None:
    findings, _ = evaluate_version(counts(20, base=BASE, presence={KEY: (0, 20)}), BASE, P)
    f = pick(findings, "feature_vanished")
    assert f.status is Status.SKIPPED
    assert "too few to call it vanished (needs 50)" in f.message
    # 20 of 20 missing is still a blatant surge: the strong test does not wait for more rows
    assert pick(findings, "null_surge").status is Status.FIRING


def test_a_mostly_null_feature_all_null_in_a_few_rows_is_not_vanished() -> None:
    sparse = categorical(KEY, {"x": 1_000}, nulls=9_000)  # 90% null in training
    base = baseline(sparse)
    findings, _ = evaluate_version(counts(60, base=base, presence={KEY: (0, 60)}), base, P)
    f = pick(findings, "feature_vanished")
    assert f.status is Status.SKIPPED and "plausible" in f.message


def test_a_small_window_is_merged_with_the_next_not_tested() -> None:
    findings, state = evaluate_version(plan_counts(500, 10), BASE, P)
    f = pick(findings, "null_surge")
    assert f.status is Status.SKIPPED
    assert "window too small for the missing-value test (500 values over 1 window(s)" in f.message
    assert state.pending["null_surge|inputs.plan"] == {"windows": 1, "k": 10, "n": 500}
    findings, state = evaluate_version(plan_counts(1500, 20, i=1), BASE, P, state=state)
    f = pick(findings, "null_surge")
    assert f.status is Status.OK
    assert f.observed["n"] == 2000 and f.observed["count"] == 30 and f.observed["windows"] == 2
    assert "null_surge|inputs.plan" not in state.pending


def test_merging_stops_after_max_windows_and_tests_what_it_has() -> None:
    params = replace(P, max_merge_windows=3)
    state = DetectorState()
    statuses = []
    for i in range(3):
        findings, state = evaluate_version(
            plan_counts(100, 2, i), BASE, params, state=state
        )  # 2%: at the floor
        statuses.append(pick(findings, "null_surge").status)
    assert statuses == [Status.SKIPPED, Status.SKIPPED, Status.OK]


def test_a_small_window_below_the_floor_is_clean_but_still_merged() -> None:
    findings, state = evaluate_version(plan_counts(500, 4), BASE, P)  # 0.8%
    assert pick(findings, "null_surge").status is Status.OK
    assert state.pending["null_surge|inputs.plan"] == {"windows": 1, "k": 4, "n": 500}


def test_a_blatant_window_after_merged_ones_fires_on_its_own_counts() -> None:
    state = DetectorState()
    for i in range(3):
        _, state = evaluate_version(plan_counts(400, 5, i), BASE, P, state=state)
    findings, state = evaluate_version(plan_counts(400, 200, 3), BASE, P, state=state)
    f = pick(findings, "null_surge")
    assert f.status is Status.FIRING and f.strong
    assert f.observed["n"] == 400 and f.observed["windows"] == 1
    assert f.message.startswith("inputs.plan: 50% of 400 documents have no value")


def creep_until_alarm(state: DetectorState) -> tuple[DetectorState, int]:
    for i in range(12):
        findings, state = evaluate_version(plan_counts(3000, 58, i), BASE, P, state=state)  # 1.93%
        assert pick(findings, "null_surge").status is Status.OK  # +0.93 pp < 1 pp floor
        alarm = pick(findings, "null_creep")
        if alarm.status is Status.FIRING:
            assert alarm.observed["cusum"] >= alarm.observed["h"]  # reported as it was at the alarm...
            assert state.cusum[KEY] == Cusum(alarm=True)  # ...then reset to 0
            return state, i
    raise AssertionError("the creep never alarmed")


def test_the_cusum_restarts_at_zero_after_an_alarm_and_the_alarm_ends_with_the_evidence() -> None:
    state, i = creep_until_alarm(DetectorState())
    # the first window that looks like the baseline ends it: a past creep holds nothing
    findings, state = evaluate_version(plan_counts(3000, 30, i + 1), BASE, P, state=state)
    assert pick(findings, "null_creep").status is Status.OK
    assert KEY not in state.cusum


def test_the_alarm_hold_is_judged_on_the_current_window_not_on_the_run_since_the_alarm() -> None:
    """The run since the alarm (a bad window included) still favoured the shifted rate, so the
    alarm kept firing "still rising" on a window below the creep's target while its CUSUM fell."""
    state, i = creep_until_alarm(DetectorState())
    findings, state = evaluate_version(plan_counts(3000, 58, i + 1), BASE, P, state=state)
    held = pick(findings, "null_creep")
    assert held.status is Status.FIRING and held.observed["alarm_holds"]
    assert (
        held.message
        == "inputs.plan: missing values still raised: 1.9% of 3,000 documents in this window (baseline 1.0%)"
    )
    findings, state = evaluate_version(plan_counts(3000, 36, i + 2), BASE, P, state=state)  # 1.2%
    after = pick(findings, "null_creep")
    # the run since the alarm still leans to the shift (what the old hold tested)...
    assert after.observed["cusum"] > 0 and after.observed["rate"] - 0.01 >= after.effect_floor
    # ...but this window does not: the alarm ends
    assert after.status is Status.OK and not state.cusum[KEY].alarm


def test_small_reference_null_incident_alerts_resolve_after_three_clean_windows() -> None:
    """The demo's case: 5 nulls in 279 training rows, windows of 400, the field vanishes for
    two windows. Every alert it opened (vanished, surge, creep) resolves on the third clean
    window after it, through the real alert lifecycle."""
    hp = categorical("inputs.hp", {"low": 150, "high": 124}, nulls=5)
    base = baseline(hp)
    params = DetectorParams.from_budget(1.0, series=30, windows_per_week=2016)
    missing = [4, 7, 3, 400, 400, 7, 4, 6, 5]  # clean at or under the baseline 1.8%, vanished
    state, alerts = DetectorState(), dict[str, AlertState]()
    opened: set[str] = set()
    resolved_at: dict[str, int] = {}
    for i, m in enumerate(missing):
        present = 400 - m
        win = counts(
            400,
            base=base,
            categories={"inputs.hp": {"low": present // 2, "high": present - present // 2}},
            win=window(i),
        )
        findings, state = evaluate_version(win, base, params, state=state)
        alerts, changes = apply_window(alerts, findings, window(i).end, [("churn", "1")])
        for c in changes:
            if c.transition == "opened":
                opened.add(c.state.detector)
            if c.transition == "resolved":
                resolved_at[c.state.detector] = i
    assert opened == {"feature_vanished"}  # the surge and the creep are covered by it
    assert resolved_at == {d: 7 for d in opened}  # windows 5, 6, 7 clean
    assert all(a.status == "resolved" for a in alerts.values())


def test_a_slow_creep_below_the_surge_floor_is_caught_by_the_cusum() -> None:
    state = DetectorState()
    creep_at = None
    for i in range(8):
        findings, state = evaluate_version(plan_counts(3000, 51, i), BASE, P, state=state)  # 1.7%
        assert pick(findings, "null_surge").status is Status.OK  # +0.7 pp < 1 pp floor
        creep = pick(findings, "null_creep")
        if creep.status is Status.FIRING and creep_at is None:
            creep_at = i
    assert creep_at is not None and creep_at <= 4
    assert state.cusum[KEY].alarm  # the creep goes on: the alarm holds
    assert creep.status is Status.FIRING
    assert "missing values still raised" in creep.message


def test_the_cusum_returns_to_zero_on_clean_windows() -> None:
    state = DetectorState()
    for i in range(3):
        _, state = evaluate_version(plan_counts(3000, 51, i), BASE, P, state=state)
    for i in range(3, 12):
        findings, state = evaluate_version(plan_counts(3000, 27, i), BASE, P, state=state)
    assert KEY not in state.cusum
    assert pick(findings, "null_creep").status is Status.OK


def test_a_feature_always_null_in_the_baseline_is_skipped_with_a_reason() -> None:
    base = baseline(categorical(KEY, {}, nulls=500))
    findings, _ = evaluate_version(counts(100, base=base, presence={KEY: (0, 100)}), base, P)
    f = pick(findings, "null_surge")
    assert f.status is Status.SKIPPED and "always missing in the baseline" in f.message


@settings(max_examples=60, deadline=None)
@given(docs=st.integers(100, 5000), share=st.floats(0.0, 1.0), scale=st.integers(2, 5))
def test_scaling_a_window_never_weakens_a_null_surge(docs: int, share: float, scale: int) -> None:
    missing = round(docs * share)
    one = pick(evaluate_version(plan_counts(docs, missing), BASE, P)[0], "null_surge")
    many = pick(evaluate_version(plan_counts(docs * scale, missing * scale), BASE, P)[0], "null_surge")
    if one.status is Status.FIRING:
        assert many.status is Status.FIRING
    if one.p_value is not None and many.p_value is not None and missing / docs > PLAN.null_rate:
        assert many.p_value <= one.p_value + 1e-12
    assert (many.effect or 0.0) == pytest.approx(one.effect or 0.0)  # same direction, same size


def test_min_window_docs_merges_a_window_the_test_alone_would_run() -> None:
    findings, _ = evaluate_version(plan_counts(2000, 40), BASE, P)  # 2%: tested at n = 2,000
    first = pick(findings, "null_surge")
    assert first.status is Status.FIRING and not first.strong
    findings, state = evaluate_version(plan_counts(2000, 40), BASE, replace(P, min_window_docs=5000))
    f = pick(findings, "null_surge")
    assert f.status is Status.SKIPPED and "needs ~5,000" in f.message
    assert state.pending["null_surge|inputs.plan"] == {"windows": 1, "k": 40, "n": 2000}
