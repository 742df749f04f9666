"""What the detectors remember of one model version between windows, JSON-able.

- ``pending``: counts of windows too small for a test's power, per series
  (``<detector>|<feature>``), merged with the next window instead of tested: rate series hold
  ``{"windows", "k", "n"}``, distribution series ``{"windows", "counts": {bin: count}}``.
- ``cusum``: the null-creep CUSUM per feature, ``{"s", "m", "n", "alarm"}``.
- ``high_cardinality``: features whose unseen values exploded; watched by rate only.
- ``horizon``: per drift series, the decayed sum of its counts per bin over the long horizon
  (``common.horizon_series``).
- ``latency``: the version's log latencies of clean windows per percentile, recent
  (``{"recent": {"p95": [...]}}``) and per hour of the week (``{"how": {"34": {"p95": [...]}}}``).
- ``unseen``: per feature, each new value's evidence since its first sighting:
  ``{value: [sightings, values of the feature, windows]}`` (``unseen._remember``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inferwatch.analytics.detectors.stats import Cusum

FORMAT = 1


@dataclass
class DetectorState:
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    cusum: dict[str, Cusum] = field(default_factory=dict)
    high_cardinality: set[str] = field(default_factory=set)
    unseen: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    horizon: dict[str, dict[str, float]] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "pending": {k: _plain(v) for k, v in sorted(self.pending.items())},
            "cusum": {
                k: {"s": c.s, "m": c.m, "n": c.n, "alarm": c.alarm} for k, c in sorted(self.cusum.items())
            },
            "high_cardinality": sorted(self.high_cardinality),
            "unseen": {
                k: {v: list(cmw) for v, cmw in sorted(m.items())} for k, m in sorted(self.unseen.items())
            },
            "horizon": {k: dict(sorted(v.items())) for k, v in sorted(self.horizon.items())},
            "latency": self.latency,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> DetectorState:
        """Tolerant: a missing, older or damaged state starts the affected series afresh."""
        if not isinstance(d, Mapping):
            return cls()
        pending: dict[str, dict[str, Any]] = {}
        for key, value in dict(d.get("pending") or {}).items():
            if isinstance(value, Mapping) and int(value.get("windows", 0) or 0) > 0:
                pending[str(key)] = _plain(value)
        cusum: dict[str, Cusum] = {}
        for key, value in dict(d.get("cusum") or {}).items():
            try:
                s = float(value["s"])
                alarm = value.get("alarm") is True
                if math.isfinite(s) and (s > 0 or alarm):
                    cusum[str(key)] = Cusum(max(s, 0.0), int(value["m"]), int(value["n"]), alarm)
            except (KeyError, TypeError, ValueError):
                continue
        high = {str(x) for x in (d.get("high_cardinality") or [])}
        unseen: dict[str, dict[str, tuple[int, int, int]]] = {}
        for key, values in dict(d.get("unseen") or {}).items():
            try:
                kept = {str(v): (int(c), int(m), int(w)) for v, (c, m, w) in dict(values).items()}
            except (TypeError, ValueError):
                continue
            if kept:
                unseen[str(key)] = kept
        horizon: dict[str, dict[str, float]] = {}
        for key, bins in dict(d.get("horizon") or {}).items():
            try:
                sums = {
                    str(b): float(c)
                    for b, c in dict(bins).items()
                    if math.isfinite(float(c)) and float(c) > 0
                }
            except (TypeError, ValueError):
                continue
            if sums:
                horizon[str(key)] = sums
        return cls(pending, cusum, high, unseen, horizon, _latency(d.get("latency")))

    def copy(self) -> DetectorState:
        return DetectorState.from_dict(self.to_dict())


def _floats(values: Any) -> list[float]:
    return [float(x) for x in values if math.isfinite(float(x))]


def _latency(d: Any) -> dict[str, Any]:
    """The latency history, or nothing when it does not have its shape."""
    if not isinstance(d, Mapping):
        return {}
    try:
        recent = {str(k): _floats(v) for k, v in dict(d.get("recent") or {}).items()}
        how = {
            str(h): {str(k): _floats(v) for k, v in dict(slot).items()}
            for h, slot in dict(d.get("how") or {}).items()
        }
    except (TypeError, ValueError):
        return {}
    return {"recent": recent, "how": how} if recent or how else {}


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, Mapping):
            out[str(k)] = {str(a): float(b) for a, b in v.items()}
        else:
            out[str(k)] = v
    return out
