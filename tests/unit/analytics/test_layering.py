"""The analytics commands sit on top: the worker's wiring, its display, the report and the demo
are libraries that import no CLI module (the demo used to import ``analytics.cli`` for its
backends)."""

from __future__ import annotations

import subprocess
import sys

LIBRARIES = (
    "inferwatch.analytics.wiring",
    "inferwatch.analytics.display",
    "inferwatch.analytics.jobs",
    "inferwatch.analytics.report",
    "inferwatch.analytics.report.build",
    "inferwatch.analytics.demo.runner",
    "inferwatch.analytics.baseline",
    "inferwatch.analytics.baseline.store",
)


def test_no_library_module_loads_a_cli_module() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {LIBRARIES!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('inferwatch.analytics.cli')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_building_a_baseline_loads_no_elasticsearch_client() -> None:
    code = "import sys, inferwatch.analytics.baseline\nprint('elasticsearch' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
