"""A small Kibana HTTP client for ``inferwatch setup``: readiness, saved-object import,
connectors and rules. Space-aware (``/s/<space>/api/...``), TLS verified by default, credentials
from the config's ``Secret`` values revealed only when a request is built, never logged.

Idempotent upserts: GET the object by its stable id; 404 -> POST (create); otherwise PUT with only
the fields the update API accepts. A 409 on create (someone created it meanwhile) falls back to PUT;
a 404 to that PUT means the id lives in another space, and the error says so. In a non-default
space an object an earlier version created under its space-less id is found and updated in place.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3

from inferwatch.core.auth import authorization_value
from inferwatch.core.config import KibanaConfig
from inferwatch.kibana.rules import ConnectorSpec, RuleSpec

Progress = Callable[[str], None]


class KibanaError(Exception):
    """A request was refused or failed; the message names the request, never its body."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        self.method, self.path, self.status = method, path, status
        where = f"{method} {path}"
        super().__init__(
            f"{where}: HTTP {status}: {message}" if status is not None else f"{where}: {message}"
        )


class KibanaUnavailable(Exception):
    """Kibana did not report ``available`` before the deadline."""


@dataclass(frozen=True)
class ObjectError:
    id: str
    type: str
    title: str
    error_type: str
    message: str

    def __str__(self) -> str:
        title = f" {self.title!r}" if self.title else ""
        return f"{self.type} {self.id}{title}: {self.error_type}: {self.message}"


class ImportFailed(Exception):
    """The import answered but some objects were not imported; ``errors`` names each one."""

    def __init__(self, errors: list[ObjectError], success_count: int) -> None:
        self.errors = errors
        self.success_count = success_count
        lines = "\n".join(f"  {e}" for e in errors) or "  (success: false without per-object errors)"
        super().__init__(f"saved-object import failed for {len(errors)} object(s):\n{lines}")


@dataclass(frozen=True)
class ImportResult:
    success_count: int


@dataclass(frozen=True)
class Upserted:
    outcome: str  # created | updated | preconfigured
    id: str  # the id the object has in Kibana (an earlier version's id when that one was kept)


CONNECTOR_ROUTE = "/api/actions/connector/"
RULE_ROUTE = "/api/alerting/rule/"


