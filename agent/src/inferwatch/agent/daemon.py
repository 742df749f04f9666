"""The agent: builds the pipeline from the config, owns its threads, starts and stops them.

``<data_dir>`` layout::

    agent.lock            flock: one agent per data_dir
    registry.json         file offsets (agent.registry)
    spool/                bulk bodies not yet acknowledged (agent.spool)
    dead-letter.ndjson    lines and documents that can never be indexed, with the reason
    store/                the local output's documents, when no elasticsearch section is given

Threads: ``read`` (ReadLoop, with ``agent.parse_workers`` processes that parse beside it,
``agent.parsepool``), ``encode_<n>`` (``agent.workers`` threads that gzip sealed batches for the
read loop), ``ship`` (ShipLoop) with its ``ship-send-<n>`` senders
(``agent.output.max_in_flight``), ``progress`` (a summary line every 30 s) and, with
``agent.metrics.listen``, ``metrics-http``. Read, ship and progress each run in a ``LoopThread``
(one stop, one failure episode and one health line per loop). ``stop(timeout)`` stops reading, spools the open
batch, lets the ship loop drain the spool until the deadline, checkpoints and closes; it is
idempotent. Whatever is not delivered by then stays in the spool and goes first at the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.files.discovery import Discovery
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.identity import agent_identity
from inferwatch.agent.loopthread import Failure, LoopThread
from inferwatch.agent.measured import MeasuredOutput
from inferwatch.agent.metrics import HealthStatus, Metrics, MetricsServer, progress_line
from inferwatch.agent.normalize import Normalizer
from inferwatch.agent.outputs import Output, OutputRefused, OutputUnavailable
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.reader import Normalize, ReadLoop, ReadSettings
from inferwatch.agent.registry import Registry
from inferwatch.agent.shipper import IDLE_POLL, ShipLoop
from inferwatch.agent.spool import Spool
from inferwatch.core import __version__
from inferwatch.core.config import Config
from inferwatch.core.layout import DataDir

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 30.0
HEALTH_OUTPUT_GRACE = 30.0  # /readyz turns 503 when the output has failed for this long


class AgentLocked(RuntimeError):
    """Another agent holds ``<data_dir>/agent.lock``."""


def build_output(cfg: Config) -> Output:
    """Elasticsearch when the config has that section, else the local store under data_dir."""
    if cfg.elasticsearch is not None:
        from inferwatch.agent.outputs.elasticsearch import ElasticsearchOutput

        # A connection per request in flight, and one for the dead-letter index.
        return ElasticsearchOutput(cfg.elasticsearch, pool_maxsize=cfg.agent.output.max_in_flight + 1)
    from inferwatch.agent.outputs.local import LocalOutput

    return LocalOutput(DataDir(cfg.agent.data_dir).store)


def build_normalizers(cfg: Config, host: str) -> list[Normalize]:
    a = cfg.agent
    key = os.environ.get(a.redact.hash_key_env)
    hash_key = key.encode() if key else None
    me = agent_identity(host, a.data_dir, a.name)
    return [
        Normalizer(
            inp,
            cfg.models,
            inp.namespace or a.namespace,
            a.redact,
            hash_key,
            host,
            __version__,
            agent_id=me.id,
            agent_name=me.name,
        )
        for inp in a.inputs
    ]


def encoder_threads(cfg: Config) -> int:
    """``agent.workers``, with null resolved (``one_beside_the_first_cpu``)."""
    return one_beside_the_first_cpu(cfg.agent.workers)


def parse_workers(cfg: Config, normalizers: Sequence[Normalize]) -> int:
    """``agent.parse_workers``, with null resolved: none when the native normalizer takes every
    input (it runs without the GIL in the read thread, and a worker's pickles and pipes then
    cost more than they save: bench/agent_throughput.py, 170k against 148k docs/s and 52 against
    73 MB of RSS), else ``one_beside_the_first_cpu`` (the Python normalizer holds the GIL)."""
    configured = cfg.agent.parse_workers
    if configured is None and all(isinstance(n, Normalizer) and n.fast_path is not None for n in normalizers):
        return 0
    return one_beside_the_first_cpu(configured)


def one_beside_the_first_cpu(configured: int | None) -> int:
    """``configured``, or for null (automatic): 1 on a machine with two or more CPUs, else 0."""
    if configured is not None:
        return configured
    return min(2, os.cpu_count() or 1) - 1


def compression_level(cfg: Config) -> int:
    return cfg.elasticsearch.compression_level if cfg.elasticsearch is not None else 1


def take_lock(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(DataDir(data_dir).lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AgentLocked(
            f"another agent is running with data_dir {data_dir} (it holds {DataDir(data_dir).lock}); "
            "stop it, or give this agent its own agent.data_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Agent:
    def __init__(self, cfg: Config, output: Output | None = None, host: str | None = None) -> None:
        self._cfg = cfg
        self._given_output = output
        self._host = host or socket.gethostname()
        self.metrics = Metrics()
        self._loops: list[LoopThread] = []
        self._lock_fd: int | None = None
        self._stopped = False
        self._server: MetricsServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Take the data_dir lock, build the pipeline and start its threads. Whatever fails
        (the lock, the output refusing us, the metrics port in use, a thread that cannot start)
        raises with nothing left running and the lock released."""
        a = self._cfg.agent
        self._lock_fd = take_lock(a.data_dir)
        try:
            self._build()
        except BaseException:
            self._release_lock()
            raise
        try:
            try:
                log.info("output: %s", self.output.check())
            except OutputRefused:
                raise  # credentials, privileges, TLS trust: retrying cannot help until a person acts
            except OutputUnavailable as e:
                log.warning("output not reachable yet (%s); reading goes on and shipping retries", e)
            if a.metrics.listen:
                # Binds here: a port in use fails before any thread runs.
                self._server = MetricsServer(a.metrics.listen, self.metrics, self.health, self.readiness)
        except BaseException:
            self._close_built()
            raise
        self._read = LoopThread(
            "read", self._read_step, self.reader.wake, self.metrics, finish=self._read_finish
        )
        self._ship = LoopThread("ship", self.shipper.step, self.shipper.wake, self.metrics, idle=IDLE_POLL)
        self._progress = LoopThread(
            "progress", _Progress(self.metrics), threading.Event(), self.metrics, idle=PROGRESS_INTERVAL
        )
        try:
            self.discovery.start()
            for loop in (self._read, self._ship, self._progress):
                loop.start()
                self._loops.append(loop)
            if self._server is not None:
                self._server.start()
        except BaseException:
            self._abort_start()
            raise
        log.info(
            "agent %s started: %d inputs, data_dir %s, output %s",
            __version__,
            len(a.inputs),
            a.data_dir,
            type(self.output).__name__,
        )

    def _abort_start(self) -> None:
        """Undo a start that failed after threads began: stop and join them, then close."""
        self._stopped = True
        for loop in self._loops:
            loop.stop()
        for loop in self._loops:
            loop.join(self._cfg.agent.shutdown_timeout)
        if any(loop.is_alive() for loop in self._loops):
            log.warning("a loop did not stop after a failed start; leaving its state to the next start")
            self._release_lock()
            return
        self.shipper.close()
        self._close_built()

    def _build(self) -> None:
        a = self._cfg.agent
        fsync = a.spool.fsync
        self.registry = Registry(DataDir(a.data_dir).registry, fsync=fsync)
        self.spool = Spool(DataDir(a.data_dir).spool, a.spool.max_bytes, a.spool.segment_bytes, fsync=fsync)
        self.dead_letter = DeadLetter(DataDir(a.data_dir).dead_letter, fsync=fsync)
        self.output = self._given_output or build_output(self._cfg)
        self.discovery = Discovery(a.inputs, a.scan_interval)
        self.tailer = Tailer(a.max_line_bytes, a.read_buffer_bytes, lookup=self.registry.get)
        level = compression_level(self._cfg)
        normalizers = build_normalizers(self._cfg, self._host)
        settings = ReadSettings(
            max_docs=a.batch.max_docs,
            max_bytes=a.batch.max_bytes,
            max_wait=a.batch.max_wait,
            compression_level=level,
            max_line_bytes=a.max_line_bytes,
            step_bytes=max(a.read_buffer_bytes, min(a.batch.max_bytes, 4 * a.read_buffer_bytes)),
            dead_letter_index=a.dead_letter_index,
            encoders=encoder_threads(self._cfg),
            parse_workers=parse_workers(self._cfg, normalizers),
            keep_unparsed=a.dead_letter.keep_unparsed,
        )
        self.shipper = ShipLoop(
            self.spool,
            MeasuredOutput(self.output, self.metrics),  # bulk latency and size histograms
            self.dead_letter,
            self.metrics,
            Backoff(initial=1.0, cap=60.0, rng=random.Random()),
            compression_level=level,
            dead_letter_index=a.dead_letter_index,
            on_ack=self.discovery.wake.set,  # room in the spool: a paused reader goes on
            max_in_flight=a.output.max_in_flight,
            batch_items=a.batch.max_docs,
        )
        self.reader = ReadLoop(
            a.inputs,
            self.discovery,
            self.tailer,
            normalizers,
            self.registry,
            self.spool,
            self.dead_letter,
            self.metrics,
            settings,
            wake=self.discovery.wake,
            on_spooled=lambda _seq, _items: self.shipper.wake.set(),  # the count is in the record
        )

    def stop(self, timeout: float | None = None) -> bool:
        """Stop reading, spool the open batch, drain the spool until the deadline, checkpoint,
        close. True when everything read was delivered. Idempotent."""
        if self._stopped or not self._loops:
            return True
        self._stopped = True
        budget = self._cfg.agent.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        log.info("stopping: draining the spool for up to %.1fs", budget)
        self._read.stop()
        self._read.join(max(deadline - time.monotonic(), 0.1))
        self.discovery.stop()
        self.shipper.wake.set()
        drained = self.shipper.wait_acked(self.spool.last_seq, max(deadline - time.monotonic(), 0.0))
        self._ship.stop()
        self._progress.stop()
        self._ship.join(max(deadline - time.monotonic(), 1.0))
        if self._server is not None:
            self._server.stop()
        self._close(drained)
        return drained

    def _close(self, drained: bool) -> None:
        if self._read.is_alive() or self._ship.is_alive():
            # A thread is stuck in I/O (a request to a hung output); the process is exiting, and
            # what it holds is in the spool or still unread in the files.
            log.warning("a loop did not stop in time; leaving its state to the next start")
            self._release_lock()
            return
        self.shipper.close()  # its sender threads; a request still in flight is sent again next time
        with contextlib.suppress(OSError):
            self.registry.flush()
        pending = self.spool.pending
        # Every close runs even when one before it raised (the error is raised after them all):
        # the spool is closed and the lock released whatever the tailer or dead letter did.
        with contextlib.ExitStack() as closing:
            closing.callback(self._release_lock)
            closing.callback(self.spool.close)
            closing.callback(self.output.close)
            closing.callback(self.dead_letter.close)
            closing.callback(self.tailer.close)
        log.info(
            "stopped: %s; %s",
            progress_line(self.metrics),
            "spool drained" if drained else f"{pending} records stay in the spool for the next start",
        )

    def _close_built(self) -> None:
        """Close what ``_build`` opened (no thread ever ran, or every one has stopped)."""
        with contextlib.ExitStack() as closing:
            closing.callback(self._release_lock)
            closing.callback(self.spool.close)
            closing.callback(self.dead_letter.close)
            closing.callback(self.output.close)
            closing.callback(self.tailer.close)
            closing.callback(self.discovery.stop)
            closing.callback(self.reader.close)
            if self._server is not None:
                closing.callback(self._server.stop)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- observability ---------------------------------------------------------------------------

    def health(self) -> HealthStatus:
        """Liveness (``/livez``, ``/health``): the loops run. An output that is down is not a
        reason to restart the agent (its spool buffers meanwhile): that is ``readiness``."""
        for loop in self._loops:
            if not loop.is_alive() and not self._stopped:
                return HealthStatus(False, f"the {loop.name} loop is not running")
            failure = loop.failure
            if failure is not None and time.monotonic() - failure.since >= HEALTH_OUTPUT_GRACE:
                return self._failing(loop.name, failure)
        return HealthStatus(True, "ok")

    def _failing(self, name: str, failure: Failure) -> HealthStatus:
        for_s = time.monotonic() - failure.since
        return HealthStatus(False, f"the {name} loop has failed for {for_s:.0f}s: {failure.message}")

    def readiness(self) -> HealthStatus:
        """Readiness (``/readyz``): alive, and the output has not failed for
        ``HEALTH_OUTPUT_GRACE`` seconds or more."""
        alive = self.health()
        if not alive.ok:
            return alive
        for loop in self._loops:
            if loop.failure is not None:  # e.g. a full disk: nothing is read or acknowledged
                return self._failing(loop.name, loop.failure)
        down = self.shipper.down_since
        if down is not None:
            for_s = time.monotonic() - down
            if for_s >= HEALTH_OUTPUT_GRACE:
                return HealthStatus(False, f"output unreachable for {for_s:.0f}s: {self.shipper.last_error}")
        return HealthStatus(True, "ok")

    # -- the loops' steps ------------------------------------------------------------------------

    def _read_step(self) -> float:
        return 0.0 if self.reader.step() else self.reader.idle_timeout()

    def _read_finish(self) -> None:
        """On the read thread, after its last step: spool the open batch, checkpoint."""
        try:
            self.reader.flush()
        except Exception:
            log.exception("flushing the last batch failed; its lines are read again at the next start")
        finally:
            self.reader.close()


class _Progress:
    """The progress loop's step: a summary line every ``PROGRESS_INTERVAL`` (not at start)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started = False

    def __call__(self) -> float:
        if self._started:
            log.info("%s", progress_line(self._metrics))
        self._started = True
        return PROGRESS_INTERVAL
