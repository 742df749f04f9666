"""How long ``inferwatch report`` takes on a large local store: a history of the demo's cars
(``tests/unit/analytics/report_scenario.py``: failures injected, the worker's evaluator run over
every window so that real alerts exist) of ``--docs`` documents in ``--windows`` hourly windows,
then one report of the whole period in a fresh process, as the command runs.

    .venv/bin/python bench/report_speed.py [--docs 1000000] [--windows 168] [--repeat 1]

Prints the seconds of: ``collect`` (reading the store, count tables of the whole period and of
every window, the detectors over every window, the alerts), ``render`` (plotly figures and the
page), the page's size and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(data_dir: Path, windows: int) -> dict[str, Any]:
    from datetime import timedelta

    from inferwatch.analytics.model import Window
    from inferwatch.analytics.report.build import report_data
    from inferwatch.analytics.report.render import render
    from inferwatch.core.config import load_config
    from tests.unit.analytics.report_scenario import ORIGIN, SPAN

    cfg = load_config(data_dir / "inferwatch.yml")
    period = Window(ORIGIN, ORIGIN + timedelta(seconds=windows * SPAN))
    t0 = time.perf_counter()
    data = report_data(cfg, "cars_mpg", period, SPAN)
    t1 = time.perf_counter()
    page = render(data, "bench")
    t2 = time.perf_counter()
    return {
        "collect": t1 - t0,
        "render": t2 - t1,
        "bytes": len(page.encode()),
        "alerts": len(data.alerts),
        "docs": sum(data.versions.values()),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=168)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(Path(args.one[0]), int(args.one[1]))))
        return
    from tests.unit.analytics.report_scenario import Failure, write_scenario

    per_window = max(1, args.docs // args.windows)
    failures = (Failure("hp_missing", 30, 33), Failure("korea", 80, 84), Failure("new_makers", 130, 133))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        scenario = write_scenario(Path(tmp) / "history", args.windows, per_window, failures)
        print(
            f"history: {scenario.documents:,} documents in {args.windows} windows, written and evaluated "
            f"in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(Path(tmp) / "history"), str(args.windows)],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout))
        best = min(runs, key=lambda r: r["collect"] + r["render"])
        print(
            f"report of {best['docs']:,} documents, {best['alerts']} alerts: collect {best['collect']:.1f} s, "
            f"render {best['render']:.1f} s, total {best['collect'] + best['render']:.1f} s, "
            f"page {best['bytes'] / 1e6:.1f} MB, peak RSS {best['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
