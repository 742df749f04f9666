"""The agent's self-metrics: a small registry of counters and gauges, the Prometheus text format,
and an HTTP thread serving ``/metrics`` and ``/health``.

The loops push values here (a lock-guarded dict, a few calls per batch, never per line); the HTTP
thread only reads. Every metric is declared once in ``METRICS`` with its type and help text, so the
exposition is self-describing and a typo in a name fails loudly instead of creating a new series.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import orjson

log = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs; () for none
Kind = Literal["counter", "gauge"]

PREFIX = "inferwatch_agent_"

# name (without prefix) -> (type, help). Counters end in _total as Prometheus expects.
METRICS: dict[str, tuple[Kind, str]] = {
    "lines_read_total": ("counter", "Lines read from log files (complete lines, oversized ones included)."),
    "documents_shipped_total": ("counter", "Documents the output created (201)."),
    "documents_duplicate_total": (
        "counter",
        "Documents the output already held (409): a replay, not an error.",
    ),
    "documents_retried_total": ("counter", "Bulk items retried, by the status that made them retry."),
    "dead_lettered_total": ("counter", "Lines and documents written to the dead letter, by reason."),
    "dropped_total": ("counter", "Data lost or skipped, by reason (spool corruption, truncation...)."),
    "storage_repairs_total": (
        "counter",
        "Damage found and repaired in the spool or registry at open, by store and reason.",
    ),
    "bulk_requests_total": (
        "counter",
        "Bulk requests sent, by result (ok, unavailable with its HTTP status or none, too_large).",
    ),
    "spooled_records_total": ("counter", "Bulk bodies written to the spool."),
    "loop_errors_total": ("counter", "Unexpected errors caught at the top of a loop (logged), by loop."),
    "spool_bytes": ("gauge", "Bytes the spool holds on disk."),
    "spool_pending_records": ("gauge", "Spool records not yet acknowledged."),
    "spool_full": ("gauge", "1 while reading is paused because the spool is full."),
    "oldest_unshipped_age_seconds": ("gauge", "Age of the oldest spool record not yet acknowledged."),
    "file_lag_bytes": ("gauge", "Per file: its size minus the offset committed to the registry."),
    "files_open": ("gauge", "Log files being tailed."),
    "output_up": ("gauge", "1 when the last request reached the output, 0 when it failed."),
}


def labels(**kv: str) -> Labels:
    return tuple(sorted(kv.items()))


class Metrics:
    """Thread-safe counters and gauges, rendered in the Prometheus text format (version 0.0.4)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {name: {} for name in METRICS}

    def inc(self, name: str, value: float = 1.0, label_set: Labels = ()) -> None:
        if not value:
            return
        with self._lock:
            family = self._values[name]
            family[label_set] = family.get(label_set, 0.0) + value

    def inc_many(self, name: str, by_label: Mapping[str, int], label_name: str) -> None:
        """Add a Counter of reasons at once: ``{"invalid_json": 2}`` -> ``{reason="invalid_json"} += 2``."""
        with self._lock:
            family = self._values[name]
            for value, n in by_label.items():
                if n:
                    key = ((label_name, value),)
                    family[key] = family.get(key, 0.0) + n

    def set(self, name: str, value: float, label_set: Labels = ()) -> None:
        with self._lock:
            self._values[name][label_set] = value

    def replace(self, name: str, values: Mapping[Labels, float]) -> None:
        """Replace a whole gauge family (e.g. per-file lag, where files come and go)."""
        with self._lock:
            self._values[name] = dict(values)

    def value(self, name: str, label_set: Labels = ()) -> float:
        with self._lock:
            return self._values[name].get(label_set, 0.0)

    def total(self, name: str) -> float:
        with self._lock:
            return sum(self._values[name].values())

    def by_label(self, name: str) -> dict[Labels, float]:
        with self._lock:
            return dict(self._values[name])

    def render(self) -> str:
        with self._lock:
            snapshot = {name: dict(values) for name, values in self._values.items()}
        out: list[str] = []
        for name, (kind, help_text) in METRICS.items():
            full = PREFIX + name
            out.append(f"# HELP {full} {help_text}")
            out.append(f"# TYPE {full} {kind}")
            values = snapshot[name]
            if not values and kind == "counter":
                values = {(): 0.0}
            for label_set, value in sorted(values.items()):
                out.append(f"{full}{_render_labels(label_set)} {_render_value(value)}")
        return "\n".join(out) + "\n"


def _render_labels(label_set: Labels) -> str:
    if not label_set:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in label_set)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _render_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def progress_line(m: Metrics) -> str:
    """The one-line summary logged every 30 s."""
    retried = int(m.total("documents_retried_total"))
    dead = int(m.total("dead_lettered_total"))
    age = m.value("oldest_unshipped_age_seconds")
    up = "up" if m.value("output_up") or not m.by_label("output_up") else "DOWN"
    return (
        f"read {int(m.total('lines_read_total'))} lines, "
        f"shipped {int(m.total('documents_shipped_total'))} "
        f"(+{int(m.total('documents_duplicate_total'))} duplicates), "
        f"retried {retried}, dead-lettered {dead}, "
        f"spool {int(m.value('spool_pending_records'))} records / {int(m.value('spool_bytes'))} B, "
        f"oldest unshipped {age:.1f}s, {int(m.value('files_open'))} files, output {up}"
    )


@dataclass(frozen=True, slots=True)
class HealthStatus:
    ok: bool
    reason: str  # "ok", or why not, for the person reading the 503


HealthCheck = Callable[[], HealthStatus]


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scrape in progress never holds up the agent's exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /health`` (200/503 with a JSON reason) on a
    daemon thread owned by the agent. ``port`` 0 picks a free port (see ``address``); an IPv6
    host is written in brackets (``[::1]:9464``). Binding happens here, so a port in use raises
    ``OSError`` before anything starts. A client that sends nothing (or stalls) is dropped after
    ``request_timeout`` seconds, so idle connections cannot pile up threads."""

    def __init__(
        self, listen: str, metrics: Metrics, health: HealthCheck, request_timeout: float = 10.0
    ) -> None:
        host, port = parse_listen(listen)
        handler = _handler(metrics, health, request_timeout)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, name="metrics-http", daemon=True
        )
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics and /health", *self.address)

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.server_close()


def _handler(metrics: Metrics, health: HealthCheck, request_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout  # the socket's timeout: a stalled client is dropped

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, "text/plain; version=0.0.4; charset=utf-8", metrics.render().encode())
            elif path == "/health":
                status = health()
                body = orjson.dumps({"status": "ok" if status.ok else "unhealthy", "reason": status.reason})
                self._answer(200 if status.ok else 503, "application/json", body)
            else:
                self._answer(404, "text/plain; charset=utf-8", b"try /metrics or /health\n")

        def _answer(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics http: " + format, *args)

    return Handler
