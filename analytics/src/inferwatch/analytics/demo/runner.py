"""The demo, end to end on one machine: train the model, build its baseline, start the agent as a
subprocess against the local store, write prediction logs in virtual time, evaluate every
completed window in-process, print what happens, and leave a report.

``<data_dir>`` after a run::

    inferwatch.yml        the config the agent and the worker used (try `inferwatch analytics once`)
    logs/                 the demo model's prediction logs
    store/ spool/ ...     the agent's local store, spool, registry and dead letter
    baselines/            the baseline of cars_mpg 1.0, built from the training split
    alerts/               alerts.json (current documents) and history.ndjson (every transition)
    analytics-state/      the worker's memory between windows
    demo.json             the schedule, every window's rates and alert changes (machine-readable)
    summary.txt report.html
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import yaml

from inferwatch.agent.writer import PredictionLogger
from inferwatch.analytics.alerts import RESOLVE_AFTER
from inferwatch.analytics.demo import data as demo_data
from inferwatch.analytics.demo import model as demo_model
from inferwatch.analytics.demo.baseline import demo_baseline
from inferwatch.analytics.demo.clock import VirtualClock, floor_time
from inferwatch.analytics.demo.server import DemoModel, sklearn_predict
from inferwatch.analytics.demo.story import (
    ChangeLine,
    IncidentLine,
    WindowRecord,
    summary_lines,
)
from inferwatch.analytics.demo.stream import Injection, default_schedule
from inferwatch.analytics.demo.target import ES_URL, EsCounter, EsTarget
from inferwatch.analytics.model import Window
from inferwatch.analytics.report import Shade, build_report, write_report
from inferwatch.analytics.wiring import Backends, backends, build_evaluator
from inferwatch.core.config import Config, ConfigError, load_config
from inferwatch.core.layout import DataDir

Echo = Callable[[str], None]

DEFAULT_SPAN = 300.0  # virtual seconds per window (the worker's interval and window)
DEFAULT_PER_WINDOW = 400  # requests per window
CATCH_UP_TIMEOUT = 20.0  # wall seconds to wait for the agent to ship a window's lines
AGENT_STOP_TIMEOUT = 20.0

# What a run leaves in the data directory; only these are removed when a new run starts there.
RUN_ENTRIES = (
    "inferwatch.yml",
    "logs",
    *DataDir.NAMES,
    "agent.log",
    "demo.json",
    "summary.txt",
    "report.html",
)


class DemoError(RuntimeError):
    """The demo cannot go on (the agent died, the data directory is unusable...)."""


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    speed: float = 100.0  # virtual seconds per wall second
    duration: float | None = None  # wall seconds; None: the scripted failures and their recovery
    seed: int = 7
    span: float = DEFAULT_SPAN
    per_window: int = DEFAULT_PER_WINDOW
    target: EsTarget | None = None  # None: the local store

    def windows(self, schedule: list[Injection]) -> int:
        if self.duration is not None:
            return max(1, int(self.duration * self.speed // self.span))
        return max((i.end for i in schedule), default=0) + RESOLVE_AFTER + 1


@dataclass
class DemoResult:
    data_dir: Path
    records: list[WindowRecord]
    summary: list[str]
    report: Path
    interrupted: bool
    written: int
    shipped: int
    schedule: list[Injection] = field(default_factory=list)


# ------------------------------------------------------------------------------- pieces


def reset(data_dir: Path) -> None:
    """Remove what an earlier run left (only the entries a run creates), so each run starts fresh."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_ENTRIES:
        path = data_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def config_dict(span: float, target: EsTarget | None = None) -> dict[str, Any]:
    """The demo's config: agent and worker on the local store under the config's own folder,
    or on Elasticsearch when a target is given."""
    seconds = f"{int(span)}s"
    cfg: dict[str, Any] = {
        "agent": {
            "data_dir": ".",
            "inputs": [{"paths": ["./logs/*.jsonl"]}],
            "scan_interval": "1s",
            "shutdown_timeout": "10s",
            "batch": {"max_wait": "200ms"},
        },
        "analytics": {
            "interval": seconds,
            "window": seconds,
            "false_alarms_per_week": 1.0,
            # an incident is told resolved once two windows passed with no member back (a day in
            # production), so the demo's short run shows each incident's whole life
            "cooldown": f"{int(2 * span)}s",
        },
        "models": {
            demo_data.MODEL: {
                "features": dict(demo_data.FEATURES),
                "outputs": dict(demo_data.OUTPUTS),
                "categorical_closed": ["origin", "cylinders"],
            }
        },
    }
    if target is not None:
        cfg.update(target.config_sections())
    return cfg


