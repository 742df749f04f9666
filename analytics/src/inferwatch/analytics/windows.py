"""Which window an evaluation at a moment looks at: the one ending at the last step of the
schedule's grid before that moment, so re-running the same moment evaluates the same window (and
alerts stay idempotent).

The grid follows the wall clock of ``analytics.timezone`` (UTC by default): window ends are the
multiples of ``interval`` counted from local midnight, so with ``interval: 1d`` and ``window: 1d``
in ``Europe/Berlin`` each window is one local day, midnight to midnight, 23 or 25 hours long on
the days clocks change. A span of whole days is counted in calendar days of that zone; a shorter
span in elapsed time back from the end (an hour is always 3,600 s, so hourly windows neither skip
nor repeat an hour around a change). A grid point that falls twice (clocks going back) is taken
at its later instant that is not after the moment; one that does not exist (clocks going forward)
at the instant the clocks reach it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from inferwatch.analytics.model import Window

DAY = 86400.0


def zone(name: str | None) -> tzinfo:
    """``analytics.timezone`` as a tzinfo (UTC for None, "UTC" or "Z")."""
    if name is None or name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    return ZoneInfo(name)


def _wall_seconds(local: datetime) -> float:
    """Seconds on the wall clock since 1970-01-01 00:00 of the zone (no offset applied)."""
    return local.replace(tzinfo=UTC).timestamp()


def _instant(wall: float, tz: tzinfo, at: datetime | None = None) -> datetime:
    """The instant the zone's wall clock shows ``wall``: of two (clocks went back), the later one
    not after ``at``; none (clocks went forward), the instant they jump over it."""
    candidates = _instants(wall, tz)
    if at is not None:
        before = [c for c in candidates if c <= at]
        if before:
            return before[-1]
    return candidates[0]


def _grid_end(at_utc: datetime, step: float, tz: tzinfo) -> datetime:
    """The last grid point of the wall clock of ``tz`` at or before ``at_utc``."""
    wall = _wall_seconds(at_utc.astimezone(tz))
    end_wall = wall - wall % step
    end = _instant(end_wall, tz, at_utc)
    if end > at_utc:  # the grid point was jumped over just now: the previous one
        end = _instant(end_wall - step, tz, at_utc)
    return end


def aligned_window(at: datetime, span: float, step: float, tz: tzinfo = UTC) -> Window:
    """The window of ``span`` seconds ending at the last grid point (every ``step`` seconds of the
    wall clock of ``tz`` from its midnight) at or before ``at``. Bounds are UTC. Outside UTC a
    span that is a multiple of ``step`` starts that many grid points earlier (so consecutive
    windows tile time across clock changes: a local day is 23 or 25 hours), another span of whole
    days that many calendar days earlier, any other span that many seconds earlier."""
    at_utc = at.astimezone(UTC)
    if tz is UTC:
        ts = at_utc.timestamp()
        end = datetime.fromtimestamp(ts - ts % step, tz=UTC)
        return Window(end - timedelta(seconds=span), end)
    end = _grid_end(at_utc, step, tz)
    if span % step == 0:
        start = end
        for _ in range(int(span // step)):
            start = _grid_end(start - _TICK, step, tz)
    elif span % DAY == 0:
        wall = _wall_seconds(end.astimezone(tz))
        start = _instant(wall - span, tz)
    else:
        start = end - timedelta(seconds=span)
    return Window(start, end, nominal=span)


_TICK = timedelta(microseconds=1)


def _instants(wall: float, tz: tzinfo) -> list[datetime]:
    """The instants whose wall clock in ``tz`` shows ``wall``: one, two (clocks went back), or
    for a wall time the clocks jumped over, the instant of the jump (the earlier offset's)."""
    naive = datetime.fromtimestamp(wall, tz=UTC).replace(tzinfo=None)
    both = {naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)}
    real = sorted(c for c in both if c.astimezone(tz).replace(tzinfo=None) == naive)
    return real or [naive.replace(tzinfo=tz, fold=0).astimezone(UTC)]


def next_grid_point(after: datetime, step: float, tz: tzinfo = UTC) -> datetime:
    """The first window end of the grid strictly after ``after`` (when the scheduled worker runs);
    a grid point the clocks show twice is a window end both times."""
    after_utc = after.astimezone(UTC)
    if tz is UTC:
        ts = after_utc.timestamp()
        return datetime.fromtimestamp(ts - ts % step + step, tz=UTC)
    wall = _wall_seconds(after_utc.astimezone(tz))
    wall -= wall % step
    # Clocks going back show a stretch of wall time twice: the next end may be a later wall
    # time's first instant or an earlier wall time's second one; look a few hours around.
    ahead = min(int(3 * 3600 // step) + 2, 10_000)
    wall -= ahead * step
    while True:
        later = [c for k in range(ahead) for c in _instants(wall + k * step, tz) if c > after_utc]
        if later:
            return min(later)
        wall += ahead * step


__all__ = ["aligned_window", "next_grid_point", "zone"]
