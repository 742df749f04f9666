"""What the read loop needs of one input's normalizer, named and typed: ``LineParser``.

- ``normalize``: one line -> ``Event``, raising ``Rejected`` (the per-line path, and the one that
  isolates a line when a whole run failed unexpectedly);
- ``bulk_items``: a run of a file's lines -> ready bulk items and the rejected lines
  (``Normalizer.bulk_items``, the fast path), None when the input has only the per-line path;
- ``redactor``: the input's ``agent.redact``, applied to what the dead letters keep.

``LineParser.of(normalizer)`` builds one from a ``Normalizer`` (all three) or from a bare
function (the per-line path only, no redaction: test doubles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inferwatch.agent.model import Event, LineBatch, Source
from inferwatch.agent.normalize import Normalizer, RejectedLine
from inferwatch.agent.redact import Redactor

Normalize = Callable[[bytes, Source, str], Event]  # raises Rejected(reason, detail)
# (lines of one file, ingested) -> (bulk items in line order, rejected lines)
BulkItems = Callable[[LineBatch, str], tuple[list[bytes], Sequence[RejectedLine]]]


@dataclass(frozen=True, slots=True)
class LineParser:
    normalize: Normalize
    bulk_items: BulkItems | None = None
    redactor: Redactor | None = None

    @classmethod
    def of(cls, normalizer: Normalize | LineParser) -> LineParser:
        if isinstance(normalizer, LineParser):
            return normalizer
        if isinstance(normalizer, Normalizer):
            return cls(normalizer, normalizer.bulk_items, normalizer.redactor)
        return cls(normalizer)
