"""The detectors: count tables + baseline + params -> findings. Pure: no clock, no I/O.

One module per concern: ``nulls`` (vanished, surge, creep), ``unseen`` (new values, unseen
rate), ``vocabulary`` (OOV rate, token distribution), ``drift`` (category, numeric, prediction),
``volume`` and ``versions`` (per model); the shared test shapes are in ``common`` and the
statistics in ``stats``. ``inferwatch.analytics.jobs`` calls the two entry points below once per window.

Every firing needs p < alpha and an effect above its floor; ``strong`` (p < alpha/100) opens an
alert on one window. Windows too small for a test are merged with the next ones (the counts
wait in ``DetectorState``) and reported SKIPPED with the reason. Degenerate input (no
documents, no baseline, a vanished field, a single category) gives a finding or a SKIPPED,
never an exception.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from inferwatch.analytics.detectors import latency, versions, volume
from inferwatch.analytics.detectors.common import Context, num
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.registry import VERSION_TESTS, FeatureInput, run_feature, series_of
from inferwatch.analytics.detectors.slices import FeatureCounts, split_counts
from inferwatch.analytics.detectors.state import DetectorState
from inferwatch.analytics.model import Baseline, Finding, ModelCounts, Status, WindowCounts

__all__ = [
    "DetectorParams",
    "DetectorState",
    "count_series",
    "evaluate_latency",
    "evaluate_model",
    "evaluate_version",
]

log = logging.getLogger(__name__)


def count_series(baseline: Baseline) -> int:
    """How many tests one window of this baseline's version runs: the alpha's denominator
    (the same table ``evaluate_version`` runs: ``registry.FEATURE_DETECTORS``)."""
    return VERSION_TESTS + sum(series_of(fb.kind) for fb in baseline.features.values())


def _is_closed(key: str, closed: frozenset[str]) -> bool:
    return key in closed or key.split(".", 1)[-1] in closed


def evaluate_version(
    counts: WindowCounts,
    baseline: Baseline | None,
    params: DetectorParams,
    closed: frozenset[str] = frozenset(),
    state: DetectorState | None = None,
    floors: Mapping[str, Mapping[str, float]] = MappingProxyType({}),
    accepted: Mapping[str, frozenset[str]] = MappingProxyType({}),
) -> tuple[list[Finding], DetectorState]:
    """All per-feature detectors of one model version over one window.

    ``closed`` lists the closed-vocabulary features (qualified or bare keys); ``floors`` the
    configured effect floors by feature (qualified or bare key -> ``FLOOR_FIELDS`` key -> value);
    ``accepted`` the values acknowledged as normal by feature (they are never new).
    The state passed in is not modified; the returned one replaces it.
    """
    st = state.copy() if state is not None else DetectorState()
    ctx = Context(counts.model, counts.version, counts.window, params, st)
    if baseline is None:
        msg = (
            f"{counts.model} version {counts.version!r} has no baseline: its features are not watched; "
            f"run `inferwatch baseline build --model {counts.model} --version {counts.version}`"
        )
        finding = ctx.finding(
            "version",
            None,
            Status.FIRING,
            "warning",
            msg,
            key="no_baseline",
            strong=True,
            observed={"docs": counts.docs},
        )
        return [finding], st
    if counts.docs <= 0:
        return [ctx.skipped("version", None, "no documents for this version in the window")], st
    if not baseline.features:
        return [ctx.skipped("version", None, "the baseline describes no features")], st
    tables = split_counts(counts)
    findings: list[Finding] = []
    for key in sorted(baseline.features):
        fb = baseline.features[key]
        own = floors.get(key) or floors.get(key.split(".", 1)[-1])
        fctx = replace(ctx, params=params.with_floors(own)) if own else ctx
        fc = tables.get(key, FeatureCounts())
        try:
            ok = accepted.get(key, frozenset()) | accepted.get(key.split(".", 1)[-1], frozenset())
            findings += run_feature(fctx, FeatureInput(key, fb, fc, counts.docs, _is_closed(key, closed), ok))
        except Exception as exc:  # one feature's surprise must not cost the others their verdicts
            log.exception("detectors failed on %s %s %s", counts.model, counts.version, key)
            findings.append(
                ctx.skipped("version", key, f"detector error ({type(exc).__name__}: {exc}); skipped")
            )
    return findings, st


def evaluate_latency(
    counts: WindowCounts, percentiles: Mapping[float, float], params: DetectorParams, state: DetectorState
) -> Finding:
    """The latency test of one model version over one window (``detectors/latency.py``);
    ``state`` (the one ``evaluate_version`` returned) is updated in place."""
    ctx = Context(counts.model, counts.version, counts.window, params, state)
    return latency.evaluate(ctx, percentiles, counts.docs)


def evaluate_model(
    model_counts: ModelCounts,
    known_versions: frozenset[str],
    baselines: Mapping[str, Baseline],
    params: DetectorParams,
) -> list[Finding]:
    """Per-model detectors: new and vanished versions, traffic volume (version ``"*"``)."""
    docs: dict[str, int] = {}
    table = model_counts.versions
    if table is not None and not table.empty and {"version", "docs"} <= set(table.columns):
        for v, n in zip(table["version"].tolist(), table["docs"].tolist(), strict=True):
            try:
                docs[str(v)] = docs.get(str(v), 0) + max(int(n), 0)
            except (TypeError, ValueError):
                continue
    observed = sum(docs.values())
    vol = model_counts.volume
    if not docs and vol is not None and not vol.empty and "docs" in vol.columns:
        observed = int(vol["docs"].fillna(0).sum())
    state = DetectorState()
    ctx_for = {
        v: Context(model_counts.model, v, model_counts.window, params, state)
        for v in set(docs) | set(known_versions)
    }
    findings = versions.evaluate(ctx_for, docs, known_versions, baselines)
    model_ctx = Context(model_counts.model, volume.MODEL_LEVEL, model_counts.window, params, state)
    findings.append(volume.evaluate(model_ctx, observed, baselines))
    log.debug("model %s: %s documents, %d findings", model_counts.model, num(observed), len(findings))
    return findings
