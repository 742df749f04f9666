from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import pytest

from inferwatch.analytics.alerts.sink import LocalAlertSink
from inferwatch.analytics.baseline.store import LocalBaselineStore
from inferwatch.analytics.jobs import Evaluator, aligned_window, model_features
from inferwatch.analytics.model import (
    Baseline,
    FeatureBaseline,
    FeatureKind,
    ModelCounts,
    Status,
    Window,
    WindowCounts,
)
from inferwatch.analytics.sources.tables import (
    categories_table,
    numeric_table,
    presence_table,
    text_docs_table,
    tokens_table,
    versions_table,
    volume_table,
)
from inferwatch.analytics.state_store import StateStore
from inferwatch.core.config import parse_config

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
MODEL = "churn"


def window(i: int) -> Window:
    return Window(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1))


BASELINE = Baseline(
    model=MODEL,
    version="1",
    created=T0 - timedelta(days=7),
    source="training:train.csv",
    rows=1000,
    features=MappingProxyType(
        {
            "inputs.country": FeatureBaseline(
                "inputs.country", "categorical", 1000, 0, categories=MappingProxyType({"DE": 600, "FR": 400})
            )
        }
    ),
)


def counts(w: Window, de: int, fr: int, xx: int = 0) -> WindowCounts:
    cats = [("inputs.country", "DE", de, True), ("inputs.country", "FR", fr, True)]
    if xx:
        cats.append(("inputs.country", "XX", xx, False))
    docs = de + fr + xx
    return WindowCounts(
        model=MODEL,
        version="1",
        window=w,
        docs=docs,
        presence=presence_table([("inputs.country", docs, 0)]),
        categories=categories_table(cats),
        numeric=numeric_table([]),
        tokens=tokens_table([]),
        text_docs=text_docs_table([]),
    )


@dataclass
class StubSource:
    """A CountSource answering literal tables per window end; records what it was asked."""

    tables: dict[datetime, WindowCounts]
    asked: list[tuple[str, str, Window, Mapping[str, FeatureKind]]] = field(default_factory=list)

    def model_counts(self, model: str, window: Window) -> ModelCounts:
        wc = self.tables.get(window.end)
        rows = [("1", wc.docs)] if wc is not None else []
        return ModelCounts(model, window, versions_table(rows), volume_table([]))

    def window_counts(
        self,
        model: str,
        version: str,
        window: Window,
        baseline: Baseline | None,
        kinds: Mapping[str, FeatureKind],
    ) -> WindowCounts:
        self.asked.append((model, version, window, dict(kinds)))
        return self.tables[window.end]


def evaluator(tmp_path: Path, source: StubSource) -> tuple[Evaluator, LocalAlertSink]:
    baselines = LocalBaselineStore(tmp_path / "baselines", fsync=False)
    baselines.save(BASELINE)
    sink = LocalAlertSink(tmp_path / "alerts", fsync=False)
    ev = Evaluator(
        source=source,
        baselines=baselines,
        sink=sink,
        states=StateStore(tmp_path / "state", fsync=False),
        features={MODEL: {"inputs.country": "categorical"}},
        closed={MODEL: frozenset({"inputs.country"})},
        interval=3600,
    )
    return ev, sink


def test_aligned_window_ends_at_the_last_step_before_the_moment() -> None:
    at = datetime(2026, 11, 22, 10, 7, 30, tzinfo=UTC)
    assert aligned_window(at, 3600, 300) == Window(
        datetime(2026, 11, 22, 9, 5, tzinfo=UTC), datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    )
    assert aligned_window(at, 3600, 300) == aligned_window(at + timedelta(seconds=100), 3600, 300)


def test_model_features_qualifies_inputs_outputs_and_closed_vocabularies() -> None:
    cfg = parse_config(
        """
models:
  churn:
    features: {country: categorical, age: numeric}
    outputs: {label: categorical}
    categorical_closed: [country]
""",
        {},
    )
    features, closed = model_features(cfg)
    assert features == {
        "churn": {"inputs.country": "categorical", "inputs.age": "numeric", "outputs.label": "categorical"}
    }
    assert closed == {"churn": frozenset({"inputs.country"})}


