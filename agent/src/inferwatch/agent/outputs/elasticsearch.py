"""Ship ready bulk bodies to Elasticsearch: one ``POST /_bulk`` per spool record.

Why urllib3 directly and not ``elasticsearch``/``elastic_transport``: the spool already holds the
gzip-compressed NDJSON body, so all this module needs is "send these bytes, give me the status,
headers and bytes back". The official client would re-serialize or at least wrap the body, parse
the answer into Python objects with the stdlib ``json`` (we parse it once with orjson, and in the
common case only count the items), run its own retry loop (ours lives in the ship loop, with the
spool as the buffer), and importing it costs the agent ~15 MB of RSS. ``elastic_transport`` is
itself built on urllib3; going direct keeps the same TLS machinery with fewer layers:

- TLS verification is on by default (``cert_reqs=CERT_REQUIRED``, hostname checked), ``ca_certs``
  adds a trusted CA, ``ssl_assert_fingerprint`` pins the server certificate's SHA-256 (what
  Elasticsearch prints at first start) instead of a CA chain, as the official client does;
  ``verify_certs: false`` is allowed but logged as a warning.
- Like the official client we require ``X-Elastic-Product: Elasticsearch`` on every 2xx answer, so
  a proxy or another product answering 200 is never taken for a successful bulk.
- Transport retries are off (``retries=False``); redirects are not followed.

Content type: plain ``application/x-ndjson`` / ``application/json``. Elasticsearch 7.x, 8.x and 9.x
all accept these; the versioned ``application/vnd.elasticsearch+x-ndjson; compatible-with=N``
media type is accepted only for N in (server major - 1, server major), so plain types serve both
8 and 9 without knowing the server in advance. ``filter_path`` trims the answer to what
``classify_response`` reads (``errors`` and each item's ``status`` and ``error``).
"""

from __future__ import annotations

import gzip
import logging
import threading
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import HTTPError, InsecureRequestWarning, ProtocolError, SSLError
from urllib3.util import Timeout, parse_url

from inferwatch.agent.bulkbody import compress
from inferwatch.agent.model import ItemResult, Outcome
from inferwatch.agent.outputs.base import OutputRefused, OutputUnavailable, RequestTooLarge
from inferwatch.agent.outputs.classify import MalformedResponse, classify_response, error_summary, retry_after
from inferwatch.core import __version__
from inferwatch.core.auth import authorization_value
from inferwatch.core.config import ElasticsearchConfig
from inferwatch.core.contract import LOGS_PATTERN

log = logging.getLogger(__name__)

BULK_PATH = "/_bulk?filter_path=errors,items.*.status,items.*.error"
WRITE_PRIVILEGES = ("create_doc", "auto_configure")
PRODUCT_HEADER = "x-elastic-product"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def authorization_header(cfg: ElasticsearchConfig) -> str | None:
    """The ``Authorization`` value for the configured credentials (None when there are none)."""
    return authorization_value(cfg.resolved_api_key(), cfg.username, cfg.resolved_password())


class _Host:
    """One configured URL with its connection pool."""

    def __init__(self, url: str, cfg: ElasticsearchConfig, maxsize: int) -> None:
        parsed = parse_url(url)
        self.url = url.rstrip("/")
        self.prefix = (parsed.path or "").rstrip("/")
        scheme = parsed.scheme or "http"
        port = parsed.port or (443 if scheme == "https" else 9200)
        host = parsed.host or "localhost"
        self.pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            tls: dict[str, Any] = {}
            if cfg.ssl_assert_fingerprint:
                # Pinning replaces the CA chain (a self-signed first-start certificate has none).
                tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
                tls["assert_fingerprint"] = cfg.ssl_assert_fingerprint.replace(":", "").lower()
            elif not cfg.verify_certs:
                tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
            else:
                tls = {"cert_reqs": "CERT_REQUIRED"}
                if cfg.ca_certs is not None:
                    tls["ca_certs"] = str(cfg.ca_certs)
            self.pool = urllib3.HTTPSConnectionPool(host, port, maxsize=maxsize, block=False, **tls)
        else:
            self.pool = urllib3.HTTPConnectionPool(host, port, maxsize=maxsize, block=False)


