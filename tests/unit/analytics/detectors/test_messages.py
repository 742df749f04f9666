"""What a person reads: every finding's message is one line that starts with the feature it is
about, and its numbers are rounded for reading (no 0.30000000000000004, no "10.0%" beside "10%")."""

from __future__ import annotations

import re

import pytest

from inferwatch.analytics.detectors import evaluate_version
from inferwatch.analytics.detectors.common import pct
from inferwatch.analytics.detectors.params import DetectorParams

from .factories import baseline, categorical, counts, numeric, text

P = DetectorParams(alpha=1e-4)


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (0.0, "0%"),
        (0.25, "25%"),
        (0.041, "4.1%"),
        (0.0999, "10%"),  # 9.99% rounds to 10.0 at one decimal: shown as the other tens are
        (0.09996, "10%"),
        (0.0025, "0.25%"),
        (0.00999, "1%"),
        (0.00003, "0.003%"),
        (1.0, "100%"),
    ],
)
def test_pct_rounds_once_and_writes_a_rate_one_way(rate: float, shown: str) -> None:
    assert pct(rate) == shown


def test_every_message_is_one_line_naming_its_feature_with_rounded_numbers() -> None:
    plan = categorical("inputs.plan", {"free": 6000, "pro": 3000, "team": 1000}, nulls=100, unseen_rate=0.001)
    age = numeric("inputs.age", (0.1, 0.30000000000000004, 0.7), (2500,) * 4, nulls=10)
    review = text("inputs.review", {"late": 3000, "again": 2000, "good": 2500, "bad": 1500}, 5000, 1000, 30)
    base = baseline(plan, age, review)
    window = counts(
        5000,
        base=base,
        categories={"inputs.plan": {"free": 1000, "pro": 1000, "new\nline": 800, "x\u2028y": 500}},
        numeric={"inputs.age": {0: 100, 1: 100, 2: 1000, 3: 2000}},
        tokens={"inputs.review": {"late": 100, "zzz\r\n": 900, "good": 2000}},
        text_docs={"inputs.review": (3000, 1500)},
        presence={"inputs.review": (3000, 2000)},
    )
    findings, _ = evaluate_version(window, base, P)
    assert len(findings) >= 10
    for f in findings:
        assert f.feature is not None and f.message.startswith(f.feature + ":"), f.message
        assert len(f.message.splitlines()) == 1 and "\u2028" not in f.message, f.message
        assert not re.search(r"\d\.\d{5,}", f.message), f.message  # no float noise
        assert not re.search(r"\b10\.0%", f.message), f.message
    drift = next(f for f in findings if f.detector == "numeric_drift")
    assert "'[0.1, 0.3)'" in drift.message
