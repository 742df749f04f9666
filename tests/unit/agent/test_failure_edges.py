"""Failure edges found in a bug hunt of the agent (each test failed before its fix)."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import deadletter as deadletter_module
from inferwatch.agent import writer as writer_module
from inferwatch.agent.daemon import Agent, take_lock
from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.metrics import HealthStatus, Metrics, MetricsServer
from inferwatch.agent.model import Outcome
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.outputs.classify import MalformedResponse, classify_response, retry_after
from inferwatch.agent.writer import PredictionLogger
from inferwatch.core.config import parse_config


def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        pause.wait(0.02)


class _TornWrite:
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


# -- dead letter ---------------------------------------------------------------------------------


def test_dead_letter_torn_entry_does_not_swallow_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=False)
    dl.write("invalid_json", "first", raw=b"{not json")
    torn = _TornWrite()
    monkeypatch.setattr(deadletter_module.os, "write", torn)
    torn.state = "armed"
    with pytest.raises(OSError):
        dl.write("invalid_json", "second", raw=b"x" * 200)
    dl.write("bad_timestamp", "third", raw=b'{"timestamp": "yesterday"}')
    dl.close()
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [e["detail"] for e in entries] == ["first", "third"]
    assert dl.counts == {"invalid_json": 1, "bad_timestamp": 1}


def test_dead_letter_makes_its_file_name_durable_at_creation_and_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(deadletter_module, "fsync_dir", synced.append, raising=False)
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=True, max_bytes=300)
    assert synced == [tmp_path]  # a new file: its directory entry is fsynced
    dl.write("invalid_json", "one", raw=b"a" * 200)
    dl.write("invalid_json", "two", raw=b"b" * 200)  # rotates: rename + a new file
    dl.flush()
    assert synced == [tmp_path, tmp_path]
    assert path.with_name(path.name + ".1").exists()
    dl.close()
    synced.clear()
    DeadLetter(path, fsync=True).close()  # an existing file: nothing to make durable
    assert synced == []


# -- writer --------------------------------------------------------------------------------------


def test_writer_torn_line_does_not_swallow_the_next_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.jsonl"
    logger = PredictionLogger(path, model="m")
    logger.log({"a": 1}, {"s": 1}, prediction_id="one")
    torn = _TornWrite()
    monkeypatch.setattr(writer_module.os, "write", torn)
    torn.state = "armed"
    with pytest.raises(OSError):
        logger.log({"a": 2}, {"s": 2}, prediction_id="two")
    logger.log({"a": 3}, {"s": 3}, prediction_id="three")
    logger.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    parsed = []
    for line in lines[:-1]:
        try:
            parsed.append(orjson.loads(line)["prediction_id"])
        except orjson.JSONDecodeError:
            parsed.append(None)  # the torn half: one invalid line, dead-lettered by the agent
    assert parsed == ["one", None, "three"]


_WRITER_SCRIPT = """
import sys
from inferwatch.agent.writer import PredictionLogger
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
logger = PredictionLogger(path, model="m")
pad = "x" * 3000  # lines longer than a pipe buffer page: interleaving would show
for i in range(n):
    logger.log({"pad": pad}, {"i": i}, prediction_id=f"{tag}-{i}")
