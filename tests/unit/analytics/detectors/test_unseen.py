"""Values never seen in training: one finding per new value, the unseen-rate surge, and the
high-cardinality reclassification."""

from __future__ import annotations

from dataclasses import replace

from inferwatch.analytics.detectors import DetectorState, evaluate_version
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.stats import binom_upper_p
from inferwatch.analytics.model import Status, WindowCounts

from .factories import baseline, categorical, counts, firing, pick, window

P = DetectorParams(alpha=1e-4)
KEY = "inputs.country"
COUNTRY = categorical(KEY, {"US": 5000, "DE": 3000, "FR": 2000}, unseen_rate=0.002)
BASE = baseline(COUNTRY)


def test_new_values_and_the_unseen_rate_fire_with_an_actionable_message() -> None:
    window = counts(2310, base=BASE, categories={KEY: {"US": 1200, "DE": 700, "FR": 316, "BR": 61, "MX": 33}})
    findings, _ = evaluate_version(window, BASE, P)
    rate = pick(findings, "unseen_rate")
    assert rate.status is Status.FIRING and rate.strong and rate.severity == "critical"
    assert rate.message == (
        "inputs.country: 4.1% of 2,310 values were never seen in training (baseline 0.2%), new: 'BR' 61, 'MX' 33"
    )
    assert rate.examples == ("BR", "MX")
    assert rate.effect_floor == 0.005
    br = pick(findings, "unseen_category", key="BR")
    assert br.status is Status.FIRING and br.severity == "critical"
    assert br.p_value == binom_upper_p(61, 2310, 0.002)
    assert (
        br.message
        == "inputs.country: new value 'BR' seen 61 times in 2,310 values (2.6%), never seen in training"
    )
    assert pick(findings, "unseen_category", key="MX").status is Status.FIRING


def test_a_value_below_c_min_gets_no_finding_on_an_open_feature() -> None:
    window = counts(2000, base=BASE, categories={KEY: {"US": 1000, "DE": 600, "FR": 398, "XX": 2}})
    findings, _ = evaluate_version(window, BASE, P)
    assert [f for f in findings if f.detector == "unseen_category"] == []
    assert pick(findings, "unseen_rate").status is Status.OK


def test_a_closed_vocabulary_fires_on_the_first_occurrence() -> None:
    window = counts(2000, base=BASE, categories={KEY: {"US": 1000, "DE": 600, "FR": 399, "XX": 1}})
    findings, _ = evaluate_version(window, BASE, P, closed=frozenset({KEY}))
    f = pick(findings, "unseen_category", key="XX")
    assert f.status is Status.FIRING and f.strong
    assert "outside the closed vocabulary" in f.message
    # closed keys may be given bare, without inputs./outputs.
    findings, _ = evaluate_version(window, BASE, P, closed=frozenset({"country"}))
    assert pick(findings, "unseen_category", key="XX").status is Status.FIRING


def test_new_values_at_the_expected_unseen_rate_do_not_fire() -> None:
    # a long-tailed feature: 5% of values are expected to be new
    tail = baseline(categorical(KEY, {"a": 5000, "b": 4500}, unseen_rate=0.05))
    values = {"a": 1000, "b": 900, **{f"new{i}": 3 for i in range(30)}, "z": 10}
    findings, _ = evaluate_version(counts(2000, base=tail, categories={KEY: values}), tail, P)
    assert firing(findings) == []
    assert pick(findings, "unseen_category", key="z").status is Status.OK


def test_exploding_unseen_values_reclassify_the_feature_as_high_cardinality() -> None:
    values = {"US": 1000, "DE": 600, "FR": 400, **{f"id{i:03d}": 5 for i in range(60)}}
    findings, state = evaluate_version(counts(2300, base=BASE, categories={KEY: values}), BASE, P)
    assert KEY in state.high_cardinality
    assert [f for f in findings if f.detector == "unseen_category"] == []
    rate = pick(findings, "unseen_rate")
    assert rate.status is Status.FIRING and "[high-cardinality: watched by rate only]" in rate.message
    assert rate.observed["distinct_unseen"] == 60
    # later windows stay rate-only, even for one loud value
    nxt = counts(2000, base=BASE, categories={KEY: {"US": 1000, "DE": 600, "FR": 350, "BIG": 50}})
    findings, state = evaluate_version(nxt, BASE, P, state=state)
    assert [f for f in findings if f.detector == "unseen_category"] == []
    assert KEY in state.high_cardinality


