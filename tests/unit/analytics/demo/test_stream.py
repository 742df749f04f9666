from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from inferwatch.analytics.demo.stream import (
    FOREIGN_NAMES,
    Injection,
    active,
    default_schedule,
    log_lines,
    window_rows,
)

HELDOUT = pd.DataFrame(
    {
        "origin": ["USA", "Japan", "Europe", "USA"],
        "cylinders": ["8", "4", "4", "6"],
        "horsepower": [130.0, float("nan"), 90.0, 105.0],
        "weight": [3504.0, 2130.0, 2375.0, 3000.0],
        "acceleration": [12.0, 14.5, 17.5, 15.0],
        "name": ["chevrolet chevelle malibu", "datsun 510", "volkswagen rabbit", "ford torino"],
        "efficient": [0, 1, 1, 0],
    }
)
SCHEDULE = default_schedule(normal_windows=3, length=2, gap=4)


def test_the_default_schedule_starts_with_normal_traffic_and_separates_the_failures() -> None:
    assert [(i.kind, i.start, i.end, i.feature) for i in SCHEDULE] == [
        ("missing_feature", 3, 5, "inputs.horsepower"),
        ("unseen_category", 9, 11, "inputs.origin"),
        ("vocabulary_shift", 15, 17, "inputs.name"),
    ]
    assert [active(SCHEDULE, w) for w in (0, 1, 2, 5, 8, 17)] == [[]] * 6
    assert [i.kind for i in active(SCHEDULE, 4)] == ["missing_feature"]


def test_normal_windows_are_held_out_rows_unchanged() -> None:
    rows = window_rows(HELDOUT, 200, 0, SCHEDULE, seed=1)
    assert len(rows) == 200
    assert set(rows["name"]) <= set(HELDOUT["name"])
    assert set(rows["origin"]) <= {"USA", "Japan", "Europe"}
    assert list(rows.columns) == list(HELDOUT.columns)


def test_windows_are_deterministic_given_the_seed() -> None:
    a = window_rows(HELDOUT, 50, 9, SCHEDULE, seed=3)
    b = window_rows(HELDOUT, 50, 9, SCHEDULE, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_missing_feature_drops_the_horsepower_field() -> None:
    rows = window_rows(HELDOUT, 100, 3, SCHEDULE, seed=1)
    assert "horsepower" not in rows.columns
    lines = log_lines(
        rows,
        [{"score": 0.5, "label": "efficient"}] * 100,
        datetime(2026, 1, 1, tzinfo=UTC),
        timedelta(minutes=5),
        seed=1,
    )
    assert all("horsepower" not in line["inputs"] for line in lines)


def test_unseen_category_sends_korea_in_about_a_quarter_of_requests() -> None:
    rows = window_rows(HELDOUT, 2000, 9, SCHEDULE, seed=1)
    share = (rows["origin"] == "Korea").mean()
    assert 0.2 < share < 0.3


def test_vocabulary_shift_sends_foreign_names_in_about_sixty_percent() -> None:
    rows = window_rows(HELDOUT, 2000, 15, SCHEDULE, seed=1)
    share = rows["name"].isin(FOREIGN_NAMES).mean()
    assert 0.55 < share < 0.65


def test_log_lines_have_the_documented_shape_inside_the_window() -> None:
    start = datetime(2026, 11, 22, 10, tzinfo=UTC)
    rows = HELDOUT.head(2)
    lines = log_lines(
        rows,
        [{"score": 0.1, "label": "thirsty"}, {"score": 0.9, "label": "efficient"}],
        start,
        timedelta(minutes=5),
        seed=0,
    )
    assert [sorted(line) for line in lines] == [
        ["inputs", "latency_ms", "model", "model_version", "outputs", "prediction_id", "timestamp"]
    ] * 2
    first = lines[0]
    assert first["model"] == "cars_mpg" and first["model_version"] == "1.0"
    assert first["inputs"] == {
        "origin": "USA",
        "cylinders": "8",
        "horsepower": 130.0,
        "weight": 3504.0,
        "acceleration": 12.0,
        "name": "chevrolet chevelle malibu",
    }
    assert lines[1]["inputs"]["horsepower"] is None  # NaN becomes null
    stamps = [datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")) for line in lines]
    assert all(start <= t < start + timedelta(minutes=5) for t in stamps)
    assert stamps == sorted(stamps)
    assert lines[0]["timestamp"].endswith("Z")
    assert len({line["prediction_id"] for line in lines}) == 2


def test_an_injection_is_active_on_its_half_open_range() -> None:
    inj = Injection("missing_feature", 2, 4, "inputs.horsepower", ("feature_vanished",), "x")
    assert [bool(active([inj], w)) for w in range(6)] == [False, False, True, True, False, False]
