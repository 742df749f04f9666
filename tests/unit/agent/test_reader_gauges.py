"""The read loop's gauges tell the truth while it waits: file_lag_bytes follows the files while
reading is paused (spool full) or a step keeps failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferwatch.agent.metrics import labels
from inferwatch.agent.spool import SpoolFull

from .test_reader_checkpoint import Agent, write

LINE = b'{"n": 1}\n'


def lag(agent: Agent, path: Path) -> float:
    return agent.metrics.value("file_lag_bytes", labels(path=str(path)))


def test_file_lag_grows_while_reading_waits_for_room_in_the_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, LINE * 10)
    agent = Agent(tmp_path)
    agent.loop.step()
    assert lag(agent, path) == 0

    def full(*args: object) -> int:
        raise SpoolFull("full")

    monkeypatch.setattr(agent.spool, "append", full)
    write(tmp_path, LINE * 10)
    agent.clock.now += 1
    agent.loop.step()  # the batch of 10 is sealed; the spool has no room: reading pauses
    assert agent.metrics.value("spool_full") == 1
    for more in (100, 1000):
        write(tmp_path, LINE * more)
        agent.clock.now += 1
        assert agent.loop.step() is False  # paused: nothing read
        assert lag(agent, path) == path.stat().st_size - 10 * len(LINE)


def test_file_lag_grows_while_a_step_keeps_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, LINE * 10)
    agent = Agent(tmp_path)
    agent.loop.step()

    def broken(max_bytes: int) -> list[object]:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(agent.loop._tailer, "step", broken)
    for more in (10, 100):
        write(tmp_path, LINE * more)
        agent.clock.now += 1
        with pytest.raises(OSError):
            agent.loop.step()
        assert lag(agent, path) == path.stat().st_size - 10 * len(LINE)
