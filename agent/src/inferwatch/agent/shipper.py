"""The ship loop: spool records -> bulk requests, several in flight -> one final outcome per item ->
spool ack, in spool order.

This is the second delivery point of ARCHITECTURE.md. Each record (one bulk body written by the
read loop, with its item count) is sent as it is, on one of ``max_in_flight`` sender threads. Each
item's answer puts it in one of libbeat's buckets: created and duplicate (409) are done, rejected
(other 4xx) goes to the dead letter with its reason, retry (429/5xx) is kept aside and sent again
after a jittered backoff that grows with that item's attempts, re-encoded together with the other
items due then, in a request of its own. Meanwhile new records keep flowing (as Filebeat and Vector
do): a few refused items never hold up the records behind them.

Acknowledgement keeps spool order: records enter a window when they are read, and the spool is
acknowledged up to the last record of the window's done prefix, so its position moves only when
every earlier item has a final outcome (after the dead letter is fsynced). A crash replays what
was not acknowledged; the deterministic document ids turn what got in into 409 duplicates.

A request that fails as a whole (``OutputUnavailable``: refused, timed out, 5xx, 429 for the
request, an answer of the wrong length) is sent again with the same body after the shared backoff,
honouring ``Retry-After``; while the output fails (no success since), only one request is in
flight, and only retries that are due are sent: a probe, not a flood. A success restores full
concurrency at once. A request too large for the server is the output's business
(``ElasticsearchOutput`` splits it; a single document over the limit comes back rejected).

Memory is bounded: at most ``WINDOW_RECORDS`` records are read ahead of the acknowledged
position, and new records wait while more than ``RETRY_BACKLOG_BATCHES`` batches of items wait for
a retry; a record's payload is held only while a request carries it.

``step()`` never sleeps: it takes the answers that arrived, acknowledges, starts requests and
returns how long the thread may wait (on ``wake``, set by the read loop and by every answer).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from inferwatch.agent import bulkbody
from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.deadletter_index import dead_letter_document, dead_letter_id
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import ItemResult, Outcome
from inferwatch.agent.outputs import Output, OutputUnavailable, RequestTooLarge
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.spool import Spool

log = logging.getLogger(__name__)

Item = tuple[str, str, bytes]  # (index, id, document)

IDLE_POLL = 1.0  # seconds between spool reads when nothing woke the loop


@dataclass(slots=True)
class _Work:
    """The record being delivered: its items and which of them still lack a final outcome."""

    seq: int
    payload: bytes  # the spooled body, sent as it is while every item is still pending
    count: int  # items in the payload
    pending: list[int]  # indices into the items, in order
    limit: int  # items per request (halved on "request too large")
    fresh: bool = True
    decoded: list[Item] | None = None  # parsed only when some items need re-sending or a record

    def items(self) -> list[Item]:
        if self.decoded is None:
            self.decoded = bulkbody.decode(self.payload)
        return self.decoded


class ShipLoop:
    def __init__(
        self,
        spool: Spool,
        output: Output,
        dead_letter: DeadLetter,
        metrics: Metrics,
        backoff: Backoff,
        compression_level: int = 1,
        dead_letter_index: str | None = None,
        on_ack: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spool = spool
        self._output = output
        self._dead = dead_letter
        self._metrics = metrics
        self._backoff = backoff
        self._level = compression_level
        self._dl_index = dead_letter_index
        self._on_ack = on_ack
        self._clock = clock
        self.wake = threading.Event()  # set when the read loop spools a record
        # Items per record as the read loop reported them (``spooled``), so the happy path never
        # decompresses a payload only to count its lines. Records spooled before a restart, or
        # read before their count arrived, are counted from the payload.
        self._counts: dict[int, int] = {}
        self._counts_lock = threading.Lock()
        self._acked = threading.Condition()
        self._cursor = spool.acked_seq
        self._work: _Work | None = None
        self._rejected: list[tuple[Item, ItemResult]] = []
        self._dead_unflushed = False
        self.down_since: float | None = None  # monotonic time of the first failure of an outage
        self.last_error = ""

    # -- the loop body ---------------------------------------------------------------------------

    def step(self) -> float | None:
        """Send one request. Returns seconds to wait before the next step (0.0: go on at once),
        or None when the spool holds nothing to send."""
        self._publish_gauges()
        return self._wait(now)

    def _dispatch(self, now: float) -> None:
        while self._in_flight < self._max_in_flight:
            if self.down_since is not None and self._in_flight:
                return  # the output fails: one probe at a time
            request = self._next_request(now)
            if request is None:
                return
            self._in_flight += 1
            self._senders.submit(request)

    def _next_request(self, now: float) -> _Request | None:
        """Oldest data first: a request that failed whole, then items due for a retry, then the
        next record (not while the output fails)."""
        due = [r for r in self._delayed if r.due <= now]
        if due:
            request = min(due, key=lambda r: r.due)
            self._delayed.remove(request)
            return request
        if self._retries and self._retries[0].due <= now or any(r.due <= now for r in self._retries):
            return self._retry_request(now)
        if self.down_since is not None:
            return None
        return self._fresh()

    def _retry_request(self, now: float) -> _Request:
        batch: list[_Retry] = []
        rest: list[_Retry] = []
        for r in self._retries:
            (batch if r.due <= now and len(batch) < self._batch_items else rest).append(r)
        self._retries = rest
        body = bulkbody.encode_items([r.item for r in batch], self._level)
        return _Request(body, len(batch), retries=batch)

    def _fresh(self) -> _Request | None:
        while (
            len(self._window) < WINDOW_RECORDS
            and len(self._retries) <= RETRY_BACKLOG_BATCHES * self._batch_items
        ):
            records = self._spool.read(self._read_seq, 1)
            if not records:
                return None
            rec = records[0]
            self._read_seq = rec.seq
            count = self._count(rec.seq, rec.payload) if rec.items is None else rec.items
            record = _Record(rec.seq, count)
            self._window.append(record)
            if count:
                return _Request(rec.payload, count, record=record)
        return None

    def _count(self, seq: int, payload: bytes) -> int:
        """Items of a record spooled without its count (written before counts were kept)."""
        try:
            count = _count_items(rec.payload) if known is None else known
        except (ValueError, OSError, EOFError, zlib.error) as e:
            # The spool's checksum verified, so this is a bug or a foreign file: keep the bytes
            # for a person and go on rather than stall every record behind it.
            log.error("spool record %d is not a bulk body (%s); moved to the dead letter", rec.seq, e)
            self._dead.write("undecodable_record", f"spool record {rec.seq}: {e}", raw=rec.payload)
            self._dead_unflushed = True
            self._metrics.inc("dead_lettered_total", 1, labels(reason="undecodable_record"))
            return 0

    # -- answers ---------------------------------------------------------------------------------

    def _apply(self, work: _Work, chunk: list[int], results: list[ItemResult]) -> list[int]:
        created = duplicate = 0
        retry: list[int] = []
        for i, r in zip(chunk, results, strict=True):
            if r.outcome is Outcome.CREATED:
                created += 1
            elif r.outcome is Outcome.DUPLICATE:
                duplicate += 1
            elif r.outcome is Outcome.REJECTED:
                self._reject(work.items()[i], r)
            else:
                retry.append(i)
                self._metrics.inc("documents_retried_total", 1, labels(status=str(r.status)))
        self._metrics.inc("documents_shipped_total", created)
        self._metrics.inc("documents_duplicate_total", duplicate)
        return retry

    def _reject(self, item: Item, r: ItemResult) -> None:
        reason = r.error_type or f"http_{r.status}"
        detail = f"{r.status} {r.error_type}: {r.error_reason}".strip()
        _index, doc_id, document = item
        self._dead.write(reason, detail, document=document, doc_id=doc_id)
        self._dead_unflushed = True
        self._metrics.inc("dead_lettered_total", 1, labels(reason=reason))
        if self._dl_index and item[0] != self._dl_index:  # a refused dead letter is not sent again
            self._rejected.append((item, r))

    def _finish(self, work: _Work) -> None:
        """Every item has its final outcome: make the dead letter durable, then acknowledge."""
        if self._dead_unflushed:
            self._dead.flush()
            self._dead_unflushed = False
        self._forward_dead_letters()
        self._spool.ack(work.seq)
        with self._counts_lock:
            self._cursor = work.seq
            if self._counts and min(self._counts) <= work.seq:  # a count that arrived too late
                self._counts = {s: n for s, n in self._counts.items() if s > work.seq}
        self._work = None
        self._backoff.reset()
        with self._acked:
            self._acked.notify_all()
        self._on_ack()

    def _unavailable(self, e: OutputUnavailable) -> float:
        status = str(e.status) if e.status is not None else "none"
        self._metrics.inc("bulk_requests_total", 1, labels(result="unavailable", status=status))
        self._metrics.set("output_up", 0)
        if self.down_since is None:
            self.down_since = self._clock()
            log.warning("output unavailable, retrying with backoff: %s", e)
        self.last_error = str(e)
        return self._backoff.next(e.retry_after)

    def _too_large(self, work: _Work, chunk: list[int], reason: str) -> float:
        self._reached()
        self._metrics.inc("bulk_requests_total", 1, labels(result="too_large"))
        work.fresh = False
        if len(chunk) > 1:
            work.limit = max(1, len(chunk) // 2)
            return 0.0
        i = chunk[0]
        _index, doc_id, document = work.items()[i]
        detail = f"the output refused the document as too large: {reason}"
        self._dead.write("too_large", detail, document=document, doc_id=doc_id)
        self._dead_unflushed = True
        self._metrics.inc("dead_lettered_total", 1, labels(reason="too_large"))
        work.pending = work.pending[1:]
        if not work.pending:
            self._finish(work)
        return 0.0

    def _reached(self) -> None:
        if self.down_since is not None:
            log.info("output reachable again after %.1fs", self._clock() - self.down_since)
        self.down_since = None
        self.last_error = ""
        self._metrics.set("output_up", 1)

    def _forward_dead_letters(self) -> None:
        """Best effort: also index rejected documents in ``agent.dead_letter_index`` (the local
        dead-letter file, already fsynced, is the record that counts). Sent once: an item the
        index does not answer created or duplicate (or every item of a request that failed) is
        counted in ``dropped_total{reason="dead_letter_index"}``."""
        rejected, self._rejected = self._rejected, []
        if not rejected or not self._dl_index:
            return
        items: list[Item] = []
        now = time.time()
        for (index, doc_id, document), r in rejected:
            reason = r.error_type or f"http_{r.status}"
            detail = f"{r.status} {r.error_type}: {r.error_reason}".strip()
            doc = dead_letter_document(reason, detail, now, document=document, doc_id=doc_id, index=index)
            items.append((self._dl_index, dead_letter_id(f"{index}:{doc_id}"), doc))
        try:
            results = self._output.send(bulkbody.encode_items(items, self._level), len(items))
        except (OutputUnavailable, OSError) as e:
            self._dead_letters_dropped(len(items), len(items), str(e))
            return
        if len(results) != len(items):  # which ones got in is unknown: none is sure to have
            why = f"answer has {len(results)} items for a request of {len(items)}"
            self._dead_letters_dropped(len(items), len(items), why)
            return
        failed = [r for r in results if r.outcome not in (Outcome.CREATED, Outcome.DUPLICATE)]
        if failed:
            r = failed[0]
            why = f"{r.status} {r.error_type}: {r.error_reason}".strip()
            self._dead_letters_dropped(len(failed), len(items), why)

    def _dead_letters_dropped(self, dropped: int, sent: int, why: str) -> None:
        """Dead letters the index did not take: not sent again (the local file has them)."""
        log.warning("%d of %d dead letters not indexed in %s: %s", dropped, sent, self._dl_index, why)
        self._metrics.inc("dropped_total", dropped, labels(reason="dead_letter_index"))

    def _publish_gauges(self) -> None:
        self._metrics.set("spool_bytes", self._spool.bytes)
        self._metrics.set("spool_pending_records", self._spool.pending)
        age = self._spool.oldest_pending_age(time.time())
        self._metrics.set("oldest_unshipped_age_seconds", age or 0.0)

    # -- for the owner ---------------------------------------------------------------------------

    @property
    def acked_seq(self) -> int:
        return self._cursor

    def wait_acked(self, seq: int, timeout: float) -> bool:
        """Block until every record up to ``seq`` is acknowledged, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._acked:
            while self._cursor < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._acked.wait(remaining)
        return True


