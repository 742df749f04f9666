"""``inferwatch demo``: the whole loop on this machine, or (``--serve``) only the demo model."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from inferwatch.core.clitools import EXIT_FAILED


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        click.echo("\nstopping (Ctrl-C again to abort) ...", err=True)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Run this many wall seconds, then stop (default: until the scripted failures have "
    "come and gone, about a minute at the default speed).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.001),
    default=None,
    show_default="100, or 1 with --serve",
    help="Virtual seconds per wall second: log timestamps advance this much faster, so a "
    "five-minute window passes in 3 s at 100.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Where logs, the local store, alerts and the report go (reset at start).",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the data split and request stream."
)
@click.option("--serve", is_flag=True, help="Only run the demo model, writing prediction logs forever.")
@click.option(
    "--baseline-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --serve: also save the model's baseline here (a worker's analytics.baselines_dir).",
)
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --serve: the folder the prediction logs are written to.",
)
def demo(
    duration: float | None,
    speed: float | None,
    data_dir: Path,
    seed: int,
    serve: bool,
    baseline_dir: Path | None,
    log_dir: Path | None,
) -> None:
    """Run the whole loop on this machine with a demo model, no servers needed.

    A scikit-learn model is trained on the cars data that ships in the vega_datasets package; its
    baseline is built from the training split; the model then serves a stream of held-out cars and
    writes prediction logs, which the agent ships to a local store and the analytics worker
    evaluates window by window. On a schedule the stream breaks: the horsepower field vanishes,
    cars from an origin never seen in training (Korea) arrive, and car names shift to makers the
    model never saw. Alerts open and resolve live; Ctrl-C stops cleanly. A summary and an HTML
    report with the monitored rates are left in the data directory.

    With INFERWATCH_ES_URL set (and INFERWATCH_ES_API_KEY, or INFERWATCH_ES_USERNAME and
    INFERWATCH_ES_PASSWORD; INFERWATCH_ES_CA_CERTS; INFERWATCH_KIBANA_URL) the same loop runs
    against Elasticsearch: `inferwatch setup` first, then the agent ships there, the worker
    counts there, and the Kibana URLs are printed.

    \b
    Examples:
      inferwatch demo                                  # about a minute, then the report
      inferwatch demo --duration 40 --speed 150        # shorter, non-interactive
      inferwatch demo --serve --log-dir /logs          # only the model (docker compose)
      inferwatch demo --serve --log-dir /logs --baseline-dir /data/baselines
    Exit codes: 0 finished or stopped by Ctrl-C, 1 failed (the message says why), 2 usage.
    """
    if serve and log_dir is None:
        raise click.UsageError("--serve needs --log-dir, the folder to write prediction logs to")
    if not serve and (log_dir is not None or baseline_dir is not None):
        raise click.UsageError(
            "--log-dir and --baseline-dir go with --serve; the demo writes under --data-dir"
        )
    missing = [name for name in ("sklearn", "vega_datasets") if importlib.util.find_spec(name) is None]
    if missing:
        click.echo(
            f"the demo needs {', '.join(missing)}: pip install 'inferwatch[demo]' (or run `make demo`)",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    stop = threading.Event()
    _stop_on_signals(stop)  # only now: the checks above may run inside a test process
    if serve:
        from inferwatch.analytics.demo.serve import serve_forever

        assert log_dir is not None
        serve_forever(
            log_dir, speed=speed or 1.0, seed=seed, stop=stop, echo=click.echo, baseline_dir=baseline_dir
        )
        return

    from inferwatch.analytics.demo.runner import DemoError, DemoOptions, run_demo
    from inferwatch.analytics.demo.target import EsTarget

    target = EsTarget.from_env(os.environ)
    opts = DemoOptions(data_dir=data_dir, speed=speed or 100.0, duration=duration, seed=seed, target=target)
    try:
        run_demo(opts, click.echo, stop)
    except DemoError as exc:
        click.echo(f"demo failed: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"demo failed: {exc.strerror or exc}{where}", err=True)
        click.echo(f"fix: give a --data-dir this user can write to (now {data_dir})", err=True)
        sys.exit(EXIT_FAILED)
