"""The native fast path of ``Normalizer.bulk_items``: an accelerator that may decline any line.

``inferwatch_native`` (the Rust crate in agent/native/, distribution ``inferwatch-native``,
optional) writes the bulk item of a line of the common shape, byte for byte what the Python
normalizer writes for it, about five times faster; every line it is not sure about (anything
that would be rejected, repaired, redacted, tokenized beyond ASCII, or that names a model it
has not been told about) it answers None, and the Python normalizer does that line. So the
Python ``Normalizer`` stays the one definition of the rules, and the native module only ever
equals it: tests/unit/agent/test_native.py holds the two to the same bytes on generated lines.

``FastPath.build(normalizer)`` returns None when the module is not installed, when the input
redacts fields (the Python side does all of it), or when the inputs and outputs paths overlap.
The model table is filled from the normalizer's own cache (``_ModelInfo``s, derived in Python
only): after a batch with declined lines, the names the Python side derived meanwhile are
registered (``sync``), so the next lines of a new model take the fast path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from inferwatch.agent.model import LineBatch, Rejected

if TYPE_CHECKING:
    from inferwatch.agent.normalize import Normalizer, RejectedLine, _Item, _ModelInfo

_dumps = orjson.dumps

# Keys of ``Normalizer.counts``: the lines of ``bulk_items`` each normalizer wrote or rejected
# (the agent's ``lines_normalized_total{by}``; a parse worker sends its counts back with each answer).
LINES_NATIVE = "lines_native"
LINES_PYTHON = "lines_python"


def native_module() -> Any:
    """``inferwatch_native``, or None when it is not installed."""
    try:
        import inferwatch_native
    except ImportError:
        return None
    return inferwatch_native


def describe(installed: bool, redacting: bool) -> str:
    """What ``agent check`` says of the normalizer (``installed``: the native module is;
    ``redacting``: the agent drops or hashes fields, so every input uses the Python one)."""
    if not installed:
        return "Python (the native normalizer is not installed: pip install ./agent/native, needs cargo)"
    if redacting:
        return "Python (agent.redact is set: redaction runs in the Python normalizer only)"
    return "native, the Python normalizer taking the lines it declines"


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


class FastPath:
    """One input's native normalizer, kept in step with its Python ``Normalizer``."""

    __slots__ = ("_cache", "_counts", "_native", "_synced")

    def __init__(self, native: Any, cache: Mapping[Any, _ModelInfo], counts: Counter[str]) -> None:
        self._native = native
        self._cache = cache
        self._counts = counts  # the normalizer's: LINES_NATIVE and LINES_PYTHON grow here
        self._synced: dict[Any, _ModelInfo] = {}

    @classmethod
    def build(cls, normalizer: Normalizer, cache: Mapping[Any, _ModelInfo]) -> FastPath | None:
        from inferwatch.agent.bulkbody import ACTION_TAIL
        from inferwatch.agent.normalize import MIDDLE_HEAD, MIDDLE_TAIL

        module = native_module()
        redact = normalizer.redact
        fields = normalizer.input_config.fields
        if module is None or redact.active or _overlap(fields.inputs, fields.outputs):
            return None
        native = module.FastPath(
            (
                fields.timestamp,
                fields.model,
                fields.version,
                fields.prediction_id,
                fields.inputs,
                fields.outputs,
                fields.latency,
            ),
            normalizer.input_config.version or "unknown",
            normalizer.input_config.document_id == "prediction_id",
            (ACTION_TAIL, MIDDLE_HEAD, MIDDLE_TAIL),
        )
        return cls(native, cache, normalizer.counts)

    def sync(self) -> None:
        """Register the model names the Python side derived since the last call."""
        cache = self._cache
        if len(cache) < len(self._synced):  # the cache was cleared: so is what we told native
            self._synced.clear()
        for key, info in list(cache.items()):
            if self._synced.get(key) is not info:
                self._native.set_model(
                    None if key is None or key == "" else key,
                    info.name,
                    info.action,
                    info.id_prefix.encode(),
                    info.middle,
                    None if info.inputs is None else info.inputs.native(),
                    None if info.outputs is None else info.outputs.native(),
                )
                self._synced[key] = info

    def bulk_items(
        self, batch: LineBatch, ingested: str, item: Callable[[bytes, str, str, int, str], _Item]
    ) -> tuple[list[bytes], list[RejectedLine]]:
        """``Normalizer.bulk_items`` of ``batch``: native items, and ``item`` (the Python
        normalizer's per-line function) for each line declined."""
        from inferwatch.agent.normalize import RejectedLine  # normalize imports this module

        fingerprint = batch.file_id.fingerprint
        path = batch.path
        items: list[Any] = self._native.bulk_items(
            batch.lines, batch.offsets, fingerprint, _dumps(path), _dumps(ingested)
        )
        rejects: list[RejectedLine] = []
        declined = 0
        for i, done in enumerate(items):
            if done is None:
                declined += 1
                line = batch.lines[i]
                offset = batch.offsets[i]
                try:
                    items[i] = item(line, fingerprint, path, offset, ingested)[2]
                except Rejected as exc:
                    rejects.append(RejectedLine(offset, line, exc))
        if rejects:
            items = [done for done in items if done is not None]
        if declined:
            self.sync()
        self._counts[LINES_NATIVE] += len(batch.lines) - declined
        self._counts[LINES_PYTHON] += declined
        return items, rejects


__all__ = ["LINES_NATIVE", "LINES_PYTHON", "FastPath", "describe", "native_module"]
