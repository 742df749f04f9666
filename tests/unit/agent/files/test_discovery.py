from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from inferwatch.agent.files.discovery import Discovery, excluded, watch_root
from inferwatch.core.config import InputConfig

from .helpers import FakeClock


def test_watch_root_is_the_part_before_the_first_wildcard() -> None:
    assert watch_root("/var/log/models/*.jsonl*") == ("/var/log/models", False)
    assert watch_root("/var/log/**/pred-*.jsonl") == ("/var/log", True)
    assert watch_root("/var/log/*/pred.jsonl") == ("/var/log", True)
    assert watch_root("/var/log/pred.jsonl") == ("/var/log", False)


def test_exclude_matches_the_name_or_with_a_slash_the_whole_path() -> None:
    assert excluded("/l/a.jsonl.gz", ("*.gz",))
    assert not excluded("/l/a.jsonl", ("*.gz",))
    assert excluded("/l/old/a.jsonl", ("/l/old/*",))
    assert not excluded("/l/a.jsonl", ("/l/old/*",))


def test_scan_finds_regular_files_minus_excludes_first_input_wins(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"")
    (tmp_path / "a.jsonl.1").write_bytes(b"")
    (tmp_path / "a.jsonl.2.gz").write_bytes(b"")
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_bytes(b"")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.jsonl")
    inputs = [
        InputConfig(paths=(f"{tmp_path}/*.jsonl*",), exclude=("*.gz",)),
        InputConfig(paths=(f"{tmp_path}/**/*.jsonl",)),
    ]
    found = Discovery(inputs, 10.0).scan()
    assert found == [
        (0, f"{tmp_path}/a.jsonl"),
        (0, f"{tmp_path}/a.jsonl.1"),
        (1, f"{tmp_path}/sub/b.jsonl"),
    ]


def test_due_after_the_interval_or_never_scanned(tmp_path: Path) -> None:
    clock = FakeClock()
    d = Discovery([InputConfig(paths=(f"{tmp_path}/*.jsonl",))], 10.0, clock=clock)
    assert d.due(clock.now)
    d.scan()
    assert not d.due(clock.now + 9.9)
    assert d.due(clock.now + 10.0)


def wait_for(event: threading.Event, what: str) -> None:
    assert event.wait(10.0), f"no event: {what}"


def test_file_events_wake_the_reader_and_a_new_file_makes_a_scan_due(tmp_path: Path) -> None:
    clock = FakeClock()
    d = Discovery([InputConfig(paths=(f"{tmp_path}/*.jsonl",))], 10.0, clock=clock)
    d.start()
    try:
        d.scan()
        assert not d.due(clock.now)
        (tmp_path / "a.jsonl").write_bytes(b"x\n")
        wait_for(d.wake, "create")
        assert d.due(clock.now)
        assert d.scan() == [(0, f"{tmp_path}/a.jsonl")]
        d.wake.clear()
        with open(tmp_path / "a.jsonl", "ab") as f:
            f.write(b"y\n")
        wait_for(d.wake, "modify")
    finally:
        d.stop()


@pytest.mark.parametrize("missing", ["missing", "missing/deeper"])
def test_a_missing_directory_falls_back_to_the_scan(tmp_path: Path, missing: str) -> None:
    d = Discovery([InputConfig(paths=(f"{tmp_path}/{missing}/*.jsonl",))], 10.0)
    d.start()
    try:
        assert d.scan() == []
        (tmp_path / missing).mkdir(parents=True)
        (tmp_path / missing / "a.jsonl").write_bytes(b"")
        assert d.scan() == [(0, f"{tmp_path}/{missing}/a.jsonl")]
        d.wake.clear()
        (tmp_path / missing / "b.jsonl").write_bytes(b"")  # watched since the last scan
        wait_for(d.wake, "create after the directory appeared")
    finally:
        d.stop()
    d.stop()  # idempotent
