"""What a report shows, gathered from the backends (no drawing here): for one model over a period,

- per feature (inputs and prediction outputs) its baseline distribution and the period's, on the
  baseline's own categories, bins or vocabulary (count tables of the whole period);
- per feature and detector, the monitored statistic in each window with the threshold it is held
  to: the detectors themselves run over consecutive disjoint windows (their state carried from one
  to the next, as the worker does), so the series is exactly what the worker tests;
- documents per window;
- the model's alerts and incidents whose time overlaps the period (their documents as written).

Thresholds: a rate (missing, unseen, out-of-vocabulary) is drawn against the baseline rate plus
the detector's effect floor (the least rate that can fire; significance decides the rest), a
distribution against its JS distance cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from inferwatch.analytics.baseline.store import BaselineStore
from inferwatch.analytics.detectors import DetectorState, evaluate_version
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.model import Baseline, FeatureKind, Finding, Window, WindowCounts
from inferwatch.analytics.sources.base import CountSource
from inferwatch.analytics.sources.tables import bin_bounds

TOP = 15  # categories / tokens shown per feature


class AlertReader(Protocol):
    def alerts(self, model: str, period: Window) -> list[dict[str, Any]]:
        """Alert documents of ``model`` whose first_seen..last_seen overlaps ``period``."""
        ...

    def incidents(self, model: str, period: Window) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Distribution:
    """One feature's baseline vs period shares, on the baseline's labels (plus an ``unseen``
    bar for categorical values the baseline never saw)."""

    feature: str
    kind: FeatureKind
    labels: list[str]
    baseline: list[float]  # shares in [0, 1]; empty without a baseline
    current: list[float]
    current_n: int
    baseline_n: int
    note: str = ""


@dataclass(frozen=True)
class Series:
    """One monitored statistic of one feature (or the model) over the windows."""

    feature: str | None
    detector: str
    statistic: str  # missing_rate, unseen_rate, oov_rate (shares), js_distance
    ends: list[datetime]
    values: list[float | None]
    thresholds: list[float | None]
    baseline: list[float | None]  # the expected rate (rates only)


@dataclass
class ReportData:
    model: str
    period: Window
    step: float
    versions: dict[str, int]  # documents per version over the period
    baselines: dict[str, Baseline]
    kinds: dict[str, FeatureKind]
    distributions: dict[str, list[Distribution]] = field(default_factory=dict)  # version -> per feature
    series: dict[str, list[Series]] = field(default_factory=dict)  # version -> per (feature, detector)
    volume: list[tuple[datetime, int]] = field(default_factory=list)  # (window end, documents)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def report_windows(period: Window, step: float, max_points: int = 500) -> list[Window]:
    """Consecutive disjoint windows of ``step`` seconds ending at ``period.end`` (the worker's last
    window when the end is on its grid) back to ``period.start`` (the first may be shorter);
    ``step`` grows by whole multiples when there would be more than ``max_points``."""
    total = period.seconds
    if total / step > max_points:
        step *= -(-total // (step * max_points))
    out: list[Window] = []
    end = period.end
    delta = timedelta(seconds=step)
    while end > period.start:
        start = max(end - delta, period.start)
        out.append(Window(start, end))
        end = start
    return out[::-1]


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total > 0 else 0.0 for c in counts]


def distributions(
    counts: WindowCounts, baseline: Baseline | None, kinds: Mapping[str, FeatureKind]
) -> list[Distribution]:
    out: list[Distribution] = []
    features = baseline.features if baseline is not None else {}
    for key in sorted(kinds):
        kind = kinds[key]
        fb = features.get(key)
        if kind == "categorical":
            rows = counts.categories[counts.categories["feature"] == key]
            now = {str(v): int(n) for v, n in zip(rows["value"], rows["count"], strict=True)}
            known = dict(fb.categories) if fb is not None else {}
            base_total = sum(known.values())
            now_total = sum(now.values())
            ranked = sorted(
                set(known) | set(now),
                key=lambda v: -max(known.get(v, 0) / max(base_total, 1), now.get(v, 0) / max(now_total, 1)),
            )
            labels = [v for v in ranked if v in known][:TOP]
            unseen = {v: n for v, n in now.items() if v not in known}
            base = [known.get(v, 0) for v in labels]
            cur = [now.get(v, 0) for v in labels]
            other_known = [v for v in known if v not in labels]
            if other_known:
                labels.append(f"other ({len(other_known)} values)")
                base.append(sum(known[v] for v in other_known))
                cur.append(sum(now.get(v, 0) for v in other_known))
            note = ""
            if unseen:
                top = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
                labels.append("unseen in baseline")
                base.append(0)
                cur.append(sum(unseen.values()))
                note = (
                    "unseen: " + ", ".join(f"{v!r} {n}" for v, n in top) + (" ..." if len(unseen) > 3 else "")
                )
            out.append(
                Distribution(
                    key,
                    kind,
                    labels,
                    _shares(base) if base_total else [],
                    [c / now_total if now_total else 0.0 for c in cur],
                    now_total,
                    base_total,
                    note,
                )
            )
        elif kind == "numeric":
            rows = counts.numeric[counts.numeric["feature"] == key]
            edges = fb.edges if fb is not None else ()
            bounds = bin_bounds(edges)
            labels = [_bin_label(lo, hi) for lo, hi in bounds]
            cur = [int(n) for n in rows["count"]] or [0] * len(bounds)
            base = list(fb.bin_counts) if fb is not None and len(fb.bin_counts) == len(bounds) else []
            out.append(
                Distribution(key, kind, labels, _shares(base), _shares(cur), int(sum(cur)), int(sum(base)))
            )
        else:  # text: document frequency of the most frequent tokens
            rows = counts.tokens[counts.tokens["feature"] == key]
            docs = counts.text_docs[counts.text_docs["feature"] == key]
            now_docs = int(docs["docs"].sum())
            now = {str(t): int(n) for t, n in zip(rows["token"], rows["doc_count"], strict=True)}
            vocab = dict(fb.vocabulary) if fb is not None else {}
            base_docs = int(fb.text_docs) if fb is not None and fb.text_docs else 0
            ranked = sorted(
                set(vocab) | set(now),
                key=lambda t: (
                    -max(vocab.get(t, 0) / max(base_docs, 1), now.get(t, 0) / max(now_docs, 1)),
                    t,
                ),
            )[:TOP]
            oov = int(docs["oov_docs"].sum())
            note = f"{oov / now_docs:.0%} of texts have a token outside the vocabulary" if now_docs else ""
            out.append(
                Distribution(
                    key,
                    kind,
                    [t if t in vocab else f"{t} (new)" for t in ranked],
                    [vocab.get(t, 0) / base_docs for t in ranked] if base_docs else [],
                    [now.get(t, 0) / now_docs if now_docs else 0.0 for t in ranked],
                    now_docs,
                    base_docs,
                    note,
                )
            )
    return out


def _bin_label(lo: float, hi: float) -> str:
    if lo == float("-inf"):
        return f"< {hi:.4g}"
    if hi == float("inf"):
        return f">= {lo:.4g}"
    return f"[{lo:.4g}, {hi:.4g})"


def _threshold(f: Finding) -> tuple[float | None, float | None]:
    """(the statistic's threshold, the expected rate) of a finding, when it has them."""
    if f.statistic_name == "js_distance":
        return f.effect_floor, None
    expected = f.expected.get("rate") if isinstance(f.expected, Mapping) else None
    if expected is None:
        return None, None
    floor = f.effect_floor if f.effect_floor is not None else 0.0
    return float(expected) + float(floor), float(expected)


PLOTTED = frozenset({"rate", "missing_rate", "unseen_rate", "oov_rate", "js_distance"})


def series_of(windows: Sequence[Window], per_window: Sequence[Sequence[Finding]]) -> list[Series]:
    """Findings per window -> one series per (feature, detector) whose statistic is plotted."""
    found: dict[tuple[str | None, str], Series] = {}
    ends = [w.end for w in windows]
    for i, findings in enumerate(per_window):
        for f in findings:
            if f.statistic_name not in PLOTTED or f.key is not None:
                continue
            s = found.get((f.feature, f.detector))
            if s is None:
                n = len(windows)
                s = found[(f.feature, f.detector)] = Series(
                    f.feature, f.detector, f.statistic_name, ends, [None] * n, [None] * n, [None] * n
                )
            cut, expected = _threshold(f)
            s.values[i] = f.statistic
            s.thresholds[i] = cut
            s.baseline[i] = expected
    return sorted(found.values(), key=lambda s: (s.feature or "", s.detector))


def collect(
    source: CountSource,
    baselines: BaselineStore,
    alerts: AlertReader | None,
    model: str,
    period: Window,
    step: float,
    kinds: Mapping[str, FeatureKind],
    params_for: Any,
    closed: frozenset[str] = frozenset(),
    floors: Mapping[str, Mapping[str, float]] | None = None,
) -> ReportData:
    """Everything the report draws. ``params_for(baseline) -> DetectorParams`` as the worker's
    evaluator gives them (budget, interval, floors)."""
    model_counts = source.model_counts(model, period)
    versions = {
        str(v): int(n)
        for v, n in zip(model_counts.versions["version"], model_counts.versions["docs"], strict=True)
        if n > 0
    }
    data = ReportData(model, period, step, versions, {}, dict(kinds))
    windows = report_windows(period, step)
    data.step = windows[-1].seconds if windows else step
    volume = [0] * len(windows)
    if not versions:
        data.notes.append(f"no prediction logs of {model} between {period.start} and {period.end}")
    for version in sorted(versions, key=lambda v: -versions[v]):
        baseline = baselines.load(model, version)
        version_kinds = dict(kinds)
        if baseline is not None:
            data.baselines[version] = baseline
            version_kinds.update({k: fb.kind for k, fb in baseline.features.items()})
        else:
            data.notes.append(
                f"version {version} has no baseline: distributions shown without one, no drift tests"
            )
        whole = source.window_counts(model, version, period, baseline, version_kinds)
        data.distributions[version] = distributions(whole, baseline, version_kinds)
        params: DetectorParams = params_for(baseline)
        state: DetectorState | None = None
        per_window: list[list[Finding]] = []
        for i, window in enumerate(windows):
            counts = source.window_counts(model, version, window, baseline, version_kinds)
            found, state = evaluate_version(counts, baseline, params, closed, state, floors or {})
            per_window.append(found)
            volume[i] += counts.docs
        data.series[version] = series_of(windows, per_window)
    data.volume = [(w.end, n) for w, n in zip(windows, volume, strict=True)]
    if alerts is not None:
        data.alerts = alerts.alerts(model, period)
        data.incidents = alerts.incidents(model, period)
    return data


def overlaps(doc: Mapping[str, Any], period: Window) -> bool:
    """Whether an alert or incident document's first_seen..last_seen overlaps the period."""
    first = _when(doc.get("first_seen"))
    last = _when(doc.get("last_seen")) or first
    if first is None:
        return False
    return first < period.end and (last or first) >= period.start


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = [
    "AlertReader",
    "Distribution",
    "ReportData",
    "Series",
    "collect",
    "distributions",
    "overlaps",
    "report_windows",
    "series_of",
]
