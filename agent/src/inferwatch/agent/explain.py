"""What the agent would make of some log lines, without shipping or writing anything.

``explain(cfg, input_index, data, path, host, ingested)`` splits ``data`` into lines exactly as
the tailer does (a trailing CR stripped, empty lines skipped, lines over ``agent.max_line_bytes``
refused) and runs each through the input's normalizer, as the read loop does: redaction,
model, timestamp, kinds, tokens and document id. ``data`` is taken as a whole file: the ids are
those the agent gives these lines when they are the content of a file (the identity of a file is
the hash of its first line, and ``document_id: offset`` ids are made of it and the byte offset).

What only the output can tell (a mapping conflict answered 400 by Elasticsearch) is not known
here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from inferwatch.agent.daemon import build_normalizers
from inferwatch.agent.files.identity import fingerprint_of
from inferwatch.agent.files.lines import split_lines
from inferwatch.agent.model import FileId, OversizedLine, Rejected, Source
from inferwatch.core.config import Config


@dataclass(frozen=True)
class Explained:
    """One line: a document (``index``, ``doc_id``, ``document``) or a dead letter (``reason``,
    ``detail``)."""

    offset: int
    index: str | None = None
    doc_id: str | None = None
    document: Mapping[str, Any] | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def dead_lettered(self) -> bool:
        return self.reason is not None


def explain(
    cfg: Config, input_index: int, data: bytes, path: str, host: str, ingested: str
) -> list[Explained]:
    """Each line of ``data`` (a file's content), in order, as the agent's ``input_index``-th
    input would make it."""
    if not data.endswith(b"\n"):
        data += b"\n"  # the last line is complete: nothing more will be written after it
    offsets: list[int] = []
    lines: list[bytes] = []
    oversized: list[OversizedLine] = []
    split_lines(data, 0, cfg.agent.max_line_bytes, offsets, lines, oversized)
    file_id = fingerprint_of(data, final=True) or FileId("")
    normalize = build_normalizers(cfg, host)[input_index]
    found: list[Explained] = [
        Explained(
            o.offset,
            reason="line_too_long",
            detail=f"line of {o.length} bytes is over max_line_bytes ({cfg.agent.max_line_bytes})",
        )
        for o in oversized
    ]
    for line, offset in zip(lines, offsets, strict=True):
        try:
            event = normalize(line, Source(file_id, path, offset, input_index), ingested)
        except Rejected as exc:
            found.append(Explained(offset, reason=exc.reason, detail=exc.detail))
            continue
        found.append(Explained(offset, event.index, event.doc_id, orjson.loads(event.body)))
    return sorted(found, key=lambda e: e.offset)


def render(e: Explained, number: int) -> str:
    """Human-readable lines for one explained line (``number`` counts from 1)."""
    where = f"line {number} (offset {e.offset})"
    if e.dead_lettered:
        detail = f": {e.detail}" if e.detail else ""
        return f"{where}: dead letter, reason {e.reason}{detail}"
    body = orjson.dumps(e.document, option=orjson.OPT_INDENT_2).decode()
    return f"{where}: document\n  index: {e.index}\n  id:    {e.doc_id}\n{body}"


def to_json(e: Explained) -> str:
    """One line of JSON: ``{"offset", "index", "id", "document"}`` or ``{"offset", "dead_letter":
    {"reason", "detail"}}``."""
    if e.dead_lettered:
        out: dict[str, Any] = {"offset": e.offset, "dead_letter": {"reason": e.reason, "detail": e.detail}}
    else:
        out = {"offset": e.offset, "index": e.index, "id": e.doc_id, "document": e.document}
    return orjson.dumps(out).decode()


__all__ = ["Explained", "explain", "render", "to_json"]
