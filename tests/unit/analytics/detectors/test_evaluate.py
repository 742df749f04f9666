"""The entry points: degenerate inputs, small-window merging, the state, the alpha budget."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from inferwatch.analytics.detectors import DetectorState, count_series, evaluate_version, nulls
from inferwatch.analytics.detectors.params import ALPHA_MAX, DetectorParams
from inferwatch.analytics.detectors.stats import Cusum
from inferwatch.analytics.model import Status, WindowCounts

from .factories import MODEL, baseline, categorical, counts, firing, numeric, pick, text, window

P = DetectorParams(alpha=1e-4)
PLAN = categorical("inputs.plan", {"free": 6000, "pro": 3000, "team": 1000}, nulls=100)
AGE = numeric("inputs.age", (30.0,), (5000, 5000))
REVIEW = text("inputs.review", {"good": 10, "bad": 5}, text_docs=15, heldout_docs=10, heldout_oov_docs=1)
BASE = baseline(PLAN, AGE, REVIEW)


def test_from_budget_divides_the_weekly_budget_over_series_and_windows() -> None:
    p = DetectorParams.from_budget(1.0, series=150, windows_per_week=168)
    assert p.alpha == pytest.approx(1 / (150 * 168))  # ~4e-5, as in docs/architecture.md (Detectors)
    assert p.strong_alpha == pytest.approx(p.alpha / 100)
    assert DetectorParams.from_budget(1e9, series=1, windows_per_week=1).alpha == ALPHA_MAX
    assert DetectorParams.from_budget(-1, series=0, windows_per_week=math.nan).alpha == ALPHA_MAX
    assert DetectorParams.from_budget(1.0, 10, 2016, js_floor=0.2).js_floor == 0.2
    with pytest.raises(ValueError):
        DetectorParams(alpha=0.0)


def test_count_series_counts_the_tests_a_window_runs() -> None:
    # latency 1 per version; nulls (2) + categorical 4 (new value, rate, drift on two horizons),
    # numeric 2 (two horizons), text 2
    assert count_series(BASE) == 1 + 6 + 4 + 4
    assert count_series(baseline()) == 1


def test_zero_documents_is_one_skip() -> None:
    findings, _ = evaluate_version(counts(0, base=BASE), BASE, P)
    assert [(f.detector, f.status) for f in findings] == [("version", Status.SKIPPED)]
    assert "no documents" in findings[0].message


def test_a_baseline_without_features_is_a_skip() -> None:
    findings, _ = evaluate_version(counts(10), baseline(), P)
    assert findings[0].status is Status.SKIPPED and "no features" in findings[0].message


def test_empty_tables_without_columns_never_raise() -> None:
    empty = pd.DataFrame()
    w = WindowCounts(MODEL, "1", window(), 500, empty, empty, empty, empty, empty)
    findings, _ = evaluate_version(w, BASE, P)
    # every feature is absent from the presence table: vanished, for all three
    assert {(d, k) for d, k, _ in firing(findings) if d == "feature_vanished"} == {
        ("feature_vanished", "inputs.age"),
        ("feature_vanished", "inputs.plan"),
        ("feature_vanished", "inputs.review"),
    }
    assert all(
        f.status is not Status.FIRING or f.detector in {"feature_vanished", "null_surge", "null_creep"}
        for f in findings
    )


def test_nan_and_garbage_counts_are_read_as_zero() -> None:
    w = counts(100, base=BASE)
    bad = WindowCounts(
        MODEL,
        "1",
        window(),
        100,
        pd.DataFrame({"feature": ["inputs.plan"], "present": [float("nan")], "missing": ["x"]}),
        pd.DataFrame({"feature": ["inputs.plan"], "value": [None], "count": [5], "in_baseline": [False]}),
        w.numeric,
        w.tokens,
        w.text_docs,
    )
    findings, _ = evaluate_version(bad, BASE, P)
    assert findings  # verdicts or skips, not an exception


def test_every_finding_names_the_window_and_version() -> None:
    findings, _ = evaluate_version(counts(100, base=BASE), BASE, P)
    assert {f.window for f in findings} == {window()}
    assert {(f.model, f.version) for f in findings} == {(MODEL, "1")}
    for f in findings:
        json.dumps(f.to_dict())  # JSON-ready


def test_small_windows_accumulate_for_every_test_and_the_state_round_trips_through_json() -> None:
    small = counts(200, base=BASE, categories={"inputs.plan": {"free": 120, "pro": 60, "team": 20}})
    findings, state = evaluate_version(small, BASE, P)
    # no missing value at all: below the floor whatever n, so clean, though merged for power
    assert pick(findings, "null_surge", "inputs.plan").status is Status.OK
    assert state.pending["null_surge|inputs.plan"]["n"] == 200
    restored = DetectorState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.to_dict() == state.to_dict()
    findings, after = evaluate_version(small, BASE, P, state=restored)
    assert after.pending["null_surge|inputs.plan"] == {"windows": 2, "k": 0, "n": 400}
    assert restored.pending["null_surge|inputs.plan"]["windows"] == 1  # the input state is not modified


def test_a_damaged_state_starts_afresh() -> None:
    assert DetectorState.from_dict(None).to_dict() == DetectorState().to_dict()
    st = DetectorState.from_dict(
        {"pending": {"x": "nonsense", "y": {"windows": 0}}, "cusum": {"a": {"s": "nan?"}}}
    )
    assert st.pending == {} and st.cusum == {}
    st = DetectorState.from_dict(
        {"cusum": {"a": {"s": 2.5, "m": 3, "n": 100}}, "high_cardinality": ["inputs.id"]}
    )
    assert st.cusum == {"a": Cusum(2.5, 3, 100)} and st.high_cardinality == {"inputs.id"}


def test_an_unexpected_error_in_one_feature_is_a_skip_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = nulls.evaluate

    def broken(ctx, key, fb, fc, docs):  # type: ignore[no-untyped-def]
        if key == "inputs.age":
            raise ZeroDivisionError("boom")
        return real(ctx, key, fb, fc, docs)

    monkeypatch.setattr(nulls, "evaluate", broken)
    findings, _ = evaluate_version(counts(3000, base=BASE), BASE, P)
    err = [f for f in findings if f.feature == "inputs.age"]
    assert len(err) == 1 and err[0].status is Status.SKIPPED and "ZeroDivisionError: boom" in err[0].message
    assert any(f.feature == "inputs.plan" for f in findings)
