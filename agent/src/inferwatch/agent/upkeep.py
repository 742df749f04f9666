"""The read side's periodic chores: retry a registry checkpoint that failed, forget the offsets of
files gone for ``prune_grace``, and publish the gauges (lag per file from each file's size now,
open files, and the components' own counts mirrored as totals). ``gauges`` is safe to call
while reading is paused or failing: it only reads.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from inferwatch.agent.fastpath import LINES_NATIVE, LINES_PYTHON
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.metrics import REPAIR_REASONS, Metrics, labels
from inferwatch.agent.model import FileId
from inferwatch.agent.registry import Registry
from inferwatch.agent.spool import Spool

log = logging.getLogger(__name__)

# Tailer events that mean bytes were skipped (not read): counted as drops.
TAILER_DROPS = frozenset({"truncated_while_away", "copytruncate_lost"})
# Tailer events that mean a file the globs match is not read.
TAILER_SKIPS = frozenset({"compressed", "compressed_unfinished"})


@dataclass(frozen=True, slots=True)
class UpkeepIntervals:
    registry_flush: float = 1.0  # the durable checkpoint (and the retry of a failed one)
    prune: float = 60.0
    prune_grace: float = 3600.0  # gone files keep their offsets this long (seconds, wall clock)
    gauges: float = 1.0


class Upkeep:
    def __init__(
        self,
        tailer: Tailer,
        registry: Registry,
        spool: Spool,
        metrics: Metrics,
        intervals: UpkeepIntervals,
        now: float,
        wall: Callable[[], float],
        normalizer_counts: Sequence[Counter[str]] = (),
    ) -> None:
        self._tailer = tailer
        self._normalizer_counts = normalizer_counts  # each input's Normalizer.counts
        self._registry = registry
        self._spool = spool
        self._metrics = metrics
        self._every = intervals
        self._wall = wall
        self._next_flush = now
        self._next_prune = now + intervals.prune
        self._next_gauges = now

    def chores(self, now: float, keep: AbstractSet[FileId], scanned: bool) -> None:
        """Checkpoint the registry durably (a prompt checkpoint not yet fsynced, or one that
        failed) and prune, when due. ``keep``: the
        files whose offsets wait in batches; ``scanned``: whether discovery ran (before it, every
        file would look gone)."""
        if now >= self._next_flush:
            self._next_flush = now + self._every.registry_flush
            self._registry.flush()
        if now >= self._next_prune and scanned:
            self._next_prune = now + self._every.prune
            pruned = self._registry.prune(
                self._tailer.alive_ids() | keep, self._wall(), self._every.prune_grace
            )
            if pruned:
                log.info("registry: forgot %d files that are gone", pruned)
                self._registry.flush()

    def gauges(self, now: float) -> None:
        """Publish the gauges when due."""
        if now < self._next_gauges:
            return
        self._next_gauges = now + self._every.gauges
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
            if reason in TAILER_DROPS:
                self._metrics.set("dropped_total", n, labels(reason=reason))
            elif reason in TAILER_SKIPS:
                self._metrics.set("files_skipped_total", n, labels(reason=reason))
        for reason, n in list(self._spool.counts.items()):
            self._metrics.set("storage_repairs_total", n, labels(store="spool", reason=reason))
            if reason == "records_lost":
                self._metrics.set("dropped_total", n, labels(reason="spool_records_lost"))
        for reason, n in list(self._registry.counts.items()):
            self._metrics.set("storage_repairs_total", n, labels(store="registry", reason=reason))
        normalized: Counter[str] = Counter()
        for counts in self._normalizer_counts:
            normalized.update(dict(list(counts.items())))  # a parse worker's answer may add to it
        for by, key in (("native", LINES_NATIVE), ("python", LINES_PYTHON)):
            self._metrics.set("lines_normalized_total", normalized[key], labels(by=by))
        for reason in REPAIR_REASONS:
            self._metrics.set("normalizer_repairs_total", normalized[reason], labels(reason=reason))
