"""Atomic state files: the reader sees the old or the new content, never a mix, and a temp file
left by a crash is never mistaken for committed state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes, tmp_path


def test_write_then_read(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}'
    assert read_state_bytes(path) == b'{"a": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_second_write_replaces_the_first(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"long old content" * 100)
    atomic_write_bytes(path, b"new", fsync=False)
    assert read_state_bytes(path) == b"new"


def test_the_temp_file_sits_beside_the_target() -> None:
    assert tmp_path(Path("/d/registry.json")) == Path("/d/registry.json.tmp")


def test_nothing_written_reads_as_none(tmp_path: Path) -> None:
    assert read_state_bytes(tmp_path / "missing.json") is None


def test_a_leftover_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_bytes(b"committed")
    (tmp_path / "registry.json.tmp").write_bytes(b"half-writ")
    assert read_state_bytes(path) == b"committed"
    assert not (tmp_path / "registry.json.tmp").exists()


def test_a_temp_file_without_a_main_file_was_never_committed(tmp_path: Path) -> None:
    (tmp_path / "registry.json.tmp").write_bytes(b'{"complete": "but never renamed"}')
    assert read_state_bytes(tmp_path / "registry.json") is None
    assert list(tmp_path.iterdir()) == []


def test_a_crash_before_the_rename_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert read_state_bytes(path) == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_removes_its_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_the_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(path, b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
