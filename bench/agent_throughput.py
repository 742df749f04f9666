"""End-to-end throughput of the agent next to a hand-written ``helpers.streaming_bulk`` script.

Both read the same prediction log files and send to the same local bulk endpoint (the fake of
``tests/fakes/bulk_server.py`` as a separate process, ``--ids-only``), one after the other in the
same run. Each is a child process, measured from its start until the endpoint holds every id:

- docs/s: lines / wall seconds (and the steady rate from the first stored document on);
- CPU seconds per 100k lines: user + system time of the child (``os.wait4``), all of it,
  start-up and shutdown included, with that of its own children it waited for (the agent's
  parse workers). On a busy machine wall-clock rates mostly measure the
  contention; lines per CPU second is the steadier figure (the endpoint's CPU is printed too);
- start-up counts: the agent's sources are byte-compiled first (``precompile``), as an
  installed agent's are;
- peak RSS: ``VmHWM`` of ``/proc/<pid>/status`` just before the child is stopped, summed over
  the child and its running descendants (the agent's parse workers; each is shown). That sum
  counts the pages processes share (the interpreter, libraries) once per process, so the peak
  of their summed PSS (``/proc/<pid>/smaps_rollup``, sampled every 50 ms) is printed too.

Usage::

    .venv/bin/python bench/agent_throughput.py                 # 200k lines in 1 file
    .venv/bin/python bench/agent_throughput.py --files 100     # the same over 100 files (RSS)
    .venv/bin/python bench/agent_throughput.py --lines 50000 --skip-baseline --json

Lines are ~400 bytes: nested inputs, one text feature (tokenized by the agent), outputs, latency.
The agent runs with its default config (fsynced spool, gzip level 1, batches of 2000) plus the
model's feature kinds; the baseline script parses with ``json``, builds the same document shape
and calls ``streaming_bulk`` (chunk 2000, gzip bodies), as a person would write it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "churn_classifier"
WORDS = [
    "late",
    "delivery",
    "again",
    "support",
    "never",
    "answered",
    "the",
    "phone",
    "refund",
    "please",
    "app",
    "crashes",
    "when",
    "i",
    "open",
    "settings",
    "great",
    "service",
    "but",
    "price",
    "too",
    "high",
    "cancel",
    "my",
    "plan",
    "thanks",
    "quick",
    "helpful",
    "friendly",
    "slow",
    "invoice",
    "wrong",
    "charged",
    "twice",
    "love",
    "the",
    "new",
    "feature",
    "battery",
    "drains",
    "fast",
    "login",
    "broken",
]
COUNTRIES = ["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "JP"]


# -- data -----------------------------------------------------------------------------------------


def prediction_line(rng: random.Random, seq: int) -> bytes:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 18)))
    doc = {
        "timestamp": f"2026-11-22T10:{seq // 60000 % 60:02d}:{seq // 1000 % 60:02d}.{seq % 1000:03d}Z",
        "model": MODEL,
        "model_version": "1.4.2",
        "prediction_id": f"{seq:08d}-{rng.getrandbits(64):016x}",
        "inputs": {
            "age": rng.randint(18, 90),
            "country": rng.choice(COUNTRIES),
            "plan": rng.choice(["basic", "premium", "family"]),
            "tenure_months": rng.randint(0, 120),
            "user": {"device": rng.choice(["ios", "android", "web"]), "sessions_7d": rng.randint(0, 40)},
            "review_text": text,
        },
        "outputs": {"score": round(rng.random(), 4), "label": rng.choice(["churn", "stay"])},
        "latency_ms": round(rng.uniform(2, 40), 2),
    }
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def write_logs(directory: Path, lines: int, files: int, seed: int = 1) -> tuple[list[Path], int]:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"predictions-{i:03d}.jsonl" for i in range(files)]
    handles = [p.open("wb") for p in paths]
    total = 0
    try:
        for seq in range(lines):
            data = prediction_line(rng, seq)
            total += len(data)
            handles[seq % files].write(data)
    finally:
        for h in handles:
            h.close()
    return paths, total


# -- the endpoint ---------------------------------------------------------------------------------


class Endpoint:
    """The fake bulk server as a subprocess (ids only, so its memory stays small)."""

    def __init__(self, workdir: Path) -> None:
        ready = workdir / "endpoint.json"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.bulk_server",
                "--port",
                "0",
                "--ids-only",
                "--ready-file",
                str(ready),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fake bulk endpoint did not start")
            threading.Event().wait(0.05)
        info = json.loads(ready.read_text())
        self.url: str = info["url"]
        self.control: str = info["control_url"]

    def created(self) -> int:
        with urllib.request.urlopen(self.control + "/_inferwatch/stats", timeout=10) as r:
            return int(json.loads(r.read())["created"])

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.control + "/_inferwatch/stats", timeout=10) as r:
            result: dict[str, int] = json.loads(r.read())
            return result

    def reset(self) -> None:
        req = urllib.request.Request(self.control + "/_inferwatch/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def cpu_s(self) -> float:
        """User + system seconds the endpoint process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


