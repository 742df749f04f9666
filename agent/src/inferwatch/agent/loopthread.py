"""One thread running one loop of the agent (read, ship, progress): the single home of their shape.

A loop is a ``step`` function that returns how many seconds the thread may wait before the next
step (0: at once; None: idle, wait ``idle`` seconds). The thread waits on the loop's ``wake``
event, which ``stop()`` also sets, so shutdown interrupts any wait at once; ``finish`` runs once
on the thread after the last step (the read loop spools its open batch there).

A step that raises starts a failure episode: the error is logged once as ERROR (with the
traceback, and with the fix when it is a full disk), counted in ``loop_errors_total{loop}`` on
every attempt, exposed as ``loop_failing{loop}`` (and ``disk_full``) and in ``failure`` for
``/health``; the step is tried again every ``FAILURE_RETRY`` seconds, and the first step that
succeeds ends the episode with one INFO line. A different error during an episode is logged too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.oserrors import describe, is_disk_full

log = logging.getLogger(__name__)

FAILURE_RETRY = 1.0  # seconds between attempts while a step keeps failing


@dataclass(frozen=True, slots=True)
class Failure:
    """A failure episode of one loop: since when (monotonic) and what it says."""

    since: float
    message: str
    disk_full: bool


class LoopThread:
    def __init__(
        self,
        name: str,
        step: Callable[[], float | None],
        wake: threading.Event,
        metrics: Metrics,
        *,
        idle: float = 1.0,
        finish: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._step = step
        self._wake = wake
        self._metrics = metrics
        self._idle = idle
        self._finish = finish
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failure: Failure | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end after its current step (it runs ``finish`` first)."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                delay = self._attempt()
                if self._stop.is_set():
                    break
                if delay is None:
                    self._wake.wait(self._idle)
                elif delay > 0:
                    self._wake.wait(delay)
        finally:
            if self._finish is not None:
                try:
                    self._finish()
                except Exception:
                    log.exception("the %s loop failed while finishing", self.name)

    def _attempt(self) -> float | None:
        try:
            delay = self._step()
        except Exception as e:
            self._failed(e)
            # Woken only by stop: a failing step is not retried faster because work arrived.
            self._stop.wait(FAILURE_RETRY)
            return 0.0
        if self.failure is not None:
            log.info(
                "the %s loop works again after %.0fs of: %s",
                self.name,
                self._clock() - self.failure.since,
                self.failure.message,
            )
            self.failure = None
            self._metrics.set("loop_failing", 0, labels(loop=self.name))
            self._metrics.set("disk_full", 0, labels(loop=self.name))
        return delay

    def _failed(self, exc: Exception) -> None:
        self._metrics.inc("loop_errors_total", 1, labels(loop=self.name))
        message, disk_full = describe(exc), is_disk_full(exc)
        if self.failure is not None and self.failure.message == message:
            return  # the same episode: said once
        since = self.failure.since if self.failure is not None else self._clock()
        self.failure = Failure(since, message, disk_full)
        self._metrics.set("loop_failing", 1, labels(loop=self.name))
        self._metrics.set("disk_full", int(disk_full), labels(loop=self.name))
        if disk_full:
            log.error("the %s loop stops until there is room: %s", self.name, message)
        else:
            log.error(
                "the %s loop step failed (retried every %.0fs): %s",
                self.name,
                FAILURE_RETRY,
                message,
                exc_info=exc,
            )
