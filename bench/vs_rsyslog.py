"""The agent next to rsyslog itself, on the same prediction logs and the same counting endpoint.

rsyslog is the C shipper a Debian host already has: ``imfile`` (inotify) reads the files,
``mmjsonparse`` parses each line, ``omelasticsearch`` sends bulk ``create`` requests of 2000
documents with the prediction id as ``_id`` (packages ``rsyslog`` and ``rsyslog-elasticsearch``).
It ships each line as parsed; the agent does more per line (field paths, kinds, tokens of the
text feature, ECS fields, a deterministic id, gzip, an fsynced spool). Both run one after the
other in one run against ``tests/fakes/bulk_server.py --ids-only`` as a separate process and are
measured as ``bench/agent_throughput.py`` measures (wall, steady docs/s, CPU of the child, peak
RSS). The agent runs with every feature kind declared and the text feature tokenized.

rsyslog runs once per ``--rsyslog-workers`` value, by default with one output worker (its
default) and with two (its best on 2 cores), and the agent is compared with each. The endpoint
answers rsyslog's full answers at the same cost per item as the agent's compact ones
(``filter_path``): rsyslog waits for every answer, so an endpoint slower on full answers would
slow rsyslog, not the agent (until 2026-12-06 it was: about 7 ms per request of 2000, which made
rsyslog look 10-20% slower than it is).

Usage::

    .venv/bin/python bench/vs_rsyslog.py --lines 200000
    .venv/bin/python bench/vs_rsyslog.py --lines 200000 --profile   # + where the agent's time goes

``--profile`` samples the agent with py-spy (``pip install py-spy``) for the whole run and prints
the functions that hold the most samples, per thread.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent_throughput as at

RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="mmjsonparse")
module(load="omelasticsearch")
template(name="doc" type="list") {{ property(name="$!all-json") }}
template(name="docid" type="list") {{ property(name="$!prediction_id") }}
template(name="index" type="string" string="logs-inferwatch.{model}-rsyslog")
ruleset(name="predictions") {{
  action(type="mmjsonparse" cookie="")
  action(type="omelasticsearch" server="{host}" serverport="{port}" template="doc"
         searchIndex="index" dynSearchIndex="on" bulkmode="on" maxbytes="4m"
         writeoperation="create" bulkid="docid" dynbulkid="on" esVersion.major="8"
         queue.type="linkedList" queue.size="{queue_size}" queue.dequeueBatchSize="2000"
         queue.workerThreads="{workers}" action.resumeRetryCount="-1")
}}
input(type="imfile" file="{logs}/*.jsonl" tag="pred" ruleset="predictions" readMode="0")
"""


