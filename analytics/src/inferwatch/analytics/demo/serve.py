"""``inferwatch demo --serve``: only the demo model, writing prediction logs forever (the demo
model container of docker compose). The failure schedule repeats, so dashboards always have
something to show."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inferwatch.analytics.baseline.store import LocalBaselineStore
from inferwatch.analytics.demo import data as demo_data
from inferwatch.analytics.demo import model as demo_model
from inferwatch.analytics.demo.baseline import demo_baseline
from inferwatch.analytics.demo.clock import VirtualClock, floor_time
from inferwatch.analytics.demo.runner import DEFAULT_SPAN, PredictionLog
from inferwatch.analytics.demo.server import DemoModel, sklearn_predict
from inferwatch.analytics.demo.stream import default_schedule

SERVE_PER_WINDOW = 300  # one request a second at real speed
TICK = 0.5  # wall seconds between writes
ROTATE_BYTES = 64 * 1024**2


def serve_forever(
    log_dir: Path,
    speed: float,
    seed: int,
    stop: threading.Event,
    echo: Callable[[str], None],
    baseline_dir: Path | None = None,
) -> int:
    """Write prediction logs until ``stop`` is set; returns the number of lines written. With
    ``baseline_dir``, first save the model's baseline there (``LocalBaselineStore`` layout), where
    a worker whose ``analytics.baselines_dir`` points finds it."""
    parts = demo_data.split(demo_data.load_cars(), seed=seed)
    pipeline = demo_model.train(parts.train)
    if baseline_dir is not None:
        baseline = demo_baseline(parts, demo_model.out_of_fold(parts.train, seed=seed))
        store = LocalBaselineStore(baseline_dir)
        store.save(baseline)
        echo(f"baseline {baseline.doc_id} saved to {store.path(baseline.model, baseline.version)}")
    schedule = default_schedule()
    cycle = max(i.end for i in schedule) + 4
    # Rotated by size so that a demo container left running never fills its disk: the agent's
    # glob must match the rotated names too (``*.jsonl*``).
    log = PredictionLog(log_dir / f"{demo_data.MODEL}.jsonl", max_bytes=ROTATE_BYTES, backup_count=2)
    origin = floor_time(datetime.now(UTC), DEFAULT_SPAN)
    model = DemoModel(
        predict=sklearn_predict(pipeline),
        heldout=parts.heldout,
        schedule=schedule,
        write=log.write,
        origin=origin,
        span=DEFAULT_SPAN,
        per_window=SERVE_PER_WINDOW,
        seed=seed,
        cycle=cycle,
    )
    clock = VirtualClock(datetime.now(UTC), speed)  # real time at speed 1
    echo(
        f"demo model {demo_data.MODEL} {demo_data.VERSION} writing to {log.path} (x{speed:g}); SIGTERM stops"
    )
    try:
        while True:
            model.emit_until(clock.now())
            if stop.wait(TICK):
                break
    finally:
        log.close()
    total = model.total_written()
    echo(f"stopped after {total} prediction lines")
    return total
