"""What every output is: ``send`` one ready bulk body, get one ``ItemResult`` per item back.

The ship loop owns retries and the spool; an output only performs one attempt and says how it
went. A request that failed as a whole raises ``OutputUnavailable`` (retry the same body later,
after ``retry_after`` seconds when the server said so). Its subclasses say more:

- ``OutputRefused``: the server refused us (401/403, a TLS certificate we do not trust, an answer
  that is not from Elasticsearch). Retrying will not help until a person fixes the config; the
  message names the fix. It is still an ``OutputUnavailable`` so that a ship loop that only knows
  the base class keeps the data in the spool and retries with backoff (as Filebeat does) instead of
  dropping it; ``check()`` raises it so that start-up can refuse with a clear message.
- ``RequestTooLarge``: HTTP 413, inside ``ElasticsearchOutput``, which splits the body in halves
  until the parts fit; a single document over the server's limit comes back as a REJECTED item
  (``request_too_large``, dead-lettered by the ship loop). ``send`` never raises it: splitting has
  one home, the output.
"""

from __future__ import annotations

from typing import Protocol

from inferwatch.agent.model import ItemResult


class OutputUnavailable(Exception):
    """The whole request failed (connection, timeout, 429, 5xx): send the same body again later."""

    permanent = False

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason if status is None else f"HTTP {status}: {reason}")
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class OutputRefused(OutputUnavailable):
    """The output refuses us for a reason a person must fix (credentials, privileges, TLS trust,
    not Elasticsearch). ``reason`` says what to change."""

    permanent = True


class RequestTooLarge(OutputUnavailable):
    """HTTP 413: the body is over the server's ``http.max_content_length``; split it."""

    permanent = True


class Output(Protocol):
    """One destination for bulk bodies (``ElasticsearchOutput``, ``LocalOutput``)."""

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        """Deliver one gzip-compressed NDJSON bulk body of ``items`` create actions; return one
        result per item, in order. Raises ``OutputUnavailable`` when the request failed as a whole."""
        ...

    def check(self) -> str:
        """Reach the output and describe it in one line; raises ``OutputUnavailable`` (or
        ``OutputRefused``) when it cannot be used."""
        ...

    def close(self) -> None:
        """Release connections and files; idempotent."""
        ...
