"""Registry encoding and concurrent use (the contract itself is in tests/contract)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from inferwatch.agent.model import Checkpoint, FileId
from inferwatch.agent.registry import Registry, RegistryError, decode, encode


def cp(offset: int) -> Checkpoint:
    return Checkpoint(offset=offset, path="/logs/a.jsonl", device=1, inode=2, updated=3.0)


def test_encode_then_decode_is_the_identity() -> None:
    entries = {FileId("aa"): cp(1), FileId("bb"): cp(2)}
    assert decode(encode(entries)) == entries


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"files": {}}',
        b'{"version": "1", "files": {}}',
        b'{"version": 0, "files": {}}',
        b'{"version": 1}',
        b'{"version": 1, "files": {"aa": {"offset": -1, "path": "p", "device": 1, "inode": 2, "updated": 3}}}',
        b'{"version": 1, "files": {"aa": {"offset": 1, "path": 5, "device": 1, "inode": 2, "updated": 3}}}',
        b'{"version": 1, "files": {"aa": {"offset": 1, "path": "p", "device": 1, "inode": 2}}}',
        b'{"version": 1, "files": {"aa": {"offset": 1, "path": "p", "device": 1, "inode": 2, "updated": "x"}}}',
    ],
)
def test_documents_that_are_not_registries_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


def test_a_newer_format_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="version 2 is newer"):
        decode(b'{"version": 2, "files": {}}')


def test_sets_from_one_thread_and_flushes_from_another_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    registry = Registry(path, fsync=False)
    done = threading.Event()

    def flusher() -> None:
        while not done.is_set():
            registry.flush()

    t = threading.Thread(target=flusher)
    t.start()
    for i in range(2000):
        registry.set(FileId(f"f{i % 50}"), cp(i))
    done.set()
    t.join()
    registry.flush()
    assert Registry(path).items() == registry.items()
    assert registry.items()[FileId("f49")] == cp(1999)


def test_the_dead_letter_mark_is_kept_with_the_offsets(tmp_path: Path) -> None:
    from inferwatch.agent.deadletter import DeadLetterMark

    reg = Registry(tmp_path / "registry.json", fsync=False)
    assert reg.dead_letter_mark is None
    reg.set(FileId("aa"), cp(1))
    reg.set_dead_letter_mark(DeadLetterMark(7, 512))
    reg.flush()
    again = Registry(tmp_path / "registry.json", fsync=False)
    assert (again.items(), again.dead_letter_mark) == ({FileId("aa"): cp(1)}, DeadLetterMark(7, 512))
    assert decode(encode({FileId("aa"): cp(1)})) == {FileId("aa"): cp(1)}  # the mark is optional


def test_a_prompt_checkpoint_is_there_at_once_and_durable_at_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-batch checkpoint renames without fsync (a process crash finds it in the page
    cache); the periodic flush then fsyncs it even though nothing changed since, and only once."""
    import os

    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    path = tmp_path / "registry.json"
    registry = Registry(path)
    registry.set(FileId("a"), Checkpoint(10, "/logs/a.jsonl", 1, 2, 0.0))
    assert registry.flush(durable=False)
    assert fsyncs == []
    assert Registry(path).items()[FileId("a")].offset == 10  # what a restart after kill -9 reads
    assert registry.flush()  # nothing changed, but the prompt write is not durable yet
    assert len(fsyncs) == 2  # the file, then its directory (the rename)
    assert not registry.flush()  # durable now: nothing to do
    assert len(fsyncs) == 2


def test_without_fsync_configured_the_durable_flush_has_nothing_to_add(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry.json", fsync=False)
    registry.set(FileId("a"), Checkpoint(10, "/logs/a.jsonl", 1, 2, 0.0))
    assert registry.flush(durable=False)
    assert not registry.flush()
