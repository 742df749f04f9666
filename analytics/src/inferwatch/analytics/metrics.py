"""The worker's self-metrics and its endpoint (``analytics.metrics.listen``): ``/metrics``,
``/livez`` (or ``/health``) and ``/readyz``, as the agent has them (``inferwatch.core.selfmetrics``,
``inferwatch.core.metricsserver``).

``WorkerMetrics.measure(run)`` wraps the function the scheduler calls for each model: it times each
evaluation and counts what it found (findings by detector and status, alert changes by detector
and transition, documents evaluated) or the error it raised, then returns or re-raises as the
wrapped function did.

Liveness: the scheduler runs. Readiness: alive, and no model's last evaluation failed (an
Elasticsearch that is down fails them all: a restart would not help, so it is not liveness).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from inferwatch.analytics.baseline.store import BaselineUnreadable
from inferwatch.analytics.jobs import Evaluation
from inferwatch.core import __version__
from inferwatch.core.metricsserver import HealthStatus, MetricsServer
from inferwatch.core.selfmetrics import Spec, Store, labels

PREFIX = "inferwatch_analytics_"

RunModel = Callable[[str, datetime], object]  # (model, at) -> Evaluation, as the scheduler calls it

EVALUATION_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

WORKER_METRICS: dict[str, Spec] = {
    "evaluations_total": Spec(
        "counter", "Evaluations of a model's window, by model and result (ok, error).", ("model", "result")
    ),
    "evaluation_errors_total": Spec(
        "counter", "Evaluations that raised, by model and error type (logged).", ("model", "error")
    ),
    "evaluations_skipped_total": Spec(
        "counter",
        "Evaluations not run because an input is unusable (reason baseline_unreadable: a stored "
        "baseline file that cannot be read; its path and fix are logged), by model and reason.",
        ("model", "reason"),
    ),
    "last_evaluation_timestamp_seconds": Spec(
        "gauge", "Unix time the model's last successful evaluation finished.", ("model",)
    ),
    "last_evaluation_duration_seconds": Spec(
        "gauge", "How long the model's last successful evaluation took.", ("model",)
    ),
    "evaluation_duration_seconds": Spec(
        "histogram", "Time of one evaluation, successful or not.", buckets=EVALUATION_SECONDS_BUCKETS
    ),
    "documents_evaluated_total": Spec(
        "counter",
        "Documents in the windows evaluated (a document is in each window that covers it).",
        ("model",),
    ),
    "findings_total": Spec(
        "counter", "Detector verdicts, by detector and status (firing, ok, skipped).", ("detector", "status")
    ),
    "alert_changes_total": Spec(
        "counter",
        "Alert transitions written, by detector and transition (opened, reopened, updated, escalated, resolved).",
        ("detector", "transition"),
    ),
}


class WorkerMetrics(Store):
    def __init__(self, models: Iterable[str], clock: Callable[[], float] = time.time) -> None:
        names = sorted(models)
        specs = dict(WORKER_METRICS)
        specs["evaluations_total"] = Spec(
            "counter",
            WORKER_METRICS["evaluations_total"].help,
            ("model", "result"),
            tuple((m, r) for m in names for r in ("ok", "error")),
        )
        specs["documents_evaluated_total"] = Spec(
            "counter",
            WORKER_METRICS["documents_evaluated_total"].help,
            ("model",),
            tuple((m,) for m in names),
        )
        specs["evaluations_skipped_total"] = Spec(
            "counter",
            WORKER_METRICS["evaluations_skipped_total"].help,
            ("model", "reason"),
            tuple((m, BaselineUnreadable.reason) for m in names),
        )
        super().__init__(PREFIX, specs, __version__)
        self._clock = clock
        self._failing: dict[str, str] = {}  # model -> the error of its last evaluation
        self._failing_lock = threading.Lock()

    def evaluated(self, model: str, seconds: float, ev: Evaluation | None) -> None:
        self.observe("evaluation_duration_seconds", seconds)
        self.inc("evaluations_total", 1, labels(model=model, result="ok"))
        self.set("last_evaluation_timestamp_seconds", self._clock(), labels(model=model))
        self.set("last_evaluation_duration_seconds", seconds, labels(model=model))
        with self._failing_lock:
            self._failing.pop(model, None)
        if ev is None:
            return
        self.inc("documents_evaluated_total", sum(c.docs for c in ev.counts.values()), labels(model=model))
        found = Counter((f.detector, f.status.value) for f in ev.findings)
        for (detector, status), n in found.items():
            self.inc("findings_total", n, labels(detector=detector, status=status))
        changed = Counter((c.state.detector, c.transition) for c in ev.changes)
        for (detector, transition), n in changed.items():
            self.inc("alert_changes_total", n, labels(detector=detector, transition=transition))

    def failed(self, model: str, seconds: float, exc: BaseException) -> None:
        self.observe("evaluation_duration_seconds", seconds)
        self.inc("evaluations_total", 1, labels(model=model, result="error"))
        self.inc("evaluation_errors_total", 1, labels(model=model, error=type(exc).__name__))
        if isinstance(exc, BaselineUnreadable):
            self.inc("evaluations_skipped_total", 1, labels(model=model, reason=exc.reason))
        with self._failing_lock:
            self._failing[model] = f"{type(exc).__name__}: {exc}"

    def measure(self, run: RunModel) -> RunModel:
        """``run`` with each call timed and counted (``run`` returns an ``Evaluation``)."""

        def measured(model: str, at: datetime) -> object:
            started = time.perf_counter()
            try:
                result = run(model, at)
            except Exception as exc:
                self.failed(model, time.perf_counter() - started, exc)
                raise
            self.evaluated(
                model, time.perf_counter() - started, result if isinstance(result, Evaluation) else None
            )
            return result

        return measured

    def failing(self) -> dict[str, str]:
        with self._failing_lock:
            return dict(self._failing)


def readiness(metrics: WorkerMetrics, live: Callable[[], HealthStatus]) -> HealthStatus:
    alive = live()
    if not alive.ok:
        return alive
    failing = metrics.failing()
    if failing:
        model, error = sorted(failing.items())[0]
        more = f" (and {len(failing) - 1} more models)" if len(failing) > 1 else ""
        return HealthStatus(False, f"the last evaluation of {model} failed: {error}{more}")
    return HealthStatus(True, "ok")


def scheduler_liveness(running: Callable[[], bool]) -> Callable[[], HealthStatus]:
    def live() -> HealthStatus:
        return HealthStatus(True, "ok") if running() else HealthStatus(False, "the scheduler is not running")

    return live


def endpoint(listen: str, metrics: WorkerMetrics, running: Callable[[], bool]) -> MetricsServer:
    """The worker's endpoint, bound now (``OSError`` when the address is in use); ``start()`` it."""
    live = scheduler_liveness(running)
    return MetricsServer(listen, metrics, live, lambda: readiness(metrics, live))
