"""The parse pool: real worker processes, their answers equal to the read thread's own, and every
way a worker can fail ends with the same items parsed in the thread and the failure counted."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import textwrap
from array import array
from collections.abc import Sequence
from pathlib import Path

import pytest

from inferwatch.agent import parseworker
from inferwatch.agent.metrics import Metrics
from inferwatch.agent.model import FileId, LineBatch
from inferwatch.agent.normalize import Normalizer, RejectedLine
from inferwatch.agent.parsepool import ParsePool, _Worker
from inferwatch.core.config import InputConfig, ModelConfig, RedactConfig, parse_config
from tests.procs import exited
from tests.unit.agent.helpers import wait_for

MODELS = {
    "churn": ModelConfig(
        features={"age": "numeric", "country": "categorical", "review": "text"},
        outputs={"score": "numeric"},
    )
}


def normalizer() -> Normalizer:
    return Normalizer(
        InputConfig(paths=("/logs/*.jsonl",), model="churn", document_id="prediction_id"),
        MODELS,
        "default",
        RedactConfig(drop=("inputs.email",), hash=("inputs.user_id",)),
        b"the hash key",
        "host-1",
        "0.1.0",
        agent_id="agent-1",
        agent_name="a1",
    )


def lines(n: int) -> list[bytes]:
    """Good lines and every kind of reject, mixed."""
    out: list[bytes] = []
    for i in range(n):
        if i % 97 == 5:
            out.append(b'{"timestamp": "not a time", "inputs": {}}')
        elif i % 89 == 7:
            out.append(b"{not json")
        elif i % 83 == 11:
            out.append(b"\xff\xfe")
        else:
            doc = {
                "timestamp": f"2026-11-22T10:00:{i % 60:02d}.{i % 1000:03d}Z",
                "prediction_id": 2**70 + i if i % 50 == 0 else f"p-{i}",
                "inputs": {
                    "age": str(20 + i % 50),
                    "country": i % 7,
                    "review": f"Late delivery number {i}, again",
                    "email": f"u{i}@example.com",
                    "user_id": f"user-{i}",
                },
                "outputs": {"score": i / n},
            }
            out.append(json.dumps(doc).encode())  # the standard library writes 128-bit ids
    return out


def batch(n: int, start: int = 0) -> LineBatch:
    rows = lines(n)
    offsets, at = [], start
    for row in rows:
        offsets.append(at)
        at += len(row) + 1
    return LineBatch(FileId("fp"), "/logs/a.jsonl", 0, offsets, rows, at)


def comparable(
    result: tuple[list[bytes], Sequence[RejectedLine]],
) -> tuple[list[bytes], list[tuple[int, bytes, str]]]:
    items, rejects = result
    return items, [(r.offset, r.line, r.error.reason) for r in rejects]


@pytest.fixture()
def metrics() -> Metrics:
    return Metrics()


def ready_pool(pool: ParsePool, workers: int = 1) -> ParsePool:
    wait_for(lambda: pool.ready() == workers)
    return pool


def test_workers_answer_exactly_what_the_read_thread_would(metrics: Metrics) -> None:
    local = normalizer()
    pool = ready_pool(ParsePool([normalizer()], 2, metrics, min_lines=10), 2)
    try:
        pooled = pool.bulk_items(0)
        assert pooled is not None
        for n, start in ((1000, 0), (257, 123_456), (2, 7)):
            b = batch(n, start)
            assert comparable(pooled(b, "2026-11-22T10:00:00.000Z")) == comparable(
                local.bulk_items(b, "2026-11-22T10:00:00.000Z")
            )
        parsed_elsewhere = metrics.value("lines_parsed_in_workers_total")
        assert 0 < parsed_elsewhere <= 1000 + 257  # the run of 2 stays in the thread
        assert metrics.value("parse_workers") == 2
        assert metrics.total("parse_worker_failures_total") == 0
    finally:
        pool.close()


def test_repair_counts_of_the_workers_reach_the_normalizer(metrics: Metrics) -> None:
    mine = normalizer()
    pool = ready_pool(ParsePool([mine], 1, metrics, min_lines=10))
    try:
        pooled = pool.bulk_items(0)
        assert pooled is not None
        b = batch(1000)
        pooled(b, "2026-11-22T10:00:00.000Z")
        reference = normalizer()
        reference.bulk_items(b, "2026-11-22T10:00:00.000Z")
        assert mine.counts == reference.counts
        assert metrics.value("lines_parsed_in_workers_total") > 0
    finally:
        pool.close()


def test_inputs_without_a_normalizer_and_short_runs_stay_in_the_thread(metrics: Metrics) -> None:
    def bare(line: bytes, source: object, ingested: str) -> object:
        raise AssertionError("not called")

    pool = ParsePool([bare, normalizer()], 1, metrics, min_lines=500)
    try:
        assert pool.bulk_items(0) is None
        pooled = pool.bulk_items(1)
        assert pooled is not None
        b = LineBatch(FileId("fp"), "/logs/a.jsonl", 1, batch(100).offsets, batch(100).lines, 0)
        pooled(b, "2026-11-22T10:00:00.000Z")
        assert pool.pids() == []  # nothing big enough came: no worker was started
    finally:
        pool.close()


def test_a_killed_worker_is_counted_its_share_parsed_in_the_thread_and_it_comes_back(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    local = normalizer()
    pool = ready_pool(ParsePool([normalizer()], 1, metrics, min_lines=10, restart_delay=0.0))
    try:
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: exited(pid))
        pooled = pool.bulk_items(0)
        assert pooled is not None
        b = batch(600)
        with caplog.at_level(logging.WARNING):
            assert comparable(pooled(b, "t")) == comparable(local.bulk_items(b, "t"))
        assert metrics.value("parse_worker_failures_total", (("reason", "exited"),)) == 1
        assert "killed by signal 9" in caplog.text and "new worker starts in 0 s" in caplog.text
        ready_pool(pool)
        assert pool.pids() != [pid]
    finally:
        pool.close()


def test_a_worker_that_stops_answering_is_killed_after_the_timeout(metrics: Metrics) -> None:
    local = normalizer()
    pool = ready_pool(ParsePool([normalizer()], 1, metrics, min_lines=10, timeout=1.0, restart_delay=60.0))
    try:
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGSTOP)
        pooled = pool.bulk_items(0)
        assert pooled is not None
        b = batch(3000)  # more than the pipe holds: the request itself cannot be written
        assert comparable(pooled(b, "t")) == comparable(local.bulk_items(b, "t"))
        assert metrics.value("parse_worker_failures_total", (("reason", "timeout"),)) == 1
        assert exited(pid)  # killed and reaped
        assert pool.pids() == []  # and not started again before restart_delay
        assert comparable(pooled(b, "t")) == comparable(local.bulk_items(b, "t"))
    finally:
        pool.close()


@pytest.mark.parametrize(
    "answer",
    ['(5).to_bytes(8, "big") + b"hello"', '(2**62).to_bytes(8, "big")'],
    ids=["not READY", "a frame of 2^62 bytes, refused before anything is allocated"],
)
def test_a_worker_that_does_not_speak_the_protocol_is_refused(
    metrics: Metrics, tmp_path: Path, answer: str
) -> None:
    liar = tmp_path / "liar.py"
    liar.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.stdin.buffer.read(8)
            sys.stdout.buffer.write({answer})
            sys.stdout.buffer.flush()
            sys.stdin.buffer.read()
            """
        )
    )
    pool = ParsePool([normalizer()], 1, metrics, min_lines=10, command=[sys.executable, str(liar)])
    try:
        wait_for(lambda: pool.ready() == 0 and metrics.total("parse_worker_failures_total") == 1)
        assert metrics.value("parse_worker_failures_total", (("reason", "protocol"),)) == 1
        pooled = pool.bulk_items(0)
        assert pooled is not None
        assert comparable(pooled(batch(300), "t")) == comparable(normalizer().bulk_items(batch(300), "t"))
    finally:
        pool.close()


