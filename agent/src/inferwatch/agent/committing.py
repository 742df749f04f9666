"""The first delivery point: sealed batches -> the spool, in the order they were sealed; then
their files' offsets and the dead letter's position -> the registry, checkpointed at once (a
crash reads again at most the batch being committed; ARCHITECTURE: docs/architecture.md).

A batch still being compressed holds back the ones after it. When the spool is full the batch
waits, reading pauses (``commit`` returns False) and ``spool_full`` says so; the log files are
the buffer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from inferwatch.agent.deadletter import DeadLetterMark
from inferwatch.agent.encoding import Payload
from inferwatch.agent.metrics import Metrics
from inferwatch.agent.model import Checkpoint, FileId
from inferwatch.agent.registry import Registry
from inferwatch.agent.spool import Spool, SpoolFull

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Sealed:
    """A sealed batch waiting for the spool."""

    payload: Payload
    docs: int  # bulk items in it
    marks: dict[FileId, Checkpoint]  # each file's offset once the batch is spooled
    dead_mark: DeadLetterMark  # the dead letter's position once the batch's entries are in it


class Committer:
    def __init__(
        self,
        spool: Spool,
        registry: Registry,
        metrics: Metrics,
        on_spooled: Callable[[int, int], None],
    ) -> None:
        self._spool = spool
        self._registry = registry
        self._metrics = metrics
        self._on_spooled = on_spooled
        self._sealed: deque[Sealed] = deque()

    def add(self, sealed: Sealed) -> None:
        self._sealed.append(sealed)

    @property
    def waiting(self) -> bool:
        """Whether sealed batches wait for the spool."""
        return bool(self._sealed)

    def file_ids(self) -> set[FileId]:
        """The files whose offsets wait in sealed batches (not to be pruned)."""
        return {fid for sealed in self._sealed for fid in sealed.marks}

    def commit(self, wait: bool = False) -> bool:
        """Spool the sealed batches in order, moving and checkpointing their offsets after each.
        Stops at one still being compressed (unless ``wait``); False only when the spool is full.
        A failed compression raises (the batch stays first, its offsets unmoved)."""
        while self._sealed:
            sealed = self._sealed[0]
            payload = sealed.payload.result(wait)
            if isinstance(payload, Future):
                break
            if payload is not None:
                try:
                    seq = self._spool.append(payload, sealed.docs)
                except SpoolFull:  # the spool logs the episode once (Spool.full)
                    self._metrics.set("spool_full", 1)
                    return False
                self._metrics.inc("spooled_records_total")
                self._on_spooled(seq, sealed.docs)
            self._sealed.popleft()
            for fid, cp in sealed.marks.items():
                self._registry.set(fid, cp)
            self._registry.set_dead_letter_mark(sealed.dead_mark)
            # At once: a crash reads again at most this batch (durable within a second,
            # Registry.flush says why that is enough and in the right order).
            self._registry.flush(durable=False)
        self._metrics.set("spool_full", int(self._spool.full))
        return True
