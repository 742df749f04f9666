"""``inferwatch agent run|check``: the shipping daemon in the foreground, and a pre-flight check.

This module reads argv (via click), installs the signal handlers and chooses exit codes; the
daemon itself lives in ``agent.daemon``. It imports only the agent's own stack.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from agent.cli.common import EXIT_CONFIG, config_option, load_or_exit
from agent.config import Config

EXIT_UNREACHABLE = 1


@click.group()
def agent() -> None:
    """Ship prediction logs: run the daemon, or check a config and its output first.

    \b
    Examples:
      inferwatch agent check --config inferwatch.yml   # files matched, output reached?
      inferwatch agent run --config inferwatch.yml     # foreground; Ctrl-C or SIGTERM stops

    \b
    A minimal inferwatch.yml:
      agent:
        data_dir: /var/lib/inferwatch        # registry, spool, dead letter (one agent each)
        inputs:
          - paths: ["/var/log/models/*.jsonl*"]
            model: churn_classifier          # when a line names no model
        metrics: {listen: "127.0.0.1:9464"}  # optional: /metrics and /health
      elasticsearch:                         # leave out to write to <data_dir>/store
        hosts: ["https://127.0.0.1:9200"]
        api_key: ${ES_API_KEY}
    """


@agent.command()
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
    from agent.daemon import Agent, AgentLocked
    from agent.outputs import OutputRefused
    from agent.spool import SpoolInUse

    daemon = Agent(cfg)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal while draining: leave now. Safe: the spool and registry are
            # consistent on disk at every moment; what was in flight is sent again at the next
            # start and answered 409.
            click.echo("second signal: exiting without waiting for the drain", err=True)
            os._exit(EXIT_UNREACHABLE)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.start()
    except (AgentLocked, SpoolInUse) as e:
        click.echo(f"cannot start: {e}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except OutputRefused as e:
        click.echo(f"cannot start: the output refuses this agent: {e}", err=True)
        click.echo(_fix_hint(cfg, e), err=True)
        sys.exit(EXIT_UNREACHABLE)
    except OSError as e:
        click.echo(
            f"cannot start: {e}; check that agent.data_dir ({cfg.agent.data_dir}) is writable", err=True
        )
        sys.exit(EXIT_UNREACHABLE)
    while not stop.wait(1.0):
        pass
    daemon.stop()


@agent.command()
@config_option
def check(config_path: Path) -> None:
    """Validate the config, list the files each input matches, and reach the output.

    Prints what it found; exits 1 when the output cannot be reached (with the reason and what
    to change), 2 when the config is invalid, 0 otherwise. Nothing is read or shipped.

    \b
    Example:
      inferwatch agent check --config inferwatch.yml
    """
    cfg = _load_with_inputs(config_path)
    from agent.daemon import build_output
    from agent.files.discovery import Discovery
    from agent.outputs import OutputUnavailable

    a = cfg.agent
    click.echo(f"config {config_path}: valid")
    click.echo(f"data_dir {a.data_dir}")
    found = Discovery(a.inputs, a.scan_interval).scan()
    for i, inp in enumerate(a.inputs):
        paths = [p for idx, p in found if idx == i]
        model = f" (model {inp.model})" if inp.model else ""
        click.echo(f"input {i}{model}: {', '.join(inp.paths)} -> {len(paths)} files")
        for p in paths[:20]:
            click.echo(f"  {p}")
        if len(paths) > 20:
            click.echo(f"  ... and {len(paths) - 20} more")
        if not paths:
            click.echo("  (no file matches yet; files created later are picked up while running)")
    output = build_output(cfg)
    try:
        click.echo(f"output: {output.check()}")
    except OutputUnavailable as e:
        click.echo(f"output: unreachable: {e}", err=True)
        click.echo(_fix_hint(cfg, e), err=True)
        sys.exit(EXIT_UNREACHABLE)
    finally:
        output.close()


def _fix_hint(cfg: Config, e: Exception) -> str:
    if getattr(e, "permanent", False):
        return "fix: the reason above names what to change in the elasticsearch section"
    if cfg.elasticsearch is not None:
        hosts = ", ".join(cfg.elasticsearch.hosts)
        return (
            f"fix: is Elasticsearch running and reachable at {hosts}? Check elasticsearch.hosts "
            "(scheme, host, port), or remove the elasticsearch section to write to the local store"
        )
    return f"fix: make {cfg.agent.data_dir} writable by this user, or set agent.data_dir"


def _load_with_inputs(path: Path) -> Config:
    cfg = load_or_exit(path)
    if not cfg.agent.inputs:
        click.echo(
            f"{path}: invalid config:\n  agent.inputs: needs at least one input, e.g.\n"
            "    agent:\n      inputs:\n        - paths: [/var/log/models/*.jsonl]",
            err=True,
        )
        sys.exit(EXIT_CONFIG)
    return cfg