def _count_items(payload: bytes) -> int:
    """Items in a spooled bulk body without parsing it: two lines per item."""
    lines = zlib.decompress(payload, 31).count(b"\n")
    if lines % 2:
        raise ValueError("a bulk body is pairs of lines, each ending with a newline")
    return lines // 2


def run_ship_loop(loop: ShipLoop, stop: threading.Event, metrics: Metrics) -> None:
    """The ship thread: step until ``stop``; backoffs wait on ``stop``, idleness on ``loop.wake``."""
    while not stop.is_set():
        loop.wake.clear()
        try:
            delay = loop.step()
        except Exception:
            log.exception("ship loop step failed; retrying in 1s")
            metrics.inc("loop_errors_total", 1, labels(loop="ship"))
            delay = 1.0
        if delay is None:
            loop.wake.wait(IDLE_POLL)
        elif delay > 0:
            stop.wait(delay)
    def _wait(self, now: float) -> float | None:
        pending = [r.due for r in self._delayed] + [r.due for r in self._retries]
        if not pending and not self._in_flight and not self._window:
            return None  # idle: the read loop's wake (or the idle poll) starts the next step
        if self._in_flight >= self._max_in_flight or (self.down_since is not None and self._in_flight):
            return IDLE_POLL if not pending else max(0.0, min(min(pending) - now, IDLE_POLL))
        if pending:
            return max(0.0, min(pending) - now)
        return IDLE_POLL