def test_a_new_value_opens_one_alert_and_rerunning_the_window_duplicates_nothing(tmp_path: Path) -> None:
    source = StubSource({window(0).end: counts(window(0), 600, 390, xx=10)})
    ev, sink = evaluator(tmp_path, source)
    first = ev.evaluate(MODEL, window(0))
    opened = [c for c in first.changes if c.transition == "opened"]
    assert [
        (c.state.detector, c.state.feature, c.state.key)
        for c in opened
        if c.state.detector == "unseen_category"
    ] == [("unseen_category", "inputs.country", "XX")]
    assert first.counts["1"].docs == 1000
    alerts_before = sink.alerts_path.read_bytes()
    history_before = sink.history_path.read_bytes()

    again = ev.evaluate(MODEL, window(0))
    assert again.replay and again.changes == []
    assert any(f.detector == "unseen_category" and f.status is Status.FIRING for f in again.findings)
    assert sink.alerts_path.read_bytes() == alerts_before
    assert sink.history_path.read_bytes() == history_before


def test_alerts_resolve_after_clean_windows_and_state_survives_a_new_evaluator(tmp_path: Path) -> None:
    tables = {window(0).end: counts(window(0), 600, 390, xx=10)}
    later = [1, 2, 3, 28]  # the incident is said resolved once its cooldown (a day) passed quiet
    tables.update({window(i).end: counts(window(i), 600, 400) for i in later})
    source = StubSource(tables)
    ev, sink = evaluator(tmp_path, source)
    ev.evaluate(MODEL, window(0))
    for i in later:
        ev, sink = evaluator(tmp_path, source)  # a restarted worker: state comes from disk
        ev.evaluate(MODEL, window(i))
    doc = next(d for d in sink.alerts().values() if d["detector"] == "unseen_category")
    assert doc["status"] == "resolved" and doc["key"] == "XX"
    actions = [h["event"]["action"] for h in sink.history() if h["detector"] == "unseen_category"]
    assert actions == ["opened", "resolving", "resolved"]
    (incident,) = sink.incidents().values()
    assert incident["status"] == "resolved" and incident["incident"]["resolved"] == window(3).end.isoformat()


def test_kinds_passed_to_the_source_come_from_config_and_baseline(tmp_path: Path) -> None:
    source = StubSource({window(0).end: counts(window(0), 600, 400)})
    ev, _ = evaluator(tmp_path, source)
    ev.evaluate(MODEL, window(0))
    assert source.asked == [(MODEL, "1", window(0), {"inputs.country": "categorical"})]


def test_a_version_without_baseline_is_a_finding_not_an_exception(tmp_path: Path) -> None:
    source = StubSource({window(0).end: counts(window(0), 600, 400)})
    ev, _ = evaluator(tmp_path, source)
    ev.baselines = LocalBaselineStore(tmp_path / "empty")
    result = ev.evaluate(MODEL, window(0))
    assert any(f.detector == "version" and f.key == "no_baseline" for f in result.findings)


def test_a_window_without_documents_evaluates_nothing_and_writes_nothing(tmp_path: Path) -> None:
    source = StubSource({})
    ev, sink = evaluator(tmp_path, source)
    result = ev.evaluate(MODEL, window(0))
    assert result.changes == [] and result.counts == {}
    assert sink.alerts() == {}


@pytest.mark.parametrize("budget", [0.1, 10.0])
def test_params_follow_the_false_alarm_budget(tmp_path: Path, budget: float) -> None:
    ev, _ = evaluator(tmp_path, StubSource({}))
    ev.false_alarms_per_week = budget
    p = ev.params_for(BASELINE)
    windows_per_week = 7 * 24
    from inferwatch.analytics.detectors import count_series

    assert p.alpha == pytest.approx(budget / (count_series(BASELINE) * windows_per_week))


