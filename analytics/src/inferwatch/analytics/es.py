"""The one module of the analytics worker that calls Elasticsearch (search, and the baselines
index). Bodies come from ``analytics.queries``; failures become ``ElasticsearchError`` with the
index, the HTTP status and Elasticsearch's own reason, never a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from inferwatch.core.config import ElasticsearchConfig

log = logging.getLogger(__name__)


class SearchClient(Protocol):
    """What the worker needs of ``elasticsearch.Elasticsearch`` (a stub in tests and benches)."""

    @property
    def search(self) -> Callable[..., Any]: ...


class ElasticsearchError(Exception):
    """A request to Elasticsearch failed; ``status`` is the HTTP status when there was an answer;
    ``reason`` names the kind of failure in the worker's error counts."""

    reason = "elasticsearch"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def make_client(cfg: ElasticsearchConfig) -> Elasticsearch:
    """A client from the config: TLS verification as configured (on by default), API key or basic
    auth revealed only here, gzip request bodies (vocabulary filters can be large)."""
    kwargs: dict[str, Any] = {
        "verify_certs": cfg.verify_certs,
        "request_timeout": float(cfg.request_timeout),
        "http_compress": True,
        "max_retries": 2,
        "retry_on_timeout": True,
    }
    if cfg.ca_certs is not None:
        kwargs["ca_certs"] = str(cfg.ca_certs)
    if cfg.ssl_assert_fingerprint:
        kwargs["ssl_assert_fingerprint"] = cfg.ssl_assert_fingerprint
    api_key = cfg.resolved_api_key()
    password = cfg.resolved_password()
    if api_key is not None:
        kwargs["api_key"] = api_key.reveal()
    elif cfg.username is not None:
        kwargs["basic_auth"] = (cfg.username, password.reveal() if password is not None else "")
    return Elasticsearch(list(cfg.hosts), **kwargs)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        info = exc.info if isinstance(exc.info, Mapping) else {}
        err = info.get("error") if isinstance(info, Mapping) else None
        if isinstance(err, Mapping):
            root = (err.get("root_cause") or [err])[0]
            return f"{root.get('type', err.get('type'))}: {root.get('reason', err.get('reason'))}"
        return str(exc.message)
    return str(exc)


def _status(exc: Exception) -> int | None:
    return int(exc.status_code) if isinstance(exc, ApiError) else None


# A model that has not shipped yet has no data stream: with the configured namespace the index is
# a concrete name (``logs-inferwatch.<m>-default``), which Elasticsearch answers with 404
# index_not_found_exception unless ``ignore_unavailable`` is true (it defaults to false for
# search). ``allow_no_indices`` (true by default) is sent too, so that a pattern or a name that
# resolves to nothing gives an empty response (no hits, no ``aggregations``) on every version.
# ``allow_partial_search_results`` is false: a shard that fails (a backing index whose older
# mapping has a feature as keyword refuses a ``range`` aggregation on it) fails the whole search
# with ``search_phase_execution_exception`` instead of answering 200 with the other shards' counts,
# which the detectors would take for the whole window.
SEARCH_PARAMS: Mapping[str, Any] = {
    "ignore_unavailable": True,
    "allow_no_indices": True,
    "allow_partial_search_results": False,
}


class PartialResultsError(ElasticsearchError):
    """Elasticsearch answered (or would have answered) with the counts of only some shards: a
    failed shard, or a timeout. Evaluating them would report findings as if the window were whole."""

    reason = "partial_results"


def _shard_failures(failures: Any) -> str:
    """``index[shard]: type: reason`` of each failed shard (what to fix: usually a mapping)."""
    parts: list[str] = []
    for failure in failures if isinstance(failures, list) else []:
        if not isinstance(failure, Mapping):
            continue
        cause = failure.get("reason")
        if isinstance(cause, Mapping):
            cause = f"{cause.get('type')}: {cause.get('reason')}"
        parts.append(f"{failure.get('index', '?')}[{failure.get('shard', '?')}]: {cause}")
    return "; ".join(parts)


_PARTIAL_FIX = (
    "the window was not evaluated (its counts would be partial); fix the failing index (its "
    "mapping, or roll the data stream over) and the next interval evaluates it again"
)