# -- measuring a child --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    lines: int
    wall_s: float
    steady_docs_per_s: float
    cpu_s: float
    peak_rss_mb: float  # the process and its children (the agent's parse workers), summed
    requests: int
    endpoint_cpu_s: float
    processes: int = 1
    peak_pss_mb: float = float("nan")  # sampled every 50 ms: shared pages counted once
    rss_each_mb: tuple[float, ...] = ()  # the peak RSS of each process, when more than one

    @property
    def docs_per_s(self) -> float:
        return self.lines / self.wall_s

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu_s * 100_000 / self.lines

    def line(self) -> str:
        return (
            f"{self.name:<16} {self.lines:>8} docs in {self.wall_s:7.2f} s = {self.docs_per_s:>9,.0f} docs/s "
            f"(steady {self.steady_docs_per_s:>9,.0f}); CPU {self.cpu_per_100k:5.2f} s per 100k lines "
            f"(= {self.lines / self.cpu_s:,.0f} lines per CPU second); "
            f"peak RSS {self.peak_rss_mb:6.1f} MB"
            + (
                f" ({self.processes} processes: {' + '.join(f'{r:.1f}' for r in self.rss_each_mb)})"
                if self.processes > 1
                else ""
            )
            + f", PSS {self.peak_pss_mb:.1f} MB; {self.requests} bulk requests "
            f"(endpoint CPU {self.endpoint_cpu_s:.1f} s)"
        )


def vm_hwm_mb(pid: int) -> float:
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def precompile(*sources: Path) -> None:
    """Byte-compile the agent's sources (into their ``__pycache__``, which git ignores), as
    ``pip install`` does for an installed agent: an editable checkout run with
    ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module at every start (50 ms more
    before the first document) and each parse worker again."""
    import compileall

    for source in sources or (ROOT / "agent" / "src",):
        compileall.compile_dir(source, quiet=1)