def test_the_detectors_merge_windows_under_the_configured_min_window_docs(tmp_path: Path) -> None:
    ev, _ = evaluator(tmp_path, StubSource({}))
    assert ev.params_for(BASELINE).min_window_docs == 200  # analytics.min_window_docs default
    ev.min_window_docs = 5000
    assert ev.params_for(BASELINE).min_window_docs == 5000
    ev.overrides = {"min_window_docs": 7}
    assert ev.params_for(BASELINE).min_window_docs == 7


HOURLY = BASELINE.__class__(
    model=BASELINE.model,
    version=BASELINE.version,
    created=BASELINE.created,
    source=BASELINE.source,
    rows=BASELINE.rows,
    features=BASELINE.features,
    hourly_volume=MappingProxyType(dict.fromkeys(range(168), 1000.0)),
)


def test_a_volume_alert_resolves_after_three_normal_windows(tmp_path: Path) -> None:
    """Volume findings carry version "*": the window must count as evaluated for it."""
    tables = {window(i).end: counts(window(i), 600, 400) for i in (0, 2, 3, 4)}  # window 1: silence
    source = StubSource(tables)
    ev, sink = evaluator(tmp_path, source)
    ev.baselines.save(HOURLY)
    transitions = []
    for i in range(5):
        result = ev.evaluate(MODEL, window(i))
        transitions += [(i, c.transition) for c in result.changes if c.state.detector == "volume"]
    assert transitions == [(1, "opened"), (4, "resolved")]
    doc = next(d for d in sink.alerts().values() if d["detector"] == "volume")
    assert doc["status"] == "resolved" and doc["version"] == "*"


@dataclass
class TwoVersionSource:
    """Version "1" and version "2" both serve; records the baseline each was counted against."""

    asked: dict[str, Baseline | None] = field(default_factory=dict)

    def model_counts(self, model: str, window: Window) -> ModelCounts:
        return ModelCounts(model, window, versions_table([("1", 1000), ("2", 1000)]), volume_table([]))

    def window_counts(
        self,
        model: str,
        version: str,
        window: Window,
        baseline: Baseline | None,
        kinds: Mapping[str, FeatureKind],
    ) -> WindowCounts:
        self.asked[version] = baseline
        c = counts(window, 600, 400) if version == "1" else counts(window, 100, 100, xx=800)
        return WindowCounts(
            model, version, window, c.docs, c.presence, c.categories, c.numeric, c.tokens, c.text_docs
        )


def test_two_versions_are_each_evaluated_against_their_own_baseline(tmp_path: Path) -> None:
    source = TwoVersionSource()
    ev, _ = evaluator(tmp_path, source)  # type: ignore[arg-type]
    v2 = Baseline(
        model=MODEL,
        version="2",
        created=T0,
        source="training:v2.csv",
        rows=1000,
        features=MappingProxyType(
            {
                "inputs.country": FeatureBaseline(
                    "inputs.country",
                    "categorical",
                    1000,
                    0,
                    categories=MappingProxyType({"XX": 800, "DE": 100, "FR": 100}),
                )
            }
        ),
    )
    ev.baselines.save(v2)
    result = ev.evaluate(MODEL, window(0))
    assert {v: b.version if b else None for v, b in source.asked.items()} == {"1": "1", "2": "2"}
    assert sorted(result.counts) == ["1", "2"]
    by_version = {(f.version, f.detector) for f in result.findings if f.status is Status.FIRING}
    assert by_version == set()  # XX, unseen for version 1, is the norm of version 2's baseline
    assert not any(f.key == "no_baseline" for f in result.findings)


def test_a_second_version_without_a_baseline_is_a_finding_and_the_first_is_still_tested(
    tmp_path: Path,
) -> None:
    source = TwoVersionSource()
    ev, sink = evaluator(tmp_path, source)  # type: ignore[arg-type]
    result = ev.evaluate(MODEL, window(0))
    assert source.asked["2"] is None and source.asked["1"] is not None
    (missing,) = [f for f in result.findings if f.key == "no_baseline"]
    assert missing.version == "2" and missing.status is Status.FIRING
    assert any(f.version == "1" and f.detector == "category_drift" for f in result.findings)
    assert any(d["key"] == "no_baseline" and d["status"] == "open" for d in sink.alerts().values())


