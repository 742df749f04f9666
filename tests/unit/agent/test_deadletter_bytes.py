"""The exact bytes of dead-letter entries, pinned: the NDJSON line in ``dead-letter.ndjson`` and the
document sent to ``agent.dead_letter_index``, for each kind of item the agent dead-letters (a bad
line as read, a redacted or withheld line with its length, the head of an oversized line, a
rejected document with its target index, an undecodable spool record), written directly and by
the read side (``Rejects``) and the ship side (``ShipLoop``). People read these files and indexes
with their own tools: a byte changed here is a change of format."""

from __future__ import annotations

import random
import struct
import time
import types
import zlib
from pathlib import Path
from typing import Any

import pytest

from inferwatch.agent import bulkbody, shipper
from inferwatch.agent.deadletter import RAW_CAP, DeadLetter, DeadLetterItem
from inferwatch.agent.deadletter_index import dead_letter_document
from inferwatch.agent.metrics import Metrics
from inferwatch.agent.model import Event, FileId, ItemResult, LineBatch
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.redact import Redactor
from inferwatch.agent.rejects import RejectPolicy, Rejects
from inferwatch.agent.shipper import ShipLoop
from inferwatch.agent.spool import Spool
from tests.unit.agent.test_pipeline import BAD, CREATED, Clock, drive

T = 1_763_850_000.123  # 2025-11-22T22:20:00.123Z
FP = "9f86d081884c7d65"
PATH = "/var/log/m/a.jsonl"
DOC = b'{"ml": {"inputs": {"age": "x"}}, "n": 1.50, "s": "\\u00e9"}'
LONG = b"x" * (RAW_CAP - 1) + "\u20ac".encode() + b"tail"  # cut at 64 KiB inside the euro sign
DL_INDEX = "dead-letters"
# Items both tables below write, each its own way.
REJECTED_DOCUMENT: dict[str, Any] = dict(
    reason="document_parsing_exception",
    detail="400 document_parsing_exception: failed to parse field [x]",
    document=DOC,
    doc_id="Zm9vYmFy",
    index="logs-m-default",
)
REJECTED_NOT_JSON: dict[str, Any] = dict(
    reason="mapping", detail="not json", document=b"\xffnot json", doc_id="Zm9v", index="logs-m-default"
)

