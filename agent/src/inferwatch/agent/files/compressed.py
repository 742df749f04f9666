"""Recognise compressed files by their first bytes (pure): a rotated log compressed by
logrotate (``compress``) still matches a glob such as ``*.jsonl*``, and its bytes are not lines.

``head_of(path, kind, n)`` decompresses a file's first ``n`` bytes (gzip, bzip2, xz: what the
standard library reads), enough for its first line: the identity of the log it was made from;
``size_of`` reads it through for the log's size.

``compression_of(head)`` names the format (``gzip``, ``zstd``, ``bzip2``, ``xz``, ``lz4``), returns
``None`` for anything else, or ``UNDECIDED`` while the file is shorter than the magic it starts
like (a compressor that has written only its first bytes yet).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from typing import Final

UNDECIDED: Final = "undecided"
MAGIC_BYTES: Final = 6  # the longest magic below

_MAGIC: Final = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
)


def compression_of(head: bytes) -> str | None:
    """The compression format ``head`` (a file's first bytes) starts with, None for none,
    ``UNDECIDED`` when ``head`` is a proper prefix of a magic number."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
        if len(head) < len(magic) and magic.startswith(head) and head:
            return UNDECIDED
    if len(head) <= 3 and head and b"BZh".startswith(head):
        return UNDECIDED
    if head.startswith(b"BZh") and 0x31 <= head[3] <= 0x39:  # bzip2: "BZh" and the block size
        return "bzip2"
    return None


def head_of(path: str, kind: str, n: int) -> bytes | None:
    """The first ``n`` decompressed bytes of ``path`` (``kind`` from ``compression_of``); None for
    a format the standard library does not read (zstd, lz4) or a file it cannot (damaged)."""
    try:
        f = _open(path, kind)
        if f is None:
            return None
        with f:
            return f.read(n)
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return None


def size_of(path: str, kind: str) -> int | None:
    """The decompressed size of ``path`` (read through once); None as for ``head_of``."""
    try:
        f = _open(path, kind)
        if f is None:
            return None
        size = 0
        with f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
        return size
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return None


def _open(path: str, kind: str) -> gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile | None:
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return None