def test_per_value_findings_are_capped() -> None:
    params = replace(P, high_cardinality_values=1000, max_value_findings=4)
    values = {"US": 1000, **{f"v{i}": 10 for i in range(10)}}
    findings, _ = evaluate_version(counts(1100, base=BASE, categories={KEY: values}), BASE, params)
    assert len([f for f in findings if f.detector == "unseen_category"]) == 4


def test_an_all_null_window_and_an_empty_baseline_are_skips_with_reasons() -> None:
    findings, _ = evaluate_version(counts(100, base=BASE, presence={KEY: (0, 100)}), BASE, P)
    assert "no non-null values in this window" in pick(findings, "unseen_rate").message
    empty = baseline(categorical(KEY, {}, nulls=10))
    findings, _ = evaluate_version(counts(100, base=empty, categories={KEY: {"a": 100}}), empty, P)
    assert "the baseline has no values" in pick(findings, "unseen_rate").message


def test_a_configured_floor_of_a_feature_replaces_the_default_for_that_feature_only() -> None:
    """models.<m>.floors.country.unseen: 0.05 -- 4.1% unseen is significant but under that floor."""
    window = counts(2310, base=BASE, categories={KEY: {"US": 1200, "DE": 700, "FR": 316, "BR": 61, "MX": 33}})
    findings, _ = evaluate_version(window, BASE, P, floors={"country": {"unseen": 0.05}})
    rate = pick(findings, "unseen_rate")
    assert rate.status is Status.OK and rate.effect_floor == 0.05
    findings, _ = evaluate_version(window, BASE, P, floors={"inputs.other": {"unseen": 0.05}})
    assert pick(findings, "unseen_rate").status is Status.FIRING


RARE = categorical(KEY, {"US": 5000, "DE": 3000, "FR": 2000})  # p0 = 1/10,000


def daily(i: int, extra: dict[str, int]) -> WindowCounts:
    return counts(
        900,
        base=baseline(RARE),
        categories={KEY: {"US": 450, "DE": 270, "FR": 180 - sum(extra.values()), **extra}},
        win=window(i),
    )


def test_a_new_value_seen_once_a_window_alerts_by_name_once_the_evidence_adds_up() -> None:
    """Once in each window of 900: never 3 sightings in one window, so it used to stay silent
    for ever. Its sightings accumulate across windows against every value since its first."""
    base = baseline(RARE)
    state = DetectorState()
    statuses = []
    for i in range(8):
        findings, state = evaluate_version(daily(i, {"Korea": 1}), base, P, state=state)
        hits = [f for f in findings if f.detector == "unseen_category" and f.key == "Korea"]
        statuses.append(hits[0].status if hits else None)
    first = statuses.index(Status.FIRING)
    assert statuses[:first] == [None, None] + [Status.OK] * (first - 2)  # c_min: 3 sightings first
    assert statuses[first:] == [Status.FIRING] * (8 - first)  # and it stays firing while it is seen
    korea = pick(findings, "unseen_category", key="Korea")
    assert korea.observed["count"] == 8 and korea.observed["n"] == 7200 and korea.observed["windows"] == 8
    assert korea.message == (
        "inputs.country: new value 'Korea' seen 8 times in 7,200 values over 8 windows (0.11%), never seen in training"
    )
    assert DetectorState.from_dict(state.to_dict()) == state


def test_a_new_value_at_the_expected_rate_is_forgotten() -> None:
    state = DetectorState()
    _, state = evaluate_version(daily(0, {"Oz": 1}), BASE, P, state=state)  # p0 = 0.2%: one is expected
    assert state.unseen[KEY] == {"Oz": (1, 900, 1)}
    for i in range(1, 3):
        _, state = evaluate_version(daily(i, {}), BASE, P, state=state)
    assert KEY not in state.unseen


def test_an_accepted_value_is_never_new_again() -> None:
    window = counts(2310, base=BASE, categories={KEY: {"US": 1200, "DE": 700, "FR": 316, "BR": 61, "MX": 33}})
    findings, state = evaluate_version(window, BASE, P, accepted={KEY: frozenset({"BR"})})
    assert [f.key for f in findings if f.detector == "unseen_category"] == ["MX"]
    rate = pick(findings, "unseen_rate")
    assert rate.observed["count"] == 33 and rate.examples == ("MX",)
    assert "BR" not in state.unseen[KEY]
