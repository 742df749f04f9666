"""Delivery rate of the agent when Elasticsearch pushes back, next to the fault-free rate.

The same prediction log (``agent_throughput.write_logs``) is shipped by a fresh agent (its own
data_dir) to the same fake bulk endpoint (``tests/fakes/bulk_server.py`` as a separate process,
``--ids-only``) twice or more in one run:

- ``clean``: no faults;
- ``pushback``: ``--item-429`` of the bulk items answered 429 (decided per item and attempt) and
  ``--request-429`` of the bulk requests answered 429 as a whole (decided per request number).

Each is measured from the agent's start until the endpoint holds every id (``agent_throughput
.measure``): docs/s = lines / wall seconds, and the steady rate from the first stored document on.
The goal of issue 10: the pushback rate at least 80% of the clean one.

Usage::

    .venv/bin/python bench/delivery_faults.py                       # 200k lines, 2% + 1%
    .venv/bin/python bench/delivery_faults.py --lines 100000 --rounds 2 --set agent.output.max_in_flight=1

The code measured is the tree this script lives in (``agent_throughput.tree_env``), so a
worktree of an older commit measures that commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_throughput import Endpoint, Result, agent_config, measure, prepare


def set_faults(endpoint: Endpoint, **plan: object) -> None:
    req = urllib.request.Request(
        endpoint.control + "/_fault",
        data=json.dumps(plan).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).close()


def config(workdir: Path, logs: Path, url: str, extra: list[str]) -> Path:
    """The benchmark's agent config; ``extra`` holds ``agent.output.x=y`` overrides."""
    output = {key.split(".")[-1]: value for key, value in (e.split("=", 1) for e in extra)}
    return agent_config(workdir, logs, url, output=output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--item-429", type=float, default=0.02, help="share of bulk items answered 429")
    parser.add_argument("--request-429", type=float, default=0.01, help="share of bulk requests answered 429")
    parser.add_argument("--rounds", type=int, default=1, help="clean + pushback pairs, alternated")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--set", action="append", default=[], metavar="agent.output.KEY=VALUE", help="agent.output overrides"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    bench = prepare("inferwatch-faults-", args.lines)
    workdir, logs, env, endpoint = bench.workdir, bench.logs, bench.env, bench.endpoint
    results: dict[str, list[Result]] = {"clean": [], "pushback": []}
    try:
        for n in range(args.rounds):
            for name in ("clean", "pushback"):
                run = workdir / f"{name}-{n}"
                run.mkdir()
                faults = (
                    {"item_429_rate": args.item_429, "request_429_rate": args.request_429, "seed": n + 1}
                    if name == "pushback"
                    else {"item_429_rate": 0.0, "request_429_rate": 0.0}
                )
                set_faults(endpoint, **faults)
                cfg = config(run, logs, endpoint.url, args.set)
                cmd = [sys.executable, "-m", "inferwatch.core", "agent", "run", "--config", str(cfg)]
                result = measure(name, cmd, endpoint, args.lines, args.timeout, env)
                results[name].append(result)
                print(result.line(), flush=True)
    finally:
        endpoint.close()
        shutil.rmtree(workdir, ignore_errors=True)
    clean = max(r.docs_per_s for r in results["clean"])
    pushback = max(r.docs_per_s for r in results["pushback"])
    print(
        f"best of {args.rounds}: clean {clean:,.0f} docs/s, pushback ({args.item_429:.0%} item 429s, "
        f"{args.request_429:.0%} request 429s) {pushback:,.0f} docs/s = {pushback / clean:.0%} of clean"
    )
    rounds = zip(results["clean"], results["pushback"], strict=True)
    print(
        "each round, pushback / clean: " + ", ".join(f"{p.docs_per_s / c.docs_per_s:.0%}" for c, p in rounds)
    )
    if args.json:
        print(json.dumps({k: [r.docs_per_s for r in v] for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