logger.close()
"""


def test_writer_processes_appending_to_one_file_never_cut_a_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "shared.jsonl"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER_SCRIPT, str(path), f"p{k}", "400"],
            cwd=Path(__file__).resolve().parents[3],
        )
        for k in range(4)
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    ids = [orjson.loads(line)["prediction_id"] for line in path.read_bytes().splitlines()]
    assert sorted(ids) == sorted(f"p{k}-{i}" for k in range(4) for i in range(400))


# -- metrics server ------------------------------------------------------------------------------


def test_metrics_server_closes_a_client_that_sends_nothing() -> None:
    server = MetricsServer("127.0.0.1:0", Metrics(), lambda: HealthStatus(True, "ok"), request_timeout=0.3)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=10) as idle:
            assert idle.recv(1024) == b""  # closed by the server, not held open forever
    finally:
        server.stop()


def test_metrics_server_listens_on_ipv6() -> None:
    server = MetricsServer("[::1]:0", Metrics(), lambda: HealthStatus(True, "ok"))
    server.start()
    try:
        port = server.address[1]
        with urllib.request.urlopen(f"http://[::1]:{port}/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert b"inferwatch_agent_lines_read_total 0" in resp.read()
    finally:
        server.stop()


def test_metrics_concurrent_scrapes_and_stop_ends_the_thread() -> None:
    metrics = Metrics()
    server = MetricsServer("127.0.0.1:0", metrics, lambda: HealthStatus(False, "output down"))
    server.start()
    host, port = server.address
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def scrape() -> None:
        for _ in range(20):
            metrics.inc("lines_read_total")
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp, lock:
                results.append((resp.status, resp.read()))

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 160 and all(status == 200 for status, _ in results)
    assert all(
        body.endswith(b"\n") and b"# TYPE inferwatch_agent_output_up gauge" in body for _, body in results
    )
    try:
        urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10)
        raise AssertionError("an unhealthy agent answers 503")
    except urllib.error.HTTPError as e:
        assert e.code == 503 and orjson.loads(e.read()) == {"status": "unhealthy", "reason": "output down"}
    names = {t.name for t in threading.enumerate()}
    assert "metrics-http" in names
    server.stop()
    assert "metrics-http" not in {t.name for t in threading.enumerate()}
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_metrics_port_in_use_is_an_oserror_at_construction() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            MetricsServer(f"127.0.0.1:{port}", Metrics(), lambda: HealthStatus(True, "ok"))


# -- outputs: answers that must not ack what got no answer ---------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_wait"),
    [
        ("5", 5.0),
        ("86400", 60.0),  # huge: capped
        ("-5", None),  # negative: ignored, plain backoff
        ("1e9", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no floor
        ("soon", None),
    ],
)
def test_retry_after_values_are_read_and_capped(value: str, expected_wait: float | None) -> None:
    seconds = retry_after({"Retry-After": value})
    if expected_wait is None:
        assert seconds is None  # unreadable: the plain backoff applies
    elif expected_wait == 0.0:
        assert seconds == 0.0
    else:
        assert Backoff(initial=0.001, cap=60.0).next(seconds) == expected_wait


def test_bulk_answers_that_must_not_be_acked() -> None:
    # errors:true with mixed statuses: one outcome each, in order
    mixed = orjson.dumps(
        {
            "errors": True,
            "items": [
                {"create": {"status": 201}},
                {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
                {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
                {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}},
                {"create": {"status": 503}},
            ],
        }
    )
    assert [r.outcome for r in classify_response(mixed)] == [
        Outcome.CREATED,
        Outcome.DUPLICATE,
        Outcome.RETRY,
        Outcome.REJECTED,
        Outcome.RETRY,
    ]
    for body in (b"<html><body>502 Bad Gateway</body></html>", b"", b'{"errors":false}'):
        with pytest.raises(MalformedResponse):
            classify_response(body)


# -- bugs fixed in the daemon, the read loop and the ship loop -------------------------------------


def test_agent_start_with_the_metrics_port_in_use_leaves_nothing_running(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = parse_config(
            f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  shutdown_timeout: 5s
  metrics: {{listen: "127.0.0.1:{port}"}}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
        )
        agent = Agent(cfg)
        before = {t.ident for t in threading.enumerate()}
        try:
            with pytest.raises(OSError):
                agent.start()
            started = [
                t for t in threading.enumerate() if t.ident not in before and t.name in ("read", "ship")
            ]
            alive = [t.name for t in started if t.is_alive()]
            assert alive == []
            os.close(take_lock(tmp_path / "data"))  # the lock was released
        finally:
            agent.stop(timeout=5)


def test_agent_stop_closes_the_spool_and_releases_the_lock_when_closing_the_dead_letter_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferwatch.agent.spool import Spool

    (tmp_path / "logs").mkdir()
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  shutdown_timeout: 5s
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
    )
    agent = Agent(cfg)
    agent.start()

    def fail() -> None:
        raise OSError(errno.EIO, "input/output error")

    monkeypatch.setattr(agent.dead_letter, "close", fail)
    monkeypatch.setattr(agent.tailer, "close", fail)
    with pytest.raises(OSError):
        agent.stop(timeout=5)
    os.close(take_lock(tmp_path / "data"))  # the data_dir lock was released
    Spool(tmp_path / "data" / "spool", 1 << 20, 1 << 16, fsync=False).close()  # and the spool's


def test_dead_letter_reopened_after_a_torn_write_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "dead-letter.ndjson"
    path.write_bytes(b'{"reason":"invalid_json","detail":"whole"}\n{"reason":"inv')  # crash mid-write
    dl = DeadLetter(path, fsync=False)
    dl.write("bad_timestamp", "after restart")
    dl.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"reason":"inv' and lines[-1] == b""
    assert orjson.loads(lines[2])["detail"] == "after restart"


# -- local output --------------------------------------------------------------------------------


def test_local_store_disk_full_is_an_unavailable_output_and_the_resend_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.outputs import OutputUnavailable
    from inferwatch.agent.outputs import local as local_module
    from inferwatch.agent.outputs.local import LocalOutput

    a, b = "logs-inferwatch.a-default", "logs-inferwatch.b-default"
    body = bulkbody.encode_items([(a, "1", b'{"n":1}'), (b, "2", b'{"n":2}')])
    out = LocalOutput(tmp_path / "store", fsync=False)
    real = local_module.atomic_write_bytes
    calls: list[Path] = []

    def second_fails(path: Path, data: bytes, fsync: bool = True) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, fsync)

    monkeypatch.setattr(local_module, "atomic_write_bytes", second_fails)
    # Disk full is the output being unavailable (backoff, output_up 0, /health), not a loop crash.
    with pytest.raises(OutputUnavailable, match="No space left"):
        out.send(body, 2)
    results = out.send(body, 2)
    assert [r.outcome for r in results] == [Outcome.DUPLICATE, Outcome.CREATED]
    assert out.stored == 2


# -- spool: a crash at each point of an ack ------------------------------------------------------


def test_spool_crash_at_every_point_of_an_ack_neither_loses_nor_reuses_seqs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pathlib
    import shutil

    from inferwatch.agent import spool as spool_module
    from inferwatch.agent.spool import Spool

    live = tmp_path / "live"
    snapshots: list[Path] = []

    def snapshot() -> None:
        target = tmp_path / f"crash{len(snapshots)}"
        shutil.copytree(live, target, ignore=shutil.ignore_patterns("lock"))
        snapshots.append(target)

    spool = Spool(live, max_bytes=1 << 20, segment_bytes=1, fsync=True)  # a segment per record
    for n in range(1, 6):
        assert spool.append(b"payload-%d" % n) == n
    spool.ack(2)

    real_save, real_unlink = spool_module.atomic_write_bytes, pathlib.Path.unlink

    def save(path: Path, data: bytes, fsync: bool = True) -> None:
        snapshot()  # crash before ack.json is replaced
        real_save(path, data, fsync)
        snapshot()  # crash right after: the acked segments are still there

    def unlink(self: Path, missing_ok: bool = False) -> None:
        real_unlink(self, missing_ok)
        if self.parent == live:
            snapshot()  # crash after each segment deletion

    monkeypatch.setattr(spool_module, "atomic_write_bytes", save)
    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    spool.ack(4)
    monkeypatch.undo()
    spool.close()
    assert len(snapshots) == 4

    for i, directory in enumerate(snapshots):
        reopened = Spool(directory, max_bytes=1 << 20, segment_bytes=1)
        acked = reopened.acked_seq
        assert acked == (2 if i == 0 else 4), directory
        assert [r.seq for r in reopened.read(0, 100)] == list(range(acked + 1, 6))
        assert [r.payload for r in reopened.read(0, 100)] == [b"payload-%d" % n for n in range(acked + 1, 6)]
        assert reopened.append(b"next") == 6  # never a reused seq
        assert not reopened.counts, reopened.counts  # nothing counted as damage or loss
        reopened.close()


# -- files ---------------------------------------------------------------------------------------


def _tailer_with_clock() -> tuple[Tailer, list[float]]:
    now = [1000.0]
    return Tailer(1024 * 1024, 256 * 1024, lambda fid: None, clock=lambda: now[0]), now


def _drain(t: Tailer) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(1000):
        batches = t.step(1 << 20)
        if not batches:
            return out
        out += [line for b in batches for line in b.lines]
    raise AssertionError("the tailer never ran dry")


def test_delete_and_recreate_with_the_same_first_line_reads_the_new_file_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b'{"schema":1}\nold-2\n')
    t, now = _tailer_with_clock()
    t.add_path(str(log), 0)
    assert _drain(t) == [b'{"schema":1}', b"old-2"]
    os.unlink(log)  # a server restart recreates its log, starting with the same header line
    log.write_bytes(b'{"schema":1}\nnew-2\nnew-3\n')
    got: list[bytes] = []
    for _ in range(4):  # the old file is let go after its grace; the new one is then read
        t.add_path(str(log), 0)
        got += _drain(t)
        now[0] += 10
    assert got == [b'{"schema":1}', b"new-2", b"new-3"]
    assert t.counts["same_first_line_new_file"] == 1


def test_a_moved_copy_still_continues_where_the_original_was_let_go(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b'{"schema":1}\nline-2\n')
    t, now = _tailer_with_clock()
    t.add_path(str(log), 0)
    assert _drain(t) == [b'{"schema":1}', b"line-2"]
    moved = tmp_path / "b.jsonl"
    moved.write_bytes(log.read_bytes() + b"line-3\n")  # a copy that went on growing
    os.unlink(log)
    got: list[bytes] = []
    for _ in range(4):
        t.add_path(str(moved), 0)
        got += _drain(t)
        now[0] += 10
    assert got == [b"line-3"]
    assert t.counts["same_first_line_new_file"] == 0


# -- the Elasticsearch output against canned answers over loopback --------------------------------


class _Canned:
    """A loopback HTTP server answering every POST with one canned (status, headers, body)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        canned = (status, headers, body)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code, extra, payload = canned
                self.send_response(code)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


