"""Self-metrics of an inferwatch process (the agent, the worker), exposed with ``prometheus_client``.

A process declares its metrics once (name -> ``Spec``: kind, help, label names, and the label
values that exist from the start); a ``Store`` keeps their values and is a ``prometheus_client``
collector, so the exposition is the library's own:

- every declared family with HELP and TYPE; an unlabelled counter is 0 before its first event
  and the declared label sets are 0 from the start, so ``rate()`` works from the first scrape and
  a series never vanishes when another label value appears;
- histograms (``prometheus_client.Histogram``);
- ``process_*`` (CPU, memory, open fds, start time), ``python_info`` and ``python_gc_*`` from the
  library's collectors, and ``<prefix>build_info{version,python}`` (always 1).

The loops push values with a few calls per batch, never per line: counters and gauges are a
lock-guarded dict, read only when scraped. A name that is not declared, or a label name the
metric does not declare, raises ``KeyError`` instead of creating a new series.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, GCCollector, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs; () for none
Kind = Literal["counter", "gauge", "histogram"]


def labels(**kv: str) -> Labels:
    return tuple(sorted(kv.items()))


@dataclass(frozen=True)
class Spec:
    """One metric: counters end in ``_total``; ``initial`` lists label values (in the order of
    ``labels``) whose series exist at 0 from the start; ``buckets`` only for histograms. An
    unlabelled gauge whose value means nothing before the first event (``output_up``) sets
    ``known_at_start=False``: it has no sample until then."""

    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    initial: tuple[tuple[str, ...], ...] = ()
    buckets: tuple[float, ...] = ()
    known_at_start: bool = True  # an unlabelled gauge is 0 from the start unless this is False

    def problem(self, name: str) -> str | None:
        if self.kind == "counter" and not name.endswith("_total"):
            return f"counter {name} must end in _total"
        if any(len(values) != len(self.labels) for values in self.initial):
            return f"{name}: every initial label set needs a value for each of {self.labels}"
        if (self.kind == "histogram") != bool(self.buckets):
            return f"{name}: buckets are for histograms, and every histogram needs them"
        if self.kind == "histogram" and self.labels:
            return f"{name}: histograms here have no labels"
        return None


class Store:
    """Thread-safe counters, gauges and histograms under one name prefix; a Collector."""

    def __init__(self, prefix: str, specs: Mapping[str, Spec], version: str) -> None:
        for name, spec in specs.items():
            if problem := spec.problem(name):
                raise ValueError(problem)
        self.prefix = prefix
        self._specs = dict(specs)
        self._label_names = {name: frozenset(spec.labels) for name, spec in specs.items()}
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, Histogram] = {}
        for name, spec in specs.items():
            if spec.kind == "histogram":
                self._histograms[name] = Histogram(
                    prefix + name, spec.help, buckets=spec.buckets, registry=None
                )
                continue
            self._values[name] = self._initial(spec)
        self._version = version
        self._library = CollectorRegistry()  # process_*, python_info, python_gc_*
        ProcessCollector(registry=self._library)
        PlatformCollector(registry=self._library)
        GCCollector(registry=self._library)

    @staticmethod
    def _initial(spec: Spec) -> dict[Labels, float]:
        if not spec.labels:
            return {(): 0.0} if spec.kind == "counter" or spec.known_at_start else {}
        return {tuple(sorted(zip(spec.labels, values, strict=True))): 0.0 for values in spec.initial}

    def _check(self, name: str, label_set: Labels) -> None:
        allowed = self._label_names[name]  # KeyError for an undeclared name
        for key, _ in label_set:
            if key not in allowed:
                raise KeyError(f"{name} has no label {key!r} (it has {sorted(allowed)})")

    # -- writing (the loops) -----------------------------------------------------------------------

    def inc(self, name: str, value: float = 1.0, label_set: Labels = ()) -> None:
        self._check(name, label_set)
        if not value:
            return
        with self._lock:
            family = self._values[name]
            family[label_set] = family.get(label_set, 0.0) + value

    def inc_many(self, name: str, by_label: Mapping[str, int], label_name: str) -> None:
        """Add a Counter of reasons at once: ``{"invalid_json": 2}`` -> ``{reason="invalid_json"} += 2``."""
        self._check(name, ((label_name, ""),))
        with self._lock:
            family = self._values[name]
            for value, n in by_label.items():
                if n:
                    key = ((label_name, value),)
                    family[key] = family.get(key, 0.0) + n

    def set(self, name: str, value: float, label_set: Labels = ()) -> None:
        """A gauge's value, or a counter mirrored from a total another component keeps."""
        self._check(name, label_set)
        with self._lock:
            self._values[name][label_set] = value

    def replace(self, name: str, values: Mapping[Labels, float]) -> None:
        """Replace a whole gauge family (e.g. per-file lag, where files come and go)."""
        for label_set in values:
            self._check(name, label_set)
        with self._lock:
            self._values[name] = dict(values)

    def observe(self, name: str, value: float) -> None:
        self._histograms[name].observe(value)

    # -- reading -----------------------------------------------------------------------------------

    def value(self, name: str, label_set: Labels = ()) -> float:
        with self._lock:
            return self._values[name].get(label_set, 0.0)

    def total(self, name: str) -> float:
        with self._lock:
            return sum(self._values[name].values())

    def by_label(self, name: str) -> dict[Labels, float]:
        with self._lock:
            return dict(self._values[name])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = {name: dict(values) for name, values in self._values.items()}
        for name, spec in self._specs.items():
            if spec.kind == "histogram":
                yield from self._histograms[name].collect()
                continue
            full = self.prefix + name
            family: Metric
            if spec.kind == "counter":
                family = CounterMetricFamily(full, spec.help, labels=spec.labels)
            else:
                family = GaugeMetricFamily(full, spec.help, labels=spec.labels)
            for label_set, value in sorted(snapshot[name].items()):
                given = dict(label_set)
                family.add_metric([given.get(label, "") for label in spec.labels], value)
            yield family
        build = GaugeMetricFamily(
            self.prefix + "build_info",
            "Always 1: the inferwatch version and Python version of this process.",
            labels=("version", "python"),
        )
        build.add_metric([self._version, platform.python_version()], 1.0)
        yield build
        yield from self._library.collect()

    def render(self) -> str:
        """The Prometheus text format (0.0.4), as ``/metrics`` serves it by default."""
        return generate_latest(self).decode()
