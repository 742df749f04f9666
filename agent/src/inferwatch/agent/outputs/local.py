"""The embedded default output: the documents a bulk body would index, as NDJSON files.

Layout (read by ``inferwatch.analytics.sources.local``)::

    <store>/<index>/<segment>.ndjson     one document per line, as it would be indexed, plus "_id"

Delivery rules, the same as Elasticsearch's for ``create``: an ``_id`` already stored in the store
answers 409 DUPLICATE and is not written again; a new one is written and answers 201 CREATED.
The set of stored ids is loaded from the existing segments at start.

Segment names are ``<n:020d>.ndjson`` with ``n`` one more than the highest segment anywhere in
the store, so names sort in write order, also across restarts. The name need not be a function of
the body: idempotency comes from the ids. Each segment is written atomically (temp file, fsync,
rename), and its ids join the stored set only after the rename, so:

- a crash before the rename leaves a ``.tmp`` that was never committed (removed at the next
  start); the resent body writes those documents again, once;
- a crash after the rename but before the spool ack: the resent body's ids are all stored, every
  item answers 409, nothing is written -- no second copy, no empty segment;
- a body for several indices writes one segment per index; a crash between them is the mix of
  the two cases above, item by item.

Readers must still tolerate duplicate ``_id`` (docs/architecture.md); this writer never produces them.

A write that fails (disk full, read-only) raises ``OutputUnavailable``: the ship loop keeps the
body in the spool and retries with backoff, as for an unreachable Elasticsearch.

Bounds: the set of stored ids is kept in memory for the life of the process, about 115 bytes per
stored document (measured with 22-character ids: ~110 MB per million documents), and the store
itself is never pruned by the agent. The embedded store is meant for demos, tests and small
volumes; point the agent at Elasticsearch (with its retention) for anything that runs for long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path

import orjson

from inferwatch.agent.bulkbody import decode
from inferwatch.agent.model import ItemResult, Outcome
from inferwatch.agent.oserrors import describe
from inferwatch.agent.outputs.base import OutputUnavailable
from inferwatch.core.atomic import atomic_write_bytes, tmp_path

log = logging.getLogger(__name__)

_SEGMENT_RE = re.compile(r"^([0-9]{20})\.ndjson$")
_INDEX_RE = re.compile(r"^[a-z0-9][a-z0-9_.+-]{0,254}$")
_ID_PREFIX = b'{"_id":"'

_CREATED = ItemResult(Outcome.CREATED, 201)
_DUPLICATE = ItemResult(
    Outcome.DUPLICATE, 409, "version_conflict_engine_exception", "document already exists in the local store"
)


class LocalOutput:
    """``Output`` into the local store under ``store_dir`` (created if missing)."""

    def __init__(self, store_dir: Path, fsync: bool = True) -> None:
        self.store_dir = store_dir
        self._fsync = fsync
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._next = 1
        self._segments = 0
        store_dir.mkdir(parents=True, exist_ok=True)
        self._load()

    def __repr__(self) -> str:
        return f"LocalOutput({str(self.store_dir)!r})"

    @property
    def stored(self) -> int:
        """How many documents the store holds."""
        with self._lock:
            return len(self._ids)

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        decoded = decode(body_gz)
        results: list[ItemResult] = []
        lines_by_index: dict[str, list[bytes]] = {}
        ids_by_index: dict[str, list[str]] = {}
        with self._lock:
            seen: set[str] = set()  # ids of this body, so a repeated id is a duplicate too
            for index, doc_id, doc in decoded:
                problem = _problem(index, doc)
                if problem is not None:
                    results.append(ItemResult(Outcome.REJECTED, 400, *problem))
                    continue
                if doc_id in self._ids or doc_id in seen:
                    results.append(_DUPLICATE)
                    continue
                seen.add(doc_id)
                lines_by_index.setdefault(index, []).append(_with_id(doc_id, doc))
                ids_by_index.setdefault(index, []).append(doc_id)
                results.append(_CREATED)
            for index, lines in lines_by_index.items():
                directory = self.store_dir / index
                try:
                    directory.mkdir(exist_ok=True)
                    atomic_write_bytes(directory / f"{self._next:020d}.ndjson", b"".join(lines), self._fsync)
                except OSError as e:
                    # Disk full, read-only: the output is unavailable (the ship loop backs off and
                    # /health says so). Segments already renamed keep their ids: the resend
                    # answers 409 for those and writes the rest.
                    raise OutputUnavailable(f"local store {directory}: {describe(e)}") from e
                self._next += 1
                self._segments += 1
                self._ids.update(ids_by_index[index])
        return results

    def check(self) -> str:
        with self._lock:
            return f"local store at {self.store_dir}: {len(self._ids)} documents in {self._segments} segments"

    def close(self) -> None:
        pass

    def _load(self) -> None:
        """Stored ids and the next segment number from the existing segments; leftover temp files
        (writes that never reached their rename) are removed."""
        highest = 0
        for directory in sorted(p for p in self.store_dir.iterdir() if p.is_dir()):
            for entry in os.scandir(directory):
                match = _SEGMENT_RE.match(entry.name)
                if match is None:
                    if (
                        entry.name.endswith(".tmp")
                        and tmp_path(directory / entry.name[:-4]).name == entry.name
                    ):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                        log.info("removed uncommitted local segment %s", entry.path)
                    continue
                highest = max(highest, int(match.group(1)))
                self._segments += 1
                with open(entry.path, "rb") as f:
                    for line in f:
                        doc_id = _read_id(line)
                        if doc_id is not None:
                            self._ids.add(doc_id)
        self._next = highest + 1
        if self._ids:
            log.info(
                "local store %s: %d documents in %d segments", self.store_dir, len(self._ids), self._segments
            )


def _problem(index: str, doc: bytes) -> tuple[str, str] | None:
    if not _INDEX_RE.match(index):
        return "invalid_index_name_exception", f"index name {index!r} is not a valid local store folder"
    if not doc.startswith(b"{") or not doc.rstrip().endswith(b"}"):
        return "mapper_parsing_exception", "the document is not a JSON object"
    return None


def _with_id(doc_id: str, doc: bytes) -> bytes:
    """``doc`` (a JSON object) with ``"_id"`` as its first key, and a newline."""
    rest = doc[1:].lstrip()
    sep = b"" if rest.startswith(b"}") else b","
    return b'{"_id":' + orjson.dumps(doc_id) + sep + rest + b"\n"


def _read_id(line: bytes) -> str | None:
    if line.startswith(_ID_PREFIX):  # written by us: the id is first, no escapes in practice
        end = line.find(b'"', len(_ID_PREFIX))
        if end > 0 and b"\\" not in line[len(_ID_PREFIX) : end]:
            return line[len(_ID_PREFIX) : end].decode()
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # a torn line cannot exist (atomic writes); skip anything unreadable
    value = doc.get("_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None
