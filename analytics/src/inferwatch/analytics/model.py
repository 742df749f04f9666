"""Value types of the analytics worker, named once.

Feature keys are qualified everywhere: ``inputs.<name>`` or ``outputs.<name>`` (the Elasticsearch
field is ``ml.<key>``; text tokens are in ``ml.tokens.<name>``).

Count tables (pandas DataFrames) returned by every source (Elasticsearch or local store), with
exactly these columns, one ``WindowCounts`` per (model, version, window):

- ``presence``:   feature:str, present:int, missing:int     (present + missing == docs; a field
                  absent from every document has present == 0)
- ``categories``: feature:str, value:str, count:int, in_baseline:bool
                  (all baseline values seen in the window and every unseen value, exact)
- ``numeric``:    feature:str, bin:int, lower:float, upper:float, count:int
                  (bins are the baseline's edges: bin 0 is (-inf, e0), bin i is [e(i-1), e(i)),
                  the last bin is [e_last, inf); only non-null values)
- ``tokens``:     feature:str, token:str, doc_count:int, in_vocab:bool
                  (baseline top-K tokens seen in the window, and every out-of-vocabulary token)
- ``text_docs``:  feature:str, docs:int, oov_docs:int
                  (documents with at least one token; of those, documents with an OOV token)

``ModelCounts`` holds what is per model rather than per version: documents per version in the
window (``versions``: version:str, docs:int) and the window's hourly volume (``volume``:
start:datetime64[ns, UTC], docs:int).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

import pandas as pd

FeatureKind = Literal["categorical", "numeric", "text"]
Severity = Literal["info", "warning", "critical"]

PRESENCE_COLUMNS = ("feature", "present", "missing")
CATEGORY_COLUMNS = ("feature", "value", "count", "in_baseline")
NUMERIC_COLUMNS = ("feature", "bin", "lower", "upper", "count")
TOKEN_COLUMNS = ("feature", "token", "doc_count", "in_vocab")
TEXT_DOC_COLUMNS = ("feature", "docs", "oov_docs")
VERSION_COLUMNS = ("version", "docs")
VOLUME_COLUMNS = ("start", "docs")


def empty_table(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in columns})


@dataclass(frozen=True)
class Window:
    """A half-open time span [start, end) in UTC."""

    start: datetime
    end: datetime
    # The span the schedule asked for, when a calendar window differs from it (a local day is
    # 23 or 25 hours when clocks change; ``analytics.windows``); None: end - start.
    nominal: float | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware (UTC)")
        if self.end <= self.start:
            raise ValueError("window end must be after its start")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def nominal_seconds(self) -> float:
        """The scheduled span (``seconds`` unless the window follows a local calendar day)."""
        return self.nominal if self.nominal is not None else self.seconds

    def to_dict(self) -> dict[str, str]:
        return {"gte": self.start.isoformat(), "lt": self.end.isoformat()}


@dataclass(frozen=True)
class FeatureBaseline:
    """The reference for one feature (``key`` like ``inputs.country``)."""

    key: str
    kind: FeatureKind
    rows: int  # rows of the reference
    nulls: int  # rows where the feature is null or absent
    # categorical: value -> count over the reference; expected rate of unseen values
    categories: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    unseen_rate: float = 0.0
    # numeric: bin edges (quantiles) and counts per bin as defined in the module docstring
    edges: tuple[float, ...] = ()
    bin_counts: tuple[int, ...] = ()
    quantiles: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # text: token -> document frequency (capped vocabulary), documents with tokens, held-out OOV
    vocabulary: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    text_docs: int = 0
    heldout_docs: int = 0
    heldout_oov_docs: int = 0

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def oov_rate(self) -> float:
        return self.heldout_oov_docs / self.heldout_docs if self.heldout_docs else 0.0


@dataclass(frozen=True)
class Baseline:
    """The reference of one model version; stored as JSON and in ``inferwatch-baselines``
    under id ``<model>:<version>``."""

    model: str
    version: str
    created: datetime
    source: str  # "training:<file>" or "logs:<start>/<end>"
    rows: int
    features: Mapping[str, FeatureBaseline]  # keyed by qualified key, inputs and outputs
    # documents per hour-of-week (0 = Monday 00:00 UTC) per hour of traffic, when taken from logs
    hourly_volume: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def doc_id(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True)
class WindowCounts:
    """Count tables of one model version over one window (columns in the module docstring)."""

    model: str
    version: str
    window: Window
    docs: int
    presence: pd.DataFrame
    categories: pd.DataFrame
    numeric: pd.DataFrame
    tokens: pd.DataFrame
    text_docs: pd.DataFrame


@dataclass(frozen=True)
class ModelCounts:
    model: str
    window: Window
    versions: pd.DataFrame
    volume: pd.DataFrame


class Status(enum.Enum):
    FIRING = "firing"  # the condition holds in this window
    OK = "ok"  # tested and clean (counts towards resolving an open alert)
    SKIPPED = "skipped"  # not tested; ``message`` says why (window too small, no baseline...)


@dataclass(frozen=True)
class Finding:
    """One verdict of one detector on one series in one window. Pure data, JSON-ready."""

    detector: str  # unseen_category, unseen_rate, null_surge, null_creep, feature_vanished,
    # vocabulary_drift, oov_rate, category_drift, numeric_drift, prediction_drift, volume, version
    model: str
    version: str
    feature: str | None  # qualified key, or None for model-level detectors
    status: Status
    severity: Severity
    message: str  # one line a person can act on
    window: Window
    key: str | None = None  # e.g. the unseen value; part of the alert id
    statistic_name: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None  # the alpha the p-value was held to, or the statistic's cut
    effect: float | None = None
    effect_floor: float | None = None
    strong: bool = False  # passes alpha/100: opens an alert on a single window
    observed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    expected: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    examples: tuple[str, ...] = ()
    reason: str | None = None  # SKIPPED: why the test did not run

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "model": self.model,
            "version": self.version,
            "feature": self.feature,
            "key": self.key,
            "status": self.status.value,
            "severity": self.severity,
            "message": self.message,
            "window": self.window.to_dict(),
            "statistic_name": self.statistic_name,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "effect": self.effect,
            "effect_floor": self.effect_floor,
            "strong": self.strong,
            "observed": dict(self.observed),
            "expected": dict(self.expected),
            "examples": list(self.examples),
            "reason": self.reason,
        }
