"""The spool's on-disk record format, apart from the queue logic that uses it.

A segment file ``<first seq:020d>.seg`` is a sequence of records, each framed as (big-endian)::

    magic u32 "IWS1" | payload length u32 | seq u64 | append time f64 | crc32 u32 | payload

crc32 (zlib) covers length, seq, append time and payload. Seqs inside a segment are consecutive,
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

MAGIC = 0x49575331  # b"IWS1"
_STRUCT = struct.Struct(">IIQdI")  # magic, payload length, seq, append time, crc32
HEADER_BYTES = _STRUCT.size  # 28
MAX_PAYLOAD = 0xFFFF_FFFF  # the length field is a u32
_CRC_COVERS = slice(4, 24)  # length, seq and append time
SEGMENT_RE = re.compile(r"^(\d{20})\.seg$")


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record is ``first_seq``."""
    return f"{first_seq:020d}.seg"


def encode_record(seq: int, payload: bytes, appended: float) -> bytes:
    """The framed bytes of one record (header + payload)."""
    header = bytearray(_STRUCT.pack(MAGIC, len(payload), seq, appended, 0))
    crc = zlib.crc32(payload, zlib.crc32(header[_CRC_COVERS]))
    struct.pack_into(">I", header, 24, crc)
    return bytes(header) + payload


@dataclass(frozen=True, slots=True)
class Header:
    length: int
    seq: int
    appended: float
    crc: int
    raw: bytes

    def verifies(self, payload: bytes) -> bool:
        return zlib.crc32(payload, zlib.crc32(self.raw[_CRC_COVERS])) == self.crc


def parse_header(raw: bytes) -> Header | None:
    """None when ``raw`` is not a record header (wrong magic)."""
    magic, length, seq, appended, crc = _STRUCT.unpack(raw)
    if magic != MAGIC:
        return None
    return Header(length, seq, appended, crc, raw)


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