def test_a_request_larger_than_the_pipe_is_written_in_pieces_and_answered_whole(metrics: Metrics) -> None:
    """A share of 4 MB, four times what the pipe holds: the request goes out over many writes,
    each resuming inside a piece or at the next, and the 4 MB answer comes back over many reads."""
    rows = [
        json.dumps({"prediction_id": f"p-{i}", "inputs": {"review": f"word{i} " * 180}}).encode()
        for i in range(3000)
    ]
    offsets = [i * 2000 for i in range(len(rows))]
    big = LineBatch(FileId("fp"), "/logs/a.jsonl", 0, offsets, rows, len(rows) * 2000)
    pool = ready_pool(ParsePool([normalizer()], 1, metrics, min_lines=10))
    try:
        pooled = pool.bulk_items(0)
        assert pooled is not None
        assert comparable(pooled(big, "t")) == comparable(normalizer().bulk_items(big, "t"))
        assert metrics.value("lines_parsed_in_workers_total") > 1000
        assert metrics.total("parse_worker_failures_total") == 0
    finally:
        pool.close()


def test_an_answer_read_in_pieces_is_held_until_whole(tmp_path: Path) -> None:
    """The header split across reads, then the payload: each read keeps what came, and the frame
    is answered once, when its last byte is in."""
    stepper = tmp_path / "stepper.py"
    stepper.write_text(
        textwrap.dedent(
            """
            import sys
            inp, out = sys.stdin.buffer, sys.stdout.buffer
            inp.read(int.from_bytes(inp.read(8), "big"))  # the inputs frame
            frame = (5).to_bytes(8, "big") + b"ready"
            for piece in (frame[:3], frame[3:10], frame[10:]):
                out.write(piece)
                out.flush()
                inp.read(1)  # the test's go for the next piece
            inp.read()
            """
        )
    )
    worker = _Worker(b"inputs", [sys.executable, str(stepper)])
    try:
        assert not worker.poll_ready()  # writes the inputs frame: the first piece follows
        for step in range(3):
            assert select.select([worker.proc.stdout], [], [], 30)[0], "no piece came"
            assert worker.poll_ready() is (step == 2)
            os.write(worker.proc.stdin.fileno(), b"g")  # type: ignore[union-attr]
        assert worker.ready
    finally:
        worker.close(5.0)


