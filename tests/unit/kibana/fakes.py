"""Loopback fakes of Kibana and Elasticsearch that record every request and answer in the
documented shapes (Kibana: /api/status, saved-objects import, actions and alerting APIs;
Elasticsearch: index templates and indices, with the X-Elastic-Product header the Python client
requires)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

RULE_PUT_FIELDS = {
    "name",
    "tags",
    "schedule",
    "throttle",
    "params",
    "actions",
    "notify_when",
    "alert_delay",
    "flapping",
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded], Answer]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with one routing function."""

    def __init__(self, route: Handler) -> None:
        self.requests: list[Recorded] = []
        self._route = route
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                rec = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                outer.requests.append(rec)
                ans = outer._route(rec)
                data = b"" if ans.body is None else json.dumps(ans.body).encode()
                self.send_response(ans.status)
                self.send_header("Content-Type", "application/json")
                for k, v in ans.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def multipart_file(rec: Recorded) -> tuple[str, str, bytes]:
    """(field name, filename, content) of the single part of a multipart request."""
    head = f"Content-Type: {rec.headers['content-type']}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + rec.body)
    (part,) = list(msg.iter_parts())
    name = part.get_param("name", header="content-disposition")
    filename = part.get_filename()
    payload = part.get_payload(decode=True)
    assert isinstance(name, str) and isinstance(filename, str) and isinstance(payload, bytes)
    return name, filename, payload


