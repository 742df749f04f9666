"""Shared helpers for the file-layer tests: a settable clock and a loop that drains a tailer."""

from __future__ import annotations

from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.model import Checkpoint, FileId, LineBatch


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def no_checkpoints(fid: FileId) -> Checkpoint | None:
    return None


def make_tailer(
    clock: FakeClock | None = None,
    lookup=no_checkpoints,
    max_line_bytes: int = 1024 * 1024,
    read_buffer_bytes: int = 256 * 1024,
    **kwargs: object,
) -> Tailer:
    return Tailer(max_line_bytes, read_buffer_bytes, lookup, clock=clock or FakeClock(), **kwargs)  # type: ignore[arg-type]


def drain(tailer: Tailer, max_bytes: int = 1 << 20, limit: int = 10_000) -> list[LineBatch]:
    """Step until a step returns nothing."""
    out: list[LineBatch] = []
    for _ in range(limit):
        batches = tailer.step(max_bytes)
        if not batches:
            return out
        out.extend(batches)
    raise AssertionError("the tailer never ran dry")


def lines(batches: list[LineBatch]) -> list[bytes]:
    return [line for b in batches for line in b.lines]