class KibanaClient:
    def __init__(self, cfg: KibanaConfig, request_timeout: float = 30.0) -> None:
        self._cfg = cfg
        self._base = cfg.url.rstrip("/")
        self._timeout = urllib3.Timeout(total=request_timeout)
        kwargs: dict[str, Any] = {"retries": False}
        if self._base.startswith("https://"):
            kwargs["cert_reqs"] = "CERT_REQUIRED" if cfg.verify_certs else "CERT_NONE"
            if cfg.ca_certs is not None:
                kwargs["ca_certs"] = str(cfg.ca_certs)
        self._http = urllib3.PoolManager(**kwargs)
        self._stop = threading.Event()
        self.version: str | None = None  # Kibana's version.number, once /api/status answered

    # --- plumbing ------------------------------------------------------------------------

    def api(self, path: str) -> str:
        """The space-aware path of an ``/api/...`` route."""
        space = self._cfg.space
        return f"/s/{quote(space, safe='')}{path}" if space and space != "default" else path

    def _auth_headers(self) -> dict[str, str]:
        cfg = self._cfg
        value = authorization_value(cfg.resolved_api_key(), cfg.username, cfg.resolved_password())
        return {"Authorization": value} if value is not None else {}

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """Send one request; returns (status, decoded JSON or None). Raises KibanaError when
        Kibana cannot be reached."""
        headers = {"kbn-xsrf": "true", "Accept": "application/json", **self._auth_headers()}
        url = self._base + path
        try:
            if fields is not None:
                resp = self._http.request(
                    method,
                    url,
                    fields=dict(fields),
                    headers=headers,
                    timeout=self._timeout,
                    encode_multipart=True,
                )
            else:
                data = None
                if body is not None:
                    data = json.dumps(body).encode("utf-8")
                    headers["Content-Type"] = "application/json"
                resp = self._http.request(method, url, body=data, headers=headers, timeout=self._timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise KibanaError(
                method, path, None, f"cannot reach Kibana at {self._base}: {_reason(exc)}"
            ) from None
        try:
            decoded = json.loads(resp.data) if resp.data else None
        except ValueError:
            decoded = None
        return resp.status, decoded

    def _expect(self, method: str, path: str, status: int, decoded: Any, ok: tuple[int, ...] = (200,)) -> Any:
        if status not in ok:
            raise KibanaError(method, path, status, _error_message(decoded))
        return decoded

    # --- readiness -----------------------------------------------------------------------

    def status_level(self) -> str:
        """``available``, ``degraded``, ``unavailable``, ``critical``, or why it is not known."""
        status, decoded = self.request("GET", "/api/status")
        if status in (401, 403):
            raise KibanaError(
                "GET", "/api/status", status, _error_message(decoded) + " (check kibana credentials)"
            )
        if status != 200 or not isinstance(decoded, dict):
            return f"HTTP {status}"
        number = (decoded.get("version") or {}).get("number")
        if isinstance(number, str) and number:
            self.version = number
        overall = (decoded.get("status") or {}).get("overall") or {}
        return str(overall.get("level") or overall.get("state") or "unknown")

    def wait_available(self, timeout: float, progress: Progress, interval: float = 5.0) -> None:
        """Poll ``GET /api/status`` until ``status.overall.level == available``."""
        start = time.monotonic()
        deadline = start + timeout
        last = ""
        while True:
            try:
                level = self.status_level()
            except KibanaError as exc:
                if exc.status in (401, 403):
                    raise
                level = "not reachable"
            if level == "available":
                progress(f"Kibana is available ({time.monotonic() - start:.0f}s)")
                return
            if level != last:
                progress(f"waiting for Kibana at {self._base}: {level}")
                last = level
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KibanaUnavailable(
                    f"Kibana at {self._base} not available after {timeout:.0f}s (last: {level})"
                )
            self._stop.wait(min(interval, remaining))

    def close(self) -> None:
        self._stop.set()
        self._http.clear()

    # --- saved objects -------------------------------------------------------------------

    def import_objects(self, ndjson: bytes, filename: str = "inferwatch.ndjson") -> ImportResult:
        path = self.api("/api/saved_objects/_import") + "?overwrite=true"
        status, decoded = self.request(
            "POST", path, fields={"file": (filename, ndjson, "application/ndjson")}
        )
        body = self._expect("POST", path, status, decoded)
        if not isinstance(body, dict):
            raise KibanaError("POST", path, status, "the import answered without a JSON body")
        errors = [_import_error(e) for e in body.get("errors") or []]
        count = int(body.get("successCount") or 0)
        if errors or body.get("success") is not True:
            raise ImportFailed(errors, count)
        return ImportResult(count)

    # --- connectors and rules ------------------------------------------------------------

    def upsert_connector(self, spec: ConnectorSpec) -> Upserted:
        """``created``, ``updated`` or ``preconfigured``, with the id the connector has."""
        if spec.preconfigured:
            path = self.api(f"{CONNECTOR_ROUTE}{quote(spec.id, safe='')}")
            status, decoded = self.request("GET", path)
            if status == 404:
                raise KibanaError(
                    "GET", path, 404, f"preconfigured connector {spec.id!r} is not defined in kibana.yml"
                )
            self._expect("GET", path, status, decoded)
            return Upserted("preconfigured", spec.id)
        return self._upsert(
            CONNECTOR_ROUTE, "connector", spec.id, spec.previous_id, spec.create_body(), spec.update_body()
        )

    def upsert_rule(self, spec: RuleSpec) -> Upserted:
        """``created`` or ``updated``, with the id the rule has."""
        return self._upsert(
            RULE_ROUTE, "rule", spec.id, spec.previous_id, spec.create_body(), spec.update_body()
        )

    def _upsert(
        self,
        route: str,
        kind: str,
        oid: str,
        earlier: str | None,
        create: Mapping[str, Any],
        update: Mapping[str, Any],
    ) -> Upserted:
        path = self.api(f"{route}{quote(oid, safe='')}")
        status, decoded = self.request("GET", path)
        if status == 404 and earlier is not None:
            # An earlier version created it in this space under its space-less id: keep that one.
            old = self.api(f"{route}{quote(earlier, safe='')}")
            old_status, old_decoded = self.request("GET", old)
            if old_status == 200:
                put_status, put_decoded = self.request("PUT", old, update)
                self._expect("PUT", old, put_status, put_decoded)
                return Upserted("updated", earlier)
            if old_status != 404:
                self._expect("GET", old, old_status, old_decoded)
        if status == 404:
            status, decoded = self.request("POST", path, create)
            if status != 409:
                self._expect("POST", path, status, decoded)
                return Upserted("created", oid)
            # 409: created meanwhile in this space (then PUT updates it), or the id lives in
            # another space (then this space answers 404 to the PUT).
        else:
            self._expect("GET", path, status, decoded)
        status, decoded = self.request("PUT", path, update)
        if status == 404:
            raise KibanaError(
                "PUT",
                path,
                404,
                f"{kind} id {oid} exists in another Kibana space (rule and connector ids are unique "
                "across spaces) and is not visible from this one; delete it there or set kibana.space "
                "to the space that holds it",
            )
        self._expect("PUT", path, status, decoded)
        return Upserted("updated", oid)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.__class__.__name__)


def _error_message(decoded: Any) -> str:
    if isinstance(decoded, dict):
        return str(decoded.get("message") or decoded.get("error") or "no message")
    return "no message"


def _import_error(e: Mapping[str, Any]) -> ObjectError:
    err = e.get("error") or {}
    etype = str(err.get("type") or "unknown")
    message = err.get("message")
    if not message and etype == "missing_references":
        refs = ", ".join(f"{r.get('type')} {r.get('id')}" for r in err.get("references") or [])
        message = f"references objects that do not exist: {refs}"
    if not message:
        message = {
            "conflict": "an object with this id exists and overwrite was refused",
            "ambiguous_conflict": "several existing objects match",
            "unsupported_type": "this Kibana does not know the object type",
        }.get(etype, "no message")
    title = str(e.get("title") or (e.get("meta") or {}).get("title") or "")
    return ObjectError(str(e.get("id", "?")), str(e.get("type", "?")), title, etype, str(message))