def test_an_older_window_after_a_newer_one_writes_nothing_and_keeps_the_state(tmp_path: Path) -> None:
    tables = {window(i).end: counts(window(i), 600, 400, xx=5) for i in range(3)}
    ev, sink = evaluator(tmp_path, StubSource(tables))
    ev.evaluate(MODEL, window(0))
    ev.evaluate(MODEL, window(2))
    state_file = ev.states.path(MODEL).read_bytes()
    alerts, history = sink.alerts(), sink.history()
    late = ev.evaluate(MODEL, window(1))
    assert late.replay and late.changes == []
    assert ev.states.path(MODEL).read_bytes() == state_file
    assert sink.alerts() == alerts and sink.history() == history


def test_a_crash_while_writing_alerts_leaves_the_state_as_before_and_the_rerun_writes_once(
    tmp_path: Path,
) -> None:
    tables = {window(i).end: counts(window(i), 600, 400, xx=5) for i in range(2)}
    ev, sink = evaluator(tmp_path, StubSource(tables))
    ev.evaluate(MODEL, window(0))
    before = ev.states.path(MODEL).read_bytes()

    class Crash(Exception):
        pass

    def crash(changes: object, timestamp: str) -> None:
        raise Crash

    ev.sink = type("CrashingSink", (), {"write": staticmethod(crash)})()
    with pytest.raises(Crash):
        ev.evaluate(MODEL, window(1))
    assert ev.states.path(MODEL).read_bytes() == before  # the window was not taken as done
    ev.sink = sink
    result = ev.evaluate(MODEL, window(1))
    assert not result.replay
    ids = [h["history_id"] for h in sink.history()]
    assert len(ids) == len(set(ids))
    assert ("XX", "opened") in [(h["key"], h["event"]["action"]) for h in sink.history()]


@dataclass
class SameDocsSource:
    """Every window holds the same hour of traffic: 100 documents, 3 without a country."""

    def model_counts(self, model: str, window: Window) -> ModelCounts:
        return ModelCounts(model, window, versions_table([("1", 100)]), volume_table([]))

    def window_counts(
        self,
        model: str,
        version: str,
        window: Window,
        baseline: Baseline | None,
        kinds: Mapping[str, FeatureKind],
    ) -> WindowCounts:
        return WindowCounts(
            model=MODEL,
            version="1",
            window=window,
            docs=100,
            presence=presence_table([("inputs.country", 97, 3)]),
            categories=categories_table(
                [("inputs.country", "DE", 58, True), ("inputs.country", "FR", 39, True)]
            ),
            numeric=numeric_table([]),
            tokens=tokens_table([]),
            text_docs=text_docs_table([]),
        )


def test_overlapping_windows_do_not_count_the_same_documents_again(tmp_path: Path) -> None:
    """analytics.window 1h evaluated every analytics.interval 5m (the defaults): each document
    is in twelve windows. Merging small windows and the CUSUM must not take those twelve looks
    at one hour (100 documents, 3% missing against 1%: p ~ 0.08) for twelve hours of evidence."""
    ev, _ = evaluator(tmp_path, SameDocsSource())  # type: ignore[arg-type]
    with_nulls = dataclasses.replace(
        BASELINE,
        features=MappingProxyType(
            {
                "inputs.country": FeatureBaseline(
                    "inputs.country",
                    "categorical",
                    100_000,
                    1000,
                    categories=MappingProxyType({"DE": 59_400, "FR": 39_600}),
                )
            }
        ),
    )
    ev.baselines.save(with_nulls)
    ev.interval = 300.0
    fired = []
    for i in range(12):
        end = T0 + timedelta(minutes=5 * (i + 1))
        result = ev.evaluate(MODEL, Window(end - timedelta(hours=1), end))
        fired += [(i, f.detector) for f in result.findings if f.status is Status.FIRING]
    assert fired == []


