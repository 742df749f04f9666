"""Value types shared by the agent's stages, named once.

Data flow: files -> ``LineBatch`` -> normalize -> ``Event`` -> batch -> spool record (a ready
bulk body) -> output -> one ``Outcome`` per item -> spool ack. The registry maps a ``FileId`` to a
``Checkpoint``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Rejected(Exception):
    """A line or document that can never be indexed; ``reason`` is a short stable label
    (``invalid_json``, ``invalid_utf8``, ``missing_field``, ``line_too_long``, ``not_an_object``,
    ``mapping``...) used as the dead-letter reason and metrics label; ``detail`` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FileId:
    """Identity of a log file that survives renames: a hash of its first line (or first
    ``fingerprint_bytes``). Device and inode are kept beside it to notice inode reuse."""

    fingerprint: str  # hex digest

    def __str__(self) -> str:
        return self.fingerprint


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What the registry remembers of one file: the offset after the last byte durably spooled."""

    offset: int
    path: str
    device: int
    inode: int
    updated: float  # unix time of the last change; used to prune files that are gone


@dataclass(slots=True)
class OversizedLine:
    """A line longer than ``max_line_bytes``: skipped by the tailer, sent to the dead letter."""

    offset: int
    length: int
    head: bytes  # the first bytes, for the person reading the dead letter


@dataclass(slots=True)
class LineBatch:
    """Complete lines read from one file in one step (newline and a trailing CR removed).

    ``offsets[i]`` is the byte offset where ``lines[i]`` starts; ``end_offset`` is the offset just
    after the last consumed newline: the registry value once these lines are spooled.
    """

    file_id: FileId
    path: str
    input_index: int
    offsets: list[int]
    lines: list[bytes]
    end_offset: int
    oversized: list[OversizedLine] = field(default_factory=list)
    device: int = 0  # of the file read, for ``Checkpoint.device``
    inode: int = 0  # of the file read, for ``Checkpoint.inode``


@dataclass(frozen=True, slots=True)
class Source:
    """Where a line came from, for document ids and ``log.*`` fields."""

    file_id: FileId
    path: str
    offset: int
    input_index: int


@dataclass(frozen=True, slots=True)
class Event:
    """A normalized document ready for the bulk body: ``index`` is its data stream."""

    doc_id: str
    index: str
    body: bytes  # the serialized JSON document (no trailing newline)


class Outcome(enum.Enum):
    """The final or retryable outcome of one bulk item (libbeat's four buckets)."""

    CREATED = "created"  # 201 (or 200)
    DUPLICATE = "duplicate"  # 409 version conflict: already stored, counted, not an error
    RETRY = "retry"  # 429 / 5xx: stays in the spool and is retried with backoff
    REJECTED = "rejected"  # other 4xx: never indexable, goes to the dead letter


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one bulk item, with the status and error reason Elasticsearch gave."""

    outcome: Outcome
    status: int
    error_type: str = ""
    error_reason: str = ""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One durable spool entry: ``seq`` increases by one per record; ``payload`` is opaque bytes
    (the pipeline stores a gzip-compressed NDJSON bulk body) and ``items`` how many bulk items it
    holds (None for a record appended without a count, as before the count was kept)."""

    seq: int
    payload: bytes
    items: int | None = None