def check_complete(index: str, response: Mapping[str, Any]) -> None:
    """Raise ``PartialResultsError`` unless every shard answered in time. Kept beside
    ``allow_partial_search_results=false``: a search that times out still answers 200 with
    ``timed_out: true``, and a server or proxy that ignores the parameter still reports
    ``_shards.failed``."""
    shards = response.get("_shards")
    shards = shards if isinstance(shards, Mapping) else {}
    failed = int(shards.get("failed") or 0)
    if failed:
        detail = _shard_failures(shards.get("failures"))
        raise PartialResultsError(
            f"search on {index} answered with {failed} of {shards.get('total', '?')} shards failed"
            f"{': ' + detail if detail else ''}; {_PARTIAL_FIX}"
        )
    if response.get("timed_out"):
        raise PartialResultsError(
            f"search on {index} timed out: only the shards that answered in time were counted; "
            "the window was not evaluated; raise search.default_search_timeout or "
            "elasticsearch.request_timeout"
        )


def _search_error(index: str, exc: Exception) -> ElasticsearchError:
    """A failed search as an ``ElasticsearchError``; one refused because some shards failed
    (``search_phase_execution_exception`` with ``failed_shards``, what
    ``allow_partial_search_results=false`` answers) as a ``PartialResultsError`` naming them."""
    status = _status(exc)
    info = exc.info if isinstance(exc, ApiError) and isinstance(exc.info, Mapping) else {}
    err = info.get("error") if isinstance(info, Mapping) else None
    if isinstance(err, Mapping) and err.get("type") == "search_phase_execution_exception":
        detail = _shard_failures(err.get("failed_shards"))
        if detail:
            return PartialResultsError(
                f"search on {index} failed ({status}): shards failed: {detail}; {_PARTIAL_FIX}", status
            )
    return ElasticsearchError(f"search on {index} failed ({status or 'no answer'}): {_reason(exc)}", status)


def search(client: SearchClient, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Run one search; the response body as a dict (empty tables when ``index`` does not exist).
    Raises ``ElasticsearchError``, and ``PartialResultsError`` when some shards failed or the
    search timed out (never the counts of part of the window)."""
    try:
        response = client.search(index=index, **SEARCH_PARAMS, **body)
    except (ApiError, TransportError) as exc:
        raise _search_error(index, exc) from exc
    raw = dict(getattr(response, "body", response))
    check_complete(index, raw)
    return raw


def get_document(client: Elasticsearch, index: str, doc_id: str) -> dict[str, Any] | None:
    """The ``_source`` of one document, or None when the index or the document does not exist."""
    try:
        response = client.get(index=index, id=doc_id)
    except NotFoundError:
        return None
    except (ApiError, TransportError) as exc:
        status = _status(exc)
        raise ElasticsearchError(
            f"get {index}/{doc_id} failed ({status or 'no answer'}): {_reason(exc)}", status
        ) from exc
    return dict(response["_source"])


def ensure_index(
    client: Elasticsearch,
    index: str,
    mappings: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
) -> None:
    """Create ``index`` with ``mappings`` (and ``settings``) unless it exists."""
    try:
        if client.indices.exists(index=index):
            return
        client.indices.create(
            index=index, mappings=dict(mappings), settings=dict(settings) if settings is not None else None
        )
    except ApiError as exc:
        if "resource_already_exists_exception" in _reason(exc):
            return
        raise ElasticsearchError(
            f"creating {index} failed ({exc.status_code}): {_reason(exc)}", _status(exc)
        ) from exc
    except TransportError as exc:
        raise ElasticsearchError(f"creating {index} failed (no answer): {_reason(exc)}") from exc


def index_document(client: Elasticsearch, index: str, doc_id: str, document: Mapping[str, Any]) -> None:
    """Write (create or replace) one document and make it visible to the next search."""
    try:
        client.index(index=index, id=doc_id, document=dict(document), refresh="wait_for")
    except (ApiError, TransportError) as exc:
        status = _status(exc)
        raise ElasticsearchError(
            f"index {index}/{doc_id} failed ({status or 'no answer'}): {_reason(exc)}", status
        ) from exc


__all__ = [
    "SEARCH_PARAMS",
    "ElasticsearchError",
    "PartialResultsError",
    "SearchClient",
    "check_complete",
    "ensure_index",
    "get_document",
    "index_document",
    "make_client",
    "search",
]
