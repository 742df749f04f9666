"""Agent settings side by side: the same prediction log shipped by a fresh agent per setting,
the settings taking turns, so that a machine that drifts during the run weighs on each alike.

Each ``--variant NAME=YAML`` is a YAML mapping merged into the ``agent`` section of
``bench/agent_throughput.py``'s config (every feature kind declared, the text feature tokenized);
the first variant is the baseline the others are compared with. Each run is measured as
``agent_throughput.measure`` measures (from the agent's start until the endpoint holds every id):
docs/s over the whole run, CPU of the agent and its parse worker, peak PSS. A setting's effect
under a few percent needs several rounds to tell from the noise: the medians are printed with
every run's figure.

Usage::

    .venv/bin/python bench/config_ab.py --rounds 3 \\
        --variant 'default={}' \\
        --variant 'batch 4000={batch: {max_docs: 4000, max_bytes: 8MiB}}' \\
        --variant 'no fsync={spool: {fsync: false}}'

The code measured is the tree this script lives in (``agent_throughput.tree_env``); to compare
two commits, run this script in a worktree of each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent_throughput as at


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def variant(text: str) -> tuple[str, dict[str, Any]]:
    name, sep, settings = text.partition("=")
    value = yaml.safe_load(settings) if sep else None
    if not name or not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected NAME=YAML-MAPPING such as 'batch={{max_docs: 4000}}', got {text!r}"
        )
    return name, value


def config(workdir: Path, logs: Path, url: str, settings: dict[str, Any]) -> Path:
    path = at.agent_config(workdir, logs, url)
    whole = yaml.safe_load(path.read_text())
    whole["agent"] = merged(whole["agent"], settings)
    path.write_text(yaml.safe_dump(whole, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant, taking turns")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument(
        "--variant",
        type=variant,
        action="append",
        required=True,
        metavar="NAME=YAML",
        help="agent settings to merge into the agent section; the first is the baseline",
    )
    args = parser.parse_args(argv)

    bench = at.prepare("inferwatch-config-ab-", args.lines)
    workdir, logs, env, endpoint = bench.workdir, bench.logs, bench.env, bench.endpoint
    results: dict[str, list[at.Result]] = {name: [] for name, _ in args.variant}
    try:
        for n in range(args.rounds):
            for i, (name, settings) in enumerate(args.variant):
                run = workdir / f"{n}-{i}"
                run.mkdir()
                cmd = at.agent_command(config(run, logs, endpoint.url, settings))
                results[name].append(at.measure(name, cmd, endpoint, args.lines, args.timeout, env))
                print(results[name][-1].line(), flush=True)
    finally:
        endpoint.close()
        shutil.rmtree(workdir, ignore_errors=True)
    base = statistics.median(r.docs_per_s for r in results[args.variant[0][0]])
    print()
    for name, runs in results.items():
        rate = statistics.median(r.docs_per_s for r in runs)
        print(
            f"{name:<24} {rate:>9,.0f} docs/s median ({', '.join(f'{r.docs_per_s:,.0f}' for r in runs)}), "
            f"{rate / base - 1:+.1%} against {args.variant[0][0]}; "
            f"CPU {statistics.median(r.cpu_per_100k for r in runs):.2f} s per 100k lines; "
            f"peak PSS {max(r.peak_pss_mb for r in runs):.1f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
