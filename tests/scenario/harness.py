"""Black-box scenario harness: the agent as a subprocess against the fake bulk endpoint.

- ``LogWriter`` writes prediction lines whose ``prediction_id`` is a sequence number (``p<n>``)
  and rotates, copies, truncates and deletes its file like the usual tools do.
- ``AgentProcess`` writes a config into a tmp dir and starts, kills (-9) and stops (SIGTERM) the
  daemon: ``python -m inferwatch.core agent run --config <cfg>``.
- ``delivered(server)`` counts the prediction ids the fake stored; ``wait_until`` polls a
  condition with a deadline (never a bare sleep as synchronization).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.fakes.bulk_server import BulkServer

ROOT = Path(__file__).resolve().parents[2]
MODEL = "scenario"


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``cond`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        pause.wait(poll)
        poll = min(poll * 1.5, 0.5)


def line(seq: int, **inputs: Any) -> bytes:
    doc = {
        "timestamp": "2026-11-22T10:48:12.486Z",
        "model": MODEL,
        "model_version": "1",
        "prediction_id": f"p{seq}",
        "inputs": {"n": seq, "country": "DE", **inputs},
        "outputs": {"score": 0.5},
        "latency_ms": 1.5,
    }
    return orjson.dumps(doc) + b"\n"


class LogWriter:
    """Appends prediction lines to ``path``; ``written`` holds every prediction id written."""

    def __init__(self, path: Path, start: int = 0) -> None:
        self.path = path
        self.seq = start
        self.written: list[str] = []
        self.lock = threading.Lock()

    def write(self, n: int, **inputs: Any) -> list[str]:
        with self.lock:
            ids = []
            data = bytearray()
            for _ in range(n):
                data += line(self.seq, **inputs)
                ids.append(f"p{self.seq}")
                self.seq += 1
            with self.path.open("ab") as f:
                f.write(data)
            self.written += ids
            return ids

    def write_raw(self, data: bytes, ids: Iterable[str] = ()) -> None:
        with self.lock, self.path.open("ab") as f:
            f.write(data)
            self.written += list(ids)

    def rotate(self, keep: int = 1000) -> None:
        """logrotate's default: shift ``.1 -> .2 ...``, rename the live file to ``.1``; the next
        write creates a new one."""
        with self.lock:
            for i in range(keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.rename(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            if self.path.exists():
                os.rename(self.path, self.path.with_name(f"{self.path.name}.1"))

    def copytruncate(self, suffix: str = ".1") -> None:
        with self.lock:
            shutil.copyfile(self.path, self.path.with_name(self.path.name + suffix))
            with self.path.open("r+b") as f:
                f.truncate(0)

    def truncate(self) -> None:
        with self.lock, self.path.open("r+b") as f:
            f.truncate(0)

    def delete(self) -> None:
        with self.lock:
            self.path.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    """One agent with its config, data dir and log dir under ``tmp``."""

    def __init__(self, tmp: Path, server: BulkServer | None, **agent: Any) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.data_dir = tmp / "data"
        self.metrics_port = free_port()
        settings: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "inputs": [{"paths": [str(self.logs / "*.jsonl*")], "model": MODEL}],
            "scan_interval": "200ms",
            "shutdown_timeout": "5s",
            "batch": {"max_docs": 500, "max_wait": "100ms"},
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "spool": {"fsync": True},
        }
        settings.update(agent)
        cfg: dict[str, Any] = {"agent": settings}
        if server is not None:
            cfg["elasticsearch"] = {"hosts": [server.url], "request_timeout": "5s"}
        self.config = tmp / "inferwatch.yml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "agent.log"
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        env = dict(os.environ, PYTHONPATH=str(ROOT), INFERWATCH_LOG_LEVEL="info")
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "inferwatch.core", "agent", "run", "--config", str(self.config)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until /health answers: the signal handlers are installed and the loops run."""
        proc = self.proc
        assert proc is not None
        wait_until(
            lambda: proc.poll() is not None or self.metric("files_open") is not None, timeout, "the agent"
        )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (once the agent is up: earlier, Python's default handler would just kill it)
        and wait; the exit code."""
        assert self.proc is not None
        self.wait_ready()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def metric(self, name: str) -> float | None:
        """A metric summed over its labels, or None while the agent does not answer."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        total = 0.0
        for row in text.splitlines():
            if row.startswith(f"inferwatch_agent_{name}"):
                key = row.split(" ", 1)[0]
                if key == f"inferwatch_agent_{name}" or key.startswith(f"inferwatch_agent_{name}{{"):
                    total += float(row.rsplit(" ", 1)[1])
        return total

    def health(self) -> tuple[int, dict[str, Any]]:
        """The /health answer: (status code, JSON body)."""
        url = f"http://127.0.0.1:{self.metrics_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, orjson.loads(e.read())

    def dead_letters(self) -> list[dict[str, Any]]:
        path = self.data_dir / "dead-letter.ndjson"
        if not path.exists():
            return []
        return [orjson.loads(x) for x in path.read_bytes().splitlines() if x]

    def output_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def delivered(server: BulkServer) -> Counter[str]:
    """Prediction id -> how many stored documents carry it (must be 1 each)."""
    out: Counter[str] = Counter()
    for doc in server.documents().values():
        if "ml" in doc:  # not a dead letter
            out[doc["ml"]["prediction"]["id"]] += 1
    return out


def assert_exactly_once(server: BulkServer, written: Iterable[str]) -> None:
    got = delivered(server)
    want = set(written)
    twice = sorted(k for k, n in got.items() if n > 1)
    missing = sorted(want - set(got), key=lambda s: int(s[1:]))
    extra = sorted(set(got) - want)
    assert not twice, f"stored more than once: {twice[:20]}"
    assert not missing, f"{len(missing)} ids never delivered, e.g. {missing[:20]}"
    assert not extra, f"unexpected ids: {extra[:20]}"
    assert max(server.ids().values(), default=1) == 1, "an _id was stored twice"
    stats = server.stats()
    print(
        f"ids written {len(want)}, delivered {len(got)}, stored twice {len(twice)}, "
        f"replays answered 409: {stats['conflicts']}, items answered 429: {stats['rejected_429']}"
    )


def wait_delivered(server: BulkServer, written: Iterable[str], timeout: float, agent: AgentProcess) -> None:
    want = set(written)

    def done() -> bool:
        # ids() is cheap; parse the documents only once enough of them are there.
        return len(server.ids()) >= len(want) and want <= set(delivered(server))

    try:
        wait_until(done, timeout, f"{len(want)} ids delivered")
    except AssertionError as e:
        got = set(delivered(server))
        missing = sorted(want - got, key=lambda s: int(s[1:]))
        raise AssertionError(
            f"{e}: {len(missing)} missing, e.g. {missing[:10]}; agent log:\n{agent.output_log()}"
        ) from None


def make_agent(
    agents: list[AgentProcess], tmp: Path, server: BulkServer | None, **settings: object
) -> AgentProcess:
    """An agent (not started) that the ``agents`` fixture closes at the end of the test."""
    a = AgentProcess(tmp, server, **settings)
    agents.append(a)
    return a
