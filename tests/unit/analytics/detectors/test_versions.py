"""Model versions: new, vanished, without a baseline."""

from __future__ import annotations

from inferwatch.analytics.detectors import evaluate_model, evaluate_version
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.model import Status

from .factories import baseline, categorical, counts, model_counts, pick

P = DetectorParams(alpha=1e-4)
BASE = baseline(categorical("inputs.plan", {"a": 10}))


def test_a_new_version_is_an_info_finding_that_opens_at_once() -> None:
    findings = evaluate_model(model_counts({"1": 900, "2": 100}), frozenset({"1"}), {"1": BASE}, P)
    f = pick(findings, "version", key="new")
    assert f.status is Status.FIRING and f.severity == "info" and f.strong
    assert f.version == "2"
    assert (
        f.message
        == "churn: new version '2' is serving (100 predictions); it has no baseline yet: build one to watch it"
    )


def test_a_known_version_gone_from_traffic_is_a_warning_needing_two_windows() -> None:
    findings = evaluate_model(model_counts({"2": 1000}), frozenset({"1", "2"}), {"1": BASE, "2": BASE}, P)
    f = pick(findings, "version", key="vanished")
    assert f.status is Status.FIRING and f.severity == "warning" and not f.strong
    assert f.version == "1"
    assert "version '1' served no predictions" in f.message


def test_no_traffic_at_all_is_a_volume_matter_not_a_vanished_version() -> None:
    findings = evaluate_model(model_counts({}), frozenset({"1"}), {"1": BASE}, P)
    assert [f for f in findings if f.detector == "version"] == []


def test_a_version_without_a_baseline_gets_a_warning_never_an_exception() -> None:
    findings, state = evaluate_version(counts(100, version="3"), None, P)
    assert len(findings) == 1
    f = findings[0]
    assert (f.detector, f.key, f.status, f.severity, f.version) == (
        "version",
        "no_baseline",
        Status.FIRING,
        "warning",
        "3",
    )
    assert "inferwatch baseline build --model churn --version 3" in f.message
    assert state.to_dict()["pending"] == {}
