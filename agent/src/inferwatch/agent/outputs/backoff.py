"""How long to wait before the next attempt: jittered exponential backoff, capped, honouring
``Retry-After``. Pure given its random source (tests pass a seeded ``random.Random``).

The n-th consecutive failure waits a random time in ``[base/2, base]`` with
``base = min(cap, initial * 2**n)`` ("equal jitter": many agents that failed together spread out,
and no wait collapses to zero). A server's ``Retry-After`` is a floor, itself capped at ``cap``, so
one bad header cannot park the agent for an hour. ``reset()`` after a success. ``delay(n)`` is the
same wait for a count the caller keeps (the ship loop's per-item attempts).
The caller does the waiting, on its stop event, so shutdown interrupts it.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError(f"need 0 < initial <= cap, got initial={initial} cap={cap}")
        self.initial = initial
        self.cap = cap
        self._rng = rng or random.Random()
        self._failures = 0

    def next(self, retry_after: float | None = None) -> float:
        """Seconds to wait after one more failure."""
        wait = self.delay(self._failures, retry_after)
        self._failures += 1
        return wait

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures + 1`` consecutive failures."""
        # 2**n overflows nothing here: the exponent stops growing once base reaches the cap.
        base = min(self.cap, self.initial * 2.0 ** min(failures, 62))
        wait = base / 2 + self._rng.random() * base / 2
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.cap))
        return min(wait, self.cap)

    def reset(self) -> None:
        self._failures = 0
