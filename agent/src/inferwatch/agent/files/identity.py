"""File identity that survives rename and copy: a hash of the file's first line.

Why the first line and not device/inode: inodes are reused after a delete (a new file would be
taken for an old one and read from a stale offset), and a copytruncate copy has a new inode but
is the same log. The first line of a prediction log carries a timestamp and a prediction id, so
two different files practically never share it. Device/inode are kept beside the identity only to
notice that the file behind an open descriptor changed (truncation, replacement).
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

from inferwatch.agent.model import FileId

DEFAULT_FINGERPRINT_BYTES = 1024


def fingerprint_of(
    head: bytes, max_bytes: int = DEFAULT_FINGERPRINT_BYTES, final: bool = False
) -> FileId | None:
    """The identity of a file whose first bytes are ``head``.

    The hash covers the first non-empty line including its newline (and any empty lines before
    it), or the first ``max_bytes`` bytes when that is longer. None while there is neither a complete first line nor ``max_bytes``
    bytes: there is nothing to ship yet, and the identity could still change. ``final`` hashes
    whatever there is (for a file that will never grow again, e.g. rotated and deleted).
    """
    # Leading empty lines don't end the first line: many files could start with one.
    content = len(head) - len(head.lstrip(b"\r\n"))
    newline = head.find(b"\n", content, max_bytes)
    if newline >= 0:
        data = head[: newline + 1]
    elif len(head) >= max_bytes:
        data = head[:max_bytes]
    elif final and head:
        data = head
    else:
        return None
    return FileId(hashlib.blake2b(data, digest_size=16).hexdigest())


def fingerprint(
    source: int | BinaryIO, max_bytes: int = DEFAULT_FINGERPRINT_BYTES, final: bool = False
) -> FileId | None:
    """Fingerprint an open file (a descriptor or a binary file object) without moving its
    position (``os.pread``). Raises ``OSError`` if the file can't be read."""
    fd = source if isinstance(source, int) else source.fileno()
    return fingerprint_of(os.pread(fd, max_bytes, 0), max_bytes, final)
