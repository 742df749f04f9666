"""What the dead letters keep of a rejected line: redacted like a document, on disk too; a line
that does not parse keeps no text unless agent.dead_letter.keep_unparsed asks for it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from pathlib import Path

import orjson
import pytest

from inferwatch.agent import bulkbody
from inferwatch.agent.daemon import Agent, build_normalizers
from inferwatch.agent.deadletter import DeadLetter
from inferwatch.agent.files.discovery import Discovery
from inferwatch.agent.files.tailer import Tailer
from inferwatch.agent.metrics import Metrics, labels
from inferwatch.agent.model import FileId, LineBatch
from inferwatch.agent.reader import ReadLoop, ReadSettings
from inferwatch.agent.redact import Redactor
from inferwatch.agent.registry import Registry
from inferwatch.agent.rejects import RejectPolicy, Rejects
from inferwatch.agent.spool import Spool
from inferwatch.core.config import ConfigError, parse_config
from tests.unit.agent.helpers import FullDisk, wait_for

SECRET = "alice.secret@example.com"
BAD_TIME = orjson.dumps({"timestamp": "never", "model": "m", "inputs": {"email": SECRET, "name": "Al"}})
UNPARSED = b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'"'
LONG = b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'", "pad": "' + b"x" * 2000 + b'"}}'


def read_once(
    tmp_path: Path,
    data: bytes,
    redact: str,
    keep_unparsed: str = "false",
    dead_letter_index: str | None = None,
) -> tuple[list[tuple[str, str, bytes]], bytes]:
    """Run a read loop (the daemon's normalizers, real spool, registry and dead letter) over one
    file holding ``data``: the bulk items it spooled (index, id, document) and the bytes of the
    local dead-letter file."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_bytes(data)
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  redact: {redact}
  dead_letter: {{keep_unparsed: {keep_unparsed}}}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
    )
    registry = Registry(tmp_path / "registry.json", fsync=False)
    dead = DeadLetter(tmp_path / "dead-letter.ndjson", fsync=False)
    with Spool(tmp_path / "spool", 1 << 20, 1 << 16, fsync=False) as spool:
        loop = ReadLoop(
            cfg.agent.inputs,
            Discovery(cfg.agent.inputs, scan_interval=0.0),
            Tailer(256, 4096, registry.get),
            build_normalizers(cfg, "test-host"),
            registry,
            spool,
            dead,
            Metrics(),
            ReadSettings(
                max_line_bytes=256,
                keep_unparsed=cfg.agent.dead_letter.keep_unparsed,
                dead_letter_index=dead_letter_index,
            ),
            wake=threading.Event(),
        )
        loop.step()
        loop.flush()
        loop.close()
        items = [item for rec in spool.read(0, 100) for item in bulkbody.decode(rec.payload)]
    dead.close()
    return items, (tmp_path / "dead-letter.ndjson").read_bytes()


def local_entries(tmp_path: Path, data: bytes, redact: str, keep_unparsed: str = "false") -> list[dict]:
    """The local dead letter after a read loop over ``data``."""
    _items, local = read_once(tmp_path, data, redact, keep_unparsed)
    return [orjson.loads(row) for row in local.splitlines()]


def test_the_local_dead_letter_keeps_a_rejected_line_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERWATCH_HASH_KEY", "k")
    redact = "{drop: [inputs.email], hash: [inputs.name]}"
    data = BAD_TIME + b"\n" + UNPARSED + b"\n" + LONG + b"\n"
    entries = local_entries(tmp_path, data, redact)
    assert SECRET not in orjson.dumps(entries).decode()
    by_reason = {e["reason"]: e for e in entries}
    assert set(by_reason) == {"bad_timestamp", "invalid_json", "line_too_long"}
    name = hmac.new(b"k", b"Al", hashlib.sha256).hexdigest()
    bad_time = by_reason["bad_timestamp"]
    assert orjson.loads(bad_time["raw"]) == {"timestamp": "never", "model": "m", "inputs": {"name": name}}
    assert bad_time["raw_bytes"] == len(BAD_TIME)
    for reason, line in (("invalid_json", UNPARSED), ("line_too_long", LONG)):
        assert "raw" not in by_reason[reason]  # cannot be redacted: reason, offset, length only
        assert by_reason[reason]["raw_bytes"] == len(line)
        assert by_reason[reason]["log"]["offset"] >= 0


