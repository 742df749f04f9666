from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferwatch.analytics.scheduler import Worker, my_models, owns, parse_shard

MODELS = [f"model_{i}" for i in range(40)]


def test_parse_shard_accepts_i_of_n_and_refuses_the_rest() -> None:
    assert parse_shard("2/4") == (2, 4)
    for bad in ["4/4", "1", "-1/2", "0/0", "a/b"]:
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_every_model_belongs_to_exactly_one_shard() -> None:
    shards = [my_models(MODELS, f"{i}/3") for i in range(3)]
    assert sorted(m for s in shards for m in s) == sorted(MODELS)
    assert all(shards), "40 models over 3 shards: none should be empty"
    assert my_models(MODELS, "0/1") == sorted(MODELS)


@given(models=st.lists(st.text(min_size=1, max_size=30), max_size=40), n=st.integers(1, 9))
def test_workers_i_of_n_cover_every_model_exactly_once(models: list[str], n: int) -> None:
    shards = [my_models(models, f"{i}/{n}") for i in range(n)]
    assert sorted(m for s in shards for m in s) == sorted(set(models))


def test_ownership_is_stable_across_calls() -> None:
    # crc32(b"churn") == 52156668, and 52156668 % 4 == 0
    assert owns("churn", "0/4")
    assert not any(owns("churn", f"{i}/4") for i in (1, 2, 3))


def wait_for(cond: threading.Event, deadline: float = 10.0) -> bool:
    return cond.wait(deadline)


def test_worker_runs_one_job_per_model_and_stops_on_stop() -> None:
    seen: dict[str, int] = {}
    lock = threading.Lock()
    both_twice = threading.Event()

    def run(model: str, at: datetime) -> None:
        assert at.tzinfo is not None
        with lock:
            seen[model] = seen.get(model, 0) + 1
            if len(seen) == 2 and min(seen.values()) >= 2:
                both_twice.set()

    worker = Worker(["a", "b"], interval=0.05, run=run)
    assert sorted(j.id for j in worker.scheduler.get_jobs()) == ["evaluate:a", "evaluate:b"]
    for job in worker.scheduler.get_jobs():
        assert job.coalesce is True and job.max_instances == 1
    worker.start()
    try:
        assert wait_for(both_twice), f"jobs did not run twice each: {seen}"
    finally:
        worker.stop()
    with lock:
        after_stop = dict(seen)
    assert not worker.scheduler.running
    worker.stop()  # idempotent
    with lock:
        assert seen == after_stop


def test_run_until_stopped_returns_after_request_stop_and_waits_for_the_running_job() -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def run(model: str, at: datetime) -> None:
        started.set()
        release.wait(10)
        finished.set()

    worker = Worker(["a"], interval=60, run=run)
    thread = threading.Thread(target=worker.run_until_stopped)
    thread.start()
    assert started.wait(10)
    worker.request_stop()
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert finished.is_set(), "stop must wait for the running job"


def test_a_failing_job_is_counted_and_the_worker_keeps_running() -> None:
    failures = threading.Event()
    calls = {"n": 0}

    def run(model: str, at: datetime) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:
            failures.set()
        raise RuntimeError("source down")

    worker = Worker(["a"], interval=0.05, run=run)
    worker.start()
    try:
        assert failures.wait(10)
    finally:
        worker.stop()
    deadline = time.monotonic() + 5
    while worker.counts["errors"] < 2 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert worker.counts["errors"] >= 2
