"""The read loop with encoder threads (``ReadSettings.encoders``): real spool, registry and dead
letter in a tmp dir; the compression is replaced by gated fakes so the tests decide when each
batch finishes compressing (threading events and polls with a deadline, never sleeps).

Also ``daemon.encoder_threads`` and the validation of ``agent.workers``."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferwatch.agent import bulkbody, daemon, encoding
from inferwatch.agent.registry import Registry
from inferwatch.core.config import ConfigError, parse_config
from tests.unit.agent.test_pipeline import Rig, lines

REAL_ENCODE = encoding.encode


def wait_until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        pause.wait(0.002)


def parked_in(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` waits on a lock or condition (innermost frame in threading.py) with
    ``function`` somewhere on its stack."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or not frame.f_code.co_filename.endswith("threading.py"):
        return False
    names = set()
    f: Any = frame
    while f is not None:
        names.add(f.f_code.co_name)
        f = f.f_back
    return function in names


class CountingPool(ThreadPoolExecutor):
    """The encoder pool, counting batches submitted and not yet compressed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.lock:
            self.in_flight += 1
            self.submitted += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.in_flight -= 1

        return super().submit(run)


class GatedEncoder:
    """Compresses a batch only once the test released a permit for it."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.calls = 0
        self.open = False

    def __call__(self, items: list[bytes], level: int) -> bytes:
        self.calls += 1
        if not self.open:
            assert self.permits.acquire(timeout=30), "the test never released this compression"
        return REAL_ENCODE(items, level)

    def release_all(self) -> None:
        self.open = True
        self.permits.release(1000)


def ids_by_file(rig: Rig) -> dict[str, list[int]]:
    """Spooled ids (``<file>*1000 + line``) per file, in spool order."""
    out: dict[str, list[int]] = {}
    for rec in rig.spool.read(0, 100_000):
        for _, _, doc in bulkbody.decode(rec.payload):
            n = orjson.loads(doc)["id"]
            out.setdefault(str(n // 1000), []).append(n)
    return out


def on_disk_offsets(tmp: Path) -> dict[str, int]:
    return {cp.path: cp.offset for cp in Registry(tmp / "registry.json", fsync=False).items().values()}


def spool_then_offsets_checker(rig: Rig, files: dict[Path, bytes]) -> list[str]:
    """Wrap ``rig.registry.set``: each offset that moves must cover exactly the lines already in
    the spool. Returns the list the violations are appended to."""
    violations: list[str] = []
    real_set = rig.registry.set
    last: dict[str, int] = {}

    def checked_set(file_id: Any, cp: Any) -> None:
        data = files[Path(cp.path)]
        prefix = int(Path(cp.path).stem[1:])
        expected = [prefix * 1000 + i for i in range(data[: cp.offset].count(b"\n"))]
        got = ids_by_file(rig).get(str(prefix), [])
        if got != expected:
            violations.append(
                f"{cp.path}@{cp.offset}: spool holds {len(got)} lines, offset covers {len(expected)}"
            )
        if cp.offset < last.get(cp.path, 0):
            violations.append(f"{cp.path}: offset moved back to {cp.offset}")
        last[cp.path] = cp.offset
        real_set(file_id, cp)

    rig.registry.set = checked_set  # type: ignore[method-assign]
    return violations


def write_files(rig: Rig, count: int, per_file: int) -> dict[Path, bytes]:
    files = {}
    for f in range(1, count + 1):
        data = lines(range(f * 1000, f * 1000 + per_file))
        files[rig.write(f"f{f}.jsonl", data)] = data
    return files


# -- order, offsets, flush -----------------------------------------------------------------------


def test_records_and_offsets_keep_sealed_order_across_many_batches_and_files(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_docs=7, encoders=1)
    files = write_files(rig, 3, 60)
    violations = spool_then_offsets_checker(rig, files)
    for _ in range(10):
        rig.loop.step()
        rig.clock.now += 1
    assert rig.loop.flush() is True
    rig.loop.close()
    assert violations == []
    assert ids_by_file(rig) == {str(f): list(range(f * 1000, f * 1000 + 60)) for f in (1, 2, 3)}
    assert all(len(bulkbody.decode(r.payload)) <= 7 for r in rig.spool.read(0, 1000))
    assert len(rig.spool.read(0, 1000)) >= 3 * 60 // 7
    assert on_disk_offsets(tmp_path) == {str(p): len(d) for p, d in files.items()}


def test_a_later_batch_compressed_first_still_waits_for_the_earlier_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two encoder threads; the first batch's compression finishes only when the test says so,
    # long after the second's.
    release_first = threading.Event()
    second_done = threading.Event()
    order: list[int] = []
    lock = threading.Lock()

    def encode(items: list[bytes], level: int) -> bytes:
        with lock:
            n = len(order)
            order.append(n)
        if n == 0:
            assert release_first.wait(30)
        payload = REAL_ENCODE(items, level)
        if n == 1:
            second_done.set()
        return payload

    monkeypatch.setattr(encoding, "encode", encode)
    rig = Rig(tmp_path, max_docs=5, encoders=2)
    files = write_files(rig, 1, 10)  # two full batches
    violations = spool_then_offsets_checker(rig, files)
    try:
        rig.loop.step()
        assert second_done.wait(30)
        rig.loop.step()  # the second batch is ready, the first is not: nothing may be spooled
        assert rig.spool.last_seq == 0
        assert rig.offset(next(iter(files))) is None
    finally:
        release_first.set()
    assert rig.loop.flush() is True
    rig.loop.close()
    assert violations == []
    assert [
        [orjson.loads(d)["id"] for _, _, d in bulkbody.decode(r.payload)] for r in rig.spool.read(0, 9)
    ] == [
        [1000, 1001, 1002, 1003, 1004],
        [1005, 1006, 1007, 1008, 1009],
    ]


def test_at_most_encoders_plus_one_batches_compress_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoding, "ThreadPoolExecutor", CountingPool)
    gate = GatedEncoder()
    monkeypatch.setattr(encoding, "encode", gate)
    rig = Rig(tmp_path, max_docs=4, encoders=1)
    write_files(rig, 1, 40)  # ten full batches in one step
    pool = rig.loop._encoder._pool
    assert isinstance(pool, CountingPool)
    step = threading.Thread(target=rig.loop.step, name="read")
    step.start()
    parked = 0
    try:
        while True:
            # Release one compression each time the read thread waits for room; stop when the
            # step is over, or when the bound is broken (fail below rather than hang).
            wait_until(
                lambda: not step.is_alive() or parked_in(step, "_bound_in_flight") or pool.in_flight > 2
            )
            if not step.is_alive() or pool.in_flight > 2:
                break
            parked += 1
            assert pool.in_flight == 2
            before = pool.submitted
            gate.permits.release()
            wait_until(lambda before=before: not step.is_alive() or pool.submitted > before)  # type: ignore[misc]
    finally:
        gate.release_all()
        step.join(30)
    assert rig.loop.flush() is True
    rig.loop.close()
    assert pool.max_in_flight == 2
    assert parked == 8  # batches 3..10 each waited for the oldest compression
    assert ids_by_file(rig) == {"1": list(range(1000, 1040))}


def test_flush_waits_for_every_compression_then_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = GatedEncoder()
    monkeypatch.setattr(encoding, "encode", gate)
    rig = Rig(tmp_path, max_docs=10, encoders=1)
    files = {
        rig.write("f1.jsonl", lines(range(1000, 1012))): lines(range(1000, 1012)),
        rig.write("f2.jsonl", lines(range(2000, 2003))): lines(range(2000, 2003)),
    }
    rig.loop.step()  # one full batch sealed (compressing, gated); 2 lines of f1 and f2's 3 open
    assert rig.spool.last_seq == 0
    flush_result: list[bool] = []
    flusher = threading.Thread(target=lambda: flush_result.append(rig.loop.flush()), name="flush")
    flusher.start()
    try:
        # Two batches compressing (within the bound): flush itself must wait for them.
        wait_until(lambda: not flusher.is_alive() or parked_in(flusher, "commit"))
        assert flusher.is_alive(), "flush returned before the compressions finished"
        assert rig.spool.last_seq == 0
        assert on_disk_offsets(tmp_path) == {}
    finally:
        gate.release_all()
        flusher.join(30)
    rig.loop.close()
    assert flush_result == [True]
    assert ids_by_file(rig) == {"1": list(range(1000, 1012)), "2": list(range(2000, 2003))}
    assert on_disk_offsets(tmp_path) == {str(p): len(d) for p, d in files.items()}


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoders", [0, 1])
def test_a_failed_compression_keeps_the_batch_at_the_head_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoders: int
) -> None:
    calls: list[int] = []

    def fail_the_second(items: list[bytes], level: int) -> bytes:
        calls.append(len(items))
        if len(calls) == 2:
            raise MemoryError("no room to compress")
        return REAL_ENCODE(items, level)

    monkeypatch.setattr(encoding, "encode", fail_the_second)
    rig = Rig(tmp_path, max_docs=10, encoders=encoders)
    files = write_files(rig, 1, 25)
    (path,) = files
    violations = spool_then_offsets_checker(rig, files)
    failures = 0
    try:
        rig.loop.step()  # seals 0-9 and 10-19; the second compression fails
    except MemoryError:
        failures += 1
    else:
        # The second batch may still have been compressing at the end of the step: flush waits.
        with pytest.raises(MemoryError):
            rig.loop.flush()
        failures += 1
    # The failed batch is still first in line: only the first batch is spooled, its offset moved
    # to the start of line 10 and no further.
    assert ids_by_file(rig) == {"1": list(range(1000, 1010))}
    assert rig.offset(path) == len(lines(range(1000, 1010)))
    assert rig.loop.flush() is True  # compressed again, spooled, and the open batch after it
    rig.loop.close()
    assert failures == 1
    assert violations == []
    assert ids_by_file(rig) == {"1": list(range(1000, 1025))}
    assert on_disk_offsets(tmp_path) == {str(path): len(files[path])}
    assert sorted(calls) == [5, 10, 10, 10]  # the failed batch compressed twice


def test_a_full_spool_pauses_and_resumes_without_loss_with_an_encoder(tmp_path: Path) -> None:
    rig = Rig(tmp_path, spool_bytes=128 * 1024, max_docs=50, encoders=1)
    rng = random.Random(0)
    pads = ["".join(rng.choices("0123456789abcdef", k=800)) for _ in range(2000)]
    path = rig.write(
        "a.jsonl", b"".join(b'{"id": %d, "pad": "%s"}\n' % (i, p.encode()) for i, p in enumerate(pads))
    )

    def step() -> None:
        rig.loop.step()
        rig.clock.now += 1

    wait_until(lambda: step() or rig.metrics.value("spool_full") == 1)
    assert rig.metrics.value("spool_full") == 1
    committed = rig.offset(path)
    assert committed is not None and committed < path.stat().st_size
    spooled = rig.spool.last_seq
    step()
    assert rig.spool.last_seq == spooled and rig.offset(path) == committed  # nothing moves while full
    seen: list[int] = []

    def drain_and_step() -> bool:
        for rec in rig.spool.read(rig.spool.acked_seq, 100):
            seen.extend(orjson.loads(doc)["id"] for _, _, doc in bulkbody.decode(rec.payload))
            rig.spool.ack(rec.seq)
        step()
        return rig.offset(path) == path.stat().st_size and rig.spool.pending == 0

    wait_until(drain_and_step)
    rig.loop.close()
    assert seen == list(range(2000))
    assert rig.metrics.value("spool_full") == 0


def test_close_stops_the_encoder_threads(tmp_path: Path) -> None:
    rig = Rig(tmp_path, encoders=2)
    rig.write("f1.jsonl", lines(range(1000, 1003)))
    rig.loop.step()
    assert rig.loop.flush() is True
    pool = rig.loop._encoder._pool
    assert isinstance(pool, ThreadPoolExecutor)
    threads = list(pool._threads)
    assert threads and all(t.name.startswith("encode") for t in threads)
    rig.loop.close()
    assert not any(t.is_alive() for t in threads)
    assert ids_by_file(rig) == {"1": [1000, 1001, 1002]}


# -- agent.workers -------------------------------------------------------------------------------

CONFIG = """
agent:
  data_dir: /tmp/inferwatch-test
  inputs: [{{paths: ["/tmp/logs/*.jsonl"], model: m}}]
{workers}
"""


def config_with(workers: str | None) -> str:
    return CONFIG.format(workers="" if workers is None else f"  workers: {workers}")


@pytest.mark.parametrize(
    ("workers", "cpus", "threads"),
    [
        (None, 1, 0),
        (None, 2, 1),
        (None, 16, 1),
        (None, None, 0),  # os.cpu_count() may not know
        ("null", 4, 1),
        ("0", 16, 0),
        ("1", 1, 1),
        ("3", 1, 3),
        ("8", 2, 8),
    ],
)
def test_encoder_threads_resolves_agent_workers(
    monkeypatch: pytest.MonkeyPatch, workers: str | None, cpus: int | None, threads: int
) -> None:
    monkeypatch.setattr(daemon.os, "cpu_count", lambda: cpus)
    assert daemon.encoder_threads(parse_config(config_with(workers), {})) == threads


@pytest.mark.parametrize("workers", ["-1", "9", "100"])
def test_workers_out_of_range_is_refused_with_its_path(workers: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(workers), {})
    (problem,) = info.value.problems
    assert problem[0] == "agent.workers"
    assert "0" in problem[1] and "8" in problem[1]


@pytest.mark.parametrize("workers", ["true", "1.5", '"2"'])
def test_workers_must_be_an_integer(workers: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(workers), {})
    assert [path for path, _ in info.value.problems] == ["agent.workers"]
