"""Incidents per injected failure, notifications per incident and recurrences, on the demo's data.

In-process, no agent subprocess: the demo model's log lines of each window are normalized by the
agent's ``Normalizer``, stored by its ``LocalOutput`` and evaluated by the worker's ``Evaluator``
(the local store), window after window, as ``inferwatch demo`` does.

    .venv/bin/python bench/alert_incidents.py            # the demo's schedule (3 failures)
    .venv/bin/python bench/alert_incidents.py --long     # 120 windows, 10 failures, one flapping
    .venv/bin/python bench/alert_incidents.py --long --cooldown 3600   # a cooldown of 12 windows
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from inferwatch.agent.bulkbody import encode
from inferwatch.agent.model import FileId, LineBatch
from inferwatch.agent.normalize import Normalizer
from inferwatch.agent.outputs.local import LocalOutput
from inferwatch.analytics.demo import data as demo_data
from inferwatch.analytics.demo import model as demo_model
from inferwatch.analytics.demo.baseline import demo_baseline
from inferwatch.analytics.demo.runner import write_config
from inferwatch.analytics.demo.server import DemoModel, sklearn_predict
from inferwatch.analytics.demo.stream import Injection, default_schedule
from inferwatch.analytics.model import Window
from inferwatch.analytics.wiring import backends, build_evaluator
from inferwatch.core.config import load_config

SPAN = 300.0
KINDS = {
    "missing_feature": ("inputs.horsepower", ("feature_vanished", "null_surge"), "horsepower vanishes"),
    "unseen_category": ("inputs.origin", ("unseen_category", "unseen_rate"), "origin 'Korea' at 25%"),
    "vocabulary_shift": ("inputs.name", ("oov_rate", "vocabulary_drift"), "60% foreign car names"),
    "latency_regression": ("prediction.latency_ms", ("latency",), "predictions 4x slower"),
}
SLOWER = 4.0  # latency_regression: every prediction's latency_ms times this


def injection(kind: str, start: int, length: int) -> Injection:
    feature, detectors, describe = KINDS[kind]
    return Injection(kind, start, start + length, feature, detectors, describe)


def long_schedule() -> list[Injection]:
    """Eleven failures over 120 windows: each input failure three times, lengths 1-4, one
    flapping origin (on two windows, off four, three times: resolved and back within a cooldown
    of an hour), and a latency regression."""
    out = [
        injection("missing_feature", 5, 2),
        injection("unseen_category", 15, 3),
        injection("vocabulary_shift", 25, 2),
        injection("missing_feature", 35, 4),
        injection("vocabulary_shift", 48, 1),
        injection("missing_feature", 60, 1),
    ]
    out += [injection("unseen_category", s, 2) for s in (75, 81, 87)]  # flapping
    out.append(injection("latency_regression", 66, 3))
    out.append(injection("vocabulary_shift", 100, 3))
    return out


def run(schedule: list[Injection], windows: int, per_window: int, seed: int, cooldown: float | None) -> None:
    t0 = time.perf_counter()
    cars = demo_data.load_cars()
    parts = demo_data.split(cars, seed=seed)
    pipeline = demo_model.train(parts.train)
    baseline = demo_baseline(parts, demo_model.out_of_fold(parts.train, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        cfg = load_config(write_config(data_dir, SPAN))
        chosen = backends(cfg)
        chosen.baselines.save(baseline)
        evaluator = build_evaluator(cfg, chosen)
        if cooldown is not None:
            evaluator.cooldown = cooldown
        output = LocalOutput(cfg.agent.data_dir / "store", fsync=False)
        normalizer = Normalizer(cfg.agent.inputs[0], cfg.models, cfg.agent.namespace)
        origin = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
        model = DemoModel(
            predict=sklearn_predict(pipeline),
            heldout=parts.heldout,
            schedule=schedule,
            write=lambda line: None,
            origin=origin,
            span=SPAN,
            per_window=per_window,
            seed=seed,
        )
        events_by_window: dict[int, list[str]] = {}
        incident_events: dict[str, list[tuple[int, str]]] = defaultdict(list)
        alert_opened: list[tuple[int, str, str | None]] = []
        reopened = 0
        skipped: Counter[str] = Counter()
        offset = 0
        for k in range(windows):
            raw = model.lines_for(k)
            if any(i.kind == "latency_regression" for i in model.injections(k)):
                raw = [{**line, "latency_ms": line["latency_ms"] * SLOWER} for line in raw]
            lines = [orjson.dumps(line) for line in raw]
            offsets = list(range(offset, offset + len(lines)))
            offset += len(lines)
            batch = LineBatch(FileId("bench"), "bench.jsonl", 0, offsets, lines, offset)
            docs, _ = normalizer.normalize_batch(batch, "")
            output.send(encode(docs), len(docs))
            start = origin + timedelta(seconds=k * SPAN)
            ev = evaluator.evaluate(demo_data.MODEL, Window(start, start + timedelta(seconds=SPAN)))
            for f in ev.skipped:
                if f.detector == "volume":
                    skipped[f"{f.detector}: {f.reason}"] += 1
            for c in ev.update.alerts:
                if c.transition == "opened":
                    alert_opened.append((k, c.state.detector, c.state.feature))
                reopened += c.transition == "reopened"
            for e in ev.update.incidents:
                incident_events[e.incident.id].append((k, e.transition))
                events_by_window.setdefault(k, []).append(f"{e.transition}: {e.incident.message}")
        elapsed = time.perf_counter() - t0
    for k in sorted(events_by_window):
        for text in events_by_window[k]:
            print(f"  window {k:>3}  {text}")
    print()
    first_open = {iid: min(k for k, t in ev if t == "opened") for iid, ev in incident_events.items()}
    per_injection = []
    for inj in schedule:
        if inj.start >= windows:
            continue
        opened = [iid for iid, k in first_open.items() if inj.start <= k < inj.end + 1]
        per_injection.append(len(opened))
        print(f"  windows {inj.start:>3}-{inj.end - 1:<3} {inj.describe:<28} incidents opened: {len(opened)}")
    notify = [sum(t in ("opened", "escalated", "resolved") for _, t in ev) for ev in incident_events.values()]
    opens = [sum(t == "opened" for _, t in ev) for ev in incident_events.values()]
    reopens = [sum(t == "reopened" for _, t in ev) for ev in incident_events.values()]
    early = [iid for iid, k in first_open.items() if k < min(i.start for i in schedule)]
    print()
    print(f"windows {windows}, failures injected {len(per_injection)}, alerts opened {len(alert_opened)}")
    print(
        f"incidents {len(incident_events)}; per failure {per_injection}; before the first failure {len(early)}"
    )
    print(f"open notifications per incident {opens}; all notifications per incident {notify}")
    print(f"alert reopenings (recurrences) {reopened}; incident reopenings {sum(reopens)}")
    print(f"alerts opened: {Counter(d for _, d, _ in alert_opened)}")
    for text, n in skipped.items():
        print(f"skipped in {n} windows: {text}")
    print(f"{elapsed:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--per-window", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cooldown", type=float, help="seconds (default: analytics.cooldown, 1 day)")
    args = ap.parse_args()
    if args.long:
        schedule = long_schedule()
        windows = 120
    else:
        schedule = default_schedule()
        windows = max(i.end for i in schedule) + 4
    run(schedule, windows, args.per_window, args.seed, args.cooldown)


if __name__ == "__main__":
    main()
