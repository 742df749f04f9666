"""The read loop's checkpoint: the registry is written as soon as a batch is in the spool, with
the dead letter's position, so a crash reads again at most one batch and a rejected line is
dead-lettered once across crashes."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson

from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.files.discovery import Discovery
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.metrics import Metrics
from inferwatch.agent.model import Event, Rejected, Source
from inferwatch.agent.reader import ReadLoop, ReadSettings
from inferwatch.agent.registry import Registry
from inferwatch.agent.spool import Spool
from inferwatch.core.config import InputConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def normalize(line: bytes, source: Source, ingested: str) -> Event:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise Rejected("invalid_json", str(e)) from None
    return Event(f"{source.file_id}:{source.offset}", "logs-test-default", orjson.dumps(doc))


class Agent:
    """A read loop over ``<tmp>/logs`` with its state in ``<tmp>``; a new one after a crash
    finds what the previous one left on disk (nothing is flushed or closed on a crash)."""

    def __init__(self, tmp: Path, **settings: object) -> None:
        self.clock = Clock()
        self.registry = Registry(tmp / "registry.json", fsync=False)
        self.spool = Spool(tmp / "spool", 1 << 30, 64 * 1024, fsync=False)
        self.dead = DeadLetter(tmp / "dead-letter.ndjson", fsync=False)
        self.metrics = Metrics()
        inputs = [InputConfig(paths=(str(tmp / "logs" / "*.jsonl"),))]
        options: dict[str, object] = {"max_docs": 10, "max_wait": 0.5, "max_line_bytes": 1024}
        options.update(settings)
        self.loop = ReadLoop(
            inputs,
            Discovery(inputs, scan_interval=0.0, clock=self.clock),
            Tailer(1024, 4096, self.registry.get, clock=self.clock),
            [normalize],
            self.registry,
            self.spool,
            self.dead,
            self.metrics,
            ReadSettings(**options),  # type: ignore[arg-type]
            wake=threading.Event(),
            clock=self.clock,
        )

    def crash(self) -> None:
        """kill -9: only the locks go (the spool's flock), nothing is flushed."""
        self.spool.close()


def write(tmp: Path, data: bytes) -> Path:
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    path = logs / "a.jsonl"
    with path.open("ab") as f:
        f.write(data)
    return path


def on_disk_offset(tmp: Path) -> int:
    [cp] = Registry(tmp / "registry.json", fsync=False).items().values()
    return cp.offset


def dead_offsets(tmp: Path) -> list[int]:
    rows = (tmp / "dead-letter.ndjson").read_bytes().splitlines()
    return sorted(orjson.loads(r)["log"]["offset"] for r in rows)


def test_the_registry_file_holds_each_batch_as_soon_as_it_is_spooled(tmp_path: Path) -> None:
    line = b'{"n": 1}\n'
    path = write(tmp_path, line * 15)
    agent = Agent(tmp_path)
    agent.loop.step()  # a full batch of 10 sealed and spooled, 5 lines waiting
    assert (agent.spool.last_seq, on_disk_offset(tmp_path)) == (1, 10 * len(line))
    write(tmp_path, line * 10)
    agent.loop.step()  # the next full batch, at the same instant
    assert (agent.spool.last_seq, on_disk_offset(tmp_path)) == (2, 20 * len(line))
    agent.crash()
    again = Agent(tmp_path)
    again.loop.step()
    again.clock.now += 1
    again.loop.step()
    assert again.spool.last_seq == 3  # only the 5 uncommitted lines are read again
    assert on_disk_offset(tmp_path) == path.stat().st_size


def test_a_rejected_line_is_dead_lettered_once_across_crashes(tmp_path: Path) -> None:
    good = b'{"n": 1}\n'
    write(tmp_path, good * 10 + b"{bad\n" + good * 3 + b"[oops\n" + b"x" * 2000 + b"\n" + good)
    agent = Agent(tmp_path)
    agent.loop.step()  # the first 10 sealed and committed; 3 rejects written, their batch open
    assert len(dead_offsets(tmp_path)) == 3
    agent.crash()
    for _ in range(3):  # crash again and again before the batch is sealed
        agent = Agent(tmp_path)
        agent.loop.step()
        assert len(dead_offsets(tmp_path)) == 3  # nothing was dead-lettered twice
        agent.crash()
    agent = Agent(tmp_path)
    agent.loop.step()
    agent.clock.now += 1
    agent.loop.step()  # sealed and committed
    agent.crash()
    write(tmp_path, b"{bad again\n")
    agent = Agent(tmp_path)
    agent.loop.step()
    start = 10 * len(good)
    assert dead_offsets(tmp_path) == [
        start,
        start + 5 + 3 * len(good),
        start + 5 + 3 * len(good) + 6,
        start + 5 + 3 * len(good) + 6 + 2001 + len(good),
    ]  # the 3 lines once each (the long one too), and the new one
