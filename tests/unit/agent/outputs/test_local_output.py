from __future__ import annotations

import errno
from pathlib import Path

import orjson
import pytest

from inferwatch.agent.bulkbody import encode_items
from inferwatch.agent.model import Outcome
from inferwatch.agent.outputs.local import LocalOutput

A = "logs-inferwatch.churn-default"
B = "logs-inferwatch.fraud-default"


def doc(n: int) -> bytes:
    return orjson.dumps({"@timestamp": "2026-11-22T10:48:12.486Z", "ml": {"inputs": {"n": n}}})


def lines(store: Path, index: str) -> list[dict[str, object]]:
    return [
        orjson.loads(line)
        for seg in sorted((store / index).glob("*.ndjson"))
        for line in seg.read_bytes().splitlines()
    ]


def test_writes_documents_with_id_and_answers_created(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)

    results = out.send(encode_items([(A, "a", doc(1)), (A, "b", doc(2))]), 2)

    assert [(r.outcome, r.status) for r in results] == [(Outcome.CREATED, 201)] * 2
    assert lines(tmp_path, A) == [
        {"_id": "a", "@timestamp": "2026-11-22T10:48:12.486Z", "ml": {"inputs": {"n": 1}}},
        {"_id": "b", "@timestamp": "2026-11-22T10:48:12.486Z", "ml": {"inputs": {"n": 2}}},
    ]
    assert [p.name for p in (tmp_path / A).iterdir()] == ["00000000000000000001.ndjson"]


def test_replay_answers_duplicate_and_writes_nothing(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)
    body = encode_items([(A, "a", doc(1)), (A, "b", doc(2))])
    out.send(body, 2)

    results = out.send(body, 2)

    assert [(r.outcome, r.status) for r in results] == [(Outcome.DUPLICATE, 409)] * 2
    assert len(list((tmp_path / A).iterdir())) == 1
    assert out.stored == 2


def test_partial_replay_writes_only_new_ids(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)
    out.send(encode_items([(A, "a", doc(1))]), 1)

    results = out.send(encode_items([(A, "a", doc(1)), (A, "c", doc(3))]), 2)

    assert [r.outcome for r in results] == [Outcome.DUPLICATE, Outcome.CREATED]
    assert [d["_id"] for d in lines(tmp_path, A)] == ["a", "c"]


def test_ids_survive_restart_and_segment_numbers_continue(tmp_path: Path) -> None:
    LocalOutput(tmp_path).send(encode_items([(A, "a", doc(1)), (B, "x", doc(9))]), 2)

    again = LocalOutput(tmp_path)
    results = again.send(encode_items([(B, "x", doc(9)), (B, "y", doc(10)), (A, "a", doc(1))]), 3)

    assert [r.outcome for r in results] == [Outcome.DUPLICATE, Outcome.CREATED, Outcome.DUPLICATE]
    names = sorted(p.name for p in tmp_path.glob("*/*.ndjson"))
    assert names == [
        "00000000000000000001.ndjson",
        "00000000000000000002.ndjson",
        "00000000000000000003.ndjson",
    ]
    assert [d["_id"] for d in lines(tmp_path, B)] == ["x", "y"]
    assert "3 documents in 3 segments" in again.check()


def test_repeated_id_within_one_body_is_a_duplicate(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)
    results = out.send(encode_items([(A, "a", doc(1)), (A, "a", doc(1))]), 2)
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.DUPLICATE]
    assert len(lines(tmp_path, A)) == 1


def test_uncommitted_temp_segment_is_removed_and_its_documents_written_again(tmp_path: Path) -> None:
    (tmp_path / A).mkdir()
    (tmp_path / A / "00000000000000000001.ndjson.tmp").write_bytes(b'{"_id":"a"}\n')  # a crash before rename

    out = LocalOutput(tmp_path)
    results = out.send(encode_items([(A, "a", doc(1))]), 1)

    assert results[0].outcome is Outcome.CREATED
    assert sorted(p.name for p in (tmp_path / A).iterdir()) == ["00000000000000000001.ndjson"]


def test_empty_document_and_bad_index(tmp_path: Path) -> None:
    out = LocalOutput(tmp_path)
    results = out.send(encode_items([(A, "e", b"{}"), ("../escape", "z", doc(1)), (A, "s", b'"str"')]), 3)
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.REJECTED, Outcome.REJECTED]
    assert results[1].error_type == "invalid_index_name_exception"
    assert lines(tmp_path, A) == [{"_id": "e"}]
    assert not (tmp_path.parent / "escape").exists()


def test_reads_ids_of_segments_written_by_others(tmp_path: Path) -> None:
    (tmp_path / A).mkdir()
    (tmp_path / A / "00000000000000000007.ndjson").write_bytes(b'{"x": 1, "_id": "late"}\n')

    out = LocalOutput(tmp_path)
    results = out.send(encode_items([(A, "late", doc(1)), (A, "new", doc(2))]), 2)

    assert [r.outcome for r in results] == [Outcome.DUPLICATE, Outcome.CREATED]
    assert (tmp_path / A / "00000000000000000008.ndjson").exists()


def test_local_store_disk_full_is_an_unavailable_output_and_the_resend_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.outputs import OutputUnavailable
    from inferwatch.agent.outputs import local as local_module
    from inferwatch.agent.outputs.local import LocalOutput

    a, b = "logs-inferwatch.a-default", "logs-inferwatch.b-default"
    body = bulkbody.encode_items([(a, "1", b'{"n":1}'), (b, "2", b'{"n":2}')])
    out = LocalOutput(tmp_path / "store", fsync=False)
    real = local_module.atomic_write_bytes
    calls: list[Path] = []

    def second_fails(path: Path, data: bytes, fsync: bool = True) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, fsync)

    monkeypatch.setattr(local_module, "atomic_write_bytes", second_fails)
    # Disk full is the output being unavailable (backoff, output_up 0, /health), not a loop crash.
    with pytest.raises(OutputUnavailable, match="No space left"):
        out.send(body, 2)
    results = out.send(body, 2)
    assert [r.outcome for r in results] == [Outcome.DUPLICATE, Outcome.CREATED]
    assert out.stored == 2
