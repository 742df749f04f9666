"""The HTTP endpoint of an inferwatch process: ``/metrics``, ``/livez`` (alias ``/health``) and
``/readyz``, on a daemon thread owned by the process.

Liveness and readiness are separate, as Kubernetes expects of its probes:

- ``/livez`` (and ``/health``): the process's loops run. A 503 here means a restart helps; it is
  what a liveness probe and the compose healthcheck use.
- ``/readyz``: the process can do its work now (the agent reaches its output; the worker's last
  evaluations succeeded). A 503 here is an outage elsewhere that a restart does not fix: the agent
  keeps reading into its spool meanwhile.

Each answers 200 or 503 with ``{"status": "ok"|"unhealthy", "reason": ...}``. ``/metrics`` is
``prometheus_client``'s exposition of the given collector (the text format, or OpenMetrics when
the scraper asks for it).

Binding happens in the constructor, so a port in use raises ``OSError`` before the process
starts any thread; ``port`` 0 picks a free port (see ``address``); an IPv6 host is written in
brackets (``[::1]:9464``). A client that sends nothing (or stalls) is dropped after
``request_timeout`` seconds, so idle connections cannot pile up threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthStatus:
    ok: bool
    reason: str  # "ok", or why not, for the person reading the 503


HealthCheck = Callable[[], HealthStatus]

PATHS = "/metrics, /livez (or /health) and /readyz"


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scrape in progress never holds up the process's exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    def __init__(
        self,
        listen: str,
        metrics: Collector,
        live: HealthCheck,
        ready: HealthCheck | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        host, port = parse_listen(listen)
        handler = _handler(metrics, live, ready or live, request_timeout)
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
        host, port = self.address
        log.info("serving %s on http://%s:%d", PATHS, f"[{host}]" if ":" in host else host, port)

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.server_close()


def _handler(
    metrics: Collector, live: HealthCheck, ready: HealthCheck, request_timeout: float
) -> type[BaseHTTPRequestHandler]:
    checks = {"/livez": live, "/health": live, "/readyz": ready}

    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout  # the socket's timeout: a stalled client is dropped

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            check = checks.get(path)
            if path == "/metrics":
                encode, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._answer(200, content_type, encode(metrics))
            elif check is not None:
                status = check()
                body = orjson.dumps({"status": "ok" if status.ok else "unhealthy", "reason": status.reason})
                self._answer(200 if status.ok else 503, "application/json", body)
            else:
                self._answer(404, "text/plain; charset=utf-8", f"try {PATHS}\n".encode())

        def _answer(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics http: " + format, *args)

    return Handler