def tree_env() -> dict[str, str]:
    """The environment that runs the code of the tree this script lives in: the root on
    PYTHONPATH for ``tests.fakes`` and, where the venv's install is another tree's (a worktree of
    an older commit), this tree's ``src`` folders before it, so that the worktree measures its own
    commit. Only then: every import of the children would search them first (1% of a 200k run)."""
    import importlib.util

    spec = importlib.util.find_spec("inferwatch.agent")
    installed = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []
    paths = [str(ROOT)]
    if (ROOT / "agent" / "src" / "inferwatch" / "agent").resolve() not in installed:
        paths[:0] = [str(ROOT / p) for p in ("agent/src", "analytics/src", "kibana/src")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@dataclass
class Bench:
    """A benchmark's work directory, its prediction logs, the environment its children run in
    (``tree_env``) and the fake endpoint (``close`` it)."""

    workdir: Path
    logs: Path
    env: dict[str, str]
    endpoint: Endpoint


def prepare(prefix: str, lines: int, files: int = 1) -> Bench:
    """A fresh work directory with ``lines`` prediction lines in ``files`` files, the agent's
    sources byte-compiled, and the fake endpoint started; says what was written."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    precompile()
    logs = workdir / "logs"
    paths, size = write_logs(logs, lines, files)
    print(f"{lines} lines in {len(paths)} files, {size / lines:.0f} bytes per line on average ({workdir})")
    return Bench(workdir, logs, tree_env(), Endpoint(workdir))


def descendants(pid: int) -> list[int]:
    """The running children of ``pid``, and theirs (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def tree_hwm_mb(pid: int) -> list[float]:
    """The peak RSS of ``pid`` and of each running descendant."""
    return [vm_hwm_mb(p) for p in [pid, *descendants(pid)]]


def tree_pss_mb(pid: int) -> float:
    """The proportional set size of ``pid`` and its descendants now: each shared page (the
    interpreter, libraries, the pages a parse worker shares) is divided among the processes
    that map it, so the sum is the memory they take together."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            for row in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if row.startswith("Pss:"):
                    total += int(row.split()[1]) / 1024
                    break
        except OSError:
            pass
    return total


def measure(
    name: str, cmd: list[str], endpoint: Endpoint, lines: int, timeout: float, env: dict[str, str]
) -> Result:
    endpoint.reset()
    endpoint_cpu = endpoint.cpu_s()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first: float | None = None
    first_count = 0
    pause = threading.Event()
    done = 0
    pss = float("nan")
    while True:
        sampled = tree_pss_mb(proc.pid)
        pss = sampled if pss != pss else max(pss, sampled)
        done = endpoint.created()
        now = time.monotonic()
        if done and first is None:
            first, first_count = now, done
        if done >= lines:
            break
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(
                f"{name} exited early ({proc.returncode}) with {done}/{lines} stored:\n{err[-3000:]}"
            )
        if now - start > timeout:
            proc.kill()
            raise RuntimeError(f"{name}: only {done}/{lines} stored after {timeout:.0f} s")
        pause.wait(0.05)
    wall = time.monotonic() - start
    steady = (
        (done - first_count) / max(now - first, 1e-9) if first is not None and now > first else float("nan")
    )
    each = tree_hwm_mb(proc.pid)
    peak, processes = sum(each), len(each)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stderr:
        proc.stderr.close()
    if peak != peak:  # the child exited before we looked: fall back to its rusage peak
        peak = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime
    served = endpoint.cpu_s() - endpoint_cpu
    return Result(
        name,
        lines,
        wall,
        steady,
        cpu,
        peak,
        endpoint.stats()["bulk_requests"],
        served,
        processes,
        pss,
        tuple(each) if processes > 1 else (),
    )


# -- the two contenders ---------------------------------------------------------------------------------


def agent_config(
    workdir: Path,
    logs: Path,
    url: str,
    fsync: bool = True,
    workers: int | None = None,
    output: Mapping[str, str] | None = None,
) -> Path:
    """The benchmarks' agent config (every feature kind declared, the text feature tokenized);
    ``output`` holds ``agent.output`` settings as YAML values."""
    settings = ", ".join(f"{key}: {value}" for key, value in (output or {}).items())
    cfg = workdir / "inferwatch.yml"
    cfg.write_text(
        f"""
agent:
  data_dir: {workdir / "data"}
  workers: {"null" if workers is None else workers}
  spool: {{fsync: {"true" if fsync else "false"}}}
  output: {{{settings}}}
  inputs:
    - paths: ["{logs}/*.jsonl"]
      model: {MODEL}
elasticsearch:
  hosts: ["{url}"]
models:
  {MODEL}:
    features: {{age: numeric, country: categorical, plan: categorical, review_text: text}}
    outputs: {{score: numeric, label: categorical}}
"""
    )
    return cfg


def agent_command(config: Path) -> list[str]:
    exe = ROOT / ".venv" / "bin" / "inferwatch"
    if exe.exists():
        return [str(exe), "agent", "run", "--config", str(config)]
    return [sys.executable, "-m", "inferwatch.core", "agent", "run", "--config", str(config)]


def baseline_command(url: str, logs: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", url, str(logs)]


def baseline_worker(url: str, logs: Path) -> int:
    """The hand-written shipper: json per line, one dict per document, ``streaming_bulk``."""
    import hashlib
    import socket

    from elasticsearch import Elasticsearch, helpers

    host = socket.gethostname()
    client = Elasticsearch(url, http_compress=True, request_timeout=60)

    def actions() -> Any:
        for path in sorted(logs.glob("*.jsonl")):
            offset = 0
            with path.open("rb") as f:
                for raw in f:
                    line = json.loads(raw)
                    model = line["model"]
                    doc = {
                        "@timestamp": line["timestamp"],
                        "data_stream": {
                            "type": "logs",
                            "dataset": f"inferwatch.{model}",
                            "namespace": "default",
                        },
                        "host": {"name": host},
                        "log": {"file": {"path": str(path)}, "offset": offset},
                        "ml": {
                            "model": {"name": model, "version": line.get("model_version", "unknown")},
                            "prediction": {
                                "id": line.get("prediction_id"),
                                "latency_ms": line.get("latency_ms"),
                            },
                            "inputs": line.get("inputs", {}),
                            "outputs": line.get("outputs", {}),
                        },
                    }
                    doc_id = hashlib.blake2b(f"{path}:{offset}".encode(), digest_size=16).hexdigest()
                    offset += len(raw)
                    yield {
                        "_op_type": "create",
                        "_index": f"logs-inferwatch.{model}-default",
                        "_id": doc_id,
                        "_source": doc,
                    }

    failed = 0
    for ok, _ in helpers.streaming_bulk(
        client, actions(), chunk_size=2000, raise_on_error=False, max_retries=5
    ):
        failed += not ok
    # Stay alive until stopped, like the agent, so both are measured the same way.
    signal.sigwait({signal.SIGTERM})
    return 1 if failed else 0


# -- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per contender")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-agent", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print one JSON line of results")
    parser.add_argument(
        "--no-fsync", action="store_true", help="agent.spool.fsync: false (to see what fsync costs)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--workers", type=int, default=None, help="agent.workers (encoder threads; default: automatic)"
    )
    parser.add_argument("--baseline-worker", nargs=2, metavar=("URL", "LOGS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_worker:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        return baseline_worker(args.baseline_worker[0], Path(args.baseline_worker[1]))

    bench = prepare("inferwatch-bench-", args.lines, args.files)
    workdir, logs, env, endpoint = bench.workdir, bench.logs, bench.env, bench.endpoint
    results: list[Result] = []
    try:
        if not args.skip_agent:
            probe = subprocess.run(
                [*agent_command(workdir / "none.yml")[:-2], "--help"], cwd=ROOT, env=env, capture_output=True
            )
            if probe.returncode != 0:
                print("the agent daemon is not ready: `inferwatch agent run --help` failed:")
                print(probe.stderr.decode(errors="replace")[-2000:])
                return 3
            config = agent_config(workdir, logs, endpoint.url, fsync=not args.no_fsync, workers=args.workers)
            results.append(
                measure("inferwatch agent", agent_command(config), endpoint, args.lines, args.timeout, env)
            )
            print(results[-1].line())
        if not args.skip_baseline:
            cmd = baseline_command(endpoint.url, logs)
            results.append(measure("streaming_bulk", cmd, endpoint, args.lines, args.timeout, env))
            print(results[-1].line())
    finally:
        endpoint.close()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    if len(results) == 2:
        print(
            f"agent / streaming_bulk: {results[0].docs_per_s / results[1].docs_per_s:.2f}x docs/s, "
            f"{results[1].cpu_per_100k / results[0].cpu_per_100k:.2f}x less CPU per line"
        )
    if args.json:
        print(
            json.dumps(
                [asdict(r) | {"docs_per_s": r.docs_per_s, "cpu_s_per_100k": r.cpu_per_100k} for r in results]
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
