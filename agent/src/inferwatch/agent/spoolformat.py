"""The spool's on-disk record format, apart from the queue logic that uses it.

A segment file ``<first seq:020d>.seg`` is a sequence of records, each framed as (big-endian)::

    magic u32 "IWS2" | length u32 | seq u64 | append time f64 | crc32 u32 | items u32 | payload

``items`` is how many bulk items the payload holds (the ship loop needs it before it sends, and
the payload is compressed); ``length`` counts it and the payload. Records written before the count
existed have magic "IWS1" and no ``items`` field (``Header.has_items`` False); both are read, and
``append`` without a count still writes "IWS1". crc32 (zlib) covers length, seq, append time and
what follows the header. Seqs inside a segment are consecutive,
starting at the seq in the file name. ``scan_segment`` finds the verified prefix of a segment and
says why it stopped, for recovery at open.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

MAGIC_V1 = 0x49575331  # b"IWS1": no item count
MAGIC = 0x49575332  # b"IWS2": the body starts with the item count
_STRUCT = struct.Struct(">IIQdI")  # magic, length, seq, append time, crc32
_ITEMS = struct.Struct(">I")
HEADER_BYTES = _STRUCT.size  # 28
MAX_PAYLOAD = 0xFFFF_FFFF - _ITEMS.size  # the length field is a u32
_CRC_COVERS = slice(4, 24)  # length, seq and append time
SEGMENT_RE = re.compile(r"^(\d{20})\.seg$")


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record is ``first_seq``."""
    return f"{first_seq:020d}.seg"


def encode_record(seq: int, payload: bytes, appended: float, items: int | None = None) -> bytes:
    """The framed bytes of one record (header + body); without ``items``, the "IWS1" framing."""
    body = payload if items is None else _ITEMS.pack(items) + payload
    magic = MAGIC_V1 if items is None else MAGIC
    header = bytearray(_STRUCT.pack(magic, len(body), seq, appended, 0))
    crc = zlib.crc32(body, zlib.crc32(header[_CRC_COVERS]))
    struct.pack_into(">I", header, 24, crc)
    return bytes(header) + body


@dataclass(frozen=True, slots=True)
class Header:
    length: int
    seq: int
    appended: float
    crc: int
    raw: bytes
    has_items: bool = True  # False for "IWS1" records

    def verifies(self, body: bytes) -> bool:
        return zlib.crc32(body, zlib.crc32(self.raw[_CRC_COVERS])) == self.crc

    def split(self, body: bytes) -> tuple[int | None, bytes]:
        """(item count or None for an "IWS1" record, payload) of a verified body."""
        if not self.has_items:
            return None, body
        return _ITEMS.unpack_from(body)[0], body[_ITEMS.size :]


def parse_header(raw: bytes) -> Header | None:
    """None when ``raw`` is not a record header (wrong magic)."""
    magic, length, seq, appended, crc = _STRUCT.unpack(raw)
    if magic == MAGIC:
        if length < _ITEMS.size:
            return None
        return Header(length, seq, appended, crc, raw)
    if magic == MAGIC_V1:
        return Header(length, seq, appended, crc, raw, has_items=False)
    return None


@dataclass(frozen=True, slots=True)
class Scan:
    """A segment's verified prefix and why the scan stopped before the end of the file."""

    end: int
    last_seq: int
    problem: Literal["torn", "bad"] | None = None
    dropped: int = 0  # committed records cut away: a whole bad record with an intact header + what follows


def _count_following(f: BinaryIO, size: int, offset: int, seq: int) -> int:
    """How many whole, verifying records with seqs ``seq``, ``seq + 1``... start at ``offset``."""
    n = 0
    while size - offset >= HEADER_BYTES:
        f.seek(offset)
        header = parse_header(f.read(HEADER_BYTES))
        if header is None or header.seq != seq + n or header.length > size - offset - HEADER_BYTES:
            break
        if not header.verifies(f.read(header.length)):
            break
        n += 1
        offset += HEADER_BYTES + header.length
    return n


def scan_segment(path: Path, first_seq: int) -> Scan:
    """Read and verify every record of a segment; stop at the first that is cut short or bad."""
    size = path.stat().st_size
    offset, expected = 0, first_seq
    with path.open("rb") as f:
        while offset < size:
            if size - offset < HEADER_BYTES:
                return Scan(offset, expected - 1, "torn")
            header = parse_header(f.read(HEADER_BYTES))
            if header is None:
                return Scan(offset, expected - 1, "bad")
            if header.length > size - offset - HEADER_BYTES:
                return Scan(offset, expected - 1, "torn")
            payload = f.read(header.length)
            if header.seq != expected or not header.verifies(payload):
                dropped = 0
                if header.seq == expected:  # a whole record that was committed, then damaged
                    dropped = 1 + _count_following(
                        f, size, offset + HEADER_BYTES + header.length, expected + 1
                    )
                return Scan(offset, expected - 1, "bad", dropped)
            offset += HEADER_BYTES + header.length
            expected += 1
    return Scan(offset, expected - 1)
