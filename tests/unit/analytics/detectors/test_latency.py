"""Latency regressions against the version's own history: one alert per regression."""

from __future__ import annotations

import numpy as np

from inferwatch.analytics.alerts import AlertState, apply_window
from inferwatch.analytics.detectors import DetectorState, evaluate_latency
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.model import Finding, Status

from .factories import counts, window

P = DetectorParams(alpha=1e-4)
USUAL = {50.0: 20.0, 95.0: 50.0, 99.0: 80.0}


def run(
    latencies: list[dict[float, float]], state: DetectorState | None = None
) -> tuple[list[Finding], DetectorState]:
    state = state or DetectorState()
    out = []
    for i, lat in enumerate(latencies):
        out.append(evaluate_latency(counts(400, win=window(i)), lat, P, state))
    return out, state


def jitter(rng: np.random.Generator, base: dict[float, float], sd: float = 0.05) -> dict[float, float]:
    return {p: v * float(np.exp(rng.normal(0, sd))) for p, v in base.items()}


def test_it_learns_first_then_fires_on_a_regression_naming_the_slow_percentiles() -> None:
    rng = np.random.default_rng(1)
    findings, state = run([jitter(rng, USUAL) for _ in range(12)])
    assert [f.status for f in findings[:8]] == [Status.SKIPPED] * 8
    assert findings[0].reason == "learning its latency: 0 of 8 windows seen"
    assert {f.status for f in findings[8:]} == {Status.OK}
    slow = {50.0: 21.0, 95.0: 160.0, 99.0: 300.0}
    (f,), state = run([slow], state)
    assert f.status is Status.FIRING and f.detector == "latency" and f.feature == "prediction.latency_ms"
    assert f.severity == "critical"  # p99 more than doubled
    assert f.message.startswith(
        "churn 1: predictions got slower: p95 160 ms (usually 50 ms, x3.2), p99 300 ms"
    )
    assert "p50" not in f.message
    assert DetectorState.from_dict(state.to_dict()) == state


def test_a_regression_that_lasts_is_one_alert_that_resolves_when_it_ends() -> None:
    rng = np.random.default_rng(2)
    slow = {50.0: 60.0, 95.0: 150.0, 99.0: 240.0}
    plan = [USUAL] * 10 + [slow] * 5 + [USUAL] * 4
    state, alerts, transitions = DetectorState(), dict[str, AlertState](), []
    for i, base in enumerate(plan):
        f = evaluate_latency(counts(400, win=window(i)), jitter(rng, base), P, state)
        alerts, changes = apply_window(alerts, [f], window(i).end, [("churn", "1")])
        transitions += [(i, c.transition) for c in changes]
    assert transitions == [
        (10, "opened"),
        (11, "updated"),
        (12, "updated"),
        (13, "updated"),
        (14, "updated"),
        (17, "resolved"),
    ]


def test_steady_noisy_latency_never_fires() -> None:
    rng = np.random.default_rng(3)
    findings, _ = run([jitter(rng, USUAL, sd=0.15) for _ in range(300)])
    assert not [f for f in findings if f.status is Status.FIRING]


def test_no_latency_in_the_window_is_a_skip_with_the_reason() -> None:
    (f,), _ = run([{}])
    assert f.status is Status.SKIPPED and f.reason == "no latency_ms in this window's predictions"
