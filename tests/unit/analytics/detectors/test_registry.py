"""One table says which detectors run on a feature and how many tests they add to alpha's
denominator: what a window runs and what the budget counts cannot drift apart."""

from __future__ import annotations

from inferwatch.analytics.detectors import count_series, evaluate_version
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.registry import FEATURE_DETECTORS, VERSION_TESTS, detectors_for, series_of
from inferwatch.analytics.model import Status

from .factories import baseline, categorical, counts, numeric, text

CAT = categorical("inputs.plan", {"free": 600, "pro": 400}, nulls=10)
NUM = numeric("inputs.age", (30.0, 50.0), (300, 400, 300), nulls=10)
TXT = text("inputs.note", {"late": 400, "refund": 300}, text_docs=1000, heldout_docs=200, heldout_oov_docs=20)


def test_every_detector_of_the_table_reports_on_its_kind_and_nothing_else_runs() -> None:
    base = baseline(CAT, NUM, TXT)
    window = counts(
        1000,
        base=base,
        categories={"inputs.plan": {"free": 590, "pro": 400}},
        numeric={"inputs.age": {0: 300, 1: 390, 2: 300}},
        text_docs={"inputs.note": (990, 99)},
    )
    findings, _ = evaluate_version(window, base, DetectorParams(alpha=1e-4))
    for fb in (CAT, NUM, TXT):
        reported = {f.detector for f in findings if f.feature == fb.key}
        named = [set(d.detectors) for d in detectors_for(fb.kind)]
        assert reported <= set().union(*named), fb.kind
        assert all(reported & names for names in named), fb.kind  # each row ran
    tested = [f for f in findings if f.status is not Status.SKIPPED and f.detector != "unseen_category"]
    per_feature = series_of("categorical") + series_of("numeric") + series_of("text")
    assert count_series(base) == VERSION_TESTS + per_feature == 1 + 14
    assert len(tested) <= count_series(base)


def test_the_table_counts_two_null_tests_for_every_kind() -> None:
    (nulls,) = [d for d in FEATURE_DETECTORS if "null_surge" in d.detectors]
    assert nulls.tests == 2 and all(nulls in detectors_for(k) for k in ("categorical", "numeric", "text"))
