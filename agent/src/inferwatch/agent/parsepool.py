"""Parsing beside the read thread, in worker processes (``agent.parse_workers``).

Normalizing a line (orjson, coercions, tokens, serialization) is Python work that holds the GIL,
so one agent process parses at most about 60k lines/s however many cores the host has. A
``ParsePool`` splits each run of lines the batcher hands to an input's ``bulk_items`` into
contiguous shares: each worker process (``agent.parseworker``) parses one while the read thread
parses the first, and the answers are joined in line order.

Why this keeps delivery exact: a document is a pure function of (line, file, offset, ingest
time), and the worker unpickles the read thread's own normalizers (their construction
values), so where a line is parsed changes neither the documents, their ids, nor the order of the
batch; the batch is sealed, spooled and checkpointed by the read thread exactly as before. The
pool is an accelerator that may vanish at any moment: whatever a worker does not answer in time,
or answers wrongly, the read thread parses itself.

- Shares: the read thread's share is sized from the measured seconds per line of each side
  (``_Balance``), so both finish together; a run under ``min_lines`` is parsed in the thread
  (the round trip would cost more than it saves).
- Lifecycle: a worker starts at the first run big enough (an agent that reads a few lines a
  second never starts one) and serves once it has answered ``READY``; until then the thread
  parses. Workers unused for ``idle_timeout`` (5 minutes: the backlog is read) stop
  (``retire_idle``, from the read loop's chores), so a quiet agent is one process again.
  ``close()`` closes the workers' stdin (they exit) and kills any that linger. A worker
  whose agent dies, even by kill -9, reads the end of its stdin and exits.
- Failures: a worker that cannot start, exits, stops answering for ``timeout`` seconds or answers
  what is not the protocol is killed, counted in ``parse_worker_failures_total{reason}`` and
  logged once with what happens next; it is started again after ``restart_delay`` seconds,
  doubling while it keeps failing (at most ten minutes).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import select
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inferwatch.agent import parseworker
from inferwatch.agent.lineparser import BulkItems
from inferwatch.agent.metrics import Metrics
from inferwatch.agent.model import LineBatch, Rejected
from inferwatch.agent.normalize import Normalizer, RejectedLine

log = logging.getLogger(__name__)

MIN_LINES = 256  # a shorter run is parsed in the read thread
IDLE_TIMEOUT = 300.0  # seconds without a share before the workers stop
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
MAX_RESTART_DELAY = 600.0
_IOV_MAX = 1024  # buffers one writev takes at most (Linux's IOV_MAX)
FAILURE_REASONS = ("start", "exited", "timeout", "protocol")


class WorkerFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def worker_command() -> list[str]:
    return [sys.executable, "-m", "inferwatch.agent.parseworker"]


class _Worker:
    """One worker process and its pipes (non-blocking, every wait bounded by a deadline)."""

    def __init__(self, inputs_frame: bytes, command: Sequence[str]) -> None:
        try:
            self.proc = subprocess.Popen(
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
            )
        except OSError as exc:
            raise WorkerFailed("start", f"{type(exc).__name__}: {exc}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        for fd in (self._in, self._out):  # a whole request or answer per write: fewer wake-ups
            with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep 64 KiB
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
        # Written as the pipe takes them, without joining: the first not yet written is at
        # ``_sent`` of ``_pending[0]``.
        self._pending: list[bytes] = [parseworker.frame(inputs_frame)]
        self._sent = 0
        # The frame being read: its header, then its payload in a buffer of its size, read into
        # in place (``_got`` bytes of it so far).
        self._header = bytearray()
        self._payload: bytearray | None = None
        self._got = 0
        self.ready = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll_ready(self) -> bool:
        """Whether the worker has answered READY (never waits)."""
        if not self.ready:
            self._flush(0.0)
            answer = self._read_frame(0.0)
            if answer is not None:
                if answer != parseworker.READY:
                    raise WorkerFailed("protocol", f"expected READY, got {bytes(answer[:40])!r}")
                self.ready = True
        return self.ready

    def send(self, pieces: list[bytes], deadline: float) -> None:
        """Write a frame given as pieces (``parseworker.request_pieces``)."""
        self._pending += pieces
        self._flush(deadline)
        if self._pending:
            raise WorkerFailed("timeout", "the worker stopped reading its requests")

    def receive(self, deadline: float) -> tuple[bytearray, bool]:
        """The next answer, and whether it had to be waited for (it was not complete yet)."""
        answer = self._read_frame(0.0)
        if answer is not None:
            return answer, False
        answer = self._read_frame(deadline)
        if answer is None:
            raise WorkerFailed("timeout", "no answer in time")
        return answer, True

    def close(self, timeout: float) -> None:
        """Close its stdin (it exits), wait at most ``timeout``, then kill it."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
            log.error("parse worker %d did not exit after SIGKILL", self.proc.pid)

    # -- pipes ---------------------------------------------------------------------------------

    def _flush(self, deadline: float) -> None:
        """Write what is pending until it is all written or ``deadline`` (monotonic) passes."""
        while self._pending:
            views: list[bytes | memoryview] = [memoryview(self._pending[0])[self._sent :]]
            views += self._pending[1:_IOV_MAX]
            try:
                written = os.writev(self._in, views)
            except BlockingIOError:
                written = 0
            except (BrokenPipeError, ConnectionResetError):
                raise WorkerFailed("exited", self._exit_detail()) from None
            written += self._sent
            while self._pending and written >= len(self._pending[0]):
                written -= len(self._pending.pop(0))
            self._sent = written
            if self._pending and not self._wait(self._in, write=True, deadline=deadline):
                return

    def _read_frame(self, deadline: float) -> bytearray | None:
        """A whole answer frame's payload, or None when none is complete by ``deadline``. The
        header is read alone, then the payload straight into a buffer of its size: one copy,
        where reading pieces and joining them made three (a share's answer is about 1 MB)."""
        while True:
            payload = self._payload
            if payload is not None and self._got == len(payload):
                self._payload, self._got = None, 0
                return payload
            try:
                if payload is None:
                    chunk = os.read(self._out, parseworker.HEADER - len(self._header))
                    got = len(chunk)
                    self._header += chunk
                    if len(self._header) == parseworker.HEADER:
                        size = int.from_bytes(self._header, "big")
                        if size > parseworker.MAX_FRAME:
                            raise WorkerFailed("protocol", f"a frame of {size} bytes announced")
                        self._payload = bytearray(size)
                        self._header.clear()
                else:
                    got = os.readv(self._out, [memoryview(payload)[self._got :]])
                    self._got += got
            except BlockingIOError:
                if not self._wait(self._out, write=False, deadline=deadline):
                    return None
                continue
            if not got:
                raise WorkerFailed("exited", self._exit_detail())

    @staticmethod
    def _wait(fd: int, write: bool, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        readable, writable, _ = select.select([] if write else [fd], [fd] if write else [], [], remaining)
        return bool(readable or writable)

    def _exit_detail(self) -> str:
        try:
            code = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return "its pipe closed"
        return f"it exited with {code}" if code >= 0 else f"it was killed by signal {-code}"


@dataclass
class _Balance:
    """Seconds per line of the read thread and of a worker, learned as runs go: the read thread
    takes ``n * w / (workers * t + w)`` lines of a run of ``n``, which makes both sides finish
    together when they share it (``t * mine == w * (n - mine) / workers``)."""

    thread: float | None = None  # None until measured: equal shares
    worker: float | None = None

    def mine(self, n: int, workers: int) -> int:
        t = self.thread or 1.0
        w = self.worker or 1.0
        return min(n, max(0, round(n * w / (workers * t + w))))

    def learn_thread(self, seconds: float, lines: int) -> None:
        if lines:
            self.thread = _ewma(self.thread, seconds / lines)

    def learn_worker(self, seconds: float, lines: int) -> None:
        if lines:
            self.worker = _ewma(self.worker, seconds / lines)


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else 0.8 * old + 0.2 * new


class ParsePool:
    """``workers`` parse processes serving the inputs whose parser is a ``Normalizer`` (the
    others, and every run while no worker is ready, are parsed in the read thread)."""

    def __init__(
        self,
        normalizers: Sequence[object],
        workers: int,
        metrics: Metrics,
        min_lines: int = MIN_LINES,
        timeout: float = 30.0,
        restart_delay: float = 30.0,
        idle_timeout: float = IDLE_TIMEOUT,
        command: Sequence[str] | None = None,
        clock: Callable[[], float] = time.monotonic,  # restarts and retirement (tests move it)
    ) -> None:
        self._normalizers = [n if isinstance(n, Normalizer) else None for n in normalizers]
        self._size = workers if any(self._normalizers) else 0
        self._metrics = metrics
        self._min_lines = min_lines
        self._timeout = timeout
        self._restart_delay = restart_delay
        self._idle_timeout = idle_timeout
        self._last_used = 0.0  # clock time of the last run a worker parsed a share of
        self._command = list(command or worker_command())
        self._clock = clock
        self._inputs: bytes | None = None  # the pickled normalizers, when the first worker starts
        self._workers: list[_Worker] = []
        self._next_start = 0.0  # clock time a worker may (re)start
        self._failures = 0  # in a row, for the restart delay
        self._balance = _Balance()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def bulk_items(self, index: int) -> BulkItems | None:
        """The ``bulk_items`` of input ``index`` through the pool; None for an input it does not
        serve (its parser is no ``Normalizer``)."""
        normalizer = self._normalizers[index] if index < len(self._normalizers) else None
        if normalizer is None or self._size == 0:
            return normalizer.bulk_items if normalizer is not None else None

        def pooled(batch: LineBatch, ingested: str) -> tuple[list[bytes], list[RejectedLine]]:
            return self._parse(normalizer, batch, ingested)

        return pooled

    def ready(self) -> int:
        """How many workers are ready, starting the missing ones when due (never waits)."""
        return len(self._ready())

    def retire_idle(self) -> None:
        """Stop the workers when none has had a share for ``idle_timeout`` seconds (the backlog
        they were started for is read): a quiet agent goes back to one process. The next big
        run starts one again."""
        if not self._workers or self._clock() - self._last_used < self._idle_timeout:
            return
        workers, self._workers = self._workers, []
        for w in workers:
            w.close(5.0)
        self._metrics.set("parse_workers", 0)
        log.info(
            "parse worker%s %s stopped after %.0f s unused; one starts again for the next large read",
            "s" if len(workers) > 1 else "",
            ", ".join(str(w.pid) for w in workers),
            self._idle_timeout,
        )

    def pids(self) -> list[int]:
        """The process ids of the running workers (ready or starting)."""
        return [w.pid for w in self._workers]

    def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        workers, self._workers = self._workers, []
        for w in workers:
            w.close(timeout)
        self._metrics.set("parse_workers", 0)

    # -- one run -------------------------------------------------------------------------------

    def _parse(
        self, normalizer: Normalizer, batch: LineBatch, ingested: str
    ) -> tuple[list[bytes], list[RejectedLine]]:
        n = len(batch.lines)
        if n < self._min_lines:
            return normalizer.bulk_items(batch, ingested)
        ready = self._ready()
        if not ready:
            return normalizer.bulk_items(batch, ingested)
        mine = self._balance.mine(n, len(ready))
        cuts = _cuts(mine, n, len(ready))
        self._last_used = self._clock()
        deadline = time.monotonic() + self._timeout  # the pipes wait on the monotonic clock
        sent_at = time.perf_counter()
        sent: list[tuple[_Worker, int, int]] = []
        local: list[tuple[int, int]] = [(0, mine)] if mine else []
        for worker, (a, b) in zip(ready, cuts, strict=False):  # fewer cuts than workers: a short rest
            try:
                worker.send(_request(batch, a, b, ingested), deadline)
            except WorkerFailed as failed:
                self._failed(worker, failed)
                local.append((a, b))
            else:
                sent.append((worker, a, b))
        pieces: dict[int, tuple[list[bytes], list[RejectedLine]]] = {}
        for a, b in local:
            started = time.perf_counter()
            pieces[a] = normalizer.bulk_items(_share(batch, a, b), ingested)
            self._balance.learn_thread(time.perf_counter() - started, b - a)
        for worker, a, b in sent:
            try:
                pieces[a] = self._answer(normalizer, worker, batch, a, b, ingested, sent_at, deadline)
            except WorkerFailed as failed:
                self._failed(worker, failed)
                pieces[a] = normalizer.bulk_items(_share(batch, a, b), ingested)
        items: list[bytes] = []
        rejects: list[RejectedLine] = []
        for a in sorted(pieces):
            share_items, share_rejects = pieces[a]
            items += share_items
            rejects += share_rejects
        return items, rejects

    def _answer(
        self,
        normalizer: Normalizer,
        worker: _Worker,
        batch: LineBatch,
        a: int,
        b: int,
        ingested: str,
        sent_at: float,
        deadline: float,
    ) -> tuple[list[bytes], list[RejectedLine]]:
        raw, waited = worker.receive(deadline)
        round_trip = time.perf_counter() - sent_at
        try:
            items, rejects, counts, seconds = pickle.loads(raw)
        except Exception as exc:
            raise WorkerFailed("protocol", f"an answer that does not unpickle: {exc}") from None
        if items is None:  # the worker's normalizer raised: the thread's isolates the line
            log.warning(
                "a parse worker failed on %s from offset %d: %s", batch.path, batch.offsets[a], rejects
            )
            return normalizer.bulk_items(_share(batch, a, b), ingested)
        try:
            rejected = [
                RejectedLine(batch.offsets[a + i], batch.lines[a + i], Rejected(reason, detail))
                for i, reason, detail in rejects
                if 0 <= i < b - a
            ]
        except (TypeError, ValueError) as exc:
            raise WorkerFailed("protocol", f"malformed rejects: {exc}") from None
        if type(items) is not list or len(items) + len(rejected) != b - a:
            raise WorkerFailed(
                "protocol", f"{len(items)} items and {len(rejected)} rejects for {b - a} lines"
            )
        self._failures = 0
        # Waited for: the round trip is what the share cost. Ready before the thread looked:
        # it cost at most that, and at least the worker's own seconds (the pipes are cheap).
        self._balance.learn_worker(round_trip if waited else float(seconds), b - a)
        self._metrics.inc("lines_parsed_in_workers_total", b - a)
        normalizer.counts.update(counts)
        return items, rejected

    # -- workers -------------------------------------------------------------------------------

    def _ready(self) -> list[_Worker]:
        """The workers ready to serve, starting the missing ones when due (never waits)."""
        if self._closed:
            return []
        if len(self._workers) < self._size and self._clock() >= self._next_start:
            if self._inputs is None:
                try:
                    self._inputs = parseworker.dumps(tuple(self._normalizers))
                except Exception as exc:  # a config value that does not pickle: a bug, said once
                    log.exception("parse workers cannot be given the inputs' settings")
                    self._note_failure(WorkerFailed("start", f"{type(exc).__name__}: {exc}"), None)
                    self._size = 0
                    return []
            self._last_used = self._clock()  # a worker starting counts as used: it has a backlog
            while len(self._workers) < self._size:
                try:
                    self._workers.append(_Worker(self._inputs, self._command))
                except WorkerFailed as failed:
                    self._note_failure(failed, None)
                    break
        ready = []
        for w in list(self._workers):
            try:
                if w.poll_ready():
                    ready.append(w)
            except WorkerFailed as failed:
                self._failed(w, failed)
        self._metrics.set("parse_workers", len(ready))
        return ready

    def _failed(self, worker: _Worker, failed: WorkerFailed) -> None:
        worker.kill()
        if worker in self._workers:
            self._workers.remove(worker)
        self._note_failure(failed, worker.pid)

    def _note_failure(self, failed: WorkerFailed, pid: int | None) -> None:
        delay = min(MAX_RESTART_DELAY, self._restart_delay * 2**self._failures)
        self._failures += 1
        self._next_start = self._clock() + delay
        self._metrics.inc("parse_worker_failures_total", label_set=(("reason", failed.reason),))
        self._metrics.set("parse_workers", sum(w.ready for w in self._workers))
        who = "a parse worker" if pid is None else f"parse worker {pid}"
        log.warning(
            "%s failed (%s: %s); the read thread parses its share meanwhile, and a new worker "
            "starts in %.0f s",
            who,
            failed.reason,
            failed.detail,
            delay,
        )


def _cuts(mine: int, n: int, workers: int) -> list[tuple[int, int]]:
    """The workers' shares of lines ``mine .. n``: contiguous, in order, as even as can be."""
    rest = n - mine
    bounds = [mine + rest * k // workers for k in range(workers + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(workers) if bounds[k + 1] > bounds[k]]


def _share(batch: LineBatch, a: int, b: int) -> LineBatch:
    if a == 0 and b == len(batch.lines):
        return batch
    end = batch.offsets[b] if b < len(batch.lines) else batch.end_offset
    return LineBatch(batch.file_id, batch.path, batch.input_index, batch.offsets[a:b], batch.lines[a:b], end)


def _request(batch: LineBatch, a: int, b: int, ingested: str) -> list[bytes]:
    return parseworker.request_pieces(
        batch.input_index,
        batch.file_id.fingerprint,
        batch.path,
        ingested,
        array("q", batch.offsets[a:b]).tobytes(),
        b"\n".join(batch.lines[a:b]),
    )


__all__ = ["FAILURE_REASONS", "IDLE_TIMEOUT", "MIN_LINES", "ParsePool", "WorkerFailed", "worker_command"]