def test_keep_unparsed_keeps_a_line_that_cannot_be_redacted_as_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = local_entries(tmp_path, BAD_TIME + b"\n" + UNPARSED + b"\n", "{drop: [inputs.email]}", "true")
    by_reason = {e["reason"]: e for e in entries}
    assert by_reason["invalid_json"]["raw"] == UNPARSED.decode()  # asked for: kept as read
    assert SECRET not in by_reason["bad_timestamp"]["raw"]  # what parses is still redacted


def test_without_redaction_a_rejected_line_is_kept_as_read(tmp_path: Path) -> None:
    entries = local_entries(tmp_path, UNPARSED + b"\n", "{}")
    assert [(e["reason"], e["raw"]) for e in entries] == [("invalid_json", UNPARSED.decode())]


def test_the_policy_in_one_place() -> None:
    redactor = Redactor(drop=("inputs.email",))
    plain, redacting = RejectPolicy(), RejectPolicy(redactor)
    keeping = RejectPolicy(redactor, keep_unparsed=True)
    assert plain.local_text(UNPARSED) == plain.index_text(UNPARSED) == UNPARSED
    assert redacting.local_text(UNPARSED) is None and redacting.index_text(UNPARSED) is None
    assert keeping.local_text(UNPARSED) == UNPARSED
    assert keeping.index_text(UNPARSED) is None  # never leaves the host
    assert redacting.local_text(BAD_TIME) == keeping.local_text(BAD_TIME) == redacting.index_text(BAD_TIME)


def test_keep_unparsed_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep_unparsed"):
        parse_config(
            f"agent:\n  data_dir: {tmp_path}\n  dead_letter: {{keep_unparsed: maybe}}\n"
            f"  inputs: [{{paths: ['{tmp_path}/*.jsonl']}}]\n"
        )


def test_a_redacted_field_of_a_rejected_line_never_reaches_the_dead_letter_index(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    cfg = parse_config(
        f"""
agent:
  data_dir: {tmp_path}/data
  scan_interval: 200ms
  batch: {{max_wait: 50ms}}
  shutdown_timeout: 5s
  dead_letter_index: inferwatch-dead-letter
  redact: {{drop: [inputs.email]}}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: m}}]
"""
    )
    secret = "alice.secret@example.com"
    line = orjson.dumps({"timestamp": "not a time", "model": "m", "inputs": {"email": secret, "age": 3}})
    (tmp_path / "logs" / "a.jsonl").write_bytes(line + b"\n")
    agent = Agent(cfg, host="test-host")
    agent.start()
    store = tmp_path / "data" / "store"
    try:
        wait_for(lambda: bool(list(store.glob("inferwatch-dead-letter/*.ndjson"))), timeout=30)
    finally:
        agent.stop()
    shipped = b"".join(p.read_bytes() for p in store.glob("*/*.ndjson"))
    assert b"bad_timestamp" in shipped
    assert secret.encode() not in shipped


def _dead_letter_index_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, redact: str
) -> tuple[list[dict[str, object]], bytes]:
    """The documents a read loop over ``data`` spooled for the dead-letter index, and the bytes
    of the local dead-letter file."""
    monkeypatch.setenv("INFERWATCH_HASH_KEY", "k")
    items, local = read_once(tmp_path, data, redact, dead_letter_index="dl")
    docs = [orjson.loads(doc) for index, _id, doc in items if index == "dl"]
    return docs, local