def test_a_worker_that_cannot_start_leaves_parsing_to_the_thread(metrics: Metrics, tmp_path: Path) -> None:
    pool = ParsePool([normalizer()], 1, metrics, min_lines=10, command=[str(tmp_path / "no-such-python")])
    try:
        pooled = pool.bulk_items(0)
        assert pooled is not None
        assert comparable(pooled(batch(300), "t")) == comparable(normalizer().bulk_items(batch(300), "t"))
        assert metrics.value("parse_worker_failures_total", (("reason", "start"),)) == 1
        assert pool.pids() == []
    finally:
        pool.close()


def test_close_ends_the_workers(metrics: Metrics) -> None:
    pool = ready_pool(ParsePool([normalizer()], 2, metrics, min_lines=10), 2)
    pids = pool.pids()
    pool.close()
    assert all(exited(pid) for pid in pids)
    assert metrics.value("parse_workers") == 0
    assert pool.ready() == 0  # closed: nothing starts again


def test_a_worker_exits_when_its_agent_is_killed_with_9(tmp_path: Path) -> None:
    """The agent's side in a process of its own: kill -9 it, and its worker reads the end of its
    stdin and exits (no orphan keeps parsing, or holds the agent's files)."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, threading
                from inferwatch.agent.metrics import Metrics
                from inferwatch.agent.parsepool import ParsePool
                from tests.unit.agent.helpers import wait_for
                from tests.unit.agent.test_parsepool import normalizer
                pool = ParsePool([normalizer()], 1, Metrics(), min_lines=10)
                wait_for(lambda: pool.ready() == 1)
                print(pool.pids()[0], flush=True)
                threading.Event().wait()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    wait_for(lambda: exited(worker))


def test_workers_unused_for_the_idle_timeout_stop_and_the_next_big_run_starts_one(metrics: Metrics) -> None:
    now = [1000.0]
    pool = ParsePool([normalizer()], 1, metrics, min_lines=10, idle_timeout=300.0, clock=lambda: now[0])
    try:
        ready_pool(pool)
        pooled = pool.bulk_items(0)
        assert pooled is not None
        pooled(batch(300), "t")
        (pid,) = pool.pids()
        now[0] += 299.0
        pool.retire_idle()
        assert pool.pids() == [pid]  # used 299 s ago: kept
        now[0] += 1.0
        pool.retire_idle()
        assert pool.pids() == [] and exited(pid)
        assert metrics.value("parse_workers") == 0
        assert metrics.total("parse_worker_failures_total") == 0  # retiring is no failure
        ready_pool(pool)  # a big run comes: a new worker
        assert pool.pids() != [pid]
    finally:
        pool.close()


def test_a_worker_just_started_is_not_retired_before_its_first_share(metrics: Metrics) -> None:
    now = [10_000.0]
    pool = ParsePool([normalizer()], 1, metrics, min_lines=10, idle_timeout=300.0, clock=lambda: now[0])
    try:
        assert pool.ready() == 0  # starting
        pool.retire_idle()
        assert len(pool.pids()) == 1
    finally:
        pool.close()


def test_a_parse_worker_reads_no_yaml(tmp_path: Path) -> None:
    """The worker unpickles normalizers built from a config read from YAML (its values are YAML
    scalars) and parses with them, without importing PyYAML (0.5 MB and 9 ms a process)."""
    config = parse_config(
        textwrap.dedent(
            """
            agent:
              inputs: [{paths: ["/logs/*.jsonl"], model: churn, document_id: prediction_id}]
            models:
              churn: {features: {age: numeric, review: text}, outputs: {score: numeric}}
            """
        )
    )
    built = Normalizer(config.agent.inputs[0], config.models, "default", host="h", agent_version="0")
    (tmp_path / "normalizers").write_bytes(parseworker.dumps((built,)))
    b = batch(50)
    request = b"".join(
        parseworker.request_pieces(0, "fp", b.path, "t", array("q", b.offsets).tobytes(), b"\n".join(b.lines))
    )[parseworker.HEADER :]
    (tmp_path / "request").write_bytes(request)
    code = textwrap.dedent(
        f"""
        import pickle, sys
        from inferwatch.agent import parseworker
        normalizers = pickle.loads(open({str(tmp_path / "normalizers")!r}, "rb").read())
        items, rejects, _, _ = pickle.loads(parseworker.handle(normalizers, open({str(tmp_path / "request")!r}, "rb").read()))
        print(len(items) + len(rejects), "yaml" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["50", "False"]


def test_a_parse_worker_does_not_load_openssl_or_compile_the_cjk_classes() -> None:
    """A worker is a whole extra process: what it imports, it holds for its life. hashlib loads
    OpenSSL (3.6 MB resident); the CJK regexes take 6 ms to compile. Neither is needed until a
    field is hashed or a text is not ASCII, so neither is paid at import."""
    code = textwrap.dedent(
        """
        import sys
        import inferwatch.agent.parseworker
        from inferwatch.core import tokenize
        print(sorted(m for m in ("_hashlib", "hmac", "ssl") if m in sys.modules), tokenize._cjk.cache_info().currsize)
        tokenize.tokenize("配送が遅い")
        print(tokenize._cjk.cache_info().currsize)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[] 0", "1"]