class FakeKibana:
    """Kibana's documented behaviour for the calls setup makes. Rules and connectors are
    multiple-isolated saved objects: an id is unique across spaces, so POST of an id that lives in
    another space is 409 (src/core/packages/saved-objects/api-server-internal/src/lib/apis/
    internals/preflight_check_for_create.ts, 'unresolvableConflict'), and GET or PUT of it from
    this space is 404."""

    def __init__(self, status_levels: list[tuple[int, str]] | None = None, version: str = "8.15.0") -> None:
        self.status_levels = list(status_levels or [(200, "available")])
        self.version = version
        self.import_errors: list[dict[str, Any]] = []
        # Rules ("alert") and connectors ("action") are saved objects of multiple-isolated types:
        # one id in the whole Kibana, living in one space (space_of; unset means "default").
        self.connectors: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.space_of: dict[str, str] = {}
        self.conflict_on_create: set[str] = set()  # created by someone else between GET and POST
        self.imported: list[bytes] = []
        self.server = LoopbackServer(self.route)

    def route(self, rec: Recorded) -> Answer:
        path, space = rec.path, "default"
        if path.startswith("/s/"):
            _, _, space, rest = path.split("/", 3)
            path = "/" + rest
        if rec.headers.get("kbn-xsrf") != "true" and rec.method != "GET":
            return Answer(
                400,
                {
                    "statusCode": 400,
                    "error": "Bad Request",
                    "message": "Request must contain a kbn-xsrf header.",
                },
            )
        if path == "/api/status":
            code, level = self.status_levels.pop(0) if len(self.status_levels) > 1 else self.status_levels[0]
            if code != 200:
                return Answer(
                    code,
                    {
                        "statusCode": code,
                        "error": "Service Unavailable",
                        "message": "Kibana server is not ready yet",
                    },
                )
            return Answer(
                200,
                {
                    "name": "kibana",
                    "version": {"number": self.version, "build_snapshot": False},
                    "status": {"overall": {"level": level, "summary": level}},
                },
            )
        if path.startswith("/api/saved_objects/_import"):
            return self._import(rec)
        for prefix, store, kind in (
            ("/api/actions/connector/", self.connectors, "action"),
            ("/api/alerting/rule/", self.rules, "alert"),
        ):
            if path.startswith(prefix):
                return self._crud(rec, space, path[len(prefix) :], store, kind)
        return Answer(404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"})

    def _import(self, rec: Recorded) -> Answer:
        if "overwrite=true" not in rec.path:
            return Answer(400, {"message": "expected overwrite=true"})
        name, filename, content = multipart_file(rec)
        if name != "file" or not filename.endswith(".ndjson"):
            return Answer(
                400, {"statusCode": 400, "error": "Bad Request", "message": "Invalid file extension"}
            )
        self.imported.append(content)
        objs = [json.loads(line) for line in content.splitlines() if line.strip()]
        failed = {e["id"] for e in self.import_errors}
        ok = [o for o in objs if o["id"] not in failed]
        return Answer(
            200,
            {
                "success": not self.import_errors,
                "successCount": len(ok),
                "successResults": [{"type": o["type"], "id": o["id"], "meta": {}} for o in ok],
                "errors": self.import_errors,
            },
        )

    def _visible(self, store: dict[str, dict[str, Any]], oid: str, space: str) -> bool:
        """In this space: the object lives here, or is a preconfigured connector (in every space)."""
        if oid not in store:
            return False
        return bool(store[oid].get("is_preconfigured")) or self.space_of.get(oid, "default") == space

    def _crud(
        self, rec: Recorded, space: str, oid: str, store: dict[str, dict[str, Any]], kind: str
    ) -> Answer:
        not_found = Answer(
            404,
            {"statusCode": 404, "error": "Not Found", "message": f"Saved object [{kind}/{oid}] not found"},
        )
        conflict = Answer(
            409, {"statusCode": 409, "error": "Conflict", "message": f"Saved object [{kind}/{oid}] conflict"}
        )
        if rec.method == "GET":
            return Answer(200, {"id": oid, **store[oid]}) if self._visible(store, oid, space) else not_found
        body = rec.json()
        if rec.method == "POST":
            if oid in self.conflict_on_create:
                self.conflict_on_create.discard(oid)
                store[oid] = body
                self.space_of[oid] = space
                return conflict
            if oid in store:  # in any space: preflight_check_for_create answers a conflict
                return conflict
            store[oid] = body
            self.space_of[oid] = space
            return Answer(200, {"id": oid, **body})
        if rec.method == "PUT":
            if not self._visible(store, oid, space):
                return not_found
            allowed = RULE_PUT_FIELDS if kind == "alert" else {"name", "config", "secrets"}
            extra = sorted(set(body) - allowed)
            if extra:
                return Answer(
                    400,
                    {
                        "statusCode": 400,
                        "error": "Bad Request",
                        "message": f"[request body.{extra[0]}]: definition for this key is missing",
                    },
                )
            store[oid] = {**store[oid], **body}
            return Answer(200, {"id": oid, **store[oid]})
        return Answer(405, {"message": "method not allowed"})


class FakeElasticsearch:
    """Answers index-template and index calls; every answer carries X-Elastic-Product."""

    PRODUCT: ClassVar[dict[str, str]] = {"X-Elastic-Product": "Elasticsearch"}

    def __init__(self, version: str = "8.15.0") -> None:
        self.version = version
        self.indices: set[str] = set()
        self.templates: dict[str, Any] = {}
        self.server = LoopbackServer(self.route)

    def route(self, rec: Recorded) -> Answer:
        path = rec.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if not parts:
            return Answer(
                200, {"version": {"number": self.version}, "tagline": "You Know, for Search"}, self.PRODUCT
            )
        if parts[0] == "_component_template" and tuple(map(int, self.version.split(".")[:2])) < (7, 8):
            # Before composable templates (7.8) the path matches only other routes' methods.
            wrong = f"Incorrect HTTP method for uri [{rec.path}] and method [{rec.method}], allowed: [POST]"
            return Answer(405, {"error": wrong, "status": 405}, self.PRODUCT)
        if rec.method == "PUT" and parts[0].startswith("_") and len(parts) >= 2:
            self.templates["/".join(parts)] = rec.json() if rec.body else None
            return Answer(200, {"acknowledged": True}, self.PRODUCT)
        if parts[0].startswith("_"):
            return Answer(200, {"acknowledged": True}, self.PRODUCT)
        index = parts[0]
        if rec.method == "HEAD" and len(parts) == 1:
            return Answer(200 if index in self.indices else 404, None, self.PRODUCT)
        if rec.method == "PUT" and len(parts) == 1:
            if index in self.indices:
                err = {
                    "type": "resource_already_exists_exception",
                    "reason": f"index [{index}] already exists",
                }
                return Answer(400, {"error": {"root_cause": [err], **err}, "status": 400}, self.PRODUCT)
            self.indices.add(index)
            return Answer(200, {"acknowledged": True, "index": index}, self.PRODUCT)
        if rec.method == "PUT" and parts[1:] == ["_mapping"]:
            return Answer(200, {"acknowledged": True}, self.PRODUCT)
        return Answer(404, {"error": {"type": "not_found"}, "status": 404}, self.PRODUCT)