_ES = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("status", "headers", "answer", "expected_status", "expected_retry_after"),
    [
        (502, {"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1></html>", 502, None),
        (503, {"Retry-After": "7"}, b"<html>maintenance</html>", 503, 7.0),
        (429, {**_ES, "Retry-After": "86400"}, b'{"error":"too many"}', 429, 86400.0),
        (200, _ES, b"<html>not json</html>", 200, None),
        (200, _ES, b'{"errors":false,"items":[{"create":{"status":201}}]}', 200, None),  # 1 of 2
        (
            200,
            _ES,
            b'{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429}},'
            b'{"create":{"status":201}}]}',
            200,
            None,
        ),  # 3 answers for 2 items
    ],
)
def test_elasticsearch_answers_that_leave_the_whole_body_for_a_retry(
    status: int,
    headers: dict[str, str],
    answer: bytes,
    expected_status: int,
    expected_retry_after: float | None,
) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.outputs import OutputUnavailable
    from inferwatch.agent.outputs.elasticsearch import ElasticsearchOutput
    from inferwatch.core.config import ElasticsearchConfig
    from inferwatch.core.configschema import Duration

    server = _Canned(status, headers, answer)
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(server.url,), request_timeout=Duration(5.0)))
    try:
        body = bulkbody.encode_items(
            [("logs-inferwatch.m-default", "a", b"{}"), ("logs-inferwatch.m-default", "b", b"{}")]
        )
        with pytest.raises(OutputUnavailable) as caught:
            out.send(body, 2)
        assert not caught.value.permanent
        assert caught.value.status == expected_status
        assert caught.value.retry_after == expected_retry_after
        if expected_retry_after is not None:  # the wait honours it, capped at 60 s
            assert Backoff(initial=0.001, cap=60.0).next(caught.value.retry_after) == min(
                expected_retry_after, 60.0
            )
    finally:
        out.close()
        server.close()