def test_a_rejected_line_is_redacted_like_a_document_before_it_goes_to_the_dead_letter_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import hmac

    line = orjson.dumps(
        {"timestamp": "not a time", "model": "m", "inputs": {"email": SECRET, "name": "Alice", "age": 3}}
    )
    redact = "{drop: [inputs.email], hash: [inputs.name]}"
    (doc,), local = _dead_letter_index_docs(tmp_path, monkeypatch, line + b"\n", redact)
    assert doc["reason"] == "bad_timestamp"
    assert isinstance(doc["raw"], str)
    name = hmac.new(b"k", b"Alice", hashlib.sha256).hexdigest()
    assert orjson.loads(doc["raw"]) == {
        "timestamp": "not a time",
        "model": "m",
        "inputs": {"name": name, "age": 3},
    }
    assert doc["raw_bytes"] == len(line)
    # redaction applies on disk too: the local dead letter keeps the redacted line
    assert SECRET.encode() not in local
    assert orjson.loads(orjson.loads(local)["raw"]) == orjson.loads(doc["raw"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'"', "invalid_json"),
        (b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'\xff"}}', "invalid_utf8"),
        (b'[{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'"}}]', "not_an_object"),
        (
            b'{"model": "m", "inputs": {"email": "' + SECRET.encode() + b'", "pad": "' + b"x" * 2000 + b'"}}',
            "line_too_long",
        ),
    ],
    ids=["invalid_json", "invalid_utf8", "not_an_object", "line_too_long"],
)
def test_a_rejected_line_that_cannot_be_redacted_goes_to_the_dead_letter_index_without_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: bytes, reason: str
) -> None:
    (doc,), _local = _dead_letter_index_docs(tmp_path, monkeypatch, line + b"\n", "{drop: [inputs.email]}")
    assert doc["reason"] == reason and doc["detail"]
    assert "raw" not in doc
    assert doc["raw_bytes"] == len(line)
    assert SECRET not in orjson.dumps(doc).decode()


def test_without_redaction_a_rejected_line_goes_to_the_dead_letter_index_as_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_line = b'{"model": "m", "pad": "' + b"x" * 2000 + b'"}'
    data = b'{"model": "m", "inputs": {"email": "a@b"\n' + long_line + b"\n"
    docs, local = _dead_letter_index_docs(tmp_path, monkeypatch, data, "{}")
    by_reason = {d["reason"]: d for d in docs}  # an oversized line is dead-lettered up front
    assert len(docs) == 2
    invalid, too_long = by_reason["invalid_json"], by_reason["line_too_long"]
    assert (invalid["raw"], invalid["raw_bytes"], "raw_truncated" in invalid) == (
        '{"model": "m", "inputs": {"email": "a@b"',
        40,
        False,
    )
    # the 1 KiB head the tailer keeps, and the line's length
    assert (too_long["raw"], too_long["raw_bytes"], too_long["raw_truncated"]) == (
        long_line[:1024].decode(),
        len(long_line),
        True,
    )
    # the local entry says it is a head too
    (kept,) = [e for e in map(orjson.loads, local.splitlines()) if e["reason"] == "line_too_long"]
    assert (kept["raw"], kept["raw_bytes"], kept["raw_truncated"]) == (too_long["raw"], len(long_line), True)


def test_a_dead_letter_that_cannot_be_written_is_said_once_per_episode_and_each_line_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    dead = FullDisk(tmp_path / "dead-letter.ndjson", full=5)
    rejects = Rejects(dead, metrics, [RejectPolicy(None, False)], None, set(), lambda: 0.0)
    batch = LineBatch(FileId("fp"), "/logs/a.jsonl", 0, [0], [b"x"], 2)
    dropped = labels(reason="dead_letter_write_failed")
    with caplog.at_level(logging.INFO, logger="inferwatch.agent.rejects"):
        for offset in range(5):
            rejects.reject("not_json", "bad", batch, offset, b"x")
        assert metrics.value("dropped_total", dropped) == 5
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "disk full" in errors[0].getMessage()
        assert "dead-letter.ndjson" in errors[0].getMessage()
        rejects.reject("not_json", "bad", batch, 5, b"x")
        rejects.reject("not_json", "bad", batch, 6, b"x")
    back = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert back == [
        f"the dead letter {dead.path} takes writes again; 5 rejected lines were dropped meanwhile"
    ]
    assert [orjson.loads(row)["log"]["offset"] for row in dead.path.read_bytes().splitlines()] == [5, 6]
    assert metrics.value("dead_lettered_total", labels(reason="not_json")) == 2
    dead.full += 1  # one more write fails: a new episode
    with caplog.at_level(logging.INFO, logger="inferwatch.agent.rejects"):
        rejects.reject("not_json", "bad", batch, 7, b"x")  # a new episode is said again
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
