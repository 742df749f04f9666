"""A fault-injecting Elasticsearch bulk endpoint on loopback, for delivery tests and benchmarks.

It answers like Elasticsearch where the agent looks (``GET /``, ``POST /_bulk`` with ``create``
actions, gzip or plain, ``X-Elastic-Product: Elasticsearch`` on every 2xx, ES-shaped errors) and
keeps every stored document by ``(index, _id)``: the first create answers 201, a second one 409
``version_conflict_engine_exception`` -- the basis of idempotent replay.

In-process use (a thread)::

    from tests.fakes.bulk_server import BulkServer

    with BulkServer() as srv:                       # listens on 127.0.0.1:<free port>
        cfg = ElasticsearchConfig(hosts=(srv.url,))
        srv.set_faults(item_429_rate=0.2, seed=7)   # 20% of items answer 429 (deterministic)
        srv.set_faults(reject_field="ml.inputs.age", reject_value="poison")  # 400 for those docs
        srv.set_faults(mode="503", retry_after="2")  # every request: 503 + Retry-After: 2
        srv.set_faults(mode="refuse")                # connection refused (listening socket closed)
        srv.set_faults(mode="ok")                    # back up, same port
        srv.documents()        # {(index, id): doc dict}
        srv.ids()              # Counter of stored _id -> times stored (across indices)
        srv.stats()            # {"requests", "bulk_requests", "items", "created", "conflicts", ...}

As a subprocess (scenario tests, the benchmark)::

    python -m tests.fakes.bulk_server --port 0 [--state-file F] [--ready-file R] [--ids-only]

prints one JSON line ``{"url", "port", "control_url", "control_port", "pid"}`` once listening (and
writes it to ``--ready-file`` atomically). The control port stays up whatever the faults are:

- ``POST /_fault`` with a JSON object of ``FaultPlan`` fields changes the plan (partial update),
  ``GET /_fault`` shows it;
- ``GET /_inferwatch/ids`` -> ``{"ids": {"<_id>": times stored}, "stats": {...}}``;
- ``GET /_inferwatch/docs`` -> NDJSON, one ``{"_index", "_id", "_source"}`` per stored document;
- ``GET /_inferwatch/stats``; ``POST /_inferwatch/reset`` forgets documents and counters.

It also keeps component and index templates (``PUT``/``GET /_component_template/<name>`` and
``/_index_template/<name>``; ``srv.templates()``), enough to run ``agent.templates.install``.

These also answer on the data port while it is up. ``--state-file`` keeps the stored documents
across restarts of the fake itself: loaded at start, written on SIGTERM/SIGINT.

Faults (``FaultPlan``), applied per request in this order:

- ``mode``: ``"ok"``; ``"refuse"`` closes the listening socket (new connections are refused; an
  open keep-alive connection is closed without an answer); ``"503"`` answers 503 with
  ``Retry-After: <retry_after>`` when set;
- ``status``: answer every data-port request with this status (401, 403, 429, 500, ...) and an
  ES-shaped error body (plus ``Retry-After`` when set);
- ``require_auth``: the exact ``Authorization`` header expected, else 401;
- ``product_header``: False drops ``X-Elastic-Product`` (the client must refuse the answer);
- ``security``: False answers ``/_security/*`` with 500 ``security_exception`` (security off);
  ``denied_privileges``: names ``_has_privileges`` reports as not granted;
- ``delay_ms``: wait before answering (interrupted by ``stop()``);
- ``max_body_bytes``: 413 when the request body (as sent, i.e. compressed) is larger;
- ``drop_response``: store the documents, then close the connection without answering (the
  "indexed, but the answer was lost" case: the resend must produce 409s); ``drop_next``: the
  same for only the next N bulk requests;
- per item: ``reject_field``/``reject_value`` -> 400 ``mapper_parsing_exception`` when the
  document's value at the dotted path equals ``reject_value`` (never stored);
  ``item_429_rate`` -> 429 ``es_rejected_execution_exception`` decided by a hash of
  ``(seed, _id, attempt number of that _id)``: deterministic whatever the batching, and a retried
  item gets a fresh draw.
- per bulk request: ``request_429_rate`` -> the whole request answers 429
  ``es_rejected_execution_exception`` (with ``Retry-After`` when set), decided by a hash of
  ``(seed, bulk request number)``; nothing of it is stored.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import gzip
import itertools
import os
import signal
import socket
import ssl
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

try:  # igzip inflates 3x faster than zlib: less of the CPU a benchmark shares with the shipper
    from isal.igzip import decompress as _gunzip
except ImportError:  # pragma: no cover - isal is an agent dependency where it has wheels
    _gunzip = gzip.decompress

PRODUCT = ("X-Elastic-Product", "Elasticsearch")
ROOT_INFO = {
    "name": "fake-node",
    "cluster_name": "inferwatch-fake",
    "cluster_uuid": "fake-cluster-uuid",
    "version": {"number": "8.15.0", "build_flavor": "default", "lucene_version": "9.11.1"},
    "tagline": "You Know, for Search",
}


@dataclass
class FaultPlan:
    mode: str = "ok"  # "ok" | "refuse" | "503"
    status: int | None = None
    retry_after: str | None = None
    require_auth: str | None = None
    product_header: bool = True
    delay_ms: int = 0
    max_body_bytes: int | None = None
    drop_response: bool = False
    drop_next: int = 0  # like drop_response for this many bulk requests, counted down
    reject_field: str | None = None
    reject_value: Any = None
    item_429_rate: float = 0.0
    request_429_rate: float = 0.0  # whole bulk requests answered 429, drawn per request number
    seed: int = 0
    security: bool = True  # False: /_security/* answers like a cluster with security disabled
    denied_privileges: tuple[str, ...] = ()  # privileges _has_privileges reports as missing

    def updated(self, changes: dict[str, Any]) -> FaultPlan:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        plan = dataclasses.replace(self, **changes)
        if plan.mode not in ("ok", "refuse", "503"):
            raise ValueError(f"mode must be ok, refuse or 503, got {plan.mode!r}")
        return plan


@dataclass
class _Stats:
    requests: int = 0
    bulk_requests: int = 0
    items: int = 0
    created: int = 0
    conflicts: int = 0
    rejected_429: int = 0
    rejected_400: int = 0
    whole_request_errors: int = 0
    bulk_attempts: int = 0  # bulk requests drawn for request_429_rate (answered or not)
    dropped_responses: int = 0
    refused_connections: int = 0


class Store:
    """Documents by (index, _id) plus counters; all methods are thread-safe."""

    def __init__(self, keep_documents: bool = True) -> None:
        self.lock = threading.Lock()
        self.keep_documents = keep_documents
        self.docs: dict[tuple[str, str], bytes] = {}
        self.stored: Counter[str] = Counter()  # _id -> times stored, across indices
        self.attempts: Counter[str] = Counter()  # _id -> create attempts seen
        self.templates: dict[str, Any] = {}  # "/_index_template/<name>" -> body
        self.stats = _Stats()

    def reset(self) -> None:
        with self.lock:
            self.docs.clear()
            self.stored.clear()
            self.attempts.clear()
            self.templates.clear()
            self.stats = _Stats()

    def dump(self) -> bytes:
        with self.lock:
            return b"".join(
                orjson.dumps({"_index": i, "_id": d, "_source": orjson.Fragment(src)}) + b"\n"
                for (i, d), src in self.docs.items()
            )

    def load(self, data: bytes) -> None:
        with self.lock:
            for line in data.splitlines():
                if line.strip():
                    rec = orjson.loads(line)
                    self.docs[(rec["_index"], rec["_id"])] = orjson.dumps(rec["_source"])
                    self.stored[rec["_id"]] += 1


class BulkServer:
    """The fake endpoint; see the module docstring. ``start()``/``stop()`` or use it as a context
    manager. ``url`` is the data port, ``control_url`` the always-up control port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_documents: bool = True,
        tls: tuple[Path, Path] | None = None,
        one_pass: bool = True,
    ) -> None:
        self.host = host
        # Answer requests of fresh creates in one pass (``_fresh_creates``); False sends every
        # request through the per-item path, the reference the tests hold the one pass to.
        self.one_pass = one_pass
        self.tls = tls  # (certificate chain file, private key file): the data port speaks https
        self.store = Store(keep_documents)
        self._plan = FaultPlan()
        self._plan_lock = threading.Lock()
        self._stopping = threading.Event()
        self._data: _Server | None = None
        self._control: _Server | None = None
        self._port = port
        self._serve_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> BulkServer:
        self._control = _Server((self.host, 0), self, control=True)
        self._control.start()
        self._open_data_port()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._serve_lock:
            if self._data is not None:
                self._data.close()
                self._data = None
        if self._control is not None:
            self._control.close()
            self._control = None

    def __enter__(self) -> BulkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self._port}"

    @property
    def control_url(self) -> str:
        assert self._control is not None, "start() first"
        return f"http://{self.host}:{self._control.server_address[1]}"

    # -- faults and records -----------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        with self._plan_lock:
            return self._plan

    def set_faults(self, **changes: Any) -> FaultPlan:
        """Change some fault fields (the others keep their values); returns the new plan."""
        with self._plan_lock:
            self._plan = self._plan.updated(changes)
            plan = self._plan
        with self._serve_lock:
            if plan.mode == "refuse" and self._data is not None:
                self._data.close()
                self._data = None
            elif plan.mode != "refuse" and self._data is None and not self._stopping.is_set():
                self._open_data_port()
        return plan

    def clear_faults(self) -> FaultPlan:
        """Back to a healthy endpoint (stored documents are kept)."""
        return self.set_faults(**dataclasses.asdict(FaultPlan()))

    def documents(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every stored document, parsed, by (index, _id)."""
        with self.store.lock:
            return {k: orjson.loads(v) for k, v in self.store.docs.items()}

    def ids(self) -> Counter[str]:
        """Stored ``_id`` -> times stored (more than 1 only if the same id went to two indices)."""
        with self.store.lock:
            return Counter(self.store.stored)

    def templates(self) -> dict[str, Any]:
        """Templates PUT so far, by path (``/_component_template/<name>``, ``/_index_template/<name>``)."""
        with self.store.lock:
            return dict(self.store.templates)

    def stats(self) -> dict[str, int]:
        with self.store.lock:
            return dataclasses.asdict(self.store.stats)

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Poll until at least ``count`` documents are stored (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.lock:
                if len(self.store.stored) >= count:
                    return True
            if time.monotonic() > deadline or self._stopping.wait(0.02):
                return False

    # -- internals --------------------------------------------------------------------------------

    def _open_data_port(self) -> None:
        server = _Server((self.host, self._port), self, control=False)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._port = server.server_address[1]
        server.start()
        self._data = server

    def wait(self, seconds: float) -> None:
        """Sleep that ``stop()`` interrupts (used for ``delay_ms``)."""
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not hold up close()
    allow_reuse_address = True  # reopen the same port after "refuse"

    def __init__(self, address: tuple[str, int], owner: BulkServer, control: bool) -> None:
        super().__init__(address, _Handler)
        self.owner = owner
        self.control = control
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Elasticsearch
    server: _Server

    def setup(self) -> None:
        super().setup()
        # As Elasticsearch does (http.tcp.no_delay defaults to true): with Nagle's algorithm the
        # body of an answer waits for the client's ACK of its headers, a delayed ACK of 40 ms
        # per request, which capped every shipper measured against this fake near 80k docs/s.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- dispatch -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        try:
            self._route(method)
        except (ValueError, KeyError, TypeError, OSError) as exc:  # a malformed request: say why
            with contextlib.suppress(OSError):
                self._send_json(400, {"error": _error("parse_exception", f"{type(exc).__name__}: {exc}")})

    def _route(self, method: str) -> None:
        owner = self.server.owner
        wire = self._read_body()
        body = _gunzip(wire) if self.headers.get("Content-Encoding", "").lower() == "gzip" else wire
        path = urlsplit(self.path).path
        if path.startswith(("/_fault", "/_inferwatch/")):
            self._control(method, path, body)
            return
        if self.server.control:
            self._send_json(404, {"error": "the control port serves /_fault and /_inferwatch/* only"})
            return
        plan = owner.faults
        with owner.store.lock:
            owner.store.stats.requests += 1
        if plan.mode == "refuse":  # a keep-alive connection opened before the socket closed
            with owner.store.lock:
                owner.store.stats.refused_connections += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if plan.delay_ms:
            owner.wait(plan.delay_ms / 1000)
        if plan.mode == "503" or plan.status is not None:
            status = 503 if plan.mode == "503" else int(plan.status or 503)
            self._whole_error(status, plan)
            return
        if plan.require_auth is not None and self.headers.get("Authorization") != plan.require_auth:
            self._whole_error(401, plan)
            return
        if plan.max_body_bytes is not None and len(wire) > plan.max_body_bytes:
            self._whole_error(413, plan)
            return
        if method == "GET" and path == "/":
            self._send_json(200, ROOT_INFO, product=plan.product_header)
        elif method in ("POST", "PUT") and path == "/_bulk":
            if plan.request_429_rate > 0 and self._draw_request(plan):
                self._whole_error(429, plan)
                return
            self._bulk(body, plan)
        elif path.startswith(("/_component_template/", "/_index_template/")) and method in ("PUT", "GET"):
            self._template(method, path, body, plan)
        elif path.startswith("/_security/") and not plan.security:
            reason = "Security must be explicitly enabled when using a [basic] license"
            self._send_json(500, {"error": _error("security_exception", reason), "status": 500})
        elif path == "/_security/user/_has_privileges":
            req = orjson.loads(body or b"{}")
            index = {
                name: {p: p not in plan.denied_privileges for p in entry.get("privileges", [])}
                for entry in req.get("index", [])
                for name in entry.get("names", [])
            }
            every = all(ok for privileges in index.values() for ok in privileges.values())
            answer = {"username": "fake", "has_all_requested": every, "cluster": {}, "index": index}
            self._send_json(200, answer, product=plan.product_header)
        else:
            self._send_json(404, _error("resource_not_found_exception", f"no handler for {method} {path}"))

    def _template(self, method: str, path: str, body: bytes, plan: FaultPlan) -> None:
        """Component and index templates, kept by path (``/_index_template/<name>``): enough for
        ``agent.templates.install`` through the official client."""
        store = self.server.owner.store
        if method == "PUT":
            with store.lock:
                store.templates[path] = orjson.loads(body)
            self._send_json(200, {"acknowledged": True}, product=plan.product_header)
            return
        with store.lock:
            found = store.templates.get(path)
        if found is None:
            self._send_json(404, _error("resource_not_found_exception", f"{path} missing"))
            return
        kind, name = path.strip("/").split("/", 1)
        key = "component_templates" if kind == "_component_template" else "index_templates"
        inner = "component_template" if kind == "_component_template" else "index_template"
        self._send_json(200, {key: [{"name": name, inner: found}]}, product=plan.product_header)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- the bulk API -------------------------------------------------------------------------------

    def _bulk(self, body: bytes, plan: FaultPlan) -> None:
        store = self.server.owner.store
        lines = body.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()  # the body's final newline
        if not all(lines):  # blank lines (never sent by a client, but allowed): skipped
            lines = [line for line in lines if line.strip()]
        if len(lines) % 2:
            self._send_json(
                400, _error("illegal_argument_exception", "the bulk request must end with a document")
            )
            return
        # Like Elasticsearch, honour filter_path: the agent asks for errors and items.*.status/error
        # only, which is also what keeps this fake fast enough for the benchmark.
        compact = "items.*.status" in (parse_qs(urlsplit(self.path).query).get("filter_path") or [""])[0]
        items: list[dict[str, Any]] = []
        any_error = False
        loads = orjson.loads
        item_faults = plan.reject_field is not None or plan.item_429_rate > 0
        # With only item 429s drawn, an item that draws no 429 is stored inline as well: injecting
        # rejections must not make the fake itself much slower (it shares the CPUs in benchmarks).
        draws = plan.item_429_rate > 0 and plan.reject_field is None
        docs, stored, stats, attempts = store.docs, store.stored, store.stats, store.attempts
        if self.server.owner.one_pass and plan.reject_field is None and not plan.drop_response:
            fresh = self._fresh_creates(store, lines, plan, compact)
            if fresh is not None:
                self._send_raw(200, fresh, product=plan.product_header)
                return
        with store.lock:
            stats.bulk_requests += 1
            stats.items += len(lines) // 2
            for action_line, doc in zip(lines[0::2], lines[1::2], strict=True):
                op, meta = next(iter(loads(action_line).items()))
                index, doc_id = meta["_index"], meta.get("_id", "")
                key = (index, doc_id)
                passes = not item_faults or (
                    draws and _draw(plan.seed, doc_id, attempts[doc_id] + 1) >= plan.item_429_rate
                )
                if passes and op == "create" and key not in docs:  # the common case, inline
                    # No attempt is stored for an item created here: only a refusal must be
                    # remembered (its next attempt draws anew), and skipping the store keeps the
                    # fake's own CPU, which benchmarks share with the shipper, near fault-free.
                    docs[key] = doc if store.keep_documents else b"{}"
                    stored[doc_id] += 1
                    stats.created += 1
                    status, error = 201, None
                else:
                    status, error = self._item(store, plan, op, index, doc_id, doc)
                if compact:
                    item: dict[str, Any] = {"status": status}
                else:
                    item = {"_index": index, "_id": doc_id, "status": status}
                    if error is None:
                        item |= {
                            "_version": 1,
                            "result": "created",
                            "_seq_no": stats.created,
                            "_primary_term": 1,
                        }
                if error is not None:
                    item["error"] = error
                    any_error = True
                items.append({op: item})
        if plan.drop_response or self._take_drop():
            with store.lock:
                store.stats.dropped_responses += 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        answer: dict[str, Any] = {"errors": any_error, "items": items}
        if not compact:
            answer = {"took": 1, **answer}
        self._send_json(200, answer, product=plan.product_header)

    def _fresh_creates(
        self, store: Store, lines: list[bytes], plan: FaultPlan, compact: bool
    ) -> bytes | None:
        """The common case of a benchmark in one pass of mostly C-level calls: every action a
        ``create`` of a new, distinct ``(index, _id)``, each stored and answered 201 or, with
        ``item_429_rate``, refused 429 by its draw, in the compact answer (``filter_path``, as the
        agent asks) or the full one (as rsyslog and the Python client get). None when the
        request is anything else (a conflict, another op, a duplicate in it, a drop to take):
        the per-item path answers it, with the same statuses and counters. The fake shares the
        CPUs with the shipper it measures, so its cost per document is kept far below any
        shipper's, with pushback as without and for either answer (else a benchmark comparing
        two shippers would measure the fake)."""
        actions = orjson.loads(b"[" + b",".join(lines[0::2]) + b"]")
        if not all(len(a) == 1 and "create" in a for a in actions):
            return None
        metas = [a["create"] for a in actions]
        keys = [(m["_index"], m.get("_id", "")) for m in metas]
        with store.lock:
            owner = self.server.owner
            if (
                owner.faults.drop_next > 0
                or len(set(keys)) != len(keys)
                or not store.docs.keys().isdisjoint(keys)
            ):
                return None
            refused: list[bool] = []
            if plan.item_429_rate > 0:
                refused = _refusals(plan.seed, plan.item_429_rate, store.attempts, [k[1] for k in keys])
            stats = store.stats
            first_seq = stats.created + 1  # the full answer's _seq_no of the first one created
            if any(refused):
                taken = [(k, doc) for k, doc, no in zip(keys, lines[1::2], refused, strict=True) if not no]
                store.attempts.update(k[1] for k, no in zip(keys, refused, strict=True) if no)
                stats.rejected_429 += len(keys) - len(taken)
            else:
                taken = list(zip(keys, lines[1::2], strict=True))
            if store.keep_documents:
                store.docs.update(taken)
            else:
                store.docs.update(dict.fromkeys((k for k, _ in taken), b"{}"))
            store.stored.update(k[1] for k, _ in taken)
            stats.bulk_requests += 1
            stats.items += len(keys)
            stats.created += len(taken)
        errors = b"true" if len(taken) < len(keys) else b"false"
        if compact:
            if refused:
                answer = b",".join([_REFUSED_429 if no else _CREATED for no in refused])
            else:
                answer = b",".join([_CREATED] * len(keys))
            return b'{"errors":%s,"items":[%s]}' % (errors, answer)
        return b'{"took":1,"errors":%s,"items":[%s]}' % (errors, _full_items(keys, refused, first_seq))

    def _draw_request(self, plan: FaultPlan) -> bool:
        store = self.server.owner.store
        with store.lock:
            store.stats.bulk_attempts += 1
            number = store.stats.bulk_attempts
        return _draw(plan.seed, "request", number) < plan.request_429_rate

    def _take_drop(self) -> bool:
        owner = self.server.owner
        with owner._plan_lock:
            if owner._plan.drop_next <= 0:
                return False
            owner._plan = dataclasses.replace(owner._plan, drop_next=owner._plan.drop_next - 1)
            return True

    @staticmethod
    def _item(
        store: Store, plan: FaultPlan, op: str, index: str, doc_id: str, doc: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        if op != "create":
            return 400, _error(
                "illegal_argument_exception", f"only create is allowed on data streams, got {op}"
            )
        if (
            plan.reject_field is not None
            and _dotted(orjson.loads(doc), plan.reject_field) == plan.reject_value
        ):
            store.stats.rejected_400 += 1
            return 400, _error(
                "mapper_parsing_exception",
                f"failed to parse field [{plan.reject_field}] of type [double] in document with id '{doc_id}'",
                caused_by=("illegal_argument_exception", f'For input string: "{plan.reject_value}"'),
            )
        if plan.item_429_rate > 0:
            store.attempts[doc_id] += 1
        if plan.item_429_rate > 0 and _draw(plan.seed, doc_id, store.attempts[doc_id]) < plan.item_429_rate:
            store.stats.rejected_429 += 1
            return 429, _item_429()
        key = (index, doc_id)
        if key in store.docs:
            store.stats.conflicts += 1
            return 409, _error(
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [1])",
            ) | {"index": index, "shard": "0"}
        store.docs[key] = doc if store.keep_documents else b"{}"
        store.stored[doc_id] += 1
        store.stats.created += 1
        return 201, None

    # -- answers ------------------------------------------------------------------------------------

    def _whole_error(self, status: int, plan: FaultPlan) -> None:
        with self.server.owner.store.lock:
            self.server.owner.store.stats.whole_request_errors += 1
        kinds = {
            401: ("security_exception", "unable to authenticate user [fake] for REST request [/_bulk]"),
            403: ("security_exception", "action [indices:data/write/bulk] is unauthorized for user [fake]"),
            413: ("http_request_too_large", "request body is too large"),
            429: ("es_rejected_execution_exception", "rejected execution of bulk request"),
        }
        kind, reason = kinds.get(status, ("unavailable_shards_exception", f"fake fault answering {status}"))
        headers: dict[str, str] = {}
        if plan.retry_after is not None and (status == 429 or status >= 500):
            headers["Retry-After"] = plan.retry_after
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="security" charset="UTF-8", ApiKey'
        self._send_json(
            status, {"error": _error(kind, reason), "status": status}, product=True, headers=headers
        )

    def _send_json(
        self, status: int, payload: Any, product: bool = True, headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, orjson.dumps(payload), product, headers)

    def _send_raw(
        self, status: int, data: bytes, product: bool = True, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if product:
            self.send_header(*PRODUCT)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- control ------------------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        owner = self.server.owner
        if path == "/_fault" and method == "POST":
            try:
                plan = owner.set_faults(**orjson.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                self._send_json(400, {"error": str(exc)})
                return
            self._send_json(200, dataclasses.asdict(plan))
        elif path == "/_fault":
            self._send_json(200, dataclasses.asdict(owner.faults))
        elif path == "/_inferwatch/ids":
            self._send_json(200, {"ids": dict(owner.ids()), "stats": owner.stats()})
        elif path == "/_inferwatch/stats":
            self._send_json(200, owner.stats())
        elif path == "/_inferwatch/docs":
            data = owner.store.dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/_inferwatch/reset" and method == "POST":
            owner.store.reset()
            self._send_json(200, {"acknowledged": True})
        else:
            self._send_json(404, {"error": f"unknown control path {path}"})


def _error(kind: str, reason: str, caused_by: tuple[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "reason": reason}
    if caused_by is not None:
        error["caused_by"] = {"type": caused_by[0], "reason": caused_by[1]}
    return error


_CREATED = b'{"create":{"status":201}}'


def _item_429() -> dict[str, Any]:
    """The error of an item refused by ``item_429_rate``, as Elasticsearch writes it."""
    return _error(
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, max=0]",
    )


_REFUSED_429 = orjson.dumps({"create": {"status": 429, "error": _item_429()}})
_REFUSED_429_FULL = b',"status":429,"error":' + orjson.dumps(_item_429()) + b"}}"


def _full_items(keys: list[tuple[str, str]], refused: list[bool], seq: int) -> bytes:
    """The full answer's items of ``_fresh_creates``: what the per-item path writes, created
    ones numbered from ``seq`` in order."""
    dumps = orjson.dumps
    heads: dict[str, bytes] = {}
    parts: list[bytes] = []
    for (index, doc_id), no in zip(keys, refused or itertools.repeat(False), strict=False):
        head = heads.get(index)
        if head is None:
            head = heads[index] = b'{"create":{"_index":' + dumps(index) + b',"_id":'
        if no:
            parts.append(head + dumps(doc_id) + _REFUSED_429_FULL)
        else:
            parts.append(
                b'%s%s,"status":201,"_version":1,"result":"created","_seq_no":%d,"_primary_term":1}}'
                % (head, dumps(doc_id), seq)
            )
            seq += 1
    return b",".join(parts)


def _dotted(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _draw(seed: int, doc_id: str, attempt: int) -> float:
    """A deterministic number in [0, 1) for one attempt of one item (crc32: cheap enough that
    drawing every item of a 2000-item request costs the fake little)."""
    return zlib.crc32(f"{seed}:{doc_id}:{attempt}".encode()) / 2**32


_ATTEMPTS = [b":%d" % n for n in range(64)]  # the tail of _draw's text for attempts below 64


def _refusals(seed: int, rate: float, attempts: Counter[str], ids: list[str]) -> list[bool]:
    """``_draw(seed, id, attempts[id] + 1) < rate`` for each id, the same draws at a third of the
    cost (benchmarks share the CPUs with the fake): crc32 runs on in pieces, with the seed's piece
    taken once, and ``x / 2**32 < rate`` is ``x < rate * 2**32`` exactly (a power of two)."""
    crc32, head, limit, tries = zlib.crc32, zlib.crc32(b"%d:" % seed), rate * 2**32, attempts.get
    out = []
    for doc_id in ids:
        n = tries(doc_id, 0) + 1  # .get: a Counter's [] calls __missing__ (Python) for a new id
        tail = _ATTEMPTS[n] if n < 64 else b":%d" % n
        out.append(crc32(tail, crc32(doc_id.encode(), head)) < limit)
    return out


# -- subprocess entry point -------------------------------------------------------------------------


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# As a process of its own (benchmarks, scenarios) the fake never runs CPython's full collections:
# its store holds every id it was sent (a million tuples and dict entries in a benchmark), and each
# full collection walks them all. Under 2% item 429s the fake's own extra allocations triggered
# about 60 of them in a 1M-document run: 1.3 CPU s more than the same run without faults, on the
# cores the shipper it measures shares (bench/delivery_faults.py). The young generations still
# collect the cycles of a request; what the store holds lives until the process ends anyway.
NO_FULL_COLLECTIONS = 2**31 - 1  # the third generation's threshold: never reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.bulk_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="data port (0: any free port)")
    parser.add_argument("--state-file", type=Path, help="load stored documents at start, save them on exit")
    parser.add_argument("--ready-file", type=Path, help="write the ports here (atomically) once listening")
    parser.add_argument(
        "--ids-only", action="store_true", help="keep ids and counters, not documents (benchmarks)"
    )
    parser.add_argument("--faults", default="{}", help="initial fault plan as JSON")
    parser.add_argument(
        "--tls", nargs=2, type=Path, metavar=("CERT", "KEY"), help="serve https on the data port"
    )
    args = parser.parse_args(argv)
    gc.set_threshold(*gc.get_threshold()[:2], NO_FULL_COLLECTIONS)

    srv = BulkServer(
        args.host,
        args.port,
        keep_documents=not args.ids_only,
        tls=(args.tls[0], args.tls[1]) if args.tls else None,
    )
    if args.state_file and args.state_file.exists():
        srv.store.load(args.state_file.read_bytes())
    stop = threading.Event()
    with _signals(stop), srv:
        srv.set_faults(**orjson.loads(args.faults))
        ready = {
            "url": srv.url,
            "port": srv.port,
            "control_url": srv.control_url,
            "control_port": int(srv.control_url.rsplit(":", 1)[1]),
            "pid": os.getpid(),
        }
        line = orjson.dumps(ready)
        if args.ready_file:
            tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
            tmp.write_bytes(line + b"\n")
            os.replace(tmp, args.ready_file)
        sys.stdout.write(line.decode() + "\n")
        sys.stdout.flush()
        stop.wait()
    if args.state_file:
        tmp = args.state_file.with_name(args.state_file.name + ".tmp")
        tmp.write_bytes(srv.store.dump())
        os.replace(tmp, args.state_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
