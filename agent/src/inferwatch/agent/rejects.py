"""Rejected log lines: what the dead letters keep of them, written once per line.

One home for the rule of what a rejected line leaves behind (``RejectPolicy``, per input):

- Redaction applies to everything the agent writes. When the input redacts fields
  (``agent.redact``), the line is parsed and redacted as its documents are, and the redacted
  line (compact JSON) is what the local dead letter and the ``dead_letter_index`` keep.
- A line that cannot be redacted (not a JSON object: invalid JSON or UTF-8, an array, the cut
  head of a line over ``max_line_bytes``) keeps no text: reason, detail, offset and ``raw_bytes``
  only. With ``agent.dead_letter.keep_unparsed: true`` the local dead letter (on the host) keeps it
  as read; it never leaves the host.
- An input that redacts nothing keeps its lines as read.

``Rejects`` writes the entries (``agent.deadletter``) with the line's key (file fingerprint and
offset), skips the lines already dead-lettered before a crash (``written_before``, from the dead
letter past the registry's checkpoint), counts them, and makes them durable in ``sync`` before
the offsets past them are committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import orjson

from inferwatch.agent.deadletter import DeadLetter, DeadLetterItem, DeadLetterMark, LineKey, entry
from inferwatch.agent.deadletter_index import dead_letter_id
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import Event, LineBatch
from inferwatch.agent.oserrors import describe
from inferwatch.agent.redact import Redactor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RejectPolicy:
    """What the dead letters keep of one input's rejected lines (see the module docstring)."""

    redactor: Redactor | None = None  # the input's agent.redact; None when it redacts nothing
    keep_unparsed: bool = False  # agent.dead_letter.keep_unparsed

    def local_text(self, raw: bytes) -> bytes | None:
        """The text the local dead letter keeps of ``raw``; None: none of it."""
        if self.redactor is None:
            return raw
        text = redacted_line(raw, self.redactor)
        return raw if text is None and self.keep_unparsed else text

    def index_text(self, raw: bytes) -> bytes | None:
        """The text the ``dead_letter_index`` document carries (it leaves the host)."""
        return raw if self.redactor is None else redacted_line(raw, self.redactor)


def redacted_line(raw: bytes, redactor: Redactor) -> bytes | None:
    """``raw`` parsed as the normalizer parses it (a leading BOM allowed), redacted and written
    back as compact JSON; None when it is not a JSON object (invalid UTF-8 or JSON, a cut head,
    an array...): the configured paths cannot be found in it, so none of it may be kept."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            text = raw.decode("utf-8")
            obj = orjson.loads(text[1:] if text.startswith("\ufeff") else text)
        except (UnicodeDecodeError, orjson.JSONDecodeError):
            return None
    if type(obj) is not dict:
        return None
    try:
        return orjson.dumps(redactor(obj))
    except (orjson.JSONEncodeError, ValueError):  # nesting deeper than orjson writes
        return None


class Rejects:
    """Dead-letters rejected lines for the read loop (one thread)."""

    def __init__(
        self,
        dead_letter: DeadLetter,
        metrics: Metrics,
        policies: Sequence[RejectPolicy],
        index: str | None,
        written_before: set[LineKey],
        wall: Callable[[], float],
    ) -> None:
        self._dead = dead_letter
        self._metrics = metrics
        self._policies = tuple(policies)
        self._index = index
        self._before = written_before
        self._wall = wall
        self._unsynced = 0  # entries written, not yet fsynced
        self._failing = 0  # lines dropped since the dead letter last took a write

    def reject(
        self, reason: str, detail: str, b: LineBatch, offset: int, raw: bytes, length: int | None = None
    ) -> Event | None:
        """Dead-letter one line (``raw``: the line, or the head of one of ``length`` bytes);
        with ``dead_letter_index``, the document to spool for it."""
        policy = self._policies[b.input_index]
        item = DeadLetterItem(
            reason,
            detail,
            source=b.path,
            offset=offset,
            fingerprint=b.file_id.fingerprint,
            raw_bytes=len(raw) if length is None else length,
        )
        key = (b.file_id.fingerprint, offset)
        if key in self._before:
            self._before.discard(key)  # written before a crash: once is enough
        else:
            self._write(_keeping(item, policy.local_text(raw), raw))
        if not self._index:
            return None
        doc = self._index_document(item, raw, policy)
        return Event(dead_letter_id(f"{b.file_id}:{offset}"), self._index, doc)

    def sync(self) -> DeadLetterMark:
        """Make the entries written so far durable; the dead letter's position after them."""
        if self._unsynced:
            try:
                self._dead.flush()  # durable before any offset past those lines moves
            except OSError as e:
                log.error("cannot fsync the dead letter: %s", e)
                self._metrics.inc("dropped_total", self._unsynced, labels(reason="dead_letter_write_failed"))
            self._unsynced = 0
        return self._dead.position()

    def _write(self, item: DeadLetterItem) -> None:
        try:
            self._dead.write(item)
        except OSError as e:
            # Disk full or the like: the line is lost, but good lines must not wait behind it.
            # Said once per episode (the first line dropped, and the fix), counted per line.
            if not self._failing:
                log.error(
                    "cannot write the dead letter %s: %s; rejected lines are dropped until it can be "
                    'written, counted in dropped_total{reason="dead_letter_write_failed"} (the '
                    "first: %s at %s:%d)",
                    self._dead.path,
                    describe(e),
                    item.reason,
                    item.source,
                    item.offset,
                )
            self._failing += 1
            self._metrics.inc("dropped_total", 1, labels(reason="dead_letter_write_failed"))
            return
        if self._failing:
            log.warning(
                "the dead letter %s takes writes again; %d rejected line%s dropped meanwhile",
                self._dead.path,
                self._failing,
                " was" if self._failing == 1 else "s were",
            )
            self._failing = 0
        self._unsynced += 1
        self._metrics.inc("dead_lettered_total", 1, labels(reason=item.reason))

    def _index_document(self, item: DeadLetterItem, raw: bytes, policy: RejectPolicy) -> bytes:
        """The ``dead_letter_index`` document of a rejected line (``item``, without its text and
        its file's fingerprint): its redacted text, or none."""
        # ``raw_bytes``: the line's, also when its text is withheld or only a head
        doc = entry(replace(_keeping(item, policy.index_text(raw), raw), fingerprint=None), self._wall())
        return orjson.dumps(doc)


def _keeping(item: DeadLetterItem, text: bytes | None, raw: bytes) -> DeadLetterItem:
    """``item`` keeping ``text`` of the line ``raw`` (``raw`` as read, redacted, or None): cut when
    it is ``raw`` as read and that is only the head of a line over ``max_line_bytes``, in the local
    dead letter and the ``dead_letter_index`` alike."""
    assert item.raw_bytes is not None
    return replace(item, raw=text, raw_truncated=text is raw and item.raw_bytes > len(raw))