def test_a_record_larger_than_the_whole_spool_does_not_stall_reading_forever(tmp_path: Path) -> None:
    from inferwatch.agent.spool import Spool, SpoolFull

    with Spool(tmp_path / "spool", max_bytes=1000, segment_bytes=500, fsync=False) as spool:
        big = b"B" * 3000  # a batch limit set above the spool's cap
        assert spool.append(big) == 1  # an empty spool takes it
        with pytest.raises(SpoolFull):
            spool.append(b"small")
        spool.ack(1)
        assert spool.append(b"small") == 2
        assert [r.payload for r in spool.read(0, 10)] == [b"small"]


def test_a_redacted_field_of_a_rejected_line_never_reaches_the_dead_letter_index(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  batch: {{max_wait: 50ms}}
  shutdown_timeout: 5s
  dead_letter_index: inferwatch-dead-letter
  redact: {{drop: [inputs.email]}}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
    )
    secret = "alice.secret@example.com"
    line = orjson.dumps({"timestamp": "not a time", "model": "m", "inputs": {"email": secret, "age": 3}})
    (tmp_path / "logs" / "a.jsonl").write_bytes(line + b"\n")
    agent = Agent(cfg, host="test-host")
    agent.start()
    store = tmp_path / "data" / "store"
    try:
        _wait_for(lambda: bool(list(store.glob("inferwatch-dead-letter/*.ndjson"))), timeout=30)
    finally:
        agent.stop()
    shipped = b"".join(p.read_bytes() for p in store.glob("*/*.ndjson"))
    assert b"bad_timestamp" in shipped
    assert secret.encode() not in shipped