# The item's fields -> the line written to dead-letter.ndjson.
LOCAL: dict[str, tuple[dict[str, Any], bytes]] = {
    "bad_line": (
        dict(
            reason="invalid_json",
            detail="unexpected end of data: line 1 column 18 (char 17)",
            source=PATH,
            offset=4096,
            raw=b'{"model": "m", "x\xff',
            fingerprint=FP,
        ),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"unexpected end of data: line 1 column 18 (char 17)","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw":"{\\"model\\": \\"m\\", \\"x\xef\xbf\xbd","raw_bytes":18}\n',
    ),
    "offset_only": (
        dict(reason="invalid_json", detail="x", offset=7, raw=b"{"),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"x","log":{"offset":7},"raw":"{","raw_bytes":1}\n',
    ),
    "source_without_fingerprint": (
        dict(reason="invalid_json", detail="x", source=PATH, raw=b"{"),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"x","log":{"file":{"path":"/var/log/m/a.jsonl"}},"raw":"{","raw_bytes":1}\n',
    ),
    "redacted": (
        dict(
            reason="bad_timestamp",
            detail="timestamp: never",
            source=PATH,
            offset=0,
            raw=b'{"timestamp":"never","model":"m","inputs":{"name":"3f2a"}}',
            raw_bytes=97,
            fingerprint=FP,
        ),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"bad_timestamp","detail":"timestamp: never","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":0},"raw":"{\\"timestamp\\":\\"never\\",\\"model\\":\\"m\\",\\"inputs\\":{\\"name\\":\\"3f2a\\"}}","raw_bytes":97}\n',
    ),
    "withheld": (
        dict(
            reason="invalid_json",
            detail="unexpected character",
            source=PATH,
            offset=123,
            raw_bytes=70000,
            fingerprint=FP,
        ),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"unexpected character","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":123},"raw_bytes":70000}\n',
    ),
    "head_of_oversized": (
        dict(
            reason="line_too_long",
            detail="line of 2000000 bytes over max_line_bytes 256",
            source=PATH,
            offset=5,
            raw=b'{"model": "m", "pad": "xxxx',
            raw_bytes=2_000_000,
            raw_truncated=True,
            fingerprint=FP,
        ),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 2000000 bytes over max_line_bytes 256","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":5},"raw":"{\\"model\\": \\"m\\", \\"pad\\": \\"xxxx","raw_bytes":2000000,"raw_truncated":true}\n',
    ),
    "over_raw_cap": (
        dict(reason="line_too_long", detail="", source=PATH, offset=9, raw=LONG, fingerprint=FP),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":9},"raw":"'
        + b"x" * (RAW_CAP - 1)
        + b'\xef\xbf\xbd","raw_bytes":65542,"raw_truncated":true}\n',
    ),
    "document": (
        REJECTED_DOCUMENT,
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"document_parsing_exception","detail":"400 document_parsing_exception: failed to parse field [x]","document":{"ml":{"inputs":{"age":"x"}},"n":1.5,"s":"\xc3\xa9"},"_id":"Zm9vYmFy","index":"logs-m-default"}\n',
    ),
    "document_not_json": (
        REJECTED_NOT_JSON,
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"mapping","detail":"not json","document":"\xef\xbf\xbdnot json","_id":"Zm9v","index":"logs-m-default"}\n',
    ),
    "undecodable_record": (
        dict(
            reason="undecodable_record",
            detail="spool record 7: Error -3 while decompressing data: incorrect header check",
            raw=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffnot a bulk body",
        ),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"undecodable_record","detail":"spool record 7: Error -3 while decompressing data: incorrect header check","raw":"\\u001f\xef\xbf\xbd\\b\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\xef\xbf\xbdnot a bulk body","raw_bytes":25}\n',
    ),
    "reason_only": (
        dict(reason="bad_timestamp", detail='a "quoted"\nnew line \u00e9 \U0001f600'),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"bad_timestamp","detail":"a \\"quoted\\"\\nnew line \xc3\xa9 \xf0\x9f\x98\x80"}\n',
    ),
    "every_field": (
        dict(
            reason="r",
            detail="d",
            source=PATH,
            offset=1,
            raw=b"abc",
            document=DOC,
            doc_id="id",
            fingerprint=FP,
            raw_bytes=10,
            raw_truncated=True,
            index="i",
        ),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"r","detail":"d","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":1},"raw":"abc","raw_bytes":10,"raw_truncated":true,"document":{"ml":{"inputs":{"age":"x"}},"n":1.5,"s":"\xc3\xa9"},"_id":"id","index":"i"}\n',
    ),
}

# The item's fields -> the dead_letter_index document.
INDEXED: dict[str, tuple[dict[str, Any], bytes]] = {
    "document": (
        REJECTED_DOCUMENT,
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"document_parsing_exception","detail":"400 document_parsing_exception: failed to parse field [x]","document":"{\\"ml\\":{\\"inputs\\":{\\"age\\":\\"x\\"}},\\"n\\":1.5,\\"s\\":\\"\xc3\xa9\\"}","index":"logs-m-default","document_id":"Zm9vYmFy"}',
    ),
    "document_not_json": (
        REJECTED_NOT_JSON,
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"mapping","detail":"not json","document":"\xef\xbf\xbdnot json","index":"logs-m-default","document_id":"Zm9v"}',
    ),
    "document_as_a_string": (
        dict(reason="mapping", detail="x", document=b'"just a string"', doc_id="Zm9v", index="i"),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"mapping","detail":"x","document":"just a string","index":"i","document_id":"Zm9v"}',
    ),
    "line": (
        dict(reason="invalid_json", detail="x", source=PATH, offset=4096, raw=b'{"model": "m", "x\xff'),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"x","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw":"{\\"model\\": \\"m\\", \\"x\xef\xbf\xbd","raw_bytes":18}',
    ),
    "every_field": (
        dict(reason="r", detail="d", source=PATH, offset=1, raw=b"abc", document=DOC, doc_id="id", index="i"),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"r","detail":"d","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":1},"raw":"abc","raw_bytes":3,"document":"{\\"ml\\":{\\"inputs\\":{\\"age\\":\\"x\\"}},\\"n\\":1.5,\\"s\\":\\"\xc3\xa9\\"}","index":"i","document_id":"id"}',
    ),
}