def test_model_floors_qualify_features_and_keep_only_the_floors_set() -> None:
    from inferwatch.analytics.jobs import model_floors

    cfg = parse_config(
        "analytics: {cooldown: 2h}\n"
        "models:\n"
        "  churn:\n"
        "    features: {country: categorical, age: numeric}\n"
        "    outputs: {score: numeric}\n"
        "    floors: {country: {unseen: 0.05}, score: {drift: 0.3}, inputs.age: {null: 0.2, drift: 0.15}}\n",
        {},
    )
    assert cfg.analytics.cooldown == 7200.0
    assert model_floors(cfg) == {
        "churn": {
            "inputs.country": {"unseen": 0.05},
            "outputs.score": {"drift": 0.3},
            "inputs.age": {"null": 0.2, "drift": 0.15},
        }
    }


def test_a_skipped_detector_is_named_with_its_reason_in_the_evaluation_and_once_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferwatch.analytics.display import print_evaluation

    ev, _ = evaluator(tmp_path, StubSource({window(0).end: counts(window(0), 600, 400)}))
    result = ev.evaluate(MODEL, window(0))
    volume = next(f for f in result.skipped if f.detector == "volume")
    assert volume.reason == "no baseline has an hour-of-week volume (build one --from-logs)"
    assert "volume: no baseline has an hour-of-week volume (build one --from-logs)" in result.skipped_lines()
    print_evaluation(result, as_json=False, include_all=False)
    out = capsys.readouterr().out
    assert "  nothing firing" in out
    assert "  skipped: volume: no baseline has an hour-of-week volume (build one --from-logs)" in out
    print_evaluation(result, as_json=True, include_all=False)
    assert "skipped: volume: no baseline" in capsys.readouterr().err


@dataclass
class LatencySource(StubSource):
    """A source that also answers percentiles, as the local and Elasticsearch sources do."""

    latency: dict[float, float] = field(default_factory=dict)

    def percentiles(
        self, model: str, version: str, w: Window, features: list[str], percents: list[float]
    ) -> pd.DataFrame:
        rows = [(f, p, self.latency[p]) for f in features for p in percents if p in self.latency]
        return pd.DataFrame(rows, columns=["feature", "percent", "value"])


def test_the_evaluator_runs_the_latency_test_when_the_source_answers_percentiles(tmp_path: Path) -> None:
    tables = {window(i).end: counts(window(i), 600, 400) for i in range(10)}
    source = LatencySource(tables, latency={50.0: 20.0, 95.0: 50.0, 99.0: 80.0})
    ev, _ = evaluator(tmp_path, source)
    ev.source = source
    statuses = []
    for i in range(9):
        result = ev.evaluate(MODEL, window(i))
        statuses.append(next(f for f in result.findings if f.detector == "latency").status)
    assert statuses == [Status.SKIPPED] * 8 + [Status.OK]
    source.latency = {50.0: 20.0, 95.0: 400.0, 99.0: 900.0}
    result = ev.evaluate(MODEL, window(9))
    (opened,) = [c for c in result.changes if c.state.detector == "latency"]
    assert opened.transition == "opened" and opened.state.feature == "prediction.latency_ms"


def test_the_local_source_answers_latency_percentiles_for_the_latency_test(tmp_path: Path) -> None:
    from inferwatch.analytics.detectors.latency import FEATURE
    from inferwatch.analytics.sources.local import LocalSource

    segment = tmp_path / "logs-inferwatch.churn-default"
    segment.mkdir()
    docs = [
        {
            "_id": f"d{i}",
            "@timestamp": (window(0).start + timedelta(minutes=i)).isoformat(timespec="milliseconds")[:-6]
            + "Z",
            "ml": {"model": {"name": MODEL, "version": "1"}, "prediction": {"latency_ms": ms}, "inputs": {}},
        }
        for i, ms in enumerate([10.0, 20.0, 30.0, 40.0])
    ]
    lines = [json.dumps(d, separators=(",", ":")) + "\n" for d in docs]  # compact, as the agent writes
    (segment / "00000000000000000001.ndjson").write_text("".join(lines))
    table = LocalSource(tmp_path).percentiles(MODEL, "1", window(0), [FEATURE], [50.0, 99.0])
    assert table["feature"].tolist() == [FEATURE, FEATURE] and table["percent"].tolist() == [50.0, 99.0]
    assert table["value"].tolist() == pytest.approx([25.0, 39.7])
