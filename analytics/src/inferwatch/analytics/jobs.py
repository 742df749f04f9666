"""One evaluation of one model over one window: counts -> detectors -> alert lifecycle -> sink.

The only stateful step is the per-model ``StateStore`` (alert states, detector state); counts come
from a ``CountSource`` (Elasticsearch or the local store) and baselines from a ``BaselineStore``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from inferwatch.analytics.alerts import AlertChange, IncidentChange
from inferwatch.analytics.alerts.controls import Controls, ControlStore, annotate, apply_mutes
from inferwatch.analytics.alerts.sink import AlertSink
from inferwatch.analytics.alerts.window import AlertUpdate, apply_findings
from inferwatch.analytics.baseline.store import BaselineStore
from inferwatch.analytics.detectors import (
    DetectorState,
    count_series,
    evaluate_latency,
    evaluate_model,
    evaluate_version,
)
from inferwatch.analytics.detectors.latency import FEATURE as LATENCY_FEATURE
from inferwatch.analytics.detectors.latency import PERCENTS as LATENCY_PERCENTS
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.volume import MODEL_LEVEL
from inferwatch.analytics.model import Baseline, FeatureKind, Finding, Status, Window, WindowCounts
from inferwatch.analytics.sources.base import CountSource
from inferwatch.analytics.state_store import ModelState, StateStore
from inferwatch.core.config import AnalyticsConfig, Config

log = logging.getLogger(__name__)

WEEK = 7 * 86400.0


@dataclass(frozen=True)
class Evaluation:
    model: str
    window: Window
    findings: list[Finding]
    update: AlertUpdate
    counts: dict[str, WindowCounts] = field(default_factory=dict)  # version -> its count tables
    replay: bool = False  # the window was evaluated before: alerts and detector state unchanged

    @property
    def changes(self) -> list[AlertChange]:
        """The alert transitions of this window (documents rewritten)."""
        return list(self.update.alerts)

    @property
    def incidents(self) -> list[IncidentChange]:
        """The incident transitions of this window (history events; the notifying ones notify)."""
        return list(self.update.incidents)

    @property
    def skipped(self) -> list[Finding]:
        """Tests not run in this window, each with its reason (``Finding.reason``): a detector
        that never runs (volume without an hour-of-week profile) must not pass for a quiet one."""
        return [f for f in self.findings if f.status is Status.SKIPPED]

    def skipped_lines(self) -> list[str]:
        """The skipped tests for a person: one line per detector and reason, naming the features."""
        groups: dict[tuple[str, str], list[str]] = {}
        for f in self.skipped:
            groups.setdefault((f.detector, f.reason or f.message), []).append(f.feature or "")
        lines = []
        for (detector, reason), features in groups.items():
            named = sorted({x for x in features if x})
            where = f" on {', '.join(named)}" if named else ""
            lines.append(f"{detector}{where}: {reason}")
        return lines


def model_features(cfg: Config) -> tuple[dict[str, dict[str, FeatureKind]], dict[str, frozenset[str]]]:
    """From the config: model -> qualified key -> kind, and model -> closed-vocabulary keys."""
    features: dict[str, dict[str, FeatureKind]] = {}
    closed: dict[str, frozenset[str]] = {}
    for name, m in cfg.models.items():
        kinds: dict[str, FeatureKind] = {f"inputs.{k}": v for k, v in m.features.items()}
        kinds.update({f"outputs.{k}": v for k, v in m.outputs.items()})
        features[name] = kinds
        closed[name] = frozenset(f"inputs.{k}" for k in m.categorical_closed)
    return features, closed


def model_floors(cfg: Config) -> dict[str, dict[str, dict[str, float]]]:
    """From the config: model -> qualified key -> its configured effect floors (set ones only)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, m in cfg.models.items():
        for feature, floors in m.floors.items():
            key = feature if feature.startswith(("inputs.", "outputs.")) else f"inputs.{feature}"
            if feature not in m.features and feature in m.outputs:
                key = f"outputs.{feature}"
            values = {k: float(v) for k, v in vars(floors).items() if v is not None}
            if values:
                out.setdefault(name, {})[key] = values
    return out


def aligned_window(at: datetime, span: float, step: float) -> Window:
    """The window ending at the last multiple of ``step`` (UTC) before ``at``: re-running the same
    moment evaluates the same window, which keeps alerts idempotent (``analytics.windows``, where
    a timezone can be given)."""
    from inferwatch.analytics.windows import aligned_window as aligned

    return aligned(at, span, step)


