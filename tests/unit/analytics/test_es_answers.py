"""The worker's Elasticsearch transport against a loopback server answering as Elasticsearch 8
does (``tests.fakes.search_server``), through the real ``elasticsearch`` client: partial answers
are refused, and every namespace the config ships into is searched."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR
from elasticsearch import Elasticsearch

from inferwatch.analytics.es import PartialResultsError, search
from inferwatch.analytics.model import Window
from inferwatch.analytics.scheduler import Worker
from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource
from inferwatch.analytics.wiring import backends, shipped_namespaces
from inferwatch.core.config import parse_config
from tests.fakes.search_server import SearchServer

MODEL = "churn"
WINDOW = Window(datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))
KEYWORD_MAPPING = (
    "illegal_argument_exception",
    "Field [ml.inputs.age] of type [keyword] is not supported for aggregation [range]",
)


def doc(i: int, version: str = "1") -> dict[str, Any]:
    ts = WINDOW.start + timedelta(seconds=10 * i)
    return {
        "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "ml": {"model": {"name": MODEL, "version": version}, "inputs": {"age": i}},
    }


@pytest.fixture
def server() -> Iterator[SearchServer]:
    with SearchServer() as srv:
        yield srv


def client(srv: SearchServer) -> Elasticsearch:
    return Elasticsearch(srv.url, max_retries=0, request_timeout=10)


def test_every_search_asks_for_whole_results_only(server: SearchServer) -> None:
    server.add("logs-inferwatch.churn-default", [doc(i) for i in range(5)])
    ElasticsearchSource(client(server), "default").model_counts(MODEL, WINDOW)
    assert server.requests and all(p["allow_partial_search_results"] == "false" for _, p in server.requests)


def test_a_failed_shard_refuses_the_window_naming_the_index_and_the_reason(server: SearchServer) -> None:
    """One backing index whose older mapping has the feature as keyword: Elasticsearch refuses the
    search (allow_partial_search_results=false) instead of counting the other shard's documents."""
    stream = "logs-inferwatch.churn-default"
    server.add(stream, [doc(i) for i in range(40)], generation=1, failure=KEYWORD_MAPPING)
    server.add(stream, [doc(i) for i in range(40, 300)], generation=2)
    source = ElasticsearchSource(client(server), "default")
    with pytest.raises(PartialResultsError) as raised:
        source.model_counts(MODEL, WINDOW)
    message = str(raised.value)
    assert ".ds-logs-inferwatch.churn-default-2026.11.22-000001[0]" in message
    assert "of type [keyword] is not supported for aggregation [range]" in message
    assert "not evaluated" in message and raised.value.status == 400


def test_a_200_with_failed_shards_is_refused_too(server: SearchServer) -> None:
    """What a server or proxy that ignores the parameter answers: 200, ``_shards.failed`` 1, and
    the counts of the other shard only (260 of 300)."""
    stream = "logs-inferwatch.churn-default"
    server.add(stream, [doc(i) for i in range(40)], generation=1, failure=KEYWORD_MAPPING)
    server.add(stream, [doc(i) for i in range(40, 300)], generation=2)
    body = {"size": 0, "query": {"match_all": {}}}
    answer = server.answer(stream, {"ignore_unavailable": "true"}, body)[1]
    assert answer["_shards"]["failed"] == 1 and answer["hits"]["total"]["value"] == 260
    with pytest.raises(PartialResultsError, match=r"1 of 2 shards failed: .*000001\[0\]: illegal_argument"):
        search(_Canned(answer), stream, body)


def test_a_timed_out_search_is_refused(server: SearchServer) -> None:
    server.add("logs-inferwatch.churn-default", [doc(i) for i in range(5)])
    server.timed_out = True
    with pytest.raises(PartialResultsError, match="timed out"):
        ElasticsearchSource(client(server), "default").model_counts(MODEL, WINDOW)


class _Canned:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def search(self, **_: Any) -> dict[str, Any]:
        return self.answer


def test_the_worker_counts_a_refused_partial_evaluation_as_an_error_with_its_reason(
    server: SearchServer,
) -> None:
    stream = "logs-inferwatch.churn-default"
    server.add(stream, [doc(i) for i in range(10)], generation=1, failure=KEYWORD_MAPPING)
    source = ElasticsearchSource(client(server), "default")
    worker = Worker([MODEL], 3600.0, lambda model, at: source.model_counts(model, WINDOW))
    failed = threading.Event()
    worker.scheduler.add_listener(lambda event: failed.set(), EVENT_JOB_ERROR)  # after the worker's own
    worker.start()  # the first run is immediate
    try:
        assert failed.wait(30)
    finally:
        worker.stop()
    assert worker.counts["errors:partial_results"] == 1 and worker.counts["runs"] == 0


CONFIG = """
agent:
  data_dir: ./data
  namespace: default
  inputs:
    - {paths: ["./a/*.jsonl"], namespace: prod}
    - {paths: ["./b/*.jsonl"]}
    - {paths: ["./c/*.jsonl"], namespace: prod}
elasticsearch:
  hosts: ["URL"]
models:
  churn:
    features: {age: numeric}
"""


def test_the_worker_searches_every_namespace_the_config_ships_into(
    server: SearchServer, tmp_path: Path
) -> None:
    """inputs[0].namespace: prod sends its lines to logs-inferwatch.churn-prod; the worker used to
    search only logs-inferwatch.churn-<agent.namespace> and saw none of them."""
    server.add("logs-inferwatch.churn-prod", [doc(i) for i in range(30)])
    server.add("logs-inferwatch.churn-default", [doc(i, version="2") for i in range(5)])
    server.add("logs-inferwatch.churn-staging", [doc(i, version="9") for i in range(7)])  # not shipped here
    cfg = parse_config(CONFIG.replace("URL", server.url), {}, source=tmp_path / "inferwatch.yml")
    assert shipped_namespaces(cfg) == ("default", "prod")
    counts = backends(cfg).source.model_counts(MODEL, WINDOW)
    assert dict(zip(counts.versions["version"], counts.versions["docs"], strict=True)) == {"1": 30, "2": 5}
    assert server.requests[-1][0] == "logs-inferwatch.churn-default,logs-inferwatch.churn-prod"


def test_a_namespace_not_yet_written_is_no_error(server: SearchServer) -> None:
    server.add("logs-inferwatch.churn-prod", [doc(i) for i in range(3)])
    counts = ElasticsearchSource(client(server), ("default", "prod")).model_counts(MODEL, WINDOW)
    assert counts.versions["docs"].tolist() == [3]
