"""The dead letter: one NDJSON line per rejected item with its reason, counted, size-capped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferwatch.agent import deadletter as deadletter_module
from inferwatch.agent.deadletter import RAW_CAP, DeadLetter, DeadLetterItem, entry
from inferwatch.agent.oserrors import describe
from tests.unit.agent.helpers import TornWrite

T = 1_763_850_000.123  # 2025-11-22T22:20:00.123Z


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_a_rejected_line_is_written_with_reason_source_and_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, clock=lambda: T)
    dl.write(
        DeadLetterItem(
            "invalid_json", "expected value at 1:1", source="/logs/a.jsonl", offset=4096, raw=b"{oops"
        )
    )
    dl.close()
    assert lines(path) == [
        {
            "@timestamp": "2025-11-22T22:20:00.123Z",
            "reason": "invalid_json",
            "detail": "expected value at 1:1",
            "log": {"file": {"path": "/logs/a.jsonl"}, "offset": 4096},
            "raw": "{oops",
            "raw_bytes": 5,
        }
    ]


def test_a_rejected_document_is_kept_as_an_object_with_its_id(tmp_path: Path) -> None:
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, clock=lambda: T)
    dl.write(
        DeadLetterItem(
            "mapping",
            "mapper_parsing_exception: failed to parse [ml.inputs.age]",
            document=b'{"ml":{"inputs":{"age":"x"}}}',
            doc_id="Zm9v",
        ),
    )
    dl.write(DeadLetterItem("mapping", "not json", document=b"\xffnot json"))
    dl.close()
    first, second = lines(path)
    assert first["document"] == {"ml": {"inputs": {"age": "x"}}}
    assert first["_id"] == "Zm9v"
    assert "log" not in first and "raw" not in first
    assert second["document"] == "\ufffdnot json"


def test_invalid_utf8_is_kept_readable_with_replacement_characters() -> None:
    doc = entry(DeadLetterItem("invalid_utf8", "byte 0xff at 3", raw=b"ab\xffcd"), 0.0)
    assert doc["raw"] == "ab\ufffdcd"
    assert doc["raw_bytes"] == 5
    assert "raw_truncated" not in doc


def test_a_long_raw_line_is_cut_at_64_kib() -> None:
    doc = entry(DeadLetterItem("line_too_long", "2 MiB line", raw=b"x" * (2 * 1024**2)), 0.0)
    assert doc["raw"] == "x" * RAW_CAP
    assert doc["raw_bytes"] == 2 * 1024**2
    assert doc["raw_truncated"] is True


def test_counts_by_reason(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path / "dl.ndjson", fsync=False)
    for reason in ["invalid_json", "invalid_json", "missing_field", "mapping"]:
        dl.write(DeadLetterItem(reason, ""))
    assert dl.counts == {"invalid_json": 2, "missing_field": 1, "mapping": 1}
    dl.close()


def test_lines_are_appended_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "dl.ndjson"
    first = DeadLetter(path)
    first.write(DeadLetterItem("invalid_json", "one"))
    first.flush()
    first.close()
    second = DeadLetter(path)
    second.write(DeadLetterItem("invalid_json", "two"))
    second.close()
    assert [d["detail"] for d in lines(path)] == ["one", "two"]


def test_lines_are_on_disk_before_flush(tmp_path: Path) -> None:
    """Each line is one write(2) to the file: a kill -9 before the next fsync loses nothing the
    operating system already has."""
    path = tmp_path / "dl.ndjson"
    dl = DeadLetter(path)
    dl.write(DeadLetterItem("invalid_json", "x"))
    assert len(lines(path)) == 1
    dl.close()


def test_the_file_is_rotated_once_past_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "dl.ndjson"
    dl = DeadLetter(path, max_bytes=300, clock=lambda: T)
    for i in range(10):
        dl.write(DeadLetterItem("invalid_json", f"line {i}"))  # 84 bytes each: three fit in 300
    dl.close()
    assert [d["detail"] for d in lines(tmp_path / "dl.ndjson.1")] == ["line 6", "line 7", "line 8"]
    assert [d["detail"] for d in lines(path)] == ["line 9"]
    assert dl.rotations == 3
    assert dl.counts == {"invalid_json": 10}


def test_a_closed_dead_letter_refuses_writes(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path / "dl.ndjson")
    dl.close()
    with pytest.raises(ValueError, match="closed"):
        dl.write(DeadLetterItem("x", "y"))


def test_lines_after_a_mark_name_the_log_lines_written_since(tmp_path: Path) -> None:
    from inferwatch.agent.deadletter import DeadLetterMark

    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, clock=lambda: T, max_bytes=1000)
    dl.write(DeadLetterItem("invalid_json", "x", source="/a", offset=1, raw=b"{", fingerprint="f1"))
    mark = dl.position()
    dl.write(DeadLetterItem("mapping", "x", document=b"{}", doc_id="d"))  # not a log line: no key
    dl.write(DeadLetterItem("invalid_json", "x", source="/a", offset=2, raw=b"{", fingerprint="f1"))
    assert dl.lines_after(mark) == {("f1", 2)}
    for offset in range(3, 6):  # passes max_bytes: rotated to .1 once
        dl.write(
            DeadLetterItem("invalid_json", "x", source="/a", offset=offset, raw=b"{" * 100, fingerprint="f2")
        )
    assert dl.rotations == 1
    assert dl.lines_after(mark) == {("f1", 2), ("f2", 3), ("f2", 4), ("f2", 5)}
    assert dl.lines_after(DeadLetterMark(inode=0, size=0)) == dl.lines_after(mark) | {("f1", 1)}
    dl.close()


def test_documents_after_a_mark_count_the_rejected_documents_written_since(tmp_path: Path) -> None:
    from inferwatch.agent.deadletter import WHOLE_DEAD_LETTER

    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, clock=lambda: T, max_bytes=1200)
    dl.write(DeadLetterItem("mapping", "x", document=b"{}", doc_id="a", index="i1"))
    mark = dl.position()
    dl.write(DeadLetterItem("mapping", "x", document=b"{}", doc_id="b", index="i1"))
    # the same id twice: counted twice
    dl.write(DeadLetterItem("mapping", "x", document=b"{}", doc_id="b", index="i1"))
    dl.write(DeadLetterItem("mapping", "x", document=b"{}", doc_id="b", index="i2"))
    # no target index: not ours
    dl.write(DeadLetterItem("mapping", "x", document=b'{"index": "i1"}', doc_id="c"))
    dl.write(
        DeadLetterItem(
            "invalid_json", "x", source="/a", offset=2, raw=b'{"index":"i1","_id":"z"', fingerprint="f"
        )
    )
    assert dl.documents_after(mark) == {("i1", "b"): 2, ("i2", "b"): 1}
    for n in range(4):  # passes max_bytes: rotated to .1 once
        dl.write(DeadLetterItem("mapping", "y" * 200, document=b"{}", doc_id=f"r{n}", index="i1"))
    assert dl.rotations == 1
    assert dl.documents_after(mark) == {("i1", "b"): 2, ("i2", "b"): 1} | {
        ("i1", f"r{n}"): 1 for n in range(4)
    }
    assert dl.documents_after(WHOLE_DEAD_LETTER) == dl.documents_after(mark) | {("i1", "a"): 1}
    dl.close()
    assert lines(path)[-1]["index"] == "i1"


def test_records_after_a_mark_name_the_undecodable_spool_records_written_since(tmp_path: Path) -> None:
    from inferwatch.agent.deadletter import WHOLE_DEAD_LETTER

    dl = DeadLetter(tmp_path / "dead-letter.ndjson", clock=lambda: T)
    dl.write(DeadLetterItem("undecodable_record", "x", spool_seq=1, raw=b"ab"))
    mark = dl.position()
    dl.write(DeadLetterItem("undecodable_record", "x", spool_seq=2, raw=b"abc"))
    dl.write(DeadLetterItem("invalid_json", "x", source="/a", offset=2, raw=b'{"spool": {"seq": 3}}'))
    dl.write(DeadLetterItem("mapping", "x", document=b'{"spool": {"seq": 4}}', doc_id="d", index="i"))
    assert dl.records_after(mark) == {(2, 3)}  # (seq, length): the others are not spool records
    assert dl.records_after(WHOLE_DEAD_LETTER) == {(1, 2), (2, 3)}
    dl.close()
    assert lines(tmp_path / "dead-letter.ndjson")[0]["spool"] == {"seq": 1}


def test_dead_letter_torn_entry_does_not_swallow_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=False)
    dl.write(DeadLetterItem("invalid_json", "first", raw=b"{not json"))
    torn = TornWrite()
    monkeypatch.setattr(deadletter_module.os, "write", torn)
    torn.state = "armed"
    with pytest.raises(OSError) as failed:
        dl.write(DeadLetterItem("invalid_json", "second", raw=b"x" * 200))
    # os.write names no file: the dead letter names itself, for the disk-full message
    assert f"disk full writing {path}" in describe(failed.value)
    dl.write(DeadLetterItem("bad_timestamp", "third", raw=b'{"timestamp": "yesterday"}'))
    dl.close()
    entries = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [e["detail"] for e in entries] == ["first", "third"]
    assert dl.counts == {"invalid_json": 1, "bad_timestamp": 1}


def test_dead_letter_makes_its_file_name_durable_at_creation_and_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(deadletter_module, "fsync_dir", synced.append, raising=False)
    path = tmp_path / "dead-letter.ndjson"
    dl = DeadLetter(path, fsync=True, max_bytes=300)
    assert synced == [tmp_path]  # a new file: its directory entry is fsynced
    dl.write(DeadLetterItem("invalid_json", "one", raw=b"a" * 200))
    dl.write(DeadLetterItem("invalid_json", "two", raw=b"b" * 200))  # rotates: rename + a new file
    dl.flush()
    assert synced == [tmp_path, tmp_path]
    assert path.with_name(path.name + ".1").exists()
    dl.close()
    synced.clear()
    DeadLetter(path, fsync=True).close()  # an existing file: nothing to make durable
    assert synced == []


def test_dead_letter_reopened_after_a_torn_write_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "dead-letter.ndjson"
    path.write_bytes(b'{"reason":"invalid_json","detail":"whole"}\n{"reason":"inv')  # crash mid-write
    dl = DeadLetter(path, fsync=False)
    dl.write(DeadLetterItem("bad_timestamp", "after restart"))
    dl.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"reason":"inv' and lines[-1] == b""
    assert orjson.loads(lines[2])["detail"] == "after restart"