@pytest.mark.parametrize("case", sorted(LOCAL))
def test_the_local_dead_letter_line_is_pinned(tmp_path: Path, case: str) -> None:
    fields, expected = LOCAL[case]
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=False, clock=lambda: T)
    dl.write(DeadLetterItem(**fields))
    dl.close()
    assert path.read_bytes() == expected


@pytest.mark.parametrize("case", sorted(INDEXED))
def test_the_dead_letter_index_document_is_pinned(case: str) -> None:
    fields, expected = INDEXED[case]
    assert dead_letter_document(DeadLetterItem(**fields), T) == expected


# -- the read side: Rejects, per input policy -------------------------------------------------------

POLICIES = [
    RejectPolicy(),
    RejectPolicy(Redactor(drop=["inputs.email"])),
    RejectPolicy(Redactor(drop=["inputs.email"]), keep_unparsed=True),
]
AS_READ, REDACTS, KEEPS_UNPARSED = range(3)
LINE = b'{"timestamp": "never", "model": "m", "inputs": {"email": "a@b.c", "name": "Al"}}'
UNPARSED = b'{"model": "m", "inputs": {"email": "a@b.c"'
HEAD = b'{"model": "m", "inputs": {"email": "a@b.c", "pad": "xxxx'  # of a line of 300 bytes
TOO_LONG = "line of 300 bytes over max_line_bytes 64"