@dataclass
class Evaluator:
    source: CountSource
    baselines: BaselineStore
    sink: AlertSink
    states: StateStore
    features: Mapping[str, Mapping[str, FeatureKind]]  # model -> qualified key -> kind (config)
    closed: Mapping[str, frozenset[str]]  # model -> closed-vocabulary features
    floors: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)  # model_floors
    false_alarms_per_week: float = 1.0
    interval: float = 300.0
    cooldown: float = 86400.0  # a resolved alert firing again within this reopens (no new alert)
    controls: ControlStore | None = None  # acknowledged alerts, accepted values, mutes
    overrides: Mapping[str, Any] = field(default_factory=dict)  # DetectorParams fields to change
    # analytics.min_window_docs: smaller windows are merged with the next ones, not tested
    min_window_docs: int = AnalyticsConfig.min_window_docs

    def params_for(self, baseline: Baseline | None, span: float | None = None) -> DetectorParams:
        """The detectors' params for one version: alpha from the budget, and a long drift
        horizon of a week of the windows one state chain sees (``state_key``: windows of
        ``span`` seconds every ``max(span, interval)``)."""
        series = count_series(baseline) if baseline is not None else 1
        step = max(float(span or 0.0), float(self.interval), 1.0)
        knobs: dict[str, Any] = {
            "min_window_docs": max(int(self.min_window_docs), 0),
            "horizon_windows": max(round(WEEK / step), 2),
            **self.overrides,
        }
        return DetectorParams.from_budget(
            self.false_alarms_per_week,
            series=max(series, 1),
            windows_per_week=WEEK / self.interval,
            **knobs,
        )

    def _latencies(self, model: str, version: str, window: Window) -> dict[float, float] | None:
        """p50/p95/p99 of ml.prediction.latency_ms, from a source that answers percentiles."""
        percentiles = getattr(self.source, "percentiles", None)
        if percentiles is None:
            return None
        table = percentiles(model, version, window, [LATENCY_FEATURE], list(LATENCY_PERCENTS))
        rows = table[table["feature"] == LATENCY_FEATURE] if len(table) else table
        return (
            {float(p): float(v) for p, v in zip(rows["percent"], rows["value"], strict=True)}
            if len(rows)
            else {}
        )

    @staticmethod
    def _annotate(state: ModelState, update: AlertUpdate, controls: Controls, at: datetime) -> AlertUpdate:
        """Alert documents carry what people decided (acknowledged, muted until)."""
        changes = []
        for change in update.alerts:
            marked = annotate(controls, change.state, at)
            state.alerts[marked.id] = marked
            changes.append(replace(change, state=marked))
        return replace(update, alerts=tuple(changes))

    def state_key(self, version: str, window: Window) -> str:
        """Where a version's detector state (merged small windows, CUSUM sums) lives for this
        window. A window longer than the interval overlaps the previous ones (1h every 5m: each
        document is in 12 windows), and carrying one state through all of them would count each
        document 12 times. Windows ``ceil(span / interval)`` steps apart do not overlap, so each
        phase of that cycle keeps its own state: a chain of disjoint windows."""
        chains = max(1, math.ceil(window.nominal_seconds / self.interval - 1e-9))
        if chains == 1:
            return version
        phase = round(window.end.timestamp() / self.interval) % chains
        return f"{version}@{phase}/{chains}"

    def evaluate(self, model: str, window: Window) -> Evaluation:
        """Evaluate one window. Re-running a window already evaluated recomputes its findings but
        writes no alert change and keeps the detectors' state as it was (no double counting)."""
        state = self.states.load(model)
        controls = self.controls.load() if self.controls is not None else Controls()
        accepted = controls.accepted_for(model)
        replay = state.last_window is not None and datetime.fromisoformat(state.last_window) >= window.end
        counts_by_version: dict[str, WindowCounts] = {}
        model_counts = self.source.model_counts(model, window)
        versions = [
            str(v)
            for v, n in zip(model_counts.versions["version"], model_counts.versions["docs"], strict=True)
            if n > 0
        ]
        baselines: dict[str, Baseline] = {}
        findings: list[Finding] = []
        for version in versions:
            baseline = self.baselines.load(model, version)
            if baseline is not None:
                baselines[version] = baseline
            kinds = dict(self.features.get(model, {}))
            if baseline is not None:
                kinds.update({k: fb.kind for k, fb in baseline.features.items()})
            counts = self.source.window_counts(model, version, window, baseline, kinds)
            counts_by_version[version] = counts
            chain = self.state_key(version, window)
            previous = state.detectors.get(chain)
            det_state = DetectorState.from_dict(previous) if previous else None
            params = self.params_for(baseline, window.seconds)
            found, new_state = evaluate_version(
                counts,
                baseline,
                params,
                self.closed.get(model, frozenset()),
                det_state,
                self.floors.get(model, {}),
                accepted,
            )
            latencies = self._latencies(model, version, window) if counts.docs > 0 else None
            if latencies is not None:
                found.append(evaluate_latency(counts, latencies, params, new_state))
            if not replay:
                state.detectors[chain] = new_state.to_dict()
            findings += found
        known = frozenset(state.known_versions) or frozenset(versions)
        for version in known - set(baselines):
            baseline = self.baselines.load(model, version)
            if baseline is not None:
                baselines[version] = baseline
        findings += evaluate_model(model_counts, known, baselines, self.params_for(None))
        if replay:
            log.info("model %s: window ending %s was evaluated before; nothing written", model, window.end)
            return Evaluation(model, window, findings, AlertUpdate(), counts_by_version, replay=True)
        state.known_versions = sorted(known | set(versions))
        # Model-level findings (volume) carry the version "*": without it here a volume alert
        # would never count a clean window, so it could never resolve.
        evaluated = [(model, v) for v in versions] + [(model, MODEL_LEVEL)]
        findings = apply_mutes(controls, findings, window.end)
        state.alerts, state.incidents, update = apply_findings(
            state.alerts, state.incidents, findings, window.end, evaluated, self.cooldown
        )
        update = self._annotate(state, update, controls, window.end)
        state.last_window = window.end.isoformat()
        # The sink first: a crash between the two replays the window, and the sink is idempotent.
        self.sink.write(update, window.end.isoformat())
        self.states.save(model, state)
        return Evaluation(model, window, findings, update, counts_by_version)
