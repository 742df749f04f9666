"""The registry's contract, run on one open instance and with a flush + fresh instance between
every step (a restart). Plus the on-disk fixtures under tests/fixtures/registry/<case>/: the files
a crash or a damaged disk leaves, and expected.json with what loading them gives."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from inferwatch.agent.model import Checkpoint, FileId
from inferwatch.agent.registry import Registry, RegistryError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "registry"
A, B, C = FileId("aa01"), FileId("bb02"), FileId("cc03")


def cp(offset: int, updated: float = 100.0, path: str = "/logs/a.jsonl") -> Checkpoint:
    return Checkpoint(offset=offset, path=path, device=64768, inode=131, updated=updated)


class Harness:
    def __init__(self, path: Path, reopen: bool) -> None:
        self.path = path
        self.reopen = reopen
        self.registry = Registry(path)

    def step(self) -> Registry:
        if self.reopen:
            self.registry.close()
            self.registry = Registry(self.path)
        return self.registry


Make = Callable[[], Harness]


@pytest.fixture(params=["same_instance", "reopen_every_step"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    return lambda: Harness(tmp_path / "data" / "registry.json", request.param == "reopen_every_step")


def test_a_new_registry_is_empty(make: Make) -> None:
    h = make()
    r = h.step()
    assert r.items() == {}
    assert r.get(A) is None
    assert r.flush() is False
    assert not h.path.exists()


def test_set_get_and_overwrite(make: Make) -> None:
    h = make()
    h.step().set(A, cp(10))
    h.step().set(B, cp(20, path="/logs/b.jsonl"))
    assert h.step().get(A) == cp(10)
    h.step().set(A, cp(30))
    r = h.step()
    assert r.items() == {A: cp(30), B: cp(20, path="/logs/b.jsonl")}


def test_remove(make: Make) -> None:
    h = make()
    h.step().set(A, cp(10))
    h.step().set(B, cp(20))
    h.step().remove(A)
    h.step().remove(C)  # unknown: nothing happens
    assert h.step().items() == {B: cp(20)}


def test_prune_drops_only_old_entries_that_are_not_kept(make: Make) -> None:
    h = make()
    h.step().set(A, cp(1, updated=100.0))  # old, not kept -> pruned
    h.step().set(B, cp(2, updated=100.0))  # old but kept
    h.step().set(C, cp(3, updated=150.0))  # exactly at the cutoff: not older, stays
    assert h.step().prune(keep={B}, now=250.0, older_than=100.0) == 1
    assert h.step().items() == {B: cp(2, updated=100.0), C: cp(3, updated=150.0)}
    assert h.step().prune(keep=set(), now=250.0, older_than=100.0) == 1
    assert h.step().items() == {C: cp(3, updated=150.0)}


def test_flush_writes_only_when_something_changed(make: Make) -> None:
    h = make()
    r = h.step()
    r.set(A, cp(10))
    assert r.flush() is True
    assert r.flush() is False
    r = h.step()
    r.set(A, cp(10))  # the same value: nothing to write
    assert r.flush() is False
    r.set(A, cp(11))
    assert r.flush() is True
    assert json.loads(h.path.read_bytes())["files"]["aa01"]["offset"] == 11


def test_items_is_a_copy(make: Make) -> None:
    h = make()
    h.step().set(A, cp(10))
    items = h.step().items()
    items[B] = cp(99)
    assert h.step().items() == {A: cp(10)}


def test_changes_not_flushed_are_lost_in_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    r = Registry(path)
    r.set(A, cp(10))
    r.flush()
    r.set(A, cp(20))
    r.set(B, cp(5))
    assert Registry(path).items() == {A: cp(10)}  # a new process after kill -9


def test_a_failed_flush_keeps_the_changes_for_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    r = Registry(path)
    r.set(A, cp(10))
    path.mkdir()  # the rename onto a directory fails
    with pytest.raises(OSError):
        r.flush()
    assert r.dirty
    path.rmdir()
    assert r.flush() is True
    assert Registry(path).items() == {A: cp(10)}


def test_the_file_is_versioned_json(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    r = Registry(path, fsync=False)
    r.set(A, cp(10, updated=1.5))
    r.flush()
    assert json.loads(path.read_bytes()) == {
        "version": 1,
        "files": {
            "aa01": {"offset": 10, "path": "/logs/a.jsonl", "device": 64768, "inode": 131, "updated": 1.5}
        },
    }
    assert not (tmp_path / "registry.json.tmp").exists()


# ---- fixtures --------------------------------------------------------------------------------

CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
CLOCK = 1_763_849_700.0  # 2025-11-22T22:15:00Z, the time in a moved-aside file's name


def test_every_fixture_case_is_present() -> None:
    assert CASES == [
        "garbage",
        "newer_version",
        "tmp_with_main",
        "tmp_without_main",
        "valid_v1",
        "wrong_shape",
    ]


@pytest.mark.parametrize("case", CASES)
def test_loading_a_fixture_gives_the_expected_result(case: str, tmp_path: Path) -> None:
    directory = tmp_path / case
    shutil.copytree(FIXTURES / case, directory, ignore=shutil.ignore_patterns("expected.json"))
    expected = json.loads((FIXTURES / case / "expected.json").read_text())
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    if expected["error"] == "RegistryError":
        with pytest.raises(RegistryError, match="newer than this agent"):
            Registry(directory / "registry.json", clock=lambda: CLOCK)
    else:
        r = Registry(directory / "registry.json", clock=lambda: CLOCK)
        want = {FileId(k): Checkpoint(**v) for k, v in expected["entries"].items()}
        assert r.items() == want
        assert dict(r.counts) == expected["counts"]
    assert sorted(p.name for p in directory.iterdir()) == expected["files"]
    for name in expected["files"]:  # a moved-aside registry keeps its bytes for a person to read
        if name.startswith("registry.json.corrupt-"):
            assert (directory / name).read_bytes() == before["registry.json"]


def test_after_a_corrupt_registry_the_agent_starts_fresh_and_saves_again(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_bytes(b"\x00garbage")
    r = Registry(path, clock=lambda: CLOCK)
    r.set(A, cp(7))
    assert r.flush() is True
    assert Registry(path).items() == {A: cp(7)}
