"""Traffic volume against the hour-of-week baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inferwatch.analytics.detectors import evaluate_model
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.stats import poisson_two_sided_p
from inferwatch.analytics.detectors.volume import hour_of_week_expected
from inferwatch.analytics.model import Status, Window

from .factories import T0, baseline, categorical, model_counts, pick, window

P = DetectorParams(alpha=1e-4)
FEATURE = categorical("inputs.plan", {"a": 10})
HOURLY = {10: 1000.0, 11: 2000.0}  # Monday 10:00 and 11:00 UTC
BASE = baseline(FEATURE, hourly_volume=HOURLY)


def test_expected_volume_sums_the_overlapped_hours_of_the_week() -> None:
    assert hour_of_week_expected(HOURLY, window()) == 1000.0
    half_and_half = Window(T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))
    assert hour_of_week_expected(HOURLY, half_and_half) == pytest.approx(500.0 + 1000.0)
    # an hour the baseline lacks uses its mean hour
    tuesday = Window(datetime(2026, 11, 24, 3, tzinfo=UTC), datetime(2026, 11, 24, 4, tzinfo=UTC))
    assert hour_of_week_expected(HOURLY, tuesday) == 1500.0
    assert hour_of_week_expected({}, window()) == 0.0


def test_usual_traffic_is_ok() -> None:
    f = pick(evaluate_model(model_counts({"1": 1030}), frozenset({"1"}), {"1": BASE}, P), "volume")
    assert f.status is Status.OK and f.version == "*"
    assert f.p_value == poisson_two_sided_p(1030, 1000.0)


def test_a_drop_fires_with_the_direction_in_the_message() -> None:
    f = pick(evaluate_model(model_counts({"1": 300}), frozenset({"1"}), {"1": BASE}, P), "volume")
    assert f.status is Status.FIRING and f.severity == "warning" and f.strong
    assert f.effect == pytest.approx(-0.7)
    assert f.message == "churn: 300 predictions, 70% below the usual ~1,000 for this hour of the week"


def test_a_surge_fires() -> None:
    f = pick(evaluate_model(model_counts({"1": 2600}), frozenset({"1"}), {"1": BASE}, P), "volume")
    assert f.status is Status.FIRING and "160% above" in f.message


def test_a_modest_but_significant_change_stays_under_the_relative_floor() -> None:
    f = pick(evaluate_model(model_counts({"1": 1300}), frozenset({"1"}), {"1": BASE}, P), "volume")
    assert f.p_value is not None and f.p_value < 1e-10
    assert f.status is Status.OK


def test_no_traffic_at_all_is_critical() -> None:
    f = pick(evaluate_model(model_counts({}), frozenset({"1"}), {"1": BASE}, P), "volume")
    assert f.status is Status.FIRING and f.severity == "critical" and f.strong
    assert "no predictions at all" in f.message


def test_without_an_hourly_baseline_volume_is_skipped_with_the_reason() -> None:
    f = pick(evaluate_model(model_counts({"1": 10}), frozenset({"1"}), {"1": baseline(FEATURE)}, P), "volume")
    assert f.status is Status.SKIPPED and "hour-of-week volume" in f.message


def test_the_newest_baseline_with_a_profile_is_used() -> None:
    old = baseline(FEATURE, version="1", hourly_volume={10: 50.0}, created=datetime(2026, 1, 1, tzinfo=UTC))
    new = baseline(FEATURE, version="2", hourly_volume=HOURLY, created=datetime(2026, 6, 1, tzinfo=UTC))
    f = pick(
        evaluate_model(model_counts({"1": 500, "2": 500}), frozenset({"1", "2"}), {"1": old, "2": new}, P),
        "volume",
    )
    assert f.expected["docs"] == 1000.0 and f.expected["baseline"] == "churn:2"


def test_a_window_in_an_hour_with_no_expected_traffic_is_skipped() -> None:
    quiet = baseline(FEATURE, hourly_volume={10: 0.0})
    f = pick(evaluate_model(model_counts({"1": 0}, window(0)), frozenset({"1"}), {"1": quiet}, P), "volume")
    assert f.status is Status.SKIPPED
