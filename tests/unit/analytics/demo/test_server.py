from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from inferwatch.analytics.demo.server import DemoModel
from inferwatch.analytics.demo.stream import default_schedule

from .test_stream import HELDOUT

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def constant_predict(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"score": 0.5, "label": "efficient"}] * len(rows)


def make(lines: list[Mapping[str, Any]], cycle: int | None = None) -> DemoModel:
    return DemoModel(
        predict=constant_predict,
        heldout=HELDOUT,
        schedule=default_schedule(normal_windows=1, length=1, gap=1),
        write=lines.append,
        origin=T0,
        span=300,
        per_window=50,
        seed=4,
        cycle=cycle,
    )


def test_lines_are_written_when_the_clock_passes_their_timestamp() -> None:
    lines: list[Mapping[str, Any]] = []
    demo = make(lines)
    half = demo.emit_until(T0 + timedelta(seconds=150))
    assert 0 < half < 50
    assert all(line["timestamp"] < "2026-11-22T10:02:30.000Z" for line in lines)
    rest = demo.emit_until(T0 + timedelta(seconds=300))
    assert half + rest == 50
    assert demo.written[0] == 50 and demo.total_written() == 50


def test_a_clock_that_jumps_writes_every_window_it_passed_in_order() -> None:
    lines: list[Mapping[str, Any]] = []
    demo = make(lines)
    assert demo.emit_until(T0 + timedelta(minutes=15)) == 150
    assert [demo.written[k] for k in range(3)] == [50, 50, 50]
    assert demo.total_written(before_window=2) == 100
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)
    # window 1 is the first injection of this schedule: horsepower is gone
    assert all("horsepower" not in line["inputs"] for line in lines[50:100])
    assert any("horsepower" in line["inputs"] for line in lines[:50])


def test_nothing_is_written_twice_or_before_the_origin() -> None:
    lines: list[Mapping[str, Any]] = []
    demo = make(lines)
    assert demo.emit_until(T0 - timedelta(seconds=1)) == 0
    demo.emit_until(T0 + timedelta(minutes=5))
    assert demo.emit_until(T0 + timedelta(minutes=5)) == 0
    assert len({line["prediction_id"] for line in lines}) == 50


def test_serve_mode_repeats_the_schedule() -> None:
    lines: list[Mapping[str, Any]] = []
    demo = make(lines, cycle=4)
    assert [i.kind for i in demo.injections(1)] == [i.kind for i in demo.injections(5)] == ["missing_feature"]
    assert demo.injections(4) == []
