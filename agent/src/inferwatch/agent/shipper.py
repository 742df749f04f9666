"""The ship loop: spool records -> bulk requests, several in flight -> one final outcome per item ->
spool ack, in spool order.

This is the second delivery point of docs/architecture.md. Each record (one bulk body written by the
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
A rejected document has its final outcome once its dead-letter entry is written. A write that
fails (disk full) leaves it without one and its record open; the step raises once it has taken
every answer, so the loop's thread says it once per episode (``LoopThread``, as for the spool) and
steps again after its pause, writing the entries still due, in answer order, before anything is
acknowledged. A record that is not a bulk body is read again until its entry is written.

A rejected document is dead-lettered once, also when a crash makes its record go again. The
invariant: every entry for a record after the acknowledged position lies after the dead-letter
mark saved with that position (in the same atomic write of ``ack.json``, ``Spool.ack``). The mark
saved is the position before the first entry written for any record still unacknowledged, or the
end of the dead letter when they have none; and, while a record spooled before this start is
unacknowledged, the mark this start found (that record's earlier entries lie past it, and it may
not even be read yet). At start, ``DeadLetter.documents_after(mark)`` counts those entries by
(index, _id); a document rejected again that is counted there uses up one count instead of being
written (or counted in ``dead_lettered_total``) again, and its record then holds the mark back as
if it had written the entry. The dead letter is its own journal (no second file whose write could
fall on the other side of a crash from the entry); kill -9 loses no written entry, and after a
power cut an entry not fsynced yet is lost with the acknowledgement that would have followed it,
and is written again. The dead-letter index is sent the document either way: its id is
deterministic, so a copy it already has answers 409. Entries of acknowledged records past the
mark are counted too, so a document the read side spools twice around a crash is not written
twice either while those counts last (the life of the process; a window's rejects at most).
A record that is not a bulk body (spooled without its item count, by an older agent) is
dead-lettered when it is read, with its seq, under the same invariant: its entry holds the mark
back until the record is acknowledged, and at start ``DeadLetter.records_after(mark)`` names the
records (seq, length) whose entry is already written.

A request that fails as a whole (``OutputUnavailable``: refused, timed out, 5xx, 429 for the
request, an answer of the wrong length) is sent again with the same body after the shared backoff,
honouring ``Retry-After``, while new records go on; a lone 429 for a request (the one before was
answered: the cluster is busy, not down) waits only as an item's first 429 does. After two such
failures in a row (the output is down or overwhelmed), only one request is in flight, and only
retries that are due are sent: a probe, not a flood. An answer restores full concurrency at once.
A request too large for the server is the output's business (``ElasticsearchOutput`` splits it; a
single document over the limit comes back rejected).

Retry timing: an item's first retry waits ``ITEM_RETRY_INITIAL`` (0.05-0.1 s, as the
Elasticsearch Java client's bulk backoff starts at 50 ms), doubling per attempt up to the
output's cap, rounded up to ``RETRY_TICK`` so the refused items of several records share a
request (at most ten retry requests a second). Longer first waits cost nothing in steady state
but added their length to every drain (bench/delivery_faults.py: 0.4 s of a 3.5 s run).

Memory is bounded: at most ``WINDOW_RECORDS`` records are read ahead of the acknowledged
position, and new records wait while more than ``RETRY_BACKLOG_BATCHES`` batches of items wait for
a retry; a record's payload is held only while a request carries it. The window is a few numbers
per record, and it must cover the traffic that passes while a retry holds the head: 90 records a
second at 180k docs/s and 2000 docs per record, for up to a second (a whole request waiting out
the outage backoff, an item refused four times). At 64 records the pipe emptied for 0.45 s each
time that happened (bench/delivery_faults.py); 256 covers about 2.8 s. The cost is replay after
a crash: the records after the acknowledged position are sent again (answered 409), at most the
window, and in steady state only the few in flight.

``step()`` never sleeps: it takes the answers that arrived, acknowledges, starts requests and
returns how long the thread may wait (on ``wake``, set by the read loop and by every answer).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from inferwatch.agent import bulkbody
from inferwatch.agent.deadletter import (
    WHOLE_DEAD_LETTER,
    DeadLetter,
    DeadLetterItem,
    DeadLetterMark,
    DocumentKey,
    RecordKey,
)
from inferwatch.agent.deadletter_index import dead_letter_document, dead_letter_id
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import ItemResult, Outcome
from inferwatch.agent.oserrors import is_disk_full
from inferwatch.agent.outputs import Output, OutputUnavailable
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.spool import Spool

log = logging.getLogger(__name__)

Item = tuple[str, str, bytes]  # (index, id, document)

IDLE_POLL = 1.0  # seconds between spool reads when nothing woke the loop
WINDOW_RECORDS = 256  # records read and not yet acknowledged
ITEM_RETRY_INITIAL = 0.1  # seconds (jittered down to half) before an item's first retry
RETRY_TICK = 0.1  # retries fall due on multiples of this: the refused items of a few records share a request
RETRY_BACKLOG_BATCHES = 4
PROBE_AFTER_FAILURES = 2
_DONE = (
    Outcome.CREATED,
    Outcome.DUPLICATE,
)  # new records wait while more items than this many batches await a retry


@dataclass(slots=True, eq=False)
class _Record:
    """A spool record in the window: how many of its items still lack a final outcome."""

    seq: int
    open: int
    # (ship-side dead-letter write number, the dead letter's position before it) of its first entry
    dead_from: tuple[int, DeadLetterMark] | None = None


@dataclass(slots=True, eq=False)
class _Retry:
    """An item answered 429/5xx, waiting to be sent again."""

    record: _Record
    item: Item
    attempts: int  # retryable answers so far
    due: float


@dataclass(slots=True, eq=False)
class _Request:
    """One bulk request: a whole record as spooled, or retried items re-encoded."""

    body: bytes
    count: int
    record: _Record | None = None  # the whole record (its items decoded only when needed)
    retries: list[_Retry] = field(default_factory=list)
    due: float = 0.0  # when a request that failed as a whole may go again
    refused: dict[int, Item] | None = None  # of a whole record: its items not answered done

    def decode_refused(self, results: list[ItemResult]) -> None:
        """On the sender thread: decode a whole record's items that were not answered done, so
        the loop thread does not decompress the body (zlib runs there without the GIL)."""
        if self.record is None or len(results) != self.count:
            return
        undone = [i for i, r in enumerate(results) if r.outcome not in _DONE]
        if undone:
            with contextlib.suppress(ValueError):  # the loop decodes again and reports it
                self.refused = bulkbody.decode_some(self.body, undone)

    def items_at(self, indices: list[int]) -> dict[int, Item]:
        """The items at ``indices`` (of a whole record, only those are decoded)."""
        if self.record is None:
            return {i: self.retries[i].item for i in indices}
        if self.refused is not None and all(i in self.refused for i in indices):
            return self.refused
        return bulkbody.decode_some(self.body, indices)


class _Senders:
    """``size`` daemon threads, each performing one ``Output.send`` at a time; every answer (or
    the exception) is queued for the loop and sets ``wake``."""

    def __init__(self, output: Output, size: int, wake: threading.Event) -> None:
        self._output = output
        self._wake = wake
        self._todo: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Request, list[ItemResult] | Exception]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"ship-send-{i}", daemon=True) for i in range(size)
        ]
        self._started = False

    def submit(self, request: _Request) -> None:
        if not self._started:
            self._started = True
            for t in self._threads:
                t.start()
        self._todo.put(request)

    def answers(self) -> list[tuple[_Request, list[ItemResult] | Exception]]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Let the threads end after their current request (they are daemons: a request hung on
        a dead server does not hold the process)."""
        if self._started:
            for _ in self._threads:
                self._todo.put(None)

    def _run(self) -> None:
        while (request := self._todo.get()) is not None:
            try:
                results = self._output.send(request.body, request.count)
                request.decode_refused(results)
                outcome: list[ItemResult] | Exception = results
            except Exception as e:  # handed to the loop, which counts and retries it
                outcome = e
            self._done.put((request, outcome))
            self._wake.set()


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
        max_in_flight: int = 2,
        batch_items: int = 2000,
        item_backoff: Backoff | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._spool = spool
        self._output = output
        self._dead = dead_letter
        self._metrics = metrics
        self._backoff = backoff  # requests that failed as a whole: consecutive failures
        # Items answered 429/5xx: by each item's attempts. Shorter at first than a whole failure
        # (the output is answering, and new records keep flowing meanwhile), as long at the cap.
        self._item_backoff = item_backoff or Backoff(ITEM_RETRY_INITIAL, backoff.cap)
        self._level = compression_level
        self._dl_index = dead_letter_index
        self._on_ack = on_ack
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._batch_items = max(1, batch_items)
        self.wake = threading.Event()  # set when the read loop spools a record and on every answer
        self._senders = _Senders(output, max_in_flight, self.wake)
        self._acked = threading.Condition()
        self._cursor = spool.acked_seq  # acknowledged
        self._read_seq = self._cursor  # read from the spool
        self._window: deque[_Record] = deque()
        self._in_flight = 0
        self._delayed: list[_Request] = []  # failed as a whole, waiting for their ``due``
        self._retries: list[_Retry] = []  # in answer order
        self._rejected: list[DeadLetterItem] = []  # for the dead-letter index
        self._unwritten: deque[tuple[_Record, DeadLetterItem]] = deque()  # rejected, entry not written yet
        self._dead_unflushed = False
        self._dead_writes = 0  # entries written by this loop: orders the records' dead_from
        # No mark (ack.json of an older agent, or none yet): both files whole.
        self._start_mark = spool.acked_dead_letter or WHOLE_DEAD_LETTER
        self._replay_until = spool.last_seq  # records that may have entries from before this start
        self._written_before, self._records_before = self._dead_letters_before_crash()
        self._failures = 0  # requests that failed as a whole since the last answer
        self.down_since: float | None = None  # monotonic time of the first failure of an outage
        self.last_error = ""

    def _dead_letters_before_crash(self) -> tuple[Counter[DocumentKey], set[RecordKey]]:
        """The rejected documents and undecodable records dead-lettered past the saved mark (see
        the module docstring); nothing to read when no record waits (a clean stop, or a first
        start)."""
        if self._spool.last_seq <= self._spool.acked_seq:
            return Counter(), set()
        written = self._dead.documents_after(self._start_mark)
        if written:
            log.info("%d rejected documents were dead-lettered before a restart", sum(written.values()))
        return written, self._dead.records_after(self._start_mark)

    @property
    def _probing(self) -> bool:
        """Two requests failed as a whole in a row: the output is down or overwhelmed, so only
        one request (a due retry) is in flight until one is answered. A single failure among
        answers (a 429 for one request of a busy cluster) does not stop new records."""
        return self._failures >= PROBE_AFTER_FAILURES

    # -- the loop body ---------------------------------------------------------------------------

    def step(self) -> float | None:
        """Take the answers that arrived, acknowledge what is done, start requests. Returns how
        long to wait for the next step (the thread may be woken earlier by ``wake``), or None
        when nothing is in flight, nothing waits for a retry and the spool holds nothing new."""
        now = self._clock()
        for request, outcome in self._senders.answers():
            self._in_flight -= 1
            if isinstance(outcome, Exception):
                self._failed(request, outcome, now)
            else:
                self._answered(request, outcome, now)
        self._write_dead_letters()  # may raise (disk full): their records stay open, written next step
        self._acknowledge()
        self._dispatch(now)
        self._publish_gauges()
        return self._wait(now)

    def _dispatch(self, now: float) -> None:
        while self._in_flight < self._max_in_flight:
            if self._probing and self._in_flight:
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
        if any(r.due <= now for r in self._retries):
            return self._retry_request(now)
        if self._probing:
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
            record = _Record(rec.seq, 0)
            # may raise (its entry cannot be written): the record is read again at the next step
            record.open = self._count(record, rec.payload) if rec.items is None else rec.items
            self._read_seq = rec.seq
            self._window.append(record)
            if record.open:
                return _Request(rec.payload, record.open, record=record)
        return None

    def _count(self, record: _Record, payload: bytes) -> int:
        """Items of a record spooled without its count (written before counts were kept)."""
        try:
            return _count_items(payload)
        except (ValueError, OSError, EOFError, zlib.error) as e:
            # The spool's checksum verified, so this is a bug or a foreign file: keep the bytes
            # for a person and go on rather than stall every record behind it.
            self._undecodable(record, payload, f"spool record {record.seq}: {e}")
            log.error("spool record %d is not a bulk body (%s); moved to the dead letter", record.seq, e)
            return 0

    def _undecodable(self, record: _Record, payload: bytes, detail: str) -> None:
        """Dead-letter a record that is not a bulk body, once: its entry is written when it is
        read, so it holds the mark back as a rejected document's does until it is acknowledged."""
        key = (record.seq, len(payload))
        if key in self._records_before:  # written before a crash: once is enough
            self._records_before.discard(key)
            record.dead_from = (-1, self._start_mark)
            return
        before = self._dead.position()
        self._dead.write(DeadLetterItem("undecodable_record", detail, spool_seq=record.seq, raw=payload))
        record.dead_from = (self._dead_writes, before)
        self._dead_writes += 1
        self._dead_unflushed = True
        self._metrics.inc("dead_lettered_total", 1, labels(reason="undecodable_record"))

    # -- answers ---------------------------------------------------------------------------------

    def _answered(self, request: _Request, results: list[ItemResult], now: float) -> None:
        if len(results) != request.count:
            why = f"answer has {len(results)} items for a request of {request.count}"
            self._failed(request, OutputUnavailable(why), now)
            return
        self._reached()
        self._backoff.reset()
        self._failures = 0
        self._metrics.inc("bulk_requests_total", 1, labels(result="ok"))
        created = duplicate = 0
        undone = [i for i, r in enumerate(results) if r.outcome not in _DONE]
        items = request.items_at(undone) if undone else {}
        delays: dict[int, float] = {}
        for i, r in enumerate(results):
            if r.outcome is Outcome.CREATED:
                created += 1
            elif r.outcome is Outcome.DUPLICATE:
                duplicate += 1
            else:
                retry = request.retries[i] if request.record is None else None
                record = request.record if retry is None else retry.record
                assert record is not None
                if r.outcome is Outcome.REJECTED:
                    self._reject(items[i], r, record)
                    continue
                attempts = 1 if retry is None else retry.attempts + 1
                if attempts not in delays:  # one wait per attempt count, on the tick: they go together
                    due = now + self._item_backoff.delay(attempts - 1)
                    delays[attempts] = math.ceil(due / RETRY_TICK) * RETRY_TICK
                self._retries.append(_Retry(record, items[i], attempts, delays[attempts]))
                self._metrics.inc("documents_retried_total", 1, labels(status=str(r.status)))
                continue
            if request.record is None:
                request.retries[i].record.open -= 1
        if request.record is not None:
            request.record.open -= created + duplicate
        self._metrics.inc("documents_shipped_total", created)
        self._metrics.inc("documents_duplicate_total", duplicate)

    def _failed(self, request: _Request, e: Exception, now: float) -> None:
        """The request failed as a whole: the same body goes again after the backoff. A lone 429
        (the request before it was answered) says the cluster is busy, not down: it waits as an
        item's first 429 does and is counted, but it is no outage (no log line, ``output_up``
        stays 1). Anything else, and failures in a row, follow the outage schedule."""
        if isinstance(e, OutputUnavailable):
            status = str(e.status) if e.status is not None else "none"
            retry_after = e.retry_after
        else:  # a bug in an output: counted and retried like an outage, never dropped
            if self.down_since is None:  # the traceback once per outage
                log.error("sending a bulk request failed", exc_info=e)
            self._metrics.inc("loop_errors_total", 1, labels(loop="ship"))
            status, retry_after = "error", None
        self._metrics.inc("bulk_requests_total", 1, labels(result="unavailable", status=status))
        busy = status == "429" and not self._failures
        self._failures += 1
        request.due = now + (
            self._item_backoff.delay(0, retry_after) if busy else self._backoff.next(retry_after)
        )
        self._delayed.append(request)
        if busy:
            return
        self._metrics.set("output_up", 0)
        disk_full = is_disk_full(e.__cause__)  # the local store's disk
        self._metrics.set("disk_full", int(disk_full), labels(loop="ship"))
        if self.down_since is None:
            self.down_since = now
            log.log(
                logging.ERROR if disk_full else logging.WARNING,
                "output unavailable, retrying with backoff: %s",
                e,
            )
        self.last_error = str(e)

    def _reject(self, item: Item, r: ItemResult, record: _Record) -> None:
        index, doc_id, document = item
        reason = r.error_type or f"http_{r.status}"
        detail = f"{r.status} {r.error_type}: {r.error_reason}".strip()
        rejected = DeadLetterItem(reason, detail, document=document, doc_id=doc_id, index=index)
        key = (index, doc_id)
        if self._written_before[key]:  # written before a crash: once is enough
            self._written_before[key] -= 1
            if not self._written_before[key]:
                del self._written_before[key]
            # Its entry lies past the start mark: the mark saved must not pass it while the record
            # is unacknowledged, or the next start would not see it.
            record.dead_from = (-1, self._start_mark)
            self._dead_lettered(record, rejected)
        else:
            self._unwritten.append((record, rejected))

    def _write_dead_letters(self) -> None:
        """Write the entries of the rejected documents answered, in answer order. A write that
        fails (disk full) raises: that document and those after it keep their records open (none
        is acknowledged) and are written at a later step."""
        while self._unwritten:
            record, rejected = self._unwritten[0]
            before = self._dead.position()
            self._dead.write(rejected)
            self._unwritten.popleft()
            if record.dead_from is None:
                record.dead_from = (self._dead_writes, before)
            self._dead_writes += 1
            self._dead_unflushed = True
            self._metrics.inc("dead_lettered_total", 1, labels(reason=rejected.reason))
            self._dead_lettered(record, rejected)

    def _dead_lettered(self, record: _Record, rejected: DeadLetterItem) -> None:
        """A rejected document's entry is written (now or before a crash): its final outcome."""
        record.open -= 1
        if self._dl_index and rejected.index != self._dl_index:  # a refused dead letter is not sent again
            self._rejected.append(rejected)

    def _acknowledge(self) -> None:
        """Acknowledge the records at the head of the window whose items all have a final outcome:
        make the dead letter durable first."""
        done = 0
        while done < len(self._window) and self._window[done].open == 0:
            done += 1
        if not done:
            return
        last = self._window[done - 1].seq
        if self._dead_unflushed:
            self._dead.flush()
            self._dead_unflushed = False
        self._forward_dead_letters()
        # may raise (disk full): the records stay in the window, tried again
        self._spool.ack(last, self._dead_letter_mark(done))
        for _ in range(done):
            self._window.popleft()
        with self._acked:
            self._cursor = last
            self._acked.notify_all()
        self._on_ack()

    def _dead_letter_mark(self, done: int) -> DeadLetterMark:
        """Where the entries of the records after the first ``done`` of the window begin: the
        start mark while a record spooled before this start is unacknowledged (its entries from
        before may lie anywhere past it, and it may not be read yet), else before the earliest
        entry written for them, else the end of the dead letter (later ones go after it)."""
        if self._window[done - 1].seq < self._replay_until:
            return self._start_mark
        rest = itertools.islice(self._window, done, None)
        firsts = [r.dead_from for r in rest if r.dead_from is not None]
        if not firsts:
            return self._dead.position()
        return min(firsts, key=lambda f: f[0])[1]

    def _reached(self) -> None:
        if self.down_since is not None:
            log.info("output reachable again after %.1fs", self._clock() - self.down_since)
            self._metrics.set("disk_full", 0, labels(loop="ship"))
        self.down_since = None
        self.last_error = ""
        self._metrics.set("output_up", 1)

    def _wait(self, now: float) -> float | None:
        pending = [r.due for r in self._delayed] + [r.due for r in self._retries]
        if not pending and not self._in_flight and not self._window:
            return None  # idle: the read loop's wake (or the idle poll) starts the next step
        if self._window and self._window[0].open == 0:
            return 0.0  # done records to acknowledge
        if self._in_flight >= self._max_in_flight or (self._probing and self._in_flight):
            return IDLE_POLL  # no request may start before an answer arrives (and wakes the loop)
        if pending:
            return max(0.0, min(pending) - now)
        return IDLE_POLL

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
        for dead in rejected:
            doc = dead_letter_document(dead, now)
            items.append((self._dl_index, dead_letter_id(f"{dead.index}:{dead.doc_id}"), doc))
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
        self._metrics.set("bulk_in_flight", self._in_flight)
        self._metrics.set("documents_awaiting_retry", len(self._retries))

    # -- for the owner ---------------------------------------------------------------------------

    @property
    def acked_seq(self) -> int:
        return self._cursor

    @property
    def in_flight(self) -> int:
        """Bulk requests sent and not answered yet."""
        return self._in_flight

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

    def close(self) -> None:
        """Stop the sender threads (after the loop's thread has stopped); what is still in flight
        is not acknowledged and is sent again at the next start."""
        self._senders.close()


def _count_items(payload: bytes) -> int:
    """Items in a spooled bulk body without parsing it: two lines per item."""
    lines = zlib.decompress(payload, 31).count(b"\n")
    if lines % 2:
        raise ValueError("a bulk body is pairs of lines, each ending with a newline")
    return lines // 2