class ElasticsearchOutput:
    """``Output`` to an Elasticsearch cluster (see the module docstring for the choices made).

    Thread-safe: the ship loop's sender threads (``agent.output.max_in_flight``) share it, with
    ``pool_maxsize`` keep-alive connections per host.
    """

    def __init__(
        self,
        cfg: ElasticsearchConfig,
        *,
        user_agent: str = f"inferwatch/{__version__}",
        pool_maxsize: int = 2,
    ) -> None:
        if not cfg.hosts:
            raise ValueError("elasticsearch.hosts is empty")
        self._cfg = cfg
        self._hosts = [_Host(url, cfg, pool_maxsize) for url in cfg.hosts]
        self._current = 0
        self._lock = threading.Lock()
        self._timeout = Timeout(
            connect=min(10.0, float(cfg.request_timeout)), read=float(cfg.request_timeout)
        )
        self._level = cfg.compression_level  # 0: off, the split halves stored too
        common = {"user-agent": user_agent, "accept": "application/json"}
        auth = authorization_header(cfg)
        if auth is not None:
            common["authorization"] = auth
        self._json_headers = {**common, "content-type": "application/json"}
        self._bulk_headers = {**common, "content-type": "application/x-ndjson", "content-encoding": "gzip"}
        if (
            any(h.url.startswith("https") for h in self._hosts)
            and not cfg.verify_certs
            and not cfg.ssl_assert_fingerprint
        ):
            urllib3.disable_warnings(InsecureRequestWarning)
            log.warning("elasticsearch.verify_certs is false: the server's TLS certificate is not checked")

    def __repr__(self) -> str:  # never shows credentials
        return f"ElasticsearchOutput(hosts={[h.url for h in self._hosts]!r})"

    # -- the Output protocol -------------------------------------------------------------------

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        """POST one gzip bulk body; one result per item. A 413 splits the body in halves."""
        if items == 0:
            return []
        try:
            return self._bulk(body_gz, items)
        except RequestTooLarge:
            return self._send_split(gzip.decompress(body_gz).split(b"\n")[: 2 * items], items)

    def check(self) -> str:
        """GET / (product, version, cluster) and, when security is on, whether our credentials may
        write the data streams. Raises ``OutputRefused`` with the fix, ``OutputUnavailable`` when
        unreachable."""
        resp, host = self._request("GET", "/", None, self._json_headers)
        info = self._json(resp)
        version = str(info.get("version", {}).get("number", "?"))
        cluster = str(info.get("cluster_name", "?"))
        where = f"Elasticsearch {version} at {host.url} (cluster {cluster})"
        body = orjson.dumps({"index": [{"names": [LOGS_PATTERN], "privileges": list(WRITE_PRIVILEGES)}]})
        priv, _ = self._request(
            "POST", "/_security/user/_has_privileges", body, self._json_headers, check=False
        )
        if priv.status == 401:
            self._raise_for_status(priv, host)
        if priv.status != 200:
            # Security disabled answers an error here: there are no privileges to check.
            return f"{where}; security off, privileges not checked ({error_summary(priv.body)[:100]})"
        self._raise_for_status(priv, host)  # the product header
        granted = self._json(priv)
        user = granted.get("username", "?")
        missing = {p for entry in granted.get("index", {}).values() for p, ok in entry.items() if not ok}
        if "create_doc" in missing:
            raise OutputRefused(
                f"user {user!r} may not write {LOGS_PATTERN} (missing {', '.join(sorted(missing))}): "
                f"grant a role with index privileges {', '.join(WRITE_PRIVILEGES)} on {LOGS_PATTERN}"
            )
        if "auto_configure" in missing:
            # Writing into existing data streams works; a new model or namespace would be refused.
            return (
                f"{where}; user {user} may write existing {LOGS_PATTERN} data streams but not create new "
                f"ones: grant auto_configure on {LOGS_PATTERN}, or create them with setup"
            )
        return f"{where}; user {user} may write {LOGS_PATTERN}"

    def close(self) -> None:
        for h in self._hosts:
            h.pool.close()

    # -- internals -------------------------------------------------------------------------------

    def _bulk(self, body_gz: bytes, items: int) -> list[ItemResult]:
        resp, host = self._request("POST", BULK_PATH, body_gz, self._bulk_headers)
        try:
            results = classify_response(resp.body)
        except MalformedResponse as exc:
            raise OutputUnavailable(f"{host.url}: {exc}", resp.status) from exc
        if len(results) != items:
            raise OutputUnavailable(
                f"{host.url} answered {len(results)} bulk items for {items} sent", resp.status
            )
        return results

    def _send_split(self, lines: list[bytes], items: int) -> list[ItemResult]:
        if items == 1:
            size = sum(len(x) + 1 for x in lines)
            reason = f"one document of {size} bytes is over the server's http.max_content_length"
            return [ItemResult(Outcome.REJECTED, 413, "request_too_large", reason)]
        half = items // 2
        results: list[ItemResult] = []
        for part, n in ((lines[: 2 * half], half), (lines[2 * half :], items - half)):
            body = compress(b"\n".join(part) + b"\n", self._level)
            try:
                results += self._bulk(body, n)
            except RequestTooLarge:
                results += self._send_split(part, n)
        return results

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], check: bool = True
    ) -> tuple[Response, _Host]:
        """Try each host once, starting with the last one that answered; with ``check``, raise for
        any status that is not a 2xx from Elasticsearch."""
        failures: list[str] = []
        with self._lock:
            start = self._current
        for i in range(len(self._hosts)):
            index = (start + i) % len(self._hosts)
            host = self._hosts[index]
            raw = self._urlopen(host, method, path, body, headers, failures)
            if raw is None:
                continue
            with self._lock:
                self._current = index
            resp = Response(raw.status, {k.lower(): v for k, v in raw.headers.items()}, raw.data or b"")
            if check:
                self._raise_for_status(resp, host)
            return resp, host
        raise OutputUnavailable("cannot reach Elasticsearch: " + "; ".join(failures))

    def _urlopen(
        self,
        host: _Host,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        failures: list[str],
    ) -> urllib3.BaseHTTPResponse | None:
        """One request to one host; None (and a note in ``failures``) when it could not be made.

        A keep-alive connection the server closed while idle fails with ``ProtocolError`` on first
        use: that one is tried once more on a fresh connection. Resending is safe for bulk bodies
        (every action is a ``create`` with a fixed ``_id``: a copy that got through answers 409).
        """
        for attempt in (1, 2):
            try:
                return host.pool.urlopen(
                    method,
                    host.prefix + path,
                    body=body,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    timeout=self._timeout,
                    preload_content=True,
                )
            except SSLError as exc:
                raise OutputRefused(
                    f"TLS handshake with {host.url} failed ({exc}); set elasticsearch.ca_certs to the CA "
                    "that signed its certificate, or ssl_assert_fingerprint to its SHA-256 fingerprint"
                ) from exc
            except ProtocolError as exc:
                if attempt == 1:
                    continue
                failures.append(f"{host.url}: {type(exc).__name__}: {exc}")
            except (HTTPError, OSError) as exc:
                failures.append(f"{host.url}: {type(exc).__name__}: {exc}")
                break
        return None

    @staticmethod
    def _raise_for_status(resp: Response, host: _Host) -> None:
        status = resp.status
        if 200 <= status < 300:
            if resp.headers.get(PRODUCT_HEADER) != "Elasticsearch":
                raise OutputRefused(
                    f"{host.url} answered without 'X-Elastic-Product: Elasticsearch': it is not Elasticsearch "
                    "(or older than 7.14, or a proxy that drops headers); point elasticsearch.hosts at Elasticsearch"
                )
            return
        summary = error_summary(resp.body)
        if status == 401:
            raise OutputRefused(
                f"{host.url} refused the credentials ({summary}); check elasticsearch.api_key "
                "(or username/password) and that the key has not expired",
                status,
            )
        if status == 403:
            raise OutputRefused(
                f"{host.url}: not allowed ({summary}); grant the user or API key the index privileges "
                f"{', '.join(WRITE_PRIVILEGES)} on {LOGS_PATTERN}",
                status,
            )
        if status == 413:
            raise RequestTooLarge(f"{host.url}: request body too large ({summary})", status)
        if status == 429 or status >= 500:
            raise OutputUnavailable(f"{host.url}: {summary}", status, retry_after(resp.headers))
        raise OutputRefused(f"{host.url} refused the request: {summary}", status)

    @staticmethod
    def _json(resp: Response) -> dict[str, Any]:
        try:
            parsed = orjson.loads(resp.body)
        except orjson.JSONDecodeError as exc:
            raise OutputUnavailable(f"answer is not JSON: {exc}", resp.status) from exc
        if not isinstance(parsed, dict):
            raise OutputUnavailable("answer is not a JSON object", resp.status)
        return parsed
