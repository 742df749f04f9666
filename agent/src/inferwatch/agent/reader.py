"""The read loop: files -> lines -> documents -> one bulk body in the spool -> registry offsets.

One ``step()`` finds files (when a scan is due), reads what they have, normalizes every line,
dead-letters what can't be indexed, and seals a batch when it is full (documents or bytes) or old
(``max_wait``). Sealing is the first delivery point of docs/architecture.md: the batch's bulk body is
appended to the spool (fsynced) and the dead letter is fsynced, and only then do the files'
offsets move in the registry, which is written at once: a crash reads again at most the batch
being committed, and the lines read again get the same document ids, so the output answers 409
for them instead of storing copies. The registry also records the dead letter's position at that
checkpoint; at start the lines dead-lettered past it (read again now) are not written twice.

When the spool is full, the sealed batch waits and nothing more is read: the log files are the
buffer, and memory holds at most what one step read. ``wake`` (shared with discovery events and
the ship loop's acknowledgements) ends the wait early.

With ``ReadSettings.encoders`` > 0, a sealed batch is joined and gzipped by a small thread pool
(zlib releases the GIL, so compression runs on another core while this thread parses the next
lines). Sealed batches still reach the spool, and their offsets the registry, strictly in the
order they were sealed; at most ``encoders + 1`` batches are being compressed at any time. A
compression that fails (MemoryError) leaves its batch first in line, items kept, offsets unmoved;
the step raises (logged) and the next one compresses it again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from inferwatch.agent import bulkbody
from inferwatch.agent.deadletter import DeadLetter, DeadLetterMark
from inferwatch.agent.files.discovery import Discovery
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import Checkpoint, Event, FileId, LineBatch, OversizedLine, Rejected, Source
from inferwatch.agent.redact import Redactor
from inferwatch.agent.registry import Registry
from inferwatch.agent.rejects import RejectPolicy, Rejects
from inferwatch.agent.spool import Spool, SpoolFull
from inferwatch.core.config import InputConfig, RedactConfig

log = logging.getLogger(__name__)

Normalize = Callable[[bytes, Source, str], Event]  # raises Rejected(reason, detail)


class RejectedLine(Protocol):
    @property
    def offset(self) -> int: ...
    @property
    def line(self) -> bytes: ...
    @property
    def error(self) -> Rejected: ...


# (batch, ingested) -> (bulk items in line order, rejected lines): ``Normalizer.bulk_items``
BatchNormalize = Callable[[LineBatch, str], tuple[list[bytes], Sequence[RejectedLine]]]

ITEM_OVERHEAD = 40  # bytes of a bulk action line besides index and id: {"create":{"_index":..}}
# A bulk item is its document, index and id plus 35 bytes; a batch's size counts ITEM_OVERHEAD.
_ITEM_SLACK = ITEM_OVERHEAD - 35


@dataclass(frozen=True, slots=True)
class ReadSettings:
    max_docs: int = 2000
    max_bytes: int = 4 * 1024**2  # uncompressed bulk body
    max_wait: float = 1.0
    compression_level: int = 1
    max_line_bytes: int = 1024**2
    step_bytes: int = 1024**2  # bytes read from files per step, at most
    registry_flush_interval: float = 1.0
    prune_interval: float = 60.0
    prune_grace: float = 3600.0  # gone files keep their offsets this long (seconds, wall clock)
    housekeeping_interval: float = 1.0  # lag gauges; the longest idle wait
    dead_letter_index: str | None = None  # also index dead-lettered lines there
    encoders: int = 0  # threads that gzip sealed batches; 0: the read thread does it
    keep_unparsed: bool = False  # agent.dead_letter.keep_unparsed (see agent.rejects)


@dataclass(slots=True)
class _Batch:
    items: list[bytes] = field(default_factory=list)  # bulk items (action line + document)
    size: int = 0
    marks: dict[FileId, Checkpoint] = field(default_factory=dict)
    lines: int = 0  # lines covered, for the log
    started: float | None = None


@dataclass(slots=True)
class _Sealed:
    """A sealed batch waiting for the spool. ``items`` are kept until the payload exists, so a
    compression that failed (MemoryError) is done again instead of losing the batch."""

    items: list[bytes] | None  # the bulk items until compressed; None once compressed (or none)
    # None while not compressed yet (or when every line was dead-lettered: no items); a Future
    # while an encoder thread compresses it
    payload: bytes | Future[bytes] | None
    docs: int
    marks: dict[FileId, Checkpoint]
    dead_mark: DeadLetterMark  # the dead letter's position once this batch's entries are in it


class ReadLoop:
    def __init__(
        self,
        inputs: Sequence[InputConfig],
        discovery: Discovery,
        tailer: Tailer,
        normalizers: Sequence[Normalize],
        registry: Registry,
        spool: Spool,
        dead_letter: DeadLetter,
        metrics: Metrics,
        settings: ReadSettings,
        wake: threading.Event,
        on_spooled: Callable[[int, int], None] = lambda seq, items: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._inputs = tuple(inputs)
        self._discovery = discovery
        self._tailer = tailer
        self._normalizers = tuple(normalizers)
        # Normalizers with ``bulk_items`` take a file's lines in one call (no per-line Source)
        # and return ready bulk items (no Event per line).
        self._batchers: tuple[BatchNormalize | None, ...] = tuple(
            getattr(n, "bulk_items", None) for n in normalizers
        )
        self._expansion = 4.0  # document bytes per line byte, learned; decides the fast path
        self._registry = registry
        self._spool = spool
        self._metrics = metrics
        self._s = settings
        self.wake = wake
        self._on_spooled = on_spooled
        self._clock = clock
        self._wall = wall
        self._batch = _Batch()
        self._sealed: deque[_Sealed] = deque()
        self._spool_full = False
        self._encoders = (
            ThreadPoolExecutor(settings.encoders, thread_name_prefix="encode")
            if settings.encoders > 0
            else None
        )
        self._first_start = not registry.items()  # start_at applies to files found at the first start
        # Lines dead-lettered after the last checkpoint: read again now, written once.
        mark = registry.dead_letter_mark
        self._rejects = Rejects(
            dead_letter,
            metrics,
            [RejectPolicy(_redactor_of(n), settings.keep_unparsed) for n in normalizers],
            settings.dead_letter_index,
            set() if mark is None else dead_letter.lines_after(mark),
            wall,
        )
        self._scanned = False
        now = clock()
        self._last_registry_flush = -math.inf  # the first commit is written at once
        self._next_prune = now + settings.prune_interval
        self._next_housekeeping = now

    # -- the loop body ---------------------------------------------------------------------------

    def step(self) -> bool:
        """Read once and seal what is due. True if lines were read (more may be waiting). The
        gauges are published when due also while reading waits (spool full) or a step fails."""
        now = self._clock()
        try:
            return self._step(now)
        finally:
            if now >= self._next_housekeeping:
                self._next_housekeeping = now + self._s.housekeeping_interval
                try:
                    self._publish_gauges()
                except Exception:  # a gauge must never hide the step's own error
                    log.exception("publishing the read loop's gauges failed")

    def _step(self, now: float) -> bool:
        if self._sealed and not self._commit_sealed():
            self._housekeeping(now)
            return False  # spool full: the files keep the data until there is room
        if self._discovery.due(now):
            self._scan()
        batches = self._tailer.step(self._s.step_bytes)
        if batches:
            ingested = _iso_now(self._wall())
            for b in batches:
                self._take(b, ingested, now)
        if self._batch.started is not None and now - self._batch.started >= self._s.max_wait:
            self._seal()
        if self._sealed:
            self._commit_sealed()
        self._housekeeping(now)
        return bool(batches)

    def idle_timeout(self) -> float:
        """How long the thread may wait for a wake-up before the next step is due anyway."""
        timeout = self._s.housekeeping_interval
        if self._batch.started is not None:
            timeout = min(timeout, self._batch.started + self._s.max_wait - self._clock())
        return max(timeout, 0.0)

    def flush(self) -> bool:
        """Seal the current batch and spool everything sealed; checkpoint the registry. False if
        the spool had no room (those lines stay unread in the registry and are read next time)."""
        self._seal()
        ok = self._commit_sealed(wait=True)
        self._registry.flush()
        self._last_registry_flush = self._clock()
        return ok

    def close(self) -> None:
        """Stop the encoder threads (after ``flush``: nothing is left for them)."""
        if self._encoders is not None:
            self._encoders.shutdown(wait=True)

    @property
    def paused(self) -> bool:
        """Whether reading waits for room in the spool."""
        return self._spool_full

    # -- reading ---------------------------------------------------------------------------------

    def _scan(self) -> None:
        for index, path in self._discovery.scan():
            self._tailer.add_path(path, index, self._first_start, self._inputs[index].start_at)
        self._first_start = False
        self._scanned = True

    def _take(self, b: LineBatch, ingested: str, now: float) -> None:
        """Normalize one file's lines into the batch, sealing whenever it is full. Runs of lines
        that surely fit go through ``bulk_items`` in one call; the lines near a batch's
        limit go one by one, so a batch never passes ``max_docs`` and passes ``max_bytes`` by
        at most one document."""
        if self._batch.started is None:
            self._batch.started = now
        self._metrics.inc("lines_read_total", len(b.lines) + len(b.oversized))
        oversized = iter(b.oversized)  # dead-lettered in line order, each before the seal past it
        pending = next(oversized, None)
        offsets, n = b.offsets, len(b.lines)
        batcher = self._batchers[b.input_index]
        max_docs, max_bytes = self._s.max_docs, self._s.max_bytes
        i = 0
        while i < n:
            batch = self._batch
            if batch.started is None:
                batch.started = now
            k = min(n - i, max_docs - len(batch.items))
            room = max_bytes - batch.size
            while k > 1 and _raw(b, i, k) * self._expansion > room:
                k //= 2
            end = offsets[i + k] if i + k < n else b.end_offset
            while pending is not None and pending.offset < end:
                self._take_oversized(b, pending)
                pending = next(oversized, None)
            if batcher is not None and k > 1 and self._take_run(batcher, b, i, k, ingested):
                i += k
            else:
                self._take_line(b, i, ingested)
                i += 1
            batch.lines += 1
            if len(batch.items) >= max_docs or batch.size >= max_bytes:
                end = offsets[i] if i < n else b.end_offset
                batch.marks[b.file_id] = Checkpoint(end, b.path, b.device, b.inode, self._wall())
                self._seal()
        while pending is not None:
            self._take_oversized(b, pending)
            pending = next(oversized, None)
        batch = self._batch
        if n == 0 or batch.lines:  # the rest of the file's lines are in the open batch
            if batch.started is None:
                batch.started = now
            batch.marks[b.file_id] = Checkpoint(b.end_offset, b.path, b.device, b.inode, self._wall())

    def _take_run(self, batcher: BatchNormalize, b: LineBatch, i: int, k: int, ingested: str) -> bool:
        """Lines ``i .. i+k`` of ``b`` with one ``bulk_items`` call. False on an unexpected
        error (the caller then takes them one by one, isolating the bad line)."""
        end = b.offsets[i + k] if i + k < len(b.lines) else b.end_offset
        run = (
            b
            if k == len(b.lines)
            else LineBatch(b.file_id, b.path, b.input_index, b.offsets[i : i + k], b.lines[i : i + k], end)
        )
        try:
            items, rejects = batcher(run, ingested)
        except Exception:
            log.exception(
                "normalizing %s from offset %d failed; taking its lines one by one", b.path, b.offsets[i]
            )
            return False
        for r in rejects:
            self._dead_letter(r.error.reason, r.error.detail, b, r.offset, r.line)
        batch = self._batch
        if items:
            size = sum(map(len, items)) + len(items) * _ITEM_SLACK
            batch.size += size
            batch.items += items
            # Learn the item/line size ratio, with a margin, forgetting slowly.
            ratio = 1.25 * size / max(end - b.offsets[i], 1)
            self._expansion = max(self._expansion * 0.95, ratio)
        batch.lines += k - 1  # the caller counts one
        return True

    def _take_line(self, b: LineBatch, i: int, ingested: str) -> None:
        normalize = self._normalizers[b.input_index]
        offset, raw = b.offsets[i], b.lines[i]
        try:
            ev = normalize(raw, Source(b.file_id, b.path, offset, b.input_index), ingested)
        except Rejected as r:
            self._dead_letter(r.reason, r.detail, b, offset, raw)
        except Exception as e:  # a bug must not stall the pipeline on one line
            log.exception("normalizing %s at offset %d failed", b.path, offset)
            self._dead_letter("internal_error", f"{type(e).__name__}: {e}", b, offset, raw)
        else:
            self._add(ev)

    def _take_oversized(self, b: LineBatch, o: OversizedLine) -> None:
        detail = f"line of {o.length} bytes is over max_line_bytes ({self._s.max_line_bytes})"
        self._dead_letter("line_too_long", detail, b, o.offset, o.head, o.length)

    def _dead_letter(
        self, reason: str, detail: str, b: LineBatch, offset: int, raw: bytes, length: int | None = None
    ) -> None:
        ev = self._rejects.reject(reason, detail, b, offset, raw, length)
        if ev is not None:
            self._add(ev)

    def _add(self, ev: Event) -> None:
        batch = self._batch
        batch.items.append(bulkbody.raw_body(((ev.index, ev.doc_id, ev.body),)))
        batch.size += len(ev.body) + len(ev.index) + len(ev.doc_id) + ITEM_OVERHEAD

    # -- the first delivery point ----------------------------------------------------------------

    def _seal(self) -> None:
        batch = self._batch
        self._batch = _Batch()
        if batch.started is None:
            return
        dead_mark = self._rejects.sync()  # the batch's dead letters are durable before its offsets
        items = batch.items
        payload: Future[bytes] | None = None
        if items and self._encoders is not None:
            self._bound_in_flight()
            payload = self._encoders.submit(_encode, items, self._s.compression_level)
            payload.add_done_callback(self._encoded)
        # Without encoders the batch is compressed where it is spooled (``_payload``): a failure
        # there leaves it at the head of the queue, where it is tried again.
        self._sealed.append(_Sealed(items or None, payload, len(items), batch.marks, dead_mark))

    def _bound_in_flight(self) -> None:
        """Wait for the oldest compression while ``encoders + 1`` are running (bounded memory)."""
        assert self._encoders is not None
        running = [p for s in self._sealed if isinstance(p := s.payload, Future) and not p.done()]
        if len(running) > self._s.encoders:
            running[0].exception()  # waits; a failure is handled where the payload is taken

    def _encoded(self, _future: Future[bytes]) -> None:
        self.wake.set()  # an idle read thread spools it now, not at the next timeout

    def _payload(self, sealed: _Sealed, wait: bool) -> bytes | Future[bytes] | None:
        """The compressed payload (None for a batch without items), or the Future itself while
        it runs and ``wait`` is false. A failed compression (MemoryError) raises here: the batch
        stays at the head with its items, its offsets do not move, and the loop logs the error
        and compresses it again at its next step."""
        payload = sealed.payload
        if isinstance(payload, Future):
            if not (wait or payload.done()):
                return payload
            try:
                data = payload.result()
            except Exception:
                sealed.payload = None  # the items are still here: compressed again next time
                raise
        elif payload is None and sealed.items is not None:
            data = _encode(sealed.items, self._s.compression_level)  # raises: the same
        else:
            return payload
        sealed.payload = data
        sealed.items = None  # the payload holds them now; memory is the compressed size
        return data

    def _commit_sealed(self, wait: bool = False) -> bool:
        """Spool the sealed batches in order, then move their offsets. Stops at one still being
        compressed (unless ``wait``); False only when the spool is full."""
        while self._sealed:
            sealed = self._sealed[0]
            payload = self._payload(sealed, wait)
            if isinstance(payload, Future):
                break
            if payload is not None:
                try:
                    seq = self._spool.append(payload)
                except SpoolFull:
                    if not self._metrics.value("spool_full"):
                        log.warning(
                            "spool is full (%d bytes); reading paused until it drains", self._spool.bytes
                        )
                    self._metrics.set("spool_full", 1)
                    self._spool_full = True
                    return False
                self._metrics.inc("spooled_records_total")
                self._on_spooled(seq, sealed.docs)
            self._sealed.popleft()
            for fid, cp in sealed.marks.items():
                self._registry.set(fid, cp)
            self._registry.set_dead_letter_mark(sealed.dead_mark)
            # Checkpointed at once: a crash reads again at most the batch being committed.
            self._registry.flush()
            self._last_registry_flush = self._clock()
        self._spool_full = False
        if self._metrics.value("spool_full"):
            log.info("spool has room again; reading resumed")
            self._metrics.set("spool_full", 0)
        return True

    # -- upkeep ----------------------------------------------------------------------------------

    def _housekeeping(self, now: float) -> None:
        if now - self._last_registry_flush >= self._s.registry_flush_interval:
            self._registry.flush()
            self._last_registry_flush = now
        if now >= self._next_prune and self._scanned:
            self._next_prune = now + self._s.prune_interval
            keep = self._tailer.alive_ids() | set(self._batch.marks)
            for sealed in self._sealed:
                keep |= set(sealed.marks)
            pruned = self._registry.prune(keep, self._wall(), self._s.prune_grace)
            if pruned:
                log.info("registry: forgot %d files that are gone", pruned)

    def _publish_gauges(self) -> None:
        lag: dict[tuple[tuple[str, str], ...], float] = {}
        files = self._tailer.files()
        for f in files:
            committed = 0
            if f.file_id is not None:
                cp = self._registry.get(f.file_id)
                committed = cp.offset if cp is not None else 0
            lag[labels(path=f.path)] = float(max(f.size - committed, 0))
        self._metrics.replace("file_lag_bytes", lag)
        self._metrics.set("files_open", len(files))
        # Components count their own repairs and drops; mirrored here as absolute totals.
        for reason, n in list(self._tailer.counts.items()):
            if reason in _TAILER_DROPS:
                self._metrics.set("dropped_total", n, labels(reason=reason))
            elif reason in _TAILER_SKIPS:
                self._metrics.set("files_skipped_total", n, labels(reason=reason))
        for reason, n in list(self._spool.counts.items()):
            self._metrics.set("storage_repairs_total", n, labels(store="spool", reason=reason))
            if reason == "records_lost":
                self._metrics.set("dropped_total", n, labels(reason="spool_records_lost"))
        for reason, n in list(self._registry.counts.items()):
            self._metrics.set("storage_repairs_total", n, labels(store="registry", reason=reason))


def _redactor_of(normalize: Normalize) -> Redactor | None:
    """The redaction a normalizer applies to its lines (``Normalizer.redact`` and ``hash_key``),
    or None when it redacts nothing. A normalizer without a ``redact`` config is taken as one
    that redacts nothing (test doubles)."""
    redact = getattr(normalize, "redact", None)
    if not isinstance(redact, RedactConfig):
        return None
    redactor = Redactor(redact.drop, redact.hash, getattr(normalize, "hash_key", None))
    return redactor if redactor.active else None


def _encode(items: list[bytes], level: int) -> bytes:
    """The spool payload of a batch's bulk items (see ``agent.bulkbody``)."""
    return bulkbody.compress(b"".join(items), level)