def write_config(data_dir: Path, span: float, target: EsTarget | None = None) -> Path:
    path = data_dir / "inferwatch.yml"
    header = (
        "# written by `inferwatch demo`: the local store, no servers\n"
        if target is None
        else f"# written by `inferwatch demo`: Elasticsearch from ${ES_URL}, secrets from the environment\n"
    )
    path.write_text(header + yaml.safe_dump(config_dict(span, target), sort_keys=False), encoding="utf-8")
    return path


class PredictionLog:
    """The demo model's prediction log, written with the product's own ``PredictionLogger``
    (one complete line per unbuffered append). The timestamps are the demo's virtual ones."""

    def __init__(self, path: Path, max_bytes: int | None = None, backup_count: int = 2) -> None:
        self.path = path
        self.logger = PredictionLogger(
            path, demo_data.MODEL, demo_data.VERSION, max_bytes=max_bytes, backup_count=backup_count
        )

    def write(self, line: Mapping[str, Any]) -> None:
        self.logger.log(
            line["inputs"],
            line["outputs"],
            latency_ms=line.get("latency_ms"),
            prediction_id=line.get("prediction_id"),
            timestamp=line["timestamp"],
        )

    def close(self) -> None:
        self.logger.close()


class StoreCounter:
    """Documents in the agent's local store (segments are immutable once renamed into place)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._lines: dict[str, tuple[int, int]] = {}  # path -> (size, lines)

    def count(self) -> int:
        total = 0
        for path in glob.glob(str(self.store / "*" / "*.ndjson")):
            try:
                size = os.path.getsize(path)
                cached = self._lines.get(path)
                if cached is None or cached[0] != size:
                    with open(path, "rb") as fh:
                        cached = (size, sum(1 for line in fh if line.strip()))
                    self._lines[path] = cached
            except OSError:  # renamed or removed between glob and read
                continue
            total += cached[1]
        return total


class AgentProcess:
    """``python -m agent agent run`` in its own session, so a Ctrl-C in the terminal reaches only
    the demo, which then stops the agent with SIGTERM (drain, checkpoint) in its own order."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.core", "agent", "run", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = AGENT_STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait for the drain, SIGKILL if it overruns; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


# --------------------------------------------------------------------------------- the run


def _fmt_rate(value: float | None) -> str:
    return "  -  " if value is None else f"{value:5.1f}%"


_MARKS = {"opened": ("OPENED  ", "red"), "resolved": ("RESOLVED", "green"), "escalated": ("ESCALATED", "red")}


def _change_text(c: ChangeLine) -> str:
    """One alert transition; colored on a terminal (click.echo strips the colors elsewhere)."""
    text, color = _MARKS.get(c.transition, (c.transition, "white"))
    message = f"back to normal; it was: {c.message}" if c.transition == "resolved" else c.message
    return f"    {click.style(text, fg=color, bold=True)} {c.severity:<8} {c.detector:<17} {message}"


def _incident_text(i: IncidentLine) -> str:
    """One notification: what the Kibana rule would send for this incident transition."""
    text, color = _MARKS.get(i.transition, (i.transition, "white"))
    alerts = f"{i.members} alert" + ("s" if i.members != 1 else "")
    return f"    {click.style('INCIDENT', fg=color, bold=True)} {text.strip().lower()} {i.severity}: {i.message} ({alerts})"


