"""The per-feature detectors, one table: which run on which kind of feature, and how many tests
each adds to a window (the denominator of the false-alarm budget's alpha). ``evaluate_version``
runs this table and ``count_series`` sums it, so the two can never disagree.

A feature_vanished finding is a near-certain event, not a test: the nulls row counts two
(null_surge, null_creep). An unseen value is one test however many values are new: any single
value's count is bounded by the window's unseen total, which is what its p-value tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from inferwatch.analytics.detectors import drift, nulls, unseen, vocabulary
from inferwatch.analytics.detectors.common import Context
from inferwatch.analytics.detectors.slices import FeatureCounts
from inferwatch.analytics.model import FeatureBaseline, FeatureKind, Finding

ALL_KINDS: frozenset[FeatureKind] = frozenset({"categorical", "numeric", "text"})


@dataclass(frozen=True)
class FeatureInput:
    """What a per-feature detector gets about one feature in one window."""

    key: str
    baseline: FeatureBaseline
    counts: FeatureCounts
    docs: int  # documents of the window (a feature absent from all of them is missing in each)
    closed: bool = False  # a closed vocabulary: one new value is enough
    accepted: frozenset[str] = field(default_factory=frozenset)  # values acknowledged as normal


@dataclass(frozen=True)
class Descriptor:
    detectors: tuple[str, ...]  # the ``Finding.detector`` names it reports
    tests: int  # tests one window adds to alpha's denominator
    kinds: frozenset[FeatureKind]
    run: Callable[[Context, FeatureInput], list[Finding]]


FEATURE_DETECTORS: tuple[Descriptor, ...] = (
    Descriptor(
        ("feature_vanished", "null_surge", "null_creep"),
        2,
        ALL_KINDS,
        lambda ctx, x: nulls.evaluate(ctx, x.key, x.baseline, x.counts, x.docs),
    ),
    Descriptor(
        ("unseen_category", "unseen_rate"),
        2,
        frozenset({"categorical"}),
        lambda ctx, x: unseen.evaluate(ctx, x.key, x.baseline, x.counts, x.closed, x.accepted),
    ),
    # the window and the long horizon (a week): two tests
    Descriptor(
        ("category_drift", "prediction_drift"),
        2,
        frozenset({"categorical"}),
        lambda ctx, x: drift.category(ctx, x.key, x.baseline, x.counts),
    ),
    Descriptor(
        ("numeric_drift", "prediction_drift"),
        2,
        frozenset({"numeric"}),
        lambda ctx, x: drift.numeric(ctx, x.key, x.baseline, x.counts),
    ),
    Descriptor(
        ("oov_rate",),
        1,
        frozenset({"text"}),
        lambda ctx, x: [vocabulary.oov_rate(ctx, x.key, x.baseline, x.counts)],
    ),
    Descriptor(
        ("vocabulary_drift",),
        1,
        frozenset({"text"}),
        lambda ctx, x: [vocabulary.drift(ctx, x.key, x.baseline, x.counts)],
    ),
)


# Per version, whatever its features: the latency test (detectors/latency.py).
VERSION_TESTS = 1


def detectors_for(kind: FeatureKind) -> tuple[Descriptor, ...]:
    return tuple(d for d in FEATURE_DETECTORS if kind in d.kinds)


def series_of(kind: FeatureKind) -> int:
    """Tests one window runs on a feature of this kind."""
    return sum(d.tests for d in detectors_for(kind))


def run_feature(ctx: Context, x: FeatureInput) -> list[Finding]:
    out: list[Finding] = []
    for d in detectors_for(x.baseline.kind):
        out += d.run(ctx, x)
    return out