def _raw(b: LineBatch, i: int, k: int) -> int:
    """Bytes of lines ``i .. i+k`` of ``b`` in the file."""
    end = b.offsets[i + k] if i + k < len(b.lines) else b.end_offset
    return end - b.offsets[i]


# Tailer events that mean bytes were skipped (not read): counted as drops.
_TAILER_DROPS = frozenset({"truncated_while_away", "copytruncate_lost"})
# Tailer events that mean a file the globs match is not read.
_TAILER_SKIPS = frozenset({"compressed"})


def _iso_now(t: float) -> str:
    """``event.ingested``: ISO-8601 UTC with milliseconds and Z."""
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def run_read_loop(loop: ReadLoop, stop: threading.Event, metrics: Metrics) -> None:
    """The read thread: step until ``stop``, waiting on ``loop.wake`` when idle; then flush."""
    while not stop.is_set():
        loop.wake.clear()
        try:
            busy = loop.step()
        except Exception:
            log.exception("read loop step failed; retrying in 1s")
            metrics.inc("loop_errors_total", 1, labels(loop="read"))
            busy = False
            stop.wait(1.0)
        if not busy and not stop.is_set():
            loop.wake.wait(loop.idle_timeout())
    try:
        loop.flush()
    except Exception:
        log.exception("flushing the last batch failed; its lines are read again at the next start")
    finally:
        loop.close()