class Demo:
    def __init__(self, opts: DemoOptions, echo: Echo, stop: threading.Event) -> None:
        self.opts = opts
        self.echo = echo
        self.stop = stop
        self.schedule = default_schedule()
        self.records: list[WindowRecord] = []

    def prepare(self) -> tuple[Config, Backends, DemoModel, PredictionLog]:
        opts, echo = self.opts, self.echo
        reset(opts.data_dir)
        cars = demo_data.load_cars()
        parts = demo_data.split(cars, seed=opts.seed)
        echo(
            f"training the demo model on {len(parts.train)} cars (vega_datasets), {len(parts.heldout)} held out ..."
        )
        pipeline = demo_model.train(parts.train)
        echo(
            f"  held-out accuracy {demo_model.accuracy(pipeline, parts.heldout):.1%} (is the car fuel-efficient?)"
        )
        baseline = demo_baseline(parts, demo_model.out_of_fold(parts.train, seed=opts.seed))
        config_path = write_config(opts.data_dir, opts.span, opts.target)
        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            raise DemoError(f"{config_path}: {exc.render()}") from exc
        if opts.target is not None:
            self._setup(config_path)
        chosen = backends(cfg)
        chosen.baselines.save(baseline)
        echo(
            f"  baseline {baseline.model} {baseline.version}: {baseline.rows} rows, {len(baseline.features)} features"
        )
        log = PredictionLog(opts.data_dir / "logs" / "predictions.jsonl")
        origin = floor_time(datetime.now(UTC), opts.span)
        model = DemoModel(
            predict=sklearn_predict(pipeline),
            heldout=parts.heldout,
            schedule=self.schedule,
            write=log.write,
            origin=origin,
            span=opts.span,
            per_window=opts.per_window,
            seed=opts.seed,
        )
        return cfg, chosen, model, log

    def run(self) -> DemoResult:

        opts, echo = self.opts, self.echo
        cfg, chosen, model, log = self.prepare()
        evaluator = build_evaluator(cfg, chosen)
        counter = self._counter(cfg)
        echo(f"shipping to the {chosen.description}")
        for link in opts.target.links() if opts.target else []:
            echo(f"  Kibana: {link}")
        agent = AgentProcess(cfg.source or opts.data_dir / "inferwatch.yml", opts.data_dir / "agent.log")
        n_windows = opts.windows(self.schedule)
        echo(
            f"agent started (pid {agent.proc.pid}); {n_windows} windows of {opts.span / 60:g} minutes, "
            f"time x{opts.speed:g} (one window every {opts.span / opts.speed:.1f}s); Ctrl-C stops"
        )
        for inj in self.schedule:
            if inj.start < n_windows:
                echo(f"  windows {inj.start}-{inj.end - 1}: {inj.describe}")
        echo("  rates per window: hp-null = horsepower missing, unseen = origin never seen in training,")
        echo("  name-oov = car names with a word outside the training vocabulary")
        echo("  window  time         lines  shipped  hp-null  unseen  name-oov")
        clock = VirtualClock(model.origin, opts.speed)
        interrupted = False
        try:
            for k in range(n_windows):
                end = model.window_start(k + 1)
                if not self._write_until(clock, model, end, agent):
                    interrupted = True
                    break
                needed = model.total_written(before_window=k + 1)
                shipped = self._wait_shipped(counter, needed, agent)
                self._evaluate(evaluator, model, k, Window(model.window_start(k), end), shipped)
            else:
                k = n_windows
        finally:
            log.close()
            code = agent.stop()
        if interrupted:
            echo(f"stopping: agent exited with {code}; final evaluation of the window in progress")
            start = model.window_start(k)
            now = min(clock.now(), model.window_start(k + 1))
            if model.written.get(k, 0) > 0 and now > start:
                self._evaluate(evaluator, model, k, Window(start, now), counter.count())
        elif code not in (0, None):
            echo(f"the agent exited with {code}; see {agent.log_path}")
        return self._finish(cfg, model, counter.count(), interrupted)

    def _setup(self, config_path: Path) -> None:
        """``inferwatch setup``: templates, alert indices and (with Kibana) the saved objects."""
        self.echo("installing Elasticsearch templates and Kibana assets (inferwatch setup) ...")
        log_path = self.opts.data_dir / "setup.log"
        with log_path.open("wb") as out:
            code = subprocess.call(
                [sys.executable, "-m", "inferwatch.core", "setup", "--config", str(config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if code != 0:
            tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
            raise DemoError(f"inferwatch setup failed ({code}):\n{tail}")

    def _counter(self, cfg: Config) -> StoreCounter | EsCounter:
        if cfg.elasticsearch is None:
            return StoreCounter(DataDir(cfg.agent.data_dir).store)
        from inferwatch.analytics.es import make_client
        from inferwatch.core.contract import data_stream

        return EsCounter(make_client(cfg.elasticsearch), data_stream(demo_data.MODEL, cfg.agent.namespace))

    def _write_until(self, clock: VirtualClock, model: DemoModel, end: datetime, agent: AgentProcess) -> bool:
        """Write lines as virtual time passes until ``end``; False when asked to stop."""
        while True:
            now = clock.now()
            model.emit_until(now)
            if now >= end:
                return True
            if not agent.alive():
                raise DemoError(f"the agent exited with {agent.proc.returncode}:\n{agent.log_tail()}")
            if self.stop.wait(min(0.05, max(clock.wall_seconds_until(end), 0.001))):
                return False

    def _wait_shipped(self, counter: StoreCounter | EsCounter, needed: int, agent: AgentProcess) -> int:
        """Wait until the output holds every line written so far (bounded)."""
        deadline = threading.Event()
        timer = threading.Timer(CATCH_UP_TIMEOUT, deadline.set)
        timer.start()
        try:
            while True:
                shipped = counter.count()
                if shipped >= needed or deadline.is_set() or self.stop.is_set():
                    return shipped
                if not agent.alive():
                    raise DemoError(f"the agent exited with {agent.proc.returncode}:\n{agent.log_tail()}")
                self.stop.wait(0.05)
        finally:
            timer.cancel()

    def _evaluate(self, evaluator: Any, model: DemoModel, k: int, window: Window, shipped: int) -> None:
        from inferwatch.analytics.demo.story import monitored_rates

        ev = evaluator.evaluate(demo_data.MODEL, window)
        counts = ev.counts.get(demo_data.VERSION)
        changes = [ChangeLine.of(k, c) for c in ev.changes if c.transition != "updated"]
        told = [
            IncidentLine(k, i.transition, i.incident.severity, i.incident.message, len(i.incident.members))
            for i in ev.incidents
            if i.notifies
        ]
        injections = model.injections(k)
        record = WindowRecord(
            index=k,
            start=window.start.isoformat(),
            end=window.end.isoformat(),
            written=model.written.get(k, 0),
            shipped=shipped,
            docs=counts.docs if counts is not None else 0,
            injections=[i.kind for i in injections],
            rates=monitored_rates(counts),
            changes=changes,
            incidents=told,
        )
        self.records.append(record)
        r = record.rates
        line = (
            f"  {k:>6}  {window.start:%H:%M}-{window.end:%H:%M}  {record.written:>5}  {shipped:>7}  "
            f"{_fmt_rate(r['null'])}  {_fmt_rate(r['unseen'])}  {_fmt_rate(r['oov'])}"
        )
        if injections:
            line += click.style("   << " + "; ".join(i.describe for i in injections), fg="yellow")
        self.echo(line)
        for c in changes:
            self.echo(_change_text(c))
        for i in told:
            self.echo(_incident_text(i))

    def _finish(self, cfg: Config, model: DemoModel, shipped: int, interrupted: bool) -> DemoResult:
        opts = self.opts
        written = model.total_written()
        summary = summary_lines(self.schedule, self.records, written, shipped)
        report = write_report(opts.data_dir / "report.html", self._report(cfg, model, summary))
        (opts.data_dir / "summary.txt").write_text("\n".join(summary) + "\n", encoding="utf-8")
        (opts.data_dir / "demo.json").write_bytes(
            orjson.dumps(
                {
                    "model": demo_data.MODEL,
                    "version": demo_data.VERSION,
                    "span": opts.span,
                    "speed": opts.speed,
                    "origin": model.origin.isoformat(),
                    "schedule": [
                        {
                            "kind": i.kind,
                            "feature": i.feature,
                            "detectors": list(i.detectors),
                            "start_window": i.start,
                            "end_window": i.end,
                            "start": model.window_start(i.start).isoformat(),
                            "end": model.window_start(i.end).isoformat(),
                            "describe": i.describe,
                        }
                        for i in self.schedule
                    ],
                    "windows": [r.to_dict() for r in self.records],
                    "written": written,
                    "shipped": shipped,
                    "interrupted": interrupted,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        self.echo("")
        for s in summary:
            self.echo(f"  {s}")
        self.echo(f"report: {report.resolve()}")
        if opts.target is None:
            self.echo(f"alerts: {(opts.data_dir / 'alerts').resolve()} (alerts.json, history.ndjson)")
        else:
            self.echo("alerts: the inferwatch-alerts index and logs-inferwatch_alerts.history-default")
            for link in opts.target.links():
                self.echo(f"Kibana: {link}")
        return DemoResult(
            opts.data_dir, self.records, summary, report, interrupted, written, shipped, self.schedule
        )

    def _report(self, cfg: Config, model: DemoModel, summary: list[str]) -> str:
        """``inferwatch report`` of the run: its windows, injected failures shaded."""
        n = len(self.records)
        if n == 0:
            return build_report(
                cfg, demo_data.MODEL, Window(model.origin, model.window_start(1)), self.opts.span
            )
        period = Window(model.window_start(0), datetime.fromisoformat(self.records[-1].end))
        shades = [
            Shade(model.window_start(i.start), model.window_start(min(i.end, n)), i.describe)
            for i in self.schedule
            if i.start < n
        ]
        title = f"inferwatch demo: {demo_data.MODEL} {demo_data.VERSION}"
        return build_report(cfg, demo_data.MODEL, period, self.opts.span, title, summary, shades)


def run_demo(opts: DemoOptions, echo: Echo, stop: threading.Event | None = None) -> DemoResult:
    return Demo(opts, echo, stop or threading.Event()).run()