def test_dead_letters_the_index_did_not_take_are_counted_as_dropped(tmp_path: Path) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.metrics import labels
    from inferwatch.agent.model import ItemResult
    from inferwatch.agent.shipper import ShipLoop
    from inferwatch.agent.spool import Spool

    class Output:
        def __init__(self) -> None:
            self.requests = 0

        def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
            self.requests += 1
            if self.requests == 1:  # the document: refused by its mapping
                return [ItemResult(Outcome.REJECTED, 400, "mapper_parsing_exception", "bad")]
            return [ItemResult(Outcome.RETRY, 429, "es_rejected_execution_exception", "busy")]

        def check(self) -> str:
            return "fake"

        def close(self) -> None:
            pass

    metrics = Metrics()
    with Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False) as spool:
        dl = DeadLetter(tmp_path / "dl.ndjson", fsync=False)
        output = Output()
        loop = ShipLoop(spool, output, dl, metrics, Backoff(), dead_letter_index="inferwatch-dead-letter")
        spool.append(bulkbody.encode_items([("logs-inferwatch.m-default", "a", b'{"x":1}')]), 1)
        while loop.step() is not None:  # until idle; the request runs on a sender thread
            loop.wake.wait(10)
            loop.wake.clear()
        assert spool.acked_seq == 1 and output.requests == 2
        assert dl.counts == {"mapper_parsing_exception": 1}  # the local record that counts
        assert metrics.value("dropped_total", labels(reason="dead_letter_index")) == 1
        dl.close()


@pytest.mark.parametrize(
    ("answer", "dropped"),
    [
        ([Outcome.CREATED, Outcome.DUPLICATE, Outcome.RETRY, Outcome.REJECTED], 2),
        ([Outcome.CREATED, Outcome.DUPLICATE, Outcome.CREATED, Outcome.DUPLICATE], 0),
        ([Outcome.CREATED], 4),  # an answer of the wrong length: none is sure to be indexed
        (OSError(errno.ENOSPC, "no space left on device"), 4),
    ],
)
def test_every_dead_letter_the_index_did_not_take_is_counted_once(
    tmp_path: Path, answer: list[Outcome] | OSError, dropped: int
) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.metrics import labels
    from inferwatch.agent.model import ItemResult
    from inferwatch.agent.shipper import ShipLoop
    from inferwatch.agent.spool import Spool

    class Output:
        def __init__(self) -> None:
            self.requests = 0

        def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
            self.requests += 1
            if self.requests == 1:  # the four documents: refused by their mapping
                return [ItemResult(Outcome.REJECTED, 400, "mapper_parsing_exception", "bad")] * items
            if isinstance(answer, OSError):
                raise answer
            status = {Outcome.CREATED: 201, Outcome.DUPLICATE: 409, Outcome.RETRY: 503, Outcome.REJECTED: 400}
            return [ItemResult(o, status[o]) for o in answer]

        def check(self) -> str:
            return "fake"

        def close(self) -> None:
            pass

    metrics = Metrics()
    with Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False) as spool:
        dl = DeadLetter(tmp_path / "dl.ndjson", fsync=False)
        output = Output()
        loop = ShipLoop(spool, output, dl, metrics, Backoff(), dead_letter_index="inferwatch-dead-letter")
        docs = [("logs-inferwatch.m-default", doc_id, b'{"x":1}') for doc_id in "abcd"]
        spool.append(bulkbody.encode_items(docs), len(docs))
        while loop.step() is not None:  # until idle; the request runs on a sender thread
            loop.wake.wait(10)
            loop.wake.clear()
        assert spool.acked_seq == 1 and output.requests == 2  # acknowledged; not sent again
        assert dl.counts == {"mapper_parsing_exception": 4}
        assert metrics.value("dropped_total", labels(reason="dead_letter_index")) == dropped
        dl.close()


