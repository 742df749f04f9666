"""The data directory is named in one place: every path DataDir gives is one of its NAMES."""

from __future__ import annotations

from pathlib import Path

from inferwatch.core.layout import DataDir


def test_every_entry_is_listed_once_and_every_listed_name_has_a_path() -> None:
    d = DataDir(Path("/d"))
    paths = {name: getattr(d, name) for name in dir(DataDir) if isinstance(getattr(DataDir, name), property)}
    assert all(p.parent == Path("/d") for p in paths.values())
    assert sorted(p.name for p in paths.values()) == sorted(DataDir.NAMES)
    assert len(set(DataDir.NAMES)) == len(DataDir.NAMES)
