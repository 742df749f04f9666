"""What an evaluation writes (its alert and incident documents, then the model's detector state),
held until the caller commits or discards it.

``analytics once`` evaluates with these in place of the real sink and state store, prints the
findings, and only then writes: a data dir that cannot be written is reported after the findings
it computed, not instead of them; with ``--dry-run`` the writes are discarded. The order of the
evaluation's writes is kept (the sink first, then the state: a failure between them leaves the
window to be evaluated again, and the sink is idempotent), and the first write that fails stops
the ones after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from inferwatch.analytics.alerts.sink import AlertSink
from inferwatch.analytics.alerts.window import AlertUpdate
from inferwatch.analytics.state_store import ModelState, StateStore

Write = Callable[[], None]


class HeldSink:
    """An ``AlertSink`` whose writes wait in ``pending``."""

    def __init__(self, real: AlertSink, pending: list[Write]) -> None:
        self._real = real
        self._pending = pending

    def write(self, update: AlertUpdate, timestamp: str) -> None:
        if update:
            self._pending.append(lambda: self._real.write(update, timestamp))

    def mark(self, marks: Mapping[str, Mapping[str, Any]]) -> int:
        """Not an evaluation's write (``inferwatch alerts ack|mute`` marks): passed through."""
        return self._real.mark(marks)


class HeldStates(StateStore):
    """The real store's states, read as they are; ``save`` waits in ``pending``. Creates no
    directory (the real store did)."""

    def __init__(self, real: StateStore, pending: list[Write]) -> None:  # no super(): no mkdir
        self.directory = real.directory
        self.fsync = real.fsync
        self._real = real
        self._pending = pending

    def save(self, model: str, state: ModelState) -> None:
        self._pending.append(lambda: self._real.save(model, state))


class HeldWrites:
    """``sink`` and ``states`` to give an evaluator; ``commit()`` writes what they were given."""

    def __init__(self, sink: AlertSink, states: StateStore) -> None:
        self._pending: list[Write] = []
        self.sink = HeldSink(sink, self._pending)
        self.states = HeldStates(states, self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def commit(self) -> None:
        """Write in the evaluation's order; raises what the first failing write raised (an
        ``OSError`` for a data dir that cannot be written), and drops the writes after it."""
        pending = list(self._pending)
        self._pending.clear()
        for write in pending:
            write()

    def discard(self) -> int:
        """Drop the held writes; returns how many there were."""
        n = len(self._pending)
        self._pending.clear()
        return n


__all__ = ["HeldSink", "HeldStates", "HeldWrites"]
