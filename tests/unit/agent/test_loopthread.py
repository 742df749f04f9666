"""LoopThread: the one runner of the agent's loops (stop, waits, failure episodes, health)."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable

import pytest

from inferwatch.agent import loopthread
from inferwatch.agent.loopthread import LoopThread
from inferwatch.agent.metrics import Metrics, labels


class Script:
    """A step that raises the scripted errors in turn, then returns None (idle) and says so."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0
        self.settled = threading.Event()

    def __call__(self) -> float | None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.settled.set()
        return None


def run(step: Callable[[], float | None], metrics: Metrics) -> LoopThread:
    loop = LoopThread("read", step, threading.Event(), metrics, idle=60.0)
    loop.start()
    return loop


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopthread, "FAILURE_RETRY", 0.0)


def test_a_full_disk_is_said_once_per_episode_with_the_fix_and_exposed_until_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="inferwatch.agent.loopthread")
    metrics = Metrics()
    full = [OSError(errno.ENOSPC, "No space left on device", "/data/spool/00001.seg") for _ in range(50)]
    gate = threading.Event()
    seen: list[tuple[object, float, float]] = []

    def step() -> float | None:
        if len(full) == 1:  # the last failure: look at the episode from inside the loop
            seen.append(
                (
                    loop.failure,
                    metrics.value("loop_failing", labels(loop="read")),
                    metrics.value("disk_full", labels(loop="read")),
                )
            )
        if full:
            raise full.pop(0)
        gate.set()
        return None

    loop = LoopThread("read", step, threading.Event(), metrics, idle=60.0)
    loop.start()
    assert gate.wait(10)
    loop.stop()
    loop.join(10)
    assert not loop.is_alive()
    ((failure, failing, disk_full),) = seen
    assert failure is not None and failure.disk_full  # type: ignore[attr-defined]
    assert "free space" in failure.message and "agent.data_dir" in failure.message  # type: ignore[attr-defined]
    assert (failing, disk_full) == (1, 1)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1  # 50 failures, one message
    assert "disk full writing /data/spool/00001.seg" in errors[0].getMessage()
    assert errors[0].exc_info is None  # the fix, not a traceback
    assert metrics.value("loop_errors_total", labels(loop="read")) == 50
    # Recovered: said once, gauges back to 0, no failure for /health.
    assert loop.failure is None
    assert sum("works again" in r.getMessage() for r in caplog.records) == 1
    assert metrics.value("loop_failing", labels(loop="read")) == 0
    assert metrics.value("disk_full", labels(loop="read")) == 0


def test_another_error_during_an_episode_is_said_too_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="inferwatch.agent.loopthread")
    step = Script([ValueError("first"), ValueError("first"), KeyError("second")])
    loop = run(step, Metrics())
    assert step.settled.wait(10)
    loop.stop()
    loop.join(10)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [("first" in r.getMessage(), "second" in r.getMessage()) for r in errors] == [
        (True, False),
        (False, True),
    ]
    assert all(r.exc_info is not None for r in errors)


def test_stop_interrupts_an_idle_wait_and_finish_runs_once_on_the_thread() -> None:
    finished: list[str] = []
    step = Script([])
    loop = LoopThread(
        "ship",
        step,
        threading.Event(),
        Metrics(),
        idle=3600.0,
        finish=lambda: finished.append(threading.current_thread().name),
    )
    loop.start()
    assert step.settled.wait(10)  # now waiting an hour on its wake event
    loop.stop()
    loop.join(10)
    assert not loop.is_alive()
    assert finished == ["ship"]
    assert step.calls == 1
