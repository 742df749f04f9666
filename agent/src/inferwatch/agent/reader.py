"""The read loop: files -> lines -> documents -> one bulk body in the spool -> registry offsets.

One ``step()`` finds files (when a scan is due), reads what they have, and seals a batch when it
is full (documents or bytes) or old (``max_wait``). The loop only composes the parts, each with
one concern and built here from what the loop is given:

- ``agent.batching``: lines -> batches of bulk items (sizing, the fast path per input);
- ``agent.parsepool``: the fast path's runs shared with parse worker processes;
- ``agent.rejects``: rejected lines -> the dead letters (redacted, once per line);
- ``agent.encoding``: sealed batches -> gzip payloads (``encoders`` threads, bounded);
- ``agent.committing``: payloads -> the spool in order, then the offsets and the dead letter's
  position -> the registry, checkpointed at once (the first delivery point of
  docs/architecture.md: a crash reads again at most the batch being committed, and the lines
  read again get the same document ids, so the output answers 409 for them);
- ``agent.upkeep``: a failed checkpoint retried, pruning, gauges (also while reading waits).

When the spool is full, the sealed batch waits and nothing more is read: the log files are the
buffer, and memory holds at most what one step read. ``wake`` (shared with discovery events and
the ship loop's acknowledgements) ends the wait early.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from inferwatch.agent.batching import Batch, Batcher, BatchLimits
from inferwatch.agent.committing import Committer, Sealed
from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.encoding import Encoder
from inferwatch.agent.files.discovery import Discovery
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.lineparser import LineParser, Normalize
from inferwatch.agent.metrics import Metrics
from inferwatch.agent.normalize import Normalizer, format_epoch
from inferwatch.agent.parsepool import ParsePool
from inferwatch.agent.registry import Registry
from inferwatch.agent.rejects import RejectPolicy, Rejects
from inferwatch.agent.spool import Spool
from inferwatch.agent.upkeep import Upkeep, UpkeepIntervals
from inferwatch.core.config import InputConfig

log = logging.getLogger(__name__)

__all__ = ["LineParser", "Normalize", "ReadLoop", "ReadSettings"]


@dataclass(frozen=True, slots=True)
class ReadSettings:
    max_docs: int = 2000
    max_bytes: int = 4 * 1024**2  # uncompressed bulk body
    max_wait: float = 1.0
    compression_level: int = 1
    max_line_bytes: int = 1024**2
    step_bytes: int = 1024**2  # bytes read from files per step, at most
    registry_flush_interval: float = 1.0  # the durable checkpoint, and the retry of a failed one
    prune_interval: float = 60.0
    prune_grace: float = 3600.0  # gone files keep their offsets this long (seconds, wall clock)
    housekeeping_interval: float = 1.0  # lag gauges; the longest idle wait
    dead_letter_index: str | None = None  # also index dead-lettered lines there
    encoders: int = 0  # threads that gzip sealed batches; 0: the read thread does it
    parse_workers: int = 0  # processes that parse beside the read thread (agent.parsepool)
    keep_unparsed: bool = False  # agent.dead_letter.keep_unparsed (see agent.rejects)


class ReadLoop:
    def __init__(
        self,
        inputs: Sequence[InputConfig],
        discovery: Discovery,
        tailer: Tailer,
        normalizers: Sequence[Normalize | LineParser],
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
        self._metrics = metrics
        self._registry = registry
        self._s = settings
        self.wake = wake
        self._clock = clock
        self._wall = wall
        self._pool = ParsePool(normalizers, settings.parse_workers, metrics)
        parsers = [LineParser.of(n) for n in normalizers]
        if self._pool.size:
            parsers = [replace(p, bulk_items=self._pool.bulk_items(i)) for i, p in enumerate(parsers)]
        mark = registry.dead_letter_mark  # lines dead-lettered past it are read again now
        self._rejects = Rejects(
            dead_letter,
            metrics,
            [RejectPolicy(p.redactor, settings.keep_unparsed) for p in parsers],
            settings.dead_letter_index,
            set() if mark is None else dead_letter.lines_after(mark),
            wall,
        )
        limits = BatchLimits(settings.max_docs, settings.max_bytes, settings.max_line_bytes)
        self._batcher = Batcher(parsers, self._rejects, limits, self._sealed, wall)
        self._encoder = Encoder(settings.encoders, settings.compression_level, wake)
        self._committer = Committer(spool, registry, metrics, on_spooled)
        intervals = UpkeepIntervals(
            settings.registry_flush_interval,
            settings.prune_interval,
            settings.prune_grace,
            settings.housekeeping_interval,
        )
        counts = [p.normalize.counts for p in parsers if isinstance(p.normalize, Normalizer)]
        self._upkeep = Upkeep(tailer, registry, spool, metrics, intervals, clock(), wall, counts)
        self._first_start = not registry.items()  # start_at applies to files found at the first start
        self._scanned = False

    # -- the loop body ---------------------------------------------------------------------------

    def step(self) -> bool:
        """Read once and seal what is due. True if lines were read (more may be waiting). The
        gauges are published when due also while reading waits (spool full) or a step fails."""
        now = self._clock()
        try:
            return self._step(now)
        finally:
            try:
                self._upkeep.gauges(now)
            except Exception:  # a gauge must never hide the step's own error
                log.exception("publishing the read loop's gauges failed")

    def _step(self, now: float) -> bool:
        if self._committer.waiting and not self._committer.commit():
            self._chores(now)
            return False  # spool full: the files keep the data until there is room
        if self._discovery.due(now):
            self._scan()
        batches = self._tailer.step(self._s.step_bytes)
        if batches:
            ingested = format_epoch(self._wall())
            for b in batches:
                self._metrics.inc("lines_read_total", len(b.lines) + len(b.oversized))
                self._batcher.take(b, ingested, now)
        started = self._batcher.started
        if started is not None and now - started >= self._s.max_wait:
            self._batcher.seal()
        if self._committer.waiting:
            self._committer.commit()
        self._chores(now)
        return bool(batches)

    def idle_timeout(self) -> float:
        """How long the thread may wait for a wake-up before the next step is due anyway."""
        timeout = self._s.housekeeping_interval
        started = self._batcher.started
        if started is not None:
            timeout = min(timeout, started + self._s.max_wait - self._clock())
        return max(timeout, 0.0)

    def flush(self) -> bool:
        """Seal the current batch and spool everything sealed; checkpoint the registry. False if
        the spool had no room (those lines stay unread in the registry and are read next time)."""
        self._batcher.seal()
        ok = self._committer.commit(wait=True)
        self._registry.flush()
        return ok

    def close(self) -> None:
        """Stop the encoder threads and the parse workers (after ``flush``: nothing is left
        for them)."""
        self._encoder.close()
        self._pool.close()

    # -- parts -------------------------------------------------------------------------------------

    def _scan(self) -> None:
        for index, path in self._discovery.scan():
            self._tailer.add_path(path, index, self._first_start, self._inputs[index].start_at)
        self._first_start = False
        self._scanned = True

    def _sealed(self, batch: Batch) -> None:
        dead_mark = self._rejects.sync()  # the batch's dead letters are durable before its offsets
        payload = self._encoder.submit(batch.items)
        self._committer.add(Sealed(payload, len(batch.items), batch.marks, dead_mark))

    def _chores(self, now: float) -> None:
        keep = self._batcher.file_ids() | self._committer.file_ids()
        self._upkeep.chores(now, keep, self._scanned)
        self._pool.retire_idle()
