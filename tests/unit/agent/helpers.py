"""Helpers shared by several agent test files: a polling wait, an ``os.write`` that tears a line, and
an output that is down."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable

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


class DownOutput:
    """An output that refuses every request, as a stopped Elasticsearch does."""

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        raise OutputUnavailable("connection refused")

    def check(self) -> str:
        raise OutputUnavailable("connection refused")

    def close(self) -> None:
        pass
