"""Virtual time: the demo's log timestamps advance ``speed`` times faster than the wall clock, so
a five-minute window of traffic passes in a few seconds. Pure apart from the injected wall clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


def floor_time(at: datetime, step: float) -> datetime:
    """The last multiple of ``step`` seconds (since the epoch) at or before ``at``."""
    ts = at.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(ts - ts % step, tz=UTC)


@dataclass
class VirtualClock:
    start: datetime  # the virtual time at the wall moment the clock was made
    speed: float  # virtual seconds per wall second
    wall: Callable[[], float] = time.monotonic
    _wall0: float = field(init=False)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._wall0 = self.wall()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self.wall() - self._wall0) * self.speed)

    def wall_seconds_until(self, virtual: datetime) -> float:
        """Wall seconds from now until the virtual clock shows ``virtual`` (<= 0 if passed)."""
        return (virtual - self.now()).total_seconds() / self.speed
