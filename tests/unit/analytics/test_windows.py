"""Windows follow the wall clock of analytics.timezone: a daily window is a local day (23 or 25
hours when clocks change), hourly windows tile time with no gap or overlap across a change, and the
scheduled worker fires at every window end."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferwatch.analytics.model import Window
from inferwatch.analytics.scheduler import GridTrigger
from inferwatch.analytics.windows import aligned_window, next_grid_point, zone
from inferwatch.core.config import ConfigError, parse_config

BERLIN = ZoneInfo("Europe/Berlin")
DAY, HOUR = 86400.0, 3600.0


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: ZoneInfo = BERLIN, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold)


def test_utc_is_the_default_and_unchanged() -> None:
    at = datetime(2026, 11, 22, 10, 7, 30, tzinfo=UTC)
    assert aligned_window(at, HOUR, 300) == Window(
        datetime(2026, 11, 22, 9, 5, tzinfo=UTC), datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    )
    assert zone("UTC") is UTC and zone(None) is UTC


@pytest.mark.parametrize(
    ("at", "start", "end", "hours"),
    [
        (local(2026, 3, 28, 12), local(2026, 3, 27), local(2026, 3, 28), 24),
        (local(2026, 3, 30, 9), local(2026, 3, 29), local(2026, 3, 30), 23),  # clocks forward on the 29th
        (local(2026, 10, 26, 0, 1), local(2026, 10, 25), local(2026, 10, 26), 25),  # back on the 25th
        (local(2026, 10, 25, 23, 59), local(2026, 10, 24), local(2026, 10, 25), 24),
    ],
)
def test_a_daily_window_is_one_local_day(at: datetime, start: datetime, end: datetime, hours: int) -> None:
    window = aligned_window(at, DAY, DAY, BERLIN)
    assert (window.start, window.end) == (start.astimezone(UTC), end.astimezone(UTC))
    assert window.seconds == hours * HOUR
    assert window.nominal_seconds == DAY  # one phase chain, whatever the day's length


def test_a_week_window_ends_at_local_midnight_and_spans_seven_calendar_days() -> None:
    window = aligned_window(local(2026, 3, 30, 9), 7 * DAY, DAY, BERLIN)
    assert window.start == local(2026, 3, 23).astimezone(UTC) and window.end == local(2026, 3, 30).astimezone(
        UTC
    )
    assert window.seconds == 7 * DAY - HOUR


@pytest.mark.parametrize("step", [HOUR, 1800.0, DAY])
@pytest.mark.parametrize(
    "tz_name", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
)
def test_consecutive_windows_tile_time_across_clock_changes(step: float, tz_name: str) -> None:
    """Each window starts where the previous one ended: no hour skipped or counted twice."""
    tz = ZoneInfo(tz_name)
    for begin in (datetime(2026, 3, 25, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)):
        t = begin
        previous: Window | None = None
        while t < begin + timedelta(days=40):
            t = next_grid_point(t, step, tz)
            window = aligned_window(t, step, step, tz)
            assert window.end == t
            if previous is not None:
                assert window.start == previous.end, (tz_name, step, window)
            if step == DAY:
                assert window.end.astimezone(tz).time() == time(0)
            previous = window


@given(
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))
)
def test_the_window_ends_at_or_before_the_moment_and_is_stable(at: datetime) -> None:
    for step in (HOUR, DAY):
        window = aligned_window(at, step, step, BERLIN)
        assert window.end <= at < window.end + timedelta(seconds=step + HOUR)
        assert aligned_window(window.end, step, step, BERLIN) == window  # re-running the end: the same window


def test_the_worker_fires_just_after_each_local_midnight() -> None:
    trigger = GridTrigger(DAY, BERLIN)
    fire = trigger.get_next_fire_time(None, local(2026, 10, 24, 15))
    fires = [fire]
    for _ in range(2):
        fires.append(trigger.get_next_fire_time(fires[-1], fires[-1]))
    assert [f.astimezone(BERLIN).replace(tzinfo=None) for f in fires] == [
        datetime(2026, 10, 25, 0, 0, 10),
        datetime(2026, 10, 26, 0, 0, 10),
        datetime(2026, 10, 27, 0, 0, 10),
    ]
    assert GridTrigger(300).get_next_fire_time(None, datetime(2026, 1, 1, 0, 4, tzinfo=UTC)) == datetime(
        2026, 1, 1, 0, 5, 10, tzinfo=UTC
    )


CONFIG = "agent:\n  data_dir: ./d\nanalytics:\n  interval: 1d\n  window: 1d\n  timezone: {tz}\n"


def test_the_timezone_is_validated_with_its_path(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG.format(tz="Europe/Berlin"), {}, source=tmp_path / "x.yml")
    assert cfg.analytics.timezone == "Europe/Berlin"
    assert (
        parse_config("agent:\n  data_dir: ./d\n", {}, source=tmp_path / "x.yml").analytics.timezone == "UTC"
    )
    with pytest.raises(ConfigError, match=r"analytics\.timezone: unknown timezone 'Mars/Olympus'"):
        parse_config(CONFIG.format(tz="Mars/Olympus"), {}, source=tmp_path / "x.yml")
