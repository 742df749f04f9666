"""Lines -> batches of bulk items: each file's lines are normalized into the open batch, which is
sealed (handed to ``on_sealed``) when it is full (``max_docs`` items, or ``max_bytes``) or old.

Runs of lines that surely fit go through the input's ``bulk_items`` in one call (the fast path:
no ``Event`` per line); the lines near a batch's limit go one by one, so a batch never passes
``max_docs`` and passes ``max_bytes`` by at most one document. How many document bytes a line
byte makes is learned as lines go (``_expansion``). A rejected line goes to ``agent.rejects``
(and, with ``dead_letter_index``, its document into the batch), always before the batch whose
offsets cover it is sealed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inferwatch.agent import bulkbody
from inferwatch.agent.lineparser import BulkItems, LineParser
from inferwatch.agent.model import Checkpoint, Event, FileId, LineBatch, OversizedLine, Rejected, Source
from inferwatch.agent.rejects import Rejects

log = logging.getLogger(__name__)

ITEM_OVERHEAD = 40  # bytes of a bulk action line besides index and id: {"create":{"_index":..}}
# A bulk item is its document, index and id plus 35 bytes; a batch's size counts ITEM_OVERHEAD.
_ITEM_SLACK = ITEM_OVERHEAD - 35


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_docs: int = 2000
    max_bytes: int = 4 * 1024**2  # uncompressed bulk body
    max_line_bytes: int = 1024**2  # for the dead letter's detail of a line over it


@dataclass(slots=True)
class Batch:
    items: list[bytes] = field(default_factory=list)  # bulk items (action line + document)
    size: int = 0
    marks: dict[FileId, Checkpoint] = field(default_factory=dict)  # offsets once spooled
    lines: int = 0  # lines covered
    started: float | None = None  # when its first line was taken (clock)


class Batcher:
    def __init__(
        self,
        parsers: Sequence[LineParser],
        rejects: Rejects,
        limits: BatchLimits,
        on_sealed: Callable[[Batch], None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._parsers = tuple(parsers)
        self._rejects = rejects
        self._limits = limits
        self._on_sealed = on_sealed
        self._wall = wall
        self._batch = Batch()
        self._expansion = 4.0  # document bytes per line byte, learned; decides the fast path

    @property
    def started(self) -> float | None:
        """When the open batch took its first line; None while it is empty."""
        return self._batch.started

    def file_ids(self) -> set[FileId]:
        """The files whose offsets wait in the open batch."""
        return set(self._batch.marks)

    def seal(self) -> None:
        """Hand the open batch to ``on_sealed`` (unless it took nothing) and open a new one."""
        batch = self._batch
        self._batch = Batch()
        if batch.started is not None:
            self._on_sealed(batch)

    def take(self, b: LineBatch, ingested: str, now: float) -> None:
        """Normalize one file's lines into the batch, sealing whenever it is full."""
        if self._batch.started is None:
            self._batch.started = now
        oversized = iter(b.oversized)  # dead-lettered in line order, each before the seal past it
        pending = next(oversized, None)
        offsets, n = b.offsets, len(b.lines)
        bulk_items = self._parsers[b.input_index].bulk_items
        max_docs, max_bytes = self._limits.max_docs, self._limits.max_bytes
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
            if bulk_items is not None and k > 1 and self._take_run(bulk_items, b, i, k, ingested):
                i += k
            else:
                self._take_line(b, i, ingested)
                i += 1
            batch.lines += 1
            if len(batch.items) >= max_docs or batch.size >= max_bytes:
                end = offsets[i] if i < n else b.end_offset
                batch.marks[b.file_id] = Checkpoint(end, b.path, b.device, b.inode, self._wall())
                self.seal()
        while pending is not None:
            self._take_oversized(b, pending)
            pending = next(oversized, None)
        batch = self._batch
        if n == 0 or batch.lines:  # the rest of the file's lines are in the open batch
            if batch.started is None:
                batch.started = now
            batch.marks[b.file_id] = Checkpoint(b.end_offset, b.path, b.device, b.inode, self._wall())

    def _take_run(self, bulk_items: BulkItems, b: LineBatch, i: int, k: int, ingested: str) -> bool:
        """Lines ``i .. i+k`` of ``b`` with one ``bulk_items`` call. False on an unexpected
        error (the caller then takes them one by one, isolating the bad line)."""
        end = b.offsets[i + k] if i + k < len(b.lines) else b.end_offset
        run = (
            b
            if k == len(b.lines)
            else LineBatch(b.file_id, b.path, b.input_index, b.offsets[i : i + k], b.lines[i : i + k], end)
        )
        try:
            items, rejects = bulk_items(run, ingested)
        except Exception:
            log.exception(
                "normalizing %s from offset %d failed; taking its lines one by one", b.path, b.offsets[i]
            )
            return False
        for r in rejects:
            self._reject(r.error.reason, r.error.detail, b, r.offset, r.line)
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
        normalize = self._parsers[b.input_index].normalize
        offset, raw = b.offsets[i], b.lines[i]
        try:
            ev = normalize(raw, Source(b.file_id, b.path, offset, b.input_index), ingested)
        except Rejected as r:
            self._reject(r.reason, r.detail, b, offset, raw)
        except Exception as e:  # a bug must not stall the pipeline on one line
            log.exception("normalizing %s at offset %d failed", b.path, offset)
            self._reject("internal_error", f"{type(e).__name__}: {e}", b, offset, raw)
        else:
            self._add(ev)

    def _take_oversized(self, b: LineBatch, o: OversizedLine) -> None:
        detail = f"line of {o.length} bytes is over max_line_bytes ({self._limits.max_line_bytes})"
        self._reject("line_too_long", detail, b, o.offset, o.head, o.length)

    def _reject(
        self, reason: str, detail: str, b: LineBatch, offset: int, raw: bytes, length: int | None = None
    ) -> None:
        ev = self._rejects.reject(reason, detail, b, offset, raw, length)
        if ev is not None:
            self._add(ev)

    def _add(self, ev: Event) -> None:
        batch = self._batch
        batch.items.append(bulkbody.raw_body(((ev.index, ev.doc_id, ev.body),)))
        batch.size += len(ev.body) + len(ev.index) + len(ev.doc_id) + ITEM_OVERHEAD


def _raw(b: LineBatch, i: int, k: int) -> int:
    """Bytes of lines ``i .. i+k`` of ``b`` in the file."""
    end = b.offsets[i + k] if i + k < len(b.lines) else b.end_offset
    return end - b.offsets[i]