def test_a_file_rotated_while_the_agent_was_down_resumes_at_its_offset_under_the_new_name(
    tmp_path: Path,
) -> None:
    from inferwatch.agent.files.identity import fingerprint_of
    from inferwatch.agent.model import Checkpoint

    log = tmp_path / "a.jsonl"
    log.write_bytes(b"a-1\na-2\na-3\n")
    st = os.stat(log)
    fid = fingerprint_of(b"a-1\n")
    assert fid is not None
    committed = {fid: Checkpoint(4, str(log), st.st_dev, st.st_ino, 0.0)}  # a-1 was shipped
    os.rename(log, tmp_path / "a.jsonl.1")  # rotated while down, a new file at the old name
    log.write_bytes(b"b-1\n")
    t = Tailer(1 << 20, 1 << 18, committed.get)
    t.add_path(str(log), 0)
    t.add_path(str(tmp_path / "a.jsonl.1"), 0)
    assert sorted(_drain(t)) == [b"a-2", b"a-3", b"b-1"]


def test_a_first_line_over_max_line_bytes_gives_a_stable_identity(tmp_path: Path) -> None:
    from inferwatch.agent.model import Checkpoint

    log = tmp_path / "a.jsonl"
    log.write_bytes(b"x" * 3000 + b"\nok-1\n")
    t = Tailer(1000, 1 << 18, lambda fid: None)
    t.add_path(str(log), 0)
    batches = t.step(1 << 20)
    assert [line for b in batches for line in b.lines] == [b"ok-1"]
    assert [o.offset for b in batches for o in b.oversized] == [0]  # dead-lettered by the reader
    committed = {batches[0].file_id: Checkpoint(3006, str(log), 0, 0, 0.0)}
    with open(log, "ab") as f:
        f.write(b"ok-2\n")
    restarted = Tailer(1000, 1 << 18, committed.get)
    restarted.add_path(str(log), 0)
    assert _drain(restarted) == [b"ok-2"]


def test_a_file_shorter_than_a_line_is_read_once_it_has_one_and_two_inputs_read_it_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(b"{")
    t = Tailer(1 << 20, 1 << 18, lambda fid: None)
    t.add_path(str(log), 0)
    t.add_path(str(log), 1)  # also matched by a second input: the first one owns it
    assert _drain(t) == []
    with open(log, "ab") as f:
        f.write(b'"a":1}\n')
    batches = t.step(1 << 20)
    assert [line for b in batches for line in b.lines] == [b'{"a":1}']
    assert {b.input_index for b in batches} == {0}


