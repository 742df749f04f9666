"""The scheduled worker: one APScheduler job per model this worker owns.

Each job is coalesced (missed runs collapse into one) and has ``max_instances=1`` (never two runs
of one model at once). Several workers split the models by a stable hash (``shard: i/n``), so the
worker scales out while Elasticsearch does the counting.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from inferwatch.analytics.windows import next_grid_point

log = logging.getLogger(__name__)

RunModel = Callable[[str, datetime], object]


def error_reason(exc: BaseException) -> str:
    """The kind of a failed evaluation, for the error counts: an exception's ``reason`` attribute
    (``partial_results``, ``elasticsearch``) or its class name."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and reason else type(exc).__name__


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``; raises ValueError unless 0 <= i < n."""
    i_text, sep, n_text = shard.partition("/")
    if not sep:
        raise ValueError(f"expected a shard such as 0/1 or 2/4, got {shard!r}")
    i, n = int(i_text), int(n_text)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"expected i/n with 0 <= i < n, got {shard!r}")
    return i, n


def owns(model: str, shard: str) -> bool:
    """Stable across processes and hosts (crc32, not Python's salted hash)."""
    i, n = parse_shard(shard)
    return zlib.crc32(model.encode("utf-8")) % n == i


def my_models(models: Iterable[str], shard: str) -> list[str]:
    return sorted(m for m in set(models) if owns(m, shard))


class GridTrigger(BaseTrigger):
    """Fires ``lag`` after every window end of the schedule's grid (``analytics.windows``): every
    ``interval`` of the wall clock of ``tz`` from its midnight, so daily windows of a local day
    are evaluated when that day ends, whatever the clocks did. The lag (a tenth of the interval,
    at most 10 s) lets the window's last documents be shipped and become searchable."""

    def __init__(self, interval: float, tz: tzinfo = UTC) -> None:
        self.interval = interval
        self.tz = tz
        self.lag = timedelta(seconds=min(10.0, interval / 10))

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        after = max(t for t in (previous_fire_time, now) if t is not None) - self.lag
        return next_grid_point(after, self.interval, self.tz) + self.lag


class Worker:
    """Owns the scheduler. ``start()`` schedules the jobs (the first run is immediate);
    ``stop()`` is idempotent and waits for running jobs to finish; ``request_stop()`` only sets
    an event, so it is safe in a signal handler while ``run_until_stopped()`` blocks."""

    def __init__(self, models: list[str], interval: float, run: RunModel, tz: tzinfo = UTC) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.models = list(models)
        self.interval = interval
        self._run = run
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._shut = False
        # "runs", "errors", and "errors:<reason>" per kind of failure (``error_reason``)
        self.counts: Counter[str] = Counter()
        self._episodes: dict[str, tuple[str, int]] = {}  # job id -> (its error, failed runs since)
        self._events_lock = threading.Lock()  # jobs of several models end at once
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_EXECUTED)
        for model in self.models:
            self.scheduler.add_job(
                self._job,
                GridTrigger(interval, tz),
                args=[model],
                id=f"evaluate:{model}",
                name=f"evaluate {model}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=datetime.now(UTC),
            )

    def _job(self, model: str) -> None:
        if not self._stopped.is_set():
            self._run(model, datetime.now(UTC))

    def _on_event(self, event: JobExecutionEvent) -> None:
        """Counts every run; logs a failure once per episode (when it starts or its error
        changes), not every interval while the same cause lasts, and the run that ends it."""
        with self._events_lock:
            if event.exception is not None:
                self.counts["errors"] += 1
                self.counts[f"errors:{error_reason(event.exception)}"] += 1
                error = f"{type(event.exception).__name__}: {event.exception}"
                previous, failed = self._episodes.get(event.job_id, ("", 0))
                self._episodes[event.job_id] = (error, failed + 1)
                if error != previous:
                    log.error("job %s failed: %s (repeats are logged when it changes)", event.job_id, error)
                else:
                    log.debug("job %s failed again (%d runs): %s", event.job_id, failed + 1, error)
            else:
                self.counts["runs"] += 1
                ended = self._episodes.pop(event.job_id, None)
                if ended is not None:
                    log.info("job %s succeeded again after %d failed runs", event.job_id, ended[1])

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self.scheduler.start()

    def request_stop(self) -> None:
        self._stopped.set()

    def stop(self) -> None:
        """Stop scheduling, wait for running jobs to finish. Safe to call more than once."""
        self._stopped.set()
        with self._lock:
            if self._started and not self._shut:
                self._shut = True
                self.scheduler.shutdown(wait=True)

    def run_until_stopped(self) -> None:
        """Start the jobs, block until ``request_stop()``, then wait for running jobs to end."""
        self.start()
        try:
            self._stopped.wait()
        finally:
            self.stop()