# (policy, reason, detail, raw, length) -> (the local line, the dead_letter_index document)
REJECTED: dict[str, tuple[tuple[int, str, str, bytes, int | None], bytes, bytes]] = {
    "as_read": (
        (AS_READ, "bad_timestamp", "timestamp: never", LINE, None),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"bad_timestamp","detail":"timestamp: never","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw":"{\\"timestamp\\": \\"never\\", \\"model\\": \\"m\\", \\"inputs\\": {\\"email\\": \\"a@b.c\\", \\"name\\": \\"Al\\"}}","raw_bytes":80}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"bad_timestamp","detail":"timestamp: never","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw":"{\\"timestamp\\": \\"never\\", \\"model\\": \\"m\\", \\"inputs\\": {\\"email\\": \\"a@b.c\\", \\"name\\": \\"Al\\"}}","raw_bytes":80}',
    ),
    "redacted": (
        (REDACTS, "bad_timestamp", "timestamp: never", LINE, None),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"bad_timestamp","detail":"timestamp: never","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw":"{\\"timestamp\\":\\"never\\",\\"model\\":\\"m\\",\\"inputs\\":{\\"name\\":\\"Al\\"}}","raw_bytes":80}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"bad_timestamp","detail":"timestamp: never","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw":"{\\"timestamp\\":\\"never\\",\\"model\\":\\"m\\",\\"inputs\\":{\\"name\\":\\"Al\\"}}","raw_bytes":80}',
    ),
    "withheld": (
        (REDACTS, "invalid_json", "unexpected end of data", UNPARSED, None),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"unexpected end of data","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw_bytes":42}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"unexpected end of data","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw_bytes":42}',
    ),
    "kept_unparsed": (
        (KEEPS_UNPARSED, "invalid_json", "unexpected end of data", UNPARSED, None),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"unexpected end of data","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw":"{\\"model\\": \\"m\\", \\"inputs\\": {\\"email\\": \\"a@b.c\\"","raw_bytes":42}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"invalid_json","detail":"unexpected end of data","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw_bytes":42}',
    ),
    "head_of_oversized": (
        (AS_READ, "line_too_long", TOO_LONG, HEAD, 300),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 300 bytes over max_line_bytes 64","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw":"{\\"model\\": \\"m\\", \\"inputs\\": {\\"email\\": \\"a@b.c\\", \\"pad\\": \\"xxxx","raw_bytes":300,"raw_truncated":true}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 300 bytes over max_line_bytes 64","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw":"{\\"model\\": \\"m\\", \\"inputs\\": {\\"email\\": \\"a@b.c\\", \\"pad\\": \\"xxxx","raw_bytes":300,"raw_truncated":true}',
    ),
    "head_of_oversized_kept_unparsed": (  # the head as read, on the host only
        (KEEPS_UNPARSED, "line_too_long", TOO_LONG, HEAD, 300),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 300 bytes over max_line_bytes 64","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw":"{\\"model\\": \\"m\\", \\"inputs\\": {\\"email\\": \\"a@b.c\\", \\"pad\\": \\"xxxx","raw_bytes":300,"raw_truncated":true}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 300 bytes over max_line_bytes 64","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw_bytes":300}',
    ),
    "head_of_oversized_redacted": (
        (REDACTS, "line_too_long", TOO_LONG, HEAD, 300),
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 300 bytes over max_line_bytes 64","log":{"file":{"path":"/var/log/m/a.jsonl","fingerprint":"9f86d081884c7d65"},"offset":4096},"raw_bytes":300}\n',
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"line_too_long","detail":"line of 300 bytes over max_line_bytes 64","log":{"file":{"path":"/var/log/m/a.jsonl"},"offset":4096},"raw_bytes":300}',
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_a_rejected_line_is_pinned_in_both_dead_letters(tmp_path: Path, case: str) -> None:
    (policy, reason, detail, raw, length), local, indexed = REJECTED[case]
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=False, clock=lambda: T)
    rejects = Rejects(dl, Metrics(), POLICIES, DL_INDEX, set(), lambda: T)
    batch = LineBatch(FileId(FP), PATH, policy, [], [], 0)
    event = rejects.reject(reason, detail, batch, 4096, raw, length)
    dl.close()
    assert path.read_bytes() == local
    assert event == Event("S5Ju02SMIUUz3Q_X_uN81w", DL_INDEX, indexed)


# -- the ship side: a rejected document, an undecodable spool record -------------------------------


def stored_gzip(data: bytes) -> bytes:
    """A gzip member holding ``data`` in one stored deflate block: the same bytes from any zlib."""
    n = len(data)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return (
        header + b"\x01" + struct.pack("<HH", n, n ^ 0xFFFF) + data + struct.pack("<II", zlib.crc32(data), n)
    )


class RefusingX:
    """Refuses the documents whose id starts with "x" (400); keeps what is sent to ``DL_INDEX``."""

    def __init__(self) -> None:
        self.indexed: list[tuple[str, bytes]] = []

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        out = []
        for index, doc_id, doc in bulkbody.decode(body_gz):
            if index == DL_INDEX:
                self.indexed.append((doc_id, doc))
            out.append(BAD if doc_id.startswith("x") and index != DL_INDEX else CREATED)
        return out

    def check(self) -> str:
        return "refusing"

    def close(self) -> None:
        pass


def test_the_ship_loop_dead_letters_are_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shipper, "time", types.SimpleNamespace(time=lambda: T, monotonic=time.monotonic))
    spool = Spool(tmp_path / "spool", 1 << 30, 1 << 16, fsync=False)
    events = [
        Event("g1", "logs-m-default", b'{"n": 1}'),
        Event("x1", "logs-m-default", b'{"n": "one", "s": "\\u00e9"}'),
    ]
    spool.append(bulkbody.encode(events, 1), 2)
    spool.append(stored_gzip(b"one line\n"), None)  # spooled without a count, and not a bulk body
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=False, clock=lambda: T)
    output = RefusingX()
    clock = Clock()
    loop = ShipLoop(
        spool,
        output,
        dl,
        Metrics(),
        Backoff(1.0, 60.0, random.Random(1)),
        dead_letter_index=DL_INDEX,
        clock=clock,
        max_in_flight=1,  # the rejected document's answer comes before the next record is read
    )
    drive(loop, clock)
    dl.close()
    spool.close()
    assert path.read_bytes() == (
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"document_parsing_exception","detail":"400 document_parsing_exception: failed to parse field [x]","document":{"n":"one","s":"\xc3\xa9"},"_id":"x1","index":"logs-m-default"}\n'
        b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"undecodable_record","detail":"spool record 2: a bulk body is pairs of lines, each ending with a newline","spool":{"seq":2},"raw":"\\u001f\xef\xbf\xbd\\b\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\xef\xbf\xbd\\u0001\\t\\u0000\xef\xbf\xbd\xef\xbf\xbdone line\\n5<j\xef\xbf\xbd\\t\\u0000\\u0000\\u0000","raw_bytes":32}\n'
    )
    assert output.indexed == [
        (
            "A8tmTSTde3eo70v-l5Mdjg",
            b'{"@timestamp":"2025-11-22T22:20:00.123Z","reason":"document_parsing_exception","detail":"400 document_parsing_exception: failed to parse field [x]","document":"{\\"n\\":\\"one\\",\\"s\\":\\"\xc3\xa9\\"}","index":"logs-m-default","document_id":"x1"}',
        )
    ]