def rsyslog_command(
    workdir: Path, logs: Path, url: str, workers: int = 1, queue_size: int = 20000
) -> list[str]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    work = workdir / "rsyslog"
    work.mkdir(exist_ok=True)
    conf = work / "rsyslog.conf"
    conf.write_text(
        RSYSLOG_CONF.format(
            work=work, model=at.MODEL, host=host, port=port, logs=logs, workers=workers, queue_size=queue_size
        )
    )
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    return [rsyslogd, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")]


def profile_summary(raw: Path, top: int = 20) -> str:
    """Where the samples of a py-spy ``--threads --format raw`` file (collapsed stacks) went: per
    thread, and per function by own samples (the innermost frame, line numbers folded)."""
    own: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for row in raw.read_text().splitlines():
        stack, _, count_text = row.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        thread = re.sub(r"\(\d+\)", "", frames[0]).strip()
        threads[thread] = threads.get(thread, 0) + count
        leaf = re.sub(r":\d+\)$", ")", frames[-1])
        own[leaf] = own.get(leaf, 0) + count
    lines = [f"{total} samples; by thread:"]
    for name, count in sorted(threads.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {100 * count / max(total, 1):5.1f}%  {name}")
    lines.append(f"top {top} functions by own samples:")
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / max(total, 1):5.1f}%  {name}")
    return "\n".join(lines)


def profile_agent(
    cmd: list[str],
    endpoint: at.Endpoint,
    lines: int,
    workdir: Path,
    env: dict[str, str],
    timeout: float,
    idle: bool = False,
    workers: bool = False,
) -> str:
    """A second agent run, sampled by ``py-spy record --pid`` from start to the last document;
    with ``idle``, the samples of waiting threads too (where a thread's wall time goes); with
    ``workers``, its parse worker processes too (samples are then grouped by process)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return "py-spy not found: pip install py-spy"
    raw = workdir / "agent.pyspy"
    endpoint.reset()
    agent = subprocess.Popen(cmd, cwd=at.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(agent.pid),
            "--threads",
            "--format",
            "raw",
            "--rate",
            "250",
            "--nonblocking",
            *(["--subprocesses"] if workers else []),
            *(["--idle"] if idle else []),
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = at.time.monotonic() + timeout
    while endpoint.created() < lines and agent.poll() is None and at.time.monotonic() < deadline:
        at.threading.Event().wait(0.05)
    agent.send_signal(at.signal.SIGTERM)
    agent.wait(timeout=60)
    _, err = spy.communicate(timeout=60)
    if not raw.exists():
        return f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}"
    return profile_summary(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--profile", action="store_true", help="sample the agent with py-spy")
    parser.add_argument(
        "--idle", action="store_true", help="with --profile: count waiting threads' samples too (wall time)"
    )
    parser.add_argument(
        "--with-workers", action="store_true", help="with --profile: sample the parse worker processes too"
    )
    parser.add_argument("--skip-rsyslog", action="store_true")
    parser.add_argument("--skip-agent", action="store_true")
    parser.add_argument(
        "--rsyslog-workers",
        default="1,2",
        help="omelasticsearch queue worker threads, one rsyslog run per value (default 1,2: its default, "
        "and its best on 2 cores); the agent is compared with each",
    )
    parser.add_argument("--rsyslog-queue", type=int, default=20000, help="action queue size (messages)")
    args = parser.parse_args(argv)

    if not args.skip_rsyslog and not (shutil.which("rsyslogd") or Path("/usr/sbin/rsyslogd").exists()):
        print("rsyslogd not found: apt-get install rsyslog rsyslog-elasticsearch (or pass --skip-rsyslog)")
        return 3
    bench = at.prepare("inferwatch-vs-rsyslog-", args.lines)
    workdir, logs, env, endpoint = bench.workdir, bench.logs, bench.env, bench.endpoint
    rsyslogs: list[at.Result] = []
    agent: at.Result | None = None
    try:
        for workers in [] if args.skip_rsyslog else [int(w) for w in args.rsyslog_workers.split(",")]:
            shutil.rmtree(workdir / "rsyslog", ignore_errors=True)  # a fresh rsyslog: read everything again
            cmd = rsyslog_command(workdir, logs, endpoint.url, workers, args.rsyslog_queue)
            name = f"rsyslog ({workers} worker{'s' if workers > 1 else ''})"
            rsyslogs.append(at.measure(name, cmd, endpoint, args.lines, args.timeout, env))
            print(rsyslogs[-1].line())
        config = at.agent_config(workdir, logs, endpoint.url)
        if not args.skip_agent:
            agent = at.measure(
                "inferwatch agent", at.agent_command(config), endpoint, args.lines, args.timeout, env
            )
            print(agent.line())
        if args.profile:
            shutil.rmtree(workdir / "data", ignore_errors=True)  # a fresh agent: ship everything again
            print(
                profile_agent(
                    at.agent_command(config),
                    endpoint,
                    args.lines,
                    workdir,
                    env,
                    args.timeout,
                    args.idle,
                    args.with_workers,
                )
            )
    finally:
        endpoint.close()
        shutil.rmtree(workdir, ignore_errors=True)
    for rs in rsyslogs:
        if agent is None:
            break
        print(
            f"agent / {rs.name}: {agent.docs_per_s / rs.docs_per_s:.2f}x docs/s "
            f"(steady {agent.steady_docs_per_s / rs.steady_docs_per_s:.2f}x), "
            f"{rs.cpu_per_100k / agent.cpu_per_100k:.2f}x the CPU efficiency, "
            f"RSS {agent.peak_rss_mb:.0f} vs {rs.peak_rss_mb:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
