"""Sealed batches -> spool payloads: the batch's bulk items joined and gzipped
(``agent.bulkbody``), in the read thread or, with ``threads`` > 0, by a small pool (igzip and zlib
release the GIL, so compression runs on another core while the read thread parses the next lines).

At most ``threads + 1`` batches are being compressed at any time (``submit`` waits for the
oldest beyond that): memory stays bounded. A ``Payload`` keeps its batch's items until the
payload exists, so a compression that failed (MemoryError) raises where the payload is taken
and is done again the next time it is asked for: the batch is never lost.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from inferwatch.agent import bulkbody


def encode(items: list[bytes], level: int) -> bytes:
    """The spool payload of a batch's bulk items (see ``agent.bulkbody``)."""
    return bulkbody.compress(b"".join(items), level)


class Payload:
    """The spool payload of one sealed batch: bytes once made; None for a batch without items."""

    __slots__ = ("_items", "_level", "_made")

    def __init__(self, items: list[bytes] | None, made: Future[bytes] | None, level: int) -> None:
        self._items = items  # until compressed; None once compressed (or none)
        self._made: bytes | Future[bytes] | None = made  # a Future while a pool thread compresses
        self._level = level

    def result(self, wait: bool) -> bytes | Future[bytes] | None:
        """The payload (None for a batch without items), or the Future itself while it runs and
        ``wait`` is false. A failed compression raises here; the items are kept and the next
        call compresses them again (in the calling thread)."""
        made = self._made
        if isinstance(made, Future):
            if not (wait or made.done()):
                return made
            try:
                data = made.result()
            except Exception:
                self._made = None  # the items are still here: compressed again next time
                raise
        elif made is None and self._items is not None:
            data = encode(self._items, self._level)  # raises: the same
        else:
            return made
        self._made = data
        self._items = None  # the payload holds them now; memory is the compressed size
        return data


class Encoder:
    """Makes the payloads of sealed batches; owns its pool threads (``close`` stops them)."""

    def __init__(self, threads: int, level: int, wake: threading.Event) -> None:
        self._threads = threads
        self._level = level
        self._wake = wake
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="encode") if threads > 0 else None
        self._running: deque[Future[bytes]] = deque()

    def submit(self, items: list[bytes]) -> Payload:
        """Start compressing ``items`` (in the pool), or leave it to ``Payload.result``."""
        if not items or self._pool is None:
            return Payload(items or None, None, self._level)
        self._bound_in_flight()
        future = self._pool.submit(encode, items, self._level)
        future.add_done_callback(self._encoded)
        self._running.append(future)
        return Payload(items, future, self._level)

    def close(self) -> None:
        """Stop the pool threads (once every payload was taken: nothing is left for them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _bound_in_flight(self) -> None:
        """Wait for the oldest compression while ``threads + 1`` are running (bounded memory)."""
        while self._running and self._running[0].done():
            self._running.popleft()
        running = [f for f in self._running if not f.done()]
        if len(running) > self._threads:
            running[0].exception()  # waits; a failure is handled where the payload is taken

    def _encoded(self, _future: Future[bytes]) -> None:
        self._wake.set()  # an idle read thread spools it now, not at the next timeout
