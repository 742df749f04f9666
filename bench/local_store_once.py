"""What one ``inferwatch analytics once`` pays on the local store as the store grows while the window
stays one hour: a fresh process (as ``once`` is) evaluates the last hour of a store holding
``--days`` days of logs (``--per-hour`` documents an hour, segments of 5,000 documents in time
order, as the agent writes them).

    .venv/bin/python bench/local_store_once.py [--days 2,12] [--per-hour 1000] [--repeat 3]

For each size it prints the seconds of: ``first`` (a fresh process on a store never evaluated:
every segment is read once to learn its time span), ``next`` (a fresh process again: the segment
index kept under the worker's state lets it skip what lies outside the window) and ``eval`` (the
counting and detectors of the window alone, segments already in memory). Each run is a child
process; the fastest of ``--repeat`` is shown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.analytics_scaling import (
    KINDS,
    MODEL,
    START,
    VERSION,
    evaluate_once,
    training_baseline,
)
from bench.analytics_scaling import write_store as write_docs
from inferwatch.analytics.model import Window
from inferwatch.analytics.sources.local import LocalSource

CARDINALITY = 20


def write_store(store: Path, days: int, per_hour: int) -> Window:
    """``days`` days of documents ending at the last hour's end; the window is that last hour."""
    write_docs(store, days * 24 * per_hour, CARDINALITY, span_s=days * 86400.0, seed=3)
    end = START + timedelta(hours=days * 24)
    return Window(end - timedelta(hours=1), end)


def one(store: Path, state: Path, start: str, end: str) -> dict[str, Any]:
    from datetime import datetime

    window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
    baseline = training_baseline(CARDINALITY)
    t0 = time.perf_counter()
    if _has_index():
        source = LocalSource(store, "default", index_file=state / "store-index.json")
    else:  # the code before the segment index
        source = LocalSource(store, "default")
    source.model_counts(MODEL, window)
    counts = source.window_counts(MODEL, VERSION, window, baseline, KINDS)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    evaluate_once_window(source, baseline, window)
    return {"total": total, "eval": time.perf_counter() - t1, "docs": counts.docs}


def evaluate_once_window(source: LocalSource, baseline: Any, window: Window) -> None:
    import bench.analytics_scaling as scaling

    scaling.WINDOW = window
    evaluate_once(source, baseline)


def _has_index() -> bool:
    import inspect

    return "index_file" in inspect.signature(LocalSource).parameters


def child(store: Path, state: Path, window: Window) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            str(store),
            str(state),
            window.start.isoformat(),
            window.end.isoformat(),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", default="2,12", help="store sizes in days, comma-separated")
    parser.add_argument("--per-hour", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(Path(args.one[0]), Path(args.one[1]), args.one[2], args.one[3])))
        return
    print(f"{'days':>5} {'docs':>9} {'window':>7} {'first s':>8} {'next s':>8} {'eval s':>8}")
    for days in [int(d) for d in args.days.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "store"
            window = write_store(store, days, args.per_hour)
            firsts, nexts, evals = [], [], []
            for _ in range(args.repeat):
                state = Path(tmp) / "state"
                shutil.rmtree(state, ignore_errors=True)
                first = child(store, state, window)
                again = child(store, state, window)
                firsts.append(first["total"])
                nexts.append(again["total"])
                evals.append(again["eval"])
            docs = days * 24 * args.per_hour
            print(
                f"{days:>5} {docs:>9} {first['docs']:>7} {min(firsts):>8.3f} {min(nexts):>8.3f} {min(evals):>8.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
