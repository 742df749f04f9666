from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inferwatch.analytics.demo.clock import VirtualClock, floor_time

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class FakeWall:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_virtual_time_advances_speed_times_faster() -> None:
    wall = FakeWall()
    clock = VirtualClock(T0, speed=60, wall=wall)
    assert clock.now() == T0
    wall.t += 5
    assert clock.now() == T0 + timedelta(minutes=5)
    assert clock.wall_seconds_until(T0 + timedelta(minutes=10)) == pytest.approx(5.0)
    assert clock.wall_seconds_until(T0) == pytest.approx(-5.0)


def test_floor_time_aligns_to_the_step() -> None:
    assert floor_time(datetime(2026, 11, 22, 10, 7, 31, tzinfo=UTC), 300) == datetime(
        2026, 11, 22, 10, 5, tzinfo=UTC
    )
    assert floor_time(T0, 300) == T0


def test_speed_and_timezone_are_checked() -> None:
    with pytest.raises(ValueError):
        VirtualClock(T0, speed=0)
    with pytest.raises(ValueError):
        VirtualClock(datetime(2026, 1, 1), speed=1)
