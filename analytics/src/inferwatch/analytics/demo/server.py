"""The demo model at work: for each window of (virtual) time it draws requests, predicts, and
writes one prediction log line per request when the clock passes the line's timestamp.

``emit_until(now)`` is the single step: it writes every line due by ``now`` and returns how many;
the demo's main loop and ``--serve`` both call it, so there is no thread to own here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from inferwatch.analytics.demo import model as demo_model
from inferwatch.analytics.demo.stream import Injection, active, log_lines, window_rows

Predict = Callable[[pd.DataFrame], list[dict[str, Any]]]
WriteLine = Callable[[Mapping[str, Any]], None]


@dataclass
class DemoModel:
    predict: Predict
    heldout: pd.DataFrame
    schedule: list[Injection]
    write: WriteLine
    origin: datetime  # start of window 0
    span: float  # seconds per window
    per_window: int  # requests per window
    seed: int = 0
    cycle: int | None = None  # repeat the schedule every ``cycle`` windows (--serve)
    written: dict[int, int] = field(default_factory=dict)  # window -> lines written
    _window: int = field(default=-1, init=False)
    _pending: list[dict[str, Any]] = field(default_factory=list, init=False)

    def window_start(self, k: int) -> datetime:
        return self.origin + timedelta(seconds=k * self.span)

    def window_of(self, at: datetime) -> int:
        return int((at - self.origin).total_seconds() // self.span)

    def injections(self, k: int) -> list[Injection]:
        return active(self.schedule, k % self.cycle if self.cycle else k)

    def lines_for(self, k: int) -> list[dict[str, Any]]:
        """The window's log lines (deterministic given the seed), timestamps in the window."""
        scripted = k % self.cycle if self.cycle else k
        rows = window_rows(self.heldout, self.per_window, scripted, self.schedule, self.seed + k)
        return log_lines(
            rows, self.predict(rows), self.window_start(k), timedelta(seconds=self.span), self.seed
        )

    def emit_until(self, now: datetime) -> int:
        """Write every line whose timestamp is before ``now``; returns how many were written."""
        count = 0
        last = self.window_of(now)
        while True:
            if not self._pending:
                if self._window >= last:
                    break
                self._window += 1
                self._pending = self.lines_for(self._window)
                self.written.setdefault(self._window, 0)
            cut = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            due = 0
            while due < len(self._pending) and self._pending[due]["timestamp"] < cut:
                due += 1
            for line in self._pending[:due]:
                self.write(line)
            del self._pending[:due]
            self.written[self._window] += due
            count += due
            if self._pending:
                break
        return count

    def total_written(self, before_window: int | None = None) -> int:
        """Lines written in total, or in the windows before ``before_window``."""
        return sum(n for k, n in self.written.items() if before_window is None or k < before_window)


def sklearn_predict(pipeline: Any) -> Predict:
    def predict(rows: pd.DataFrame) -> list[dict[str, Any]]:
        return demo_model.predict(pipeline, rows)

    return predict