def _dead_letter_index_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, redact: str
) -> tuple[list[dict[str, object]], bytes]:
    """Run a read loop (the daemon's normalizers, real spool, registry and dead letter) over one
    file holding ``data``; return the documents it spooled for the dead-letter index and the
    bytes of the local dead-letter file."""
    from inferwatch.agent import bulkbody
    from inferwatch.agent.daemon import build_normalizers
    from inferwatch.agent.files.discovery import Discovery
    from inferwatch.agent.reader import ReadLoop, ReadSettings
    from inferwatch.agent.registry import Registry
    from inferwatch.agent.spool import Spool

    monkeypatch.setenv("INFERWATCH_HASH_KEY", "k")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_bytes(data)
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  redact: {redact}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
    )
    registry = Registry(tmp_path / "registry.json", fsync=False)
    dead = DeadLetter(tmp_path / "dead-letter.ndjson", fsync=False)
    with Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False) as spool:
        loop = ReadLoop(
            cfg.agent.inputs,
            Discovery(cfg.agent.inputs, scan_interval=0.0),
            Tailer(256, 4096, registry.get),
            build_normalizers(cfg, "test-host"),
            registry,
            spool,
            dead,
            Metrics(),
            ReadSettings(max_line_bytes=256, dead_letter_index="dl"),
            wake=threading.Event(),
        )
        loop.step()
        loop.flush()
        loop.close()
        items = [item for rec in spool.read(0, 100) for item in bulkbody.decode(rec.payload)]
    dead.close()
    docs = [orjson.loads(doc) for index, _id, doc in items if index == "dl"]
    return docs, (tmp_path / "dead-letter.ndjson").read_bytes()


SECRET = "alice.secret@example.com"


def test_a_rejected_line_is_redacted_like_a_document_before_it_goes_to_the_dead_letter_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import hmac

    line = orjson.dumps(
        {"timestamp": "not a time", "model": "m", "inputs": {"email": SECRET, "name": "Alice", "age": 3}}
    )
    redact = "{drop: [inputs.email], hash: [inputs.name]}"
    (doc,), local = _dead_letter_index_docs(tmp_path, monkeypatch, line + b"\n", redact)
    assert doc["reason"] == "bad_timestamp"
    assert isinstance(doc["raw"], str)
    name = hmac.new(b"k", b"Alice", hashlib.sha256).hexdigest()
    assert orjson.loads(doc["raw"]) == {
        "timestamp": "not a time",
        "model": "m",
        "inputs": {"name": name, "age": 3},
    }
    assert doc["raw_bytes"] == len(line)
    # redaction applies on disk too: the local dead letter keeps the redacted line
    assert SECRET.encode() not in local
    assert orjson.loads(orjson.loads(local)["raw"]) == orjson.loads(doc["raw"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'"', "invalid_json"),
        (b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'\xff"}}', "invalid_utf8"),
        (b'[{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'"}}]', "not_an_object"),
        (
            b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'", "pad": "' + b"x" * 2000 + b'"}}',
            "line_too_long",
        ),
    ],
    ids=["invalid_json", "invalid_utf8", "not_an_object", "line_too_long"],
)
def test_a_rejected_line_that_cannot_be_redacted_goes_to_the_dead_letter_index_without_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: bytes, reason: str
) -> None:
    (doc,), _local = _dead_letter_index_docs(tmp_path, monkeypatch, line + b"\n", "{drop: [inputs.email]}")
    assert doc["reason"] == reason and doc["detail"]
    assert "raw" not in doc
    assert doc["raw_bytes"] == len(line)
    assert SECRET not in orjson.dumps(doc).decode()


def test_without_redaction_a_rejected_line_goes_to_the_dead_letter_index_as_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_line = b'{"model": "m", "pad": "' + b"x" * 2000 + b'"}'
    data = b'{"model": "m", "inputs": {"email": "a@b"\n' + long_line + b"\n"
    docs, _local = _dead_letter_index_docs(tmp_path, monkeypatch, data, "{}")
    by_reason = {d["reason"]: d for d in docs}  # an oversized line is dead-lettered up front
    assert len(docs) == 2
    invalid, too_long = by_reason["invalid_json"], by_reason["line_too_long"]
    assert (invalid["raw"], invalid["raw_bytes"], "raw_truncated" in invalid) == (
        '{"model": "m", "inputs": {"email": "a@b"',
        40,
        False,
    )
    # the 1 KiB head the tailer keeps, and the line's length
    assert (too_long["raw"], too_long["raw_bytes"], too_long["raw_truncated"]) == (
        long_line[:1024].decode(),
        len(long_line),
        True,
    )
