"""Bulk answers -> per-item outcomes (pure functions, no I/O).

Every item lands in exactly one of libbeat's four buckets (``agent.model.Outcome``):

==========================  =============  ==========================================
item status                 outcome        what the ship loop does
==========================  =============  ==========================================
200, 201                    CREATED        done
409                         DUPLICATE      done, counted (a replay of a stored ``_id``)
429, >= 500 (or no status)  RETRY          stays in the spool, sent again with backoff
other 4xx                   REJECTED       dead letter, with the error type and reason
==========================  =============  ==========================================

``retry_after`` reads an HTTP ``Retry-After`` header (seconds or an HTTP-date).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import orjson

from inferwatch.agent.model import ItemResult, Outcome

MAX_REASON_CHARS = 2000  # an error reason can quote a whole document; the dead letter keeps the start

_CREATED = ItemResult(Outcome.CREATED, 201)
_ALL_OK = b'"errors":false'
_STATUS_KEY = b'"status":'
_ITEM_KEY = b'{"create":'  # starts every item of an answer to create actions
_CREATED_ITEM = b'{"status":201}},'  # after _ITEM_KEY: a created item of a filtered answer...
_CREATED_LAST = b'{"status":201}}]}'  # ... and the last one


class MalformedResponse(ValueError):
    """The bulk answer is not the JSON shape Elasticsearch sends."""


def outcome_for(status: int) -> Outcome:
    """The bucket of an HTTP status (of one item or of a whole request)."""
    if status in (200, 201):
        return Outcome.CREATED
    if status == 409:
        return Outcome.DUPLICATE
    if status == 429 or status >= 500 or status < 200:
        return Outcome.RETRY
    return Outcome.REJECTED


def classify_item(status: int, error: Mapping[str, Any] | None) -> ItemResult:
    """One bulk item: its status and its ``error`` object (``{"type", "reason", "caused_by"}``)."""
    outcome = outcome_for(status)
    if outcome is Outcome.CREATED and status == 201 and not error:
        return _CREATED
    if not error:
        return ItemResult(outcome, status)
    return ItemResult(outcome, status, str(error.get("type", "")), _reason(error))


def classify_response(body: bytes) -> list[ItemResult]:
    """The per-item results of a whole 200 bulk answer, in request order.

    When ``errors`` is false every item was created, and the items are only counted, without
    parsing (the fast path that nearly every request takes). When some failed, only those are
    parsed (``_by_item``). Raises ``MalformedResponse`` for anything that is not a bulk answer.
    """
    if _ALL_OK in body[:64]:
        # Every item was created: count them without building 2000 dicts (about 1 us per item
        # saved). Each item carries exactly one "status" key, and the sequence cannot occur
        # inside a JSON string, where the quotes would be escaped.
        count = body.count(_STATUS_KEY)
        if count and body.rstrip().endswith(b"}"):
            return [_CREATED] * count
    by_item = _by_item(body)
    if by_item is not None:
        return by_item
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"bulk answer is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("items"), list):
        raise MalformedResponse("bulk answer has no 'items' list")
    items: list[Any] = parsed["items"]
    if parsed.get("errors") is False:
        return [_CREATED] * len(items)
    # A few items failed: the created ones (``{"create": {"status": 201}}`` with filter_path) are
    # recognised without the full check, five times faster for a 2000-item answer.
    out: list[ItemResult] = []
    for entry in items:
        if type(entry) is dict and len(entry) == 1:
            (result,) = entry.values()
            if type(result) is dict and len(result) == 1 and result.get("status") == 201:
                out.append(_CREATED)
                continue
        out.append(_classify_entry(entry))
    return out


def _by_item(body: bytes) -> list[ItemResult] | None:
    """The results of a filtered answer with errors, its created items recognised by their exact
    text and only the others parsed, one at a time; None when the answer is not exactly that
    shape (the whole parse then decides, and says what is wrong).

    Parsing a whole 2000-item answer built ~1.5 MB of dicts for a few failed items, on each
    sender thread at once (bench/delivery_faults.py: the agent's peak RSS under pushback). The
    split is exact: ``{"create":`` cannot occur inside a JSON string (its quotes would be escaped)
    and an error object has no "create" key, so each piece is one item and its separator."""
    parts = body.rstrip().split(_ITEM_KEY)
    head = parts[0]
    if len(parts) < 2 or not head.startswith(b"{") or not head.endswith(b'"items":['):
        return None
    if b'"errors":true' not in head:
        return None
    last = len(parts) - 1
    out: list[ItemResult] = []
    for n in range(1, last + 1):
        part = parts[n]
        if part == _CREATED_ITEM or (n == last and part == _CREATED_LAST):
            out.append(_CREATED)
            continue
        end = b"," if n < last else b"]}"
        if not part.endswith(end):
            return None
        try:
            entry = orjson.loads(_ITEM_KEY + part[: -len(end)])
        except orjson.JSONDecodeError:
            return None
        out.append(_classify_entry(entry))
    return out


def _classify_entry(entry: Any) -> ItemResult:
    # Each entry is {"<op>": {"status": ..., "error": {...}}}; the op is "create" for us.
    if not isinstance(entry, dict) or len(entry) != 1:
        raise MalformedResponse(f"bulk item is not a single-operation object: {entry!r:.200}")
    (result,) = entry.values()
    if not isinstance(result, dict):
        raise MalformedResponse(f"bulk item result is not an object: {result!r:.200}")
    status = result.get("status")
    if not isinstance(status, int):
        return ItemResult(Outcome.RETRY, 0, "missing_status", "the bulk item carried no status")
    error = result.get("error")
    if isinstance(error, str):  # very old servers sent a plain string
        return classify_item(status, {"type": "error", "reason": error})
    return classify_item(status, error if isinstance(error, dict) else None)


def _reason(error: Mapping[str, Any]) -> str:
    reason = str(error.get("reason", ""))
    cause = error.get("caused_by")
    if isinstance(cause, dict) and cause.get("reason"):
        reason = f"{reason} (caused by {cause.get('type', '')}: {cause['reason']})"
    return reason[:MAX_REASON_CHARS]


def error_summary(body: bytes) -> str:
    """A short description of a whole-request error answer (``{"error": {"type", "reason"}}``)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {_reason(error)}"[:MAX_REASON_CHARS]
    if isinstance(error, str):
        return error[:MAX_REASON_CHARS]
    return body[:200].decode("utf-8", "replace").strip()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110).

    None when the header is missing or unreadable; a date in the past gives 0.
    ``headers`` may be any mapping; the name is looked up case-insensitively.
    """
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value)) if value.isascii() and _is_number(value) else _from_date(value, now)
    except (TypeError, ValueError, OverflowError):
        return None


def _is_number(value: str) -> bool:
    return value.replace(".", "", 1).isdigit()


def _from_date(value: str, now: float | None) -> float | None:
    when = email.utils.parsedate_to_datetime(value)
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    direct = headers.get(name)
    if direct is not None:
        return direct
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
