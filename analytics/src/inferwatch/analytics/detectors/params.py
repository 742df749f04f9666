"""The detectors' knobs, one frozen object.

The per-test ``alpha`` comes from a false-alarm budget: with ``series`` tests per window and
``windows_per_week`` windows, a per-test false-alarm probability ``alpha`` costs on average
``alpha * series * windows_per_week`` false firings a week, so

    alpha = false_alarms_per_week / (series * windows_per_week)

e.g. 50 features x 3 tests, hourly windows, one false alarm a week -> alpha ~ 4e-5. A firing
also needs its effect above a floor, and an alert needs two consecutive firing windows unless
the p-value passes ``strong_alpha`` = alpha / 100, so the measured alert rate sits well below
the budget (see tests/unit/analytics/detectors/test_calibration.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

ALPHA_MIN = 1e-12  # below this the exact tails underflow and nothing could ever fire
ALPHA_MAX = 0.05  # a budget this loose is a configuration mistake; never test at more than 5%

# models.<m>.floors.<feature> keys (core.config.FeatureFloors) -> the floor each one sets
FLOOR_FIELDS = {
    "null": "null_floor_abs",
    "unseen": "unseen_floor_abs",
    "oov": "oov_floor_abs",
    "drift": "js_floor",
}


@dataclass(frozen=True)
class DetectorParams:
    alpha: float = 1e-4  # per test and window
    strong_factor: float = 100.0  # strong_alpha = alpha / strong_factor
    # Effect floors: a firing needs the observed rate to exceed the baseline rate p0 by at least
    # max(abs, rel * p0) (docs/architecture.md, "Detectors").
    null_floor_abs: float = 0.01
    null_floor_rel: float = 0.5
    unseen_floor_abs: float = 0.005
    unseen_floor_rel: float = 1.0
    oov_floor_abs: float = 0.01
    oov_floor_rel: float = 0.5
    creep_fraction: float = 0.5  # the CUSUM looks for p0 + creep_fraction * null floor
    js_floor: float = 0.1  # Jensen-Shannon distance (natural log), Evidently's default cut
    c_min_closed: int = 1  # a new value of a closed vocabulary fires on its first occurrence
    c_min_open: int = 3
    vanish_min_n: int = 50  # documents before "every value missing" means the feature vanished
    min_rate_n: int = 30  # never run a rate test on fewer values than this
    # analytics.min_window_docs: a window (or run of merged windows) with fewer values than this
    # is merged with the next rather than tested, whatever the test's own power says
    min_window_docs: int = 0
    min_expected_per_bin: float = 5.0  # distribution bins expected below this are merged
    max_merge_windows: int = 12  # a series merged this many windows is tested regardless
    high_cardinality_values: int = 50  # distinct unseen values in one window -> rate only
    max_value_findings: int = 20  # unseen_category findings per feature and window
    unseen_memory_values: int = 200  # new values whose evidence is remembered across windows, per feature
    vocab_bins: int = 50  # top-K training tokens as bins of the token distribution
    volume_floor: float = 0.5  # |observed / expected - 1| needed for a volume finding
    volume_min_expected: float = 20.0  # expected documents before a drop to zero is critical
    examples: int = 5
    # The long horizon of the drift tests, in windows of one state chain (a week of windows):
    # each window's counts join a decayed sum (weight 1 - 1/horizon_windows per window) that
    # is tested too, so a shift too slight for one window is reported once it adds up. 0: off.
    horizon_windows: int = 0
    # latency (detectors/latency.py): against the version's own history of clean windows
    latency_floor: float = 1.5  # a percentile must reach this multiple of its usual value
    latency_min_history: int = 8  # clean windows known before the test runs
    latency_recent: int = 48  # recent clean windows kept per percentile
    latency_weeks: int = 4  # clean windows kept per hour of the week and percentile

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.strong_factor < 1.0:
            raise ValueError("strong_factor must be >= 1")

    @property
    def strong_alpha(self) -> float:
        return self.alpha / self.strong_factor

    def null_floor(self, p0: float) -> float:
        return max(self.null_floor_abs, self.null_floor_rel * p0)

    def unseen_floor(self, p0: float) -> float:
        return max(self.unseen_floor_abs, self.unseen_floor_rel * p0)

    def oov_floor(self, p0: float) -> float:
        return max(self.oov_floor_abs, self.oov_floor_rel * p0)

    def c_min(self, closed: bool) -> int:
        return self.c_min_closed if closed else self.c_min_open

    def with_floors(self, floors: Mapping[str, float]) -> DetectorParams:
        """These params with one feature's configured effect floors (``FLOOR_FIELDS`` keys)."""
        changes: dict[str, Any] = {FLOOR_FIELDS[k]: float(v) for k, v in floors.items() if k in FLOOR_FIELDS}
        return replace(self, **changes) if changes else self

    @classmethod
    def from_budget(
        cls, false_alarms_per_week: float, series: int, windows_per_week: float, **overrides: Any
    ) -> DetectorParams:
        """alpha = budget / (series * windows_per_week), clamped to [1e-12, 0.05].

        Non-positive or non-finite inputs fall back to one series and one window a week rather
        than raising: the worker must keep running on a bad count.
        """
        budget = (
            false_alarms_per_week
            if math.isfinite(false_alarms_per_week) and false_alarms_per_week > 0
            else 1.0
        )
        tests = max(int(series), 1)
        per_week = windows_per_week if math.isfinite(windows_per_week) and windows_per_week > 0 else 1.0
        alpha = min(max(budget / (tests * per_week), ALPHA_MIN), ALPHA_MAX)
        return cls(alpha=alpha, **overrides)
