from __future__ import annotations

from pathlib import Path

from inferwatch.analytics.alerts import AlertState
from inferwatch.analytics.state_store import ModelState, StateStore


def alert(aid: str = "a1") -> AlertState:
    return AlertState(
        id=aid,
        detector="null_surge",
        model="churn",
        version="1",
        feature="inputs.age",
        key=None,
        status="open",
        severity="warning",
        first_seen="2026-11-22T10:00:00+00:00",
        last_seen="2026-11-22T11:00:00+00:00",
        last_window="2026-11-22T11:00:00+00:00",
        windows=2,
        consecutive=2,
        clean=0,
        finding={"message": "inputs.age: 12% null vs 1% in training"},
    )


def test_a_model_never_saved_starts_empty(tmp_path: Path) -> None:
    state = StateStore(tmp_path).load("churn")
    assert state == ModelState()


def test_save_then_load_round_trips_alerts_detectors_versions_and_last_window(tmp_path: Path) -> None:
    store = StateStore(tmp_path, fsync=False)
    saved = ModelState(
        alerts={"a1": alert()},
        detectors={"1": {"cusum": {"inputs.age": 1.5}}},
        known_versions=["2", "1"],
        last_window="2026-11-22T11:00:00+00:00",
    )
    store.save("churn", saved)
    loaded = StateStore(tmp_path).load("churn")
    assert loaded.alerts == {"a1": alert()}
    assert loaded.detectors == {"1": {"cusum": {"inputs.age": 1.5}}}
    assert loaded.known_versions == ["1", "2"]
    assert loaded.last_window == "2026-11-22T11:00:00+00:00"


def test_models_are_kept_apart_even_with_unsafe_names(tmp_path: Path) -> None:
    store = StateStore(tmp_path, fsync=False)
    store.save("a/b", ModelState(known_versions=["1"]))
    store.save("a_c", ModelState(known_versions=["2"]))
    assert store.path("a/b").parent == tmp_path
    assert store.load("a/b").known_versions == ["1"]
    assert store.load("a_c").known_versions == ["2"]


def test_an_uncommitted_temp_file_is_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path, fsync=False)
    store.save("churn", ModelState(known_versions=["1"]))
    tmp = store.path("churn").with_name(store.path("churn").name + ".tmp")
    tmp.write_bytes(b'{"half": ')
    assert store.load("churn").known_versions == ["1"]
    assert not tmp.exists()


def test_a_corrupt_file_is_set_aside_and_the_model_starts_fresh(tmp_path: Path) -> None:
    store = StateStore(tmp_path, fsync=False)
    store.path("churn").write_text("{not json", encoding="utf-8")
    assert store.load("churn") == ModelState()
    assert store.path("churn").with_name("churn.state.json.corrupt").read_text() == "{not json"


def test_names_that_sanitize_alike_keep_their_own_state(tmp_path: Path) -> None:
    """ "a b", "a/b" and "a_b" all became a_b.state.json: one model's save overwrote the other's
    alerts and last window (its next window then looked like a replay and wrote nothing)."""
    store = StateStore(tmp_path, fsync=False)
    names = ["a b", "a/b", "a_b"]
    for i, name in enumerate(names):
        store.save(name, ModelState(known_versions=[str(i)]))
    assert [store.load(name).known_versions for name in names] == [["0"], ["1"], ["2"]]
    assert store.path("a_b").name == "a_b.state.json"  # a safe name keeps its file
    assert all(store.path(name).parent == tmp_path for name in names)
