"""The cost of the agent's self-metrics: one ``inc`` (what the loops pay, a few times per batch),
one ``set``, one ``observe`` (a histogram sample per bulk request) and one ``render`` (a scrape,
paid by the HTTP thread). Reported, never asserted.

    .venv/bin/python bench/self_metrics.py [module.path.or.file.py]

With a file path, that file's ``Metrics`` is measured instead (e.g. an older metrics.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import timeit
from typing import Any


def load(target: str) -> Any:
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location("metrics_under_test", target)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def main() -> None:
    mod = load(sys.argv[1] if len(sys.argv) > 1 else "inferwatch.agent.metrics")
    m = mod.Metrics()
    reason = mod.labels(reason="invalid_json")
    for i in range(50):  # a realistic exposition: 50 files' lag
        m.replace("file_lag_bytes", {mod.labels(path=f"/logs/f{j}.jsonl"): float(j) for j in range(i + 1)})
    n = 200_000
    results = {
        "inc (no labels)": timeit.timeit(lambda: m.inc("lines_read_total", 2000), number=n) / n,
        "inc (one label)": timeit.timeit(lambda: m.inc("dead_lettered_total", 1, reason), number=n) / n,
        "set (gauge)": timeit.timeit(lambda: m.set("spool_bytes", 1024.0), number=n) / n,
    }
    if hasattr(m, "observe"):
        results["observe (histogram)"] = (
            timeit.timeit(lambda: m.observe("bulk_request_duration_seconds", 0.02), number=n) / n
        )
    scrapes = 300
    results["render (one scrape)"] = timeit.timeit(m.render, number=scrapes) / scrapes
    size = len(m.render().encode())
    for name, seconds in results.items():
        print(f"{name:22s} {seconds * 1e6:9.2f} us")
    print(f"{'exposition size':22s} {size:9d} bytes")


if __name__ == "__main__":
    main()
