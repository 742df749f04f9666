"""Helpers shared by several agent test files: a polling wait, an ``os.write`` that tears a line, a
dead letter on a full disk, and an output that is down."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from inferwatch.agent.deadletter import DeadLetter, DeadLetterItem
from inferwatch.agent.model import ItemResult
from inferwatch.agent.outputs import OutputUnavailable


def wait_for(cond: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        pause.wait(0.05)


class TornWrite:
    """``os.write`` that, once armed, writes half of the next call's bytes and then fails the call
    after with ENOSPC (a disk that fills up in the middle of a line); otherwise the real one."""

    def __init__(self) -> None:
        self.state = "off"  # "armed" -> "half_written" -> "off"
        self.real = os.write

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.state == "armed":
            self.state = "half_written"
            chunk = bytes(data)
            return self.real(fd, chunk[: len(chunk) // 2])
        if self.state == "half_written":
            self.state = "off"
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


class FullDisk(DeadLetter):
    """A dead letter on a disk that is full for the next ``full`` writes, or until ``room`` is set
    (each fails as ``os.write`` does there: ENOSPC, nothing left behind)."""

    def __init__(self, path: Path, full: int) -> None:
        super().__init__(path, fsync=False)
        self.full = full
        self.failed = 0
        self.room = threading.Event()

    def write(self, item: DeadLetterItem) -> None:
        if self.failed < self.full and not self.room.is_set():
            self.failed += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(item)


class DownOutput:
    """An output that refuses every request, as a stopped Elasticsearch does."""

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        raise OutputUnavailable("connection refused")

    def check(self) -> str:
        raise OutputUnavailable("connection refused")

    def close(self) -> None:
        pass
