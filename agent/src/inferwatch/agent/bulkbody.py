"""The spool payload: one ready-to-send Elasticsearch ``_bulk`` request body, gzip-compressed.

Serialized and compressed once, when a batch is spooled; shipping is then read-and-send, and a
retry of some items re-encodes only those (``encode_items``). The body is NDJSON, two lines per
document::

    {"create":{"_index":"logs-inferwatch.churn_classifier-default","_id":"q1...w"}}
    {"@timestamp":"2026-11-22T10:48:12.486Z",...}

Every line ends with ``\\n`` (Elasticsearch requires the final newline). Payloads are gzip
members with ``mtime`` 0, so the same items and level always give the same bytes. Level 0 stores
without compressing (still a valid gzip stream, so the output can always send
``Content-Encoding: gzip``).

Levels 1 and 2 (``elasticsearch.compression_level``, default 1) are compressed by ISA-L's igzip
(the ``isal`` package, where it has a wheel: x86_64 and arm64): on the agent's bulk bodies it is
4-5x faster than zlib at the same level and its ratio is at least zlib's (``bench/
compress_speed.py``), and it too releases the GIL. Its levels stop at 3, whose ratio is below
zlib's 3, so levels 0 and 3-9 stay zlib's: each level keeps what it promised, and without
``isal`` every level is zlib's. Either way the payload is one standard gzip member.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import orjson

from inferwatch.agent.fastpath import native_module
from inferwatch.agent.model import Event

Item = tuple[str, str, bytes]  # (index, id, document)

_GZIP_WBITS = 31  # zlib with a gzip header and trailer
_CREATE = b'{"create":{"_index":'
_ID = b',"_id":'
_END = b"}}\n"
ACTION_TAIL = b'"' + _END  # after an id that needs no JSON escaping (base64url)


def action_head(index: str) -> bytes:
    """The action line of a document of ``index`` up to its id, opening quote included: an item
    is ``action_head(index) + id + ACTION_TAIL + document + b"\\n"`` for an id that needs no
    escaping in JSON (the base64url ids of ``agent.normalize``)."""
    return _CREATE + orjson.dumps(index) + _ID + b'"'


def encode(events: Sequence[Event], level: int = 1) -> bytes:
    """The gzip-compressed bulk body of ``events`` (``create`` actions, in order)."""
    return compress(raw_body((e.index, e.doc_id, e.body) for e in events), level)


def encode_items(items: Sequence[Item], level: int = 1) -> bytes:
    """Like ``encode`` for ``(index, id, document)`` tuples, e.g. the items of a payload that
    must be sent again."""
    return compress(raw_body(items), level)


def raw_body(items: Iterable[Item]) -> bytes:
    """The uncompressed NDJSON bulk body (its length is what ``batch.max_bytes`` limits)."""
    dumps = orjson.dumps
    heads: dict[str, bytes] = {}  # per index: the action line up to the id (few distinct)
    parts: list[bytes] = []
    append = parts.append
    for index, doc_id, document in items:
        head = heads.get(index)
        if head is None:
            head = heads[index] = _CREATE + dumps(index) + _ID
        append(head + dumps(doc_id) + _END + document + b"\n")
    return b"".join(parts)


def compress(body: bytes, level: int = 1) -> bytes:
    """One gzip member of ``body`` (deterministic: no file name, mtime 0), by igzip or zlib as
    the module docstring says."""
    if _igzip is not None and level in _IGZIP_LEVELS:
        return _igzip(body, level, _GZIP_WBITS)
    return zlib.compress(body, level, _GZIP_WBITS)


def _igzip_compress() -> Callable[[bytes, int, int], bytes] | None:
    """``isal_zlib.compress(data, level, wbits)``, or None where ``isal`` is not installed."""
    try:
        from isal.isal_zlib import compress as igzip
    except ImportError:
        return None
    return igzip


def _inflate() -> tuple[Callable[[bytes, int], bytes], tuple[type[Exception], ...]]:
    """``isal_zlib.decompress(data, wbits)`` and its errors (any gzip member, 3x zlib's speed on
    these bodies: the ship loop decodes a record's refused items on every item 429), else zlib's."""
    try:
        from isal.igzip_lib import IsalError
        from isal.isal_zlib import decompress
    except ImportError:
        return zlib.decompress, (zlib.error,)
    # isal's stubs call the exception an instance and give decompress a third parameter.
    return cast(Callable[[bytes, int], bytes], decompress), (zlib.error, cast(type[Exception], IsalError))


_igzip = _igzip_compress()
_IGZIP_LEVELS = (1, 2)  # the levels igzip compresses when it is there (module docstring)
_decompress, _INFLATE_ERRORS = _inflate()
_STEP = 16 * 1024  # compressed bytes inflated at a time by decode_some (about 100 KiB of body)
_PIECE = 1024 * 1024  # at most this many inflated bytes per call (a body that compresses very well)


def _inflater() -> Callable[[int], Any]:
    """``decompressobj(wbits)`` of isal where it is installed (3x zlib's speed), else zlib's."""
    try:
        from isal.isal_zlib import decompressobj
    except ImportError:
        return zlib.decompressobj
    return cast(Callable[[int], Any], decompressobj)


_decompressobj = _inflater()


# ``inferwatch_native.gzip_lines(payload, line_numbers)`` (agent/native/src/gzlines.rs), or None
# where the native module is not installed (or is older than that function).
_gzip_lines: Callable[[bytes, list[int]], list[bytes] | None] | None = getattr(
    native_module(), "gzip_lines", None
)


def decode(payload: bytes) -> list[Item]:
    """The items of a payload made by ``encode``; raises ``ValueError`` when it is not one
    (bad gzip, an odd number of lines, an action that is not ``create``)."""
    lines = _lines(payload)
    return [_item(lines, i) for i in range(0, len(lines), 2)]


def decode_some(payload: bytes, indices: Iterable[int]) -> dict[int, Item]:
    """The items at ``indices`` of a payload made by ``encode``, by index; only their action
    lines are parsed (the ship loop's retries: a few items of a record). Raises like ``decode``.

    The body is inflated ``_STEP`` compressed bytes at a time (at most ``_PIECE`` inflated bytes
    per call), and each piece is split where it is: a record's whole body and its thousands of
    lines are never in memory at once (the ship loop's sender threads do this for every record
    with an item 429; splitting whole bodies kept 7 MB more resident under 2% item 429s,
    bench/delivery_faults.py). Feeding the input in steps instead of asking for output pieces
    spares the copy of the rest of the input that each output-limited call makes, and splitting
    each piece once spares a count and a join: 30% less CPU than inflating 64 KiB at a time.

    Where the native module is installed, ``gzip_lines`` does it instead: one libdeflate inflate
    and a memchr search, without the GIL (half the CPU, and a sender thread no longer waits for
    the GIL once per piece; bench/compress_speed.py). It declines anything but a whole, valid
    body holding every line asked for, and this function then goes on as above, raising with its
    own message."""
    items = sorted(set(indices))
    wanted = [n for i in items for n in (2 * i, 2 * i + 1)]
    if _gzip_lines is not None:
        lines = _gzip_lines(payload, wanted)
        if lines is not None:
            return {i: _item(lines, 2 * k, 2 * i) for k, i in enumerate(items)}
    got: dict[int, bytes] = {}
    inflate = _decompressobj(_GZIP_WBITS)
    view = memoryview(payload)
    held, first, k, end = b"", 0, 0, len(wanted)  # held: the start of line ``first``
    try:
        for pos in range(0, len(view), _STEP):
            data: bytes | memoryview = view[pos : pos + _STEP]
            while data:
                parts = inflate.decompress(data, _PIECE).split(b"\n")
                data = inflate.unconsumed_tail  # empty unless the piece hit _PIECE
                if held:
                    parts[0] = held + parts[0]
                last = first + len(parts) - 1  # lines first .. last - 1 end in this piece
                while k < end and wanted[k] < last:
                    got[wanted[k]] = parts[wanted[k] - first]
                    k += 1
                held, first = parts[-1], last
    except _INFLATE_ERRORS as exc:
        raise ValueError(f"not a gzip bulk body: {exc}") from exc
    if not inflate.eof:
        raise ValueError("not a gzip bulk body: it ends before the gzip member does")
    if held or first % 2:
        raise ValueError("a bulk body is pairs of lines, each ending with a newline")
    return {i: _item([got.get(2 * i, b""), got.get(2 * i + 1, b"")], 0, 2 * i) for i in items}


def _lines(payload: bytes) -> list[bytes]:
    try:
        body = _decompress(payload, _GZIP_WBITS)
    except _INFLATE_ERRORS as exc:
        raise ValueError(f"not a gzip bulk body: {exc}") from exc
    lines = body.split(b"\n")
    if lines.pop() != b"" or len(lines) % 2:
        raise ValueError("a bulk body is pairs of lines, each ending with a newline")
    return lines


def _item(lines: list[bytes], i: int, number: int | None = None) -> Item:
    """The item whose action is ``lines[i]`` (line ``number`` of the body, by default ``i``)."""
    try:
        action = orjson.loads(lines[i])["create"]
        return action["_index"], action["_id"], lines[i + 1]
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
        line = i if number is None else number
        raise ValueError(f"line {line + 1} is not a create action: {lines[i][:200]!r}") from exc


__all__ = [
    "ACTION_TAIL",
    "Item",
    "action_head",
    "compress",
    "decode",
    "decode_some",
    "encode",
    "encode_items",
    "raw_body",
]
