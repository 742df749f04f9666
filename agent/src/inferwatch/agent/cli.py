"""``inferwatch agent run|check|explain``: the shipping daemon in the foreground, a pre-flight
check, and what a log line becomes.

This module reads argv (via click), installs the signal handlers and chooses exit codes; the
daemon itself lives in ``agent.daemon``. It imports only the agent's own stack.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from inferwatch.core.clitools import EXIT_CONFIG, EXIT_FAILED, config_option, fail, hosts_text, load_or_exit
from inferwatch.core.config import Config, InputConfig

_GLOB_CHARS = frozenset("*?[")


@click.group()
def agent() -> None:
    """Ship prediction logs: run the daemon, or check a config and its output first.

    \b
    Examples:
      inferwatch agent check --config inferwatch.yml   # files matched, output reached?
      inferwatch agent explain -c inferwatch.yml -     # what lines on stdin become
      inferwatch agent run --config inferwatch.yml     # foreground; Ctrl-C or SIGTERM stops

    \b
    A minimal inferwatch.yml:
      agent:
        data_dir: /var/lib/inferwatch        # registry, spool, dead letter (one agent each)
        inputs:
          - paths: ["/var/log/models/*.jsonl*"]
            model: churn_classifier          # when a line names no model
        metrics: {listen: "127.0.0.1:9464"}  # optional: /metrics, /livez (/health), /readyz
      elasticsearch:                         # leave out to write to <data_dir>/store
        hosts: ["https://127.0.0.1:9200"]
        api_key: ${ES_API_KEY}
    """


@agent.command(short_help="Tail the configured log files and ship them until SIGTERM.")
@config_option
def run(config_path: Path) -> None:
    """Tail the configured log files and ship every line until SIGTERM or SIGINT.

    On a signal the agent stops reading, spools what it read, delivers what it can within
    agent.shutdown_timeout, saves file offsets and exits 0. Anything not yet delivered stays in
    <data_dir>/spool and is sent first at the next start. Documents have deterministic ids,
    so what is sent again after a crash is answered 409 and never stored twice.

    Lines that can never be indexed (not JSON, not UTF-8, too long, refused by a mapping) go
    to <data_dir>/dead-letter.ndjson with the reason.

    \b
    Examples:
      inferwatch agent run --config inferwatch.yml
      INFERWATCH_LOG_LEVEL=debug inferwatch agent run -c inferwatch.yml
    A second signal exits at once (code 1); nothing is lost, the rest is sent at the next start.
    Exit codes: 0 stopped cleanly, 1 could not start (data_dir in use, credentials refused),
    2 invalid config. An output that is down at start is not an error: shipping retries.
    """
    cfg = _load_with_inputs(config_path)
    problem = data_dir_problem(cfg.agent.data_dir)
    if problem:
        fail(f"cannot start: agent.data_dir {problem}", _DATA_DIR_FIX)
    from inferwatch.agent.daemon import Agent, AgentLocked
    from inferwatch.agent.outputs import OutputRefused
    from inferwatch.agent.spool import SpoolInUse

    daemon = Agent(cfg)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal while draining: leave now. Safe: the spool and registry are
            # consistent on disk at every moment; what was in flight is sent again at the next
            # start and answered 409.
            click.echo("second signal: exiting without waiting for the drain", err=True)
            os._exit(EXIT_FAILED)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.start()
    except (AgentLocked, SpoolInUse) as e:
        click.echo(f"cannot start: {e}", err=True)
        sys.exit(EXIT_FAILED)
    except OutputRefused as e:
        fail(f"cannot start: the output refuses this agent: {e}", _fix_hint(cfg, e))
    except OSError as e:
        listen = cfg.agent.metrics.listen
        if e.filename is None and listen is not None and listen_problem(listen) is not None:
            fail(f"cannot start: agent.metrics.listen {listen}: {e.strerror or e}", _LISTEN_FIX)
        fail(f"cannot start: {e.strerror or e} ({e.filename or cfg.agent.data_dir})", _DATA_DIR_FIX)
    while not stop.wait(1.0):
        pass
    daemon.stop()


@agent.command(short_help="Validate the config, list matched files, reach the output.")
@config_option
@click.option(
    "--offline",
    is_flag=True,
    help="Do not contact the output (Elasticsearch or the local store): check the config and this host only.",
)
def check(config_path: Path, offline: bool) -> None:
    """Validate the config, list the files each input matches, and reach the output.

    Prints, in order: the config, whether agent.data_dir is writable, the files each input
    matches now (and, when none, whether the folder exists), which normalizer runs (native or
    Python), the output reached, and a summary.
    Nothing is read or shipped. With --offline the output is not contacted (for a CI job or an
    image build where Elasticsearch is not reachable; like `vector validate --no-environment`).

    \b
    Examples:
      inferwatch agent check --config inferwatch.yml
      inferwatch agent check --config inferwatch.yml --offline
    Exit codes: 0 ready to run (inputs matching no file yet are only warned about: files created
    later are picked up while running), 1 the output or agent.data_dir is unusable (with the
    reason and what to change), 2 invalid config.
    """
    cfg = _load_with_inputs(config_path)
    from inferwatch.agent import fastpath
    from inferwatch.agent.files.discovery import Discovery

    a = cfg.agent
    click.echo(f"config {config_path}: valid")
    problem = data_dir_problem(a.data_dir)
    if problem:
        click.echo(f"data_dir {a.data_dir}: UNUSABLE", err=True)
        fail(f"agent.data_dir {problem}", _DATA_DIR_FIX)
    state = "exists, writable" if a.data_dir.is_dir() else "writable, created at the first run"
    running = agent_running(a.data_dir)
    if running:
        state += "; an agent is running on it now (a second one would not start)"
    click.echo(f"data_dir {a.data_dir}: {state}")
    found = Discovery(a.inputs, a.scan_interval).scan()
    idle: list[int] = []
    for i, inp in enumerate(a.inputs):
        paths = [p for idx, p in found if idx == i]
        model = f" (model {inp.model})" if inp.model else ""
        click.echo(f"input {i}{model}: {', '.join(inp.paths)} -> {plural(len(paths), 'file')}")
        for p in paths[:20]:
            click.echo(f"  {p}")
        if len(paths) > 20:
            click.echo(f"  ... and {len(paths) - 20} more")
        if not paths:
            idle.append(i)
            click.echo(f"  warning: {no_match_hint(inp)}")
    redacting = a.redact.active
    click.echo(f"normalizer: {fastpath.describe(fastpath.native_module() is not None, redacting)}")
    metrics_busy = False
    if a.metrics.listen is not None:
        problem = listen_problem(a.metrics.listen)
        if problem and running:
            click.echo(f"metrics: {a.metrics.listen} in use, presumably by the running agent")
        elif problem:
            metrics_busy = True
            click.echo(f"metrics: {a.metrics.listen}")
            click.echo(f"  warning: {problem}; `agent run` would not start; {_LISTEN_FIX}")
        else:
            click.echo(f"metrics: http://{a.metrics.listen}/metrics, /livez and /readyz (address free)")
    where = "Elasticsearch" if cfg.elasticsearch is not None else "the local store"
    if offline:
        target = hosts_text(cfg.elasticsearch.hosts) if cfg.elasticsearch is not None else a.data_dir
        click.echo(f"output: {where} at {target}: not contacted (--offline)")
    else:
        _reach_output(cfg, len(found))
    verdict = "valid (output not contacted)" if offline else "ready"
    summary = (
        f"{verdict}: {plural(len(found), 'file')} of {plural(len(a.inputs), 'input')} would be shipped "
        f"to {where}"
    )
    if idle:
        which = "input" if len(idle) == 1 else "inputs"
        summary += f"; no file matches {which} {', '.join(map(str, idle))} yet"
    if metrics_busy:
        summary += "; the metrics address is in use"
    click.echo(summary)


def _reach_output(cfg: Config, files: int) -> None:
    """Print what the output answers, or exit 1 with the fix when it cannot be reached."""
    from inferwatch.agent.daemon import build_output
    from inferwatch.agent.outputs import OutputUnavailable

    output = build_output(cfg)
    try:
        click.echo(f"output: {output.check()}")
    except OutputUnavailable as e:
        click.echo(f"output: unreachable: {e}", err=True)
        fail(f"not ready: the output cannot be reached ({plural(files, 'file')} matched)", _fix_hint(cfg, e))
    finally:
        output.close()


@agent.command(short_help="Show what log lines become (document, index, id) without shipping them.")
@config_option
@click.option(
    "--input",
    "-i",
    "input_index",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The agent.inputs entry (0 is the first) whose model, fields and id rule apply.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (for jq and scripts).")
@click.argument("line")
def explain(config_path: Path, input_index: int, as_json: bool, line: str) -> None:
    """Show what LINE becomes: its document, data stream and id, or why it would go to the
    dead letter. Nothing is shipped or written, and the output is not contacted.

    LINE is one log line, or - to read lines from standard input (a whole file: the ids are
    those the agent gives its lines, which depend on the file's first line and each line's
    offset). Redaction (agent.redact) applies as when shipping.

    \b
    Examples:
      inferwatch agent explain -c inferwatch.yml '{"model": "churn", "inputs": {"age": 41}}'
      head -3 /var/log/models/churn.jsonl | inferwatch agent explain -c inferwatch.yml -
      inferwatch agent explain -c inferwatch.yml --input 1 --json - < sample.jsonl | jq .index
    Exit codes: 0 every line becomes a document, 1 a line would go to the dead letter,
    2 invalid config or --input.
    """
    cfg = _load_with_inputs(config_path)
    if input_index >= len(cfg.agent.inputs):
        fail(
            f"--input {input_index}: the config has {plural(len(cfg.agent.inputs), 'input')}",
            f"give --input 0 to {len(cfg.agent.inputs) - 1} (the position in agent.inputs)",
            code=EXIT_CONFIG,
        )
    from inferwatch.agent.explain import explain as explain_lines
    from inferwatch.agent.explain import render, to_json

    data = sys.stdin.buffer.read() if line == "-" else line.encode("utf-8", "surrogateescape")
    ingested = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    found = explain_lines(cfg, input_index, data, "-", socket.gethostname(), ingested)
    if not found:
        fail("no line to explain: the input is empty", "give a log line, or - and lines on standard input")
    for number, e in enumerate(found, 1):
        click.echo(to_json(e) if as_json else render(e, number))
    dead = sum(e.dead_lettered for e in found)
    if dead:
        fail(f"{plural(dead, 'line')} of {len(found)} would go to the dead letter (reason above)")


_DATA_DIR_FIX = (
    "make the folder writable by this user (and not used by another agent), or set agent.data_dir "
    "to one that is; it holds the registry, spool, dead letter and local store"
)


_LISTEN_FIX = (
    "choose a free port in agent.metrics.listen (or stop what listens there: another agent?), "
    "or remove the key to serve no metrics"
)


def listen_problem(listen: str) -> str | None:
    """Why the metrics server could not listen on ``host:port``, or None (binds and closes)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as e:
        return f"cannot resolve {host!r}: {e}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            return f"cannot listen there: {e.strerror or e}"
    return None


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def agent_running(data_dir: Path) -> bool:
    """Whether an agent holds the lock of ``data_dir`` now (probed without writing anything)."""
    from inferwatch.core.layout import DataDir

    try:
        fd = os.open(DataDir(data_dir).lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def data_dir_problem(data_dir: Path) -> str | None:
    """Why the agent could not keep its state in ``data_dir``, or None. A folder that does not
    exist yet is fine when it can be created."""
    existing = data_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{data_dir}: {existing} is not a folder"
    if existing != data_dir:
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{data_dir} does not exist and cannot be created: {existing} is not writable"
        return None
    try:
        fd, probe = tempfile.mkstemp(prefix=".inferwatch-check-", dir=data_dir)
    except OSError as e:
        return f"{data_dir} is not writable: {e.strerror or e}"
    os.close(fd)
    os.unlink(probe)
    return None


def glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (``/var/log/*/x.jsonl`` -> ``/var/log``)."""
    parts: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def no_match_hint(inp: InputConfig) -> str:
    """Why an input matches no file, as far as the file system tells: a folder missing is a typo
    more often than a model server not started yet."""
    missing = sorted({str(glob_root(p)) for p in inp.paths if not glob_root(p).is_dir()})
    if missing:
        return (
            f"no file matches: the folder {', '.join(missing)} does not exist; correct the path in "
            "agent.inputs, or ignore this if the model server creates it later (new files are "
            "picked up while running)"
        )
    exclude = f", or an exclude ({', '.join(inp.exclude)}) removes them" if inp.exclude else ""
    return (
        "no file matches yet; files created later are picked up while running (check the file "
        f"name pattern{exclude})"
    )


def _fix_hint(cfg: Config, e: Exception) -> str:
    if getattr(e, "permanent", False):
        return "the reason above names what to change in the elasticsearch section"
    if cfg.elasticsearch is not None:
        hosts = hosts_text(cfg.elasticsearch.hosts)
        return (
            f"is Elasticsearch running and reachable at {hosts}? Check elasticsearch.hosts "
            "(scheme, host, port), or remove the elasticsearch section to write to the local store"
        )
    return f"make {cfg.agent.data_dir} writable by this user, or set agent.data_dir"


def _load_with_inputs(path: Path) -> Config:
    """The config, which must name at least one input: the agent has nothing to do without one
    (the analytics commands, which read what the agent shipped, do not need any)."""
    cfg = load_or_exit(path)
    if not cfg.agent.inputs:
        click.echo(
            f"{path}: invalid config:\n  agent.inputs: needs at least one input to run the agent, e.g.\n"
            "    agent:\n      inputs:\n        - paths: [/var/log/models/*.jsonl]\n"
            "          model: churn_classifier",
            err=True,
        )
        sys.exit(EXIT_CONFIG)
    return cfg
