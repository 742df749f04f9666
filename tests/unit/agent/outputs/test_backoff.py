from __future__ import annotations

import random

import pytest

from inferwatch.agent.outputs.backoff import Backoff


class Fixed(random.Random):
    """A random source that always returns the same number."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_doubles_from_initial_between_half_and_full() -> None:
    low = Backoff(initial=1.0, cap=60.0, rng=Fixed(0.0))
    high = Backoff(initial=1.0, cap=60.0, rng=Fixed(0.999999))
    assert [low.next() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert [round(high.next(), 3) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_capped_at_sixty_seconds_forever() -> None:
    b = Backoff(rng=Fixed(0.999999))
    waits = [b.next() for _ in range(200)]
    assert max(waits) <= 60.0
    assert waits[-1] == pytest.approx(60.0)


def test_jitter_spreads_waits_and_is_reproducible() -> None:
    a = [Backoff(rng=random.Random(seed)).next() for seed in range(50)]
    assert len(set(a)) == 50
    assert all(0.5 <= w <= 1.0 for w in a)
    one, two = Backoff(rng=random.Random(7)), Backoff(rng=random.Random(7))
    assert [one.next() for _ in range(8)] == [two.next() for _ in range(8)]


def test_retry_after_is_a_floor_capped_by_the_cap() -> None:
    b = Backoff(rng=Fixed(0.0))
    assert b.next(retry_after=10.0) == 10.0
    assert b.next(retry_after=0.1) == 1.0  # the backoff is longer than the server asked
    assert b.next(retry_after=3600.0) == 60.0


def test_reset_starts_over() -> None:
    b = Backoff(rng=Fixed(0.0))
    for _ in range(6):
        b.next()
    b.reset()
    assert b.next() == 0.5


def test_delay_is_the_wait_for_a_count_kept_by_the_caller() -> None:
    b = Backoff(rng=Fixed(0.0))
    assert [b.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert b.delay(200) == 30.0  # half the cap, with this jitter
    assert b.delay(0, retry_after=5.0) == 5.0
    assert b.next() == 0.5  # delay() leaves the consecutive failures alone


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 60.0), (-1.0, 60.0), (10.0, 5.0)])
def test_refuses_nonsense(initial: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial=initial, cap=cap)
