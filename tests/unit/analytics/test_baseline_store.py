"""Baseline stores: local JSON files (atomic, name-safe) and the Elasticsearch index with the
local directory beside it, against a fake Elasticsearch over loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from inferwatch.analytics import es
from inferwatch.analytics.baseline.store import (
    BASELINES_INDEX,
    ElasticsearchBaselineStore,
    LocalBaselineStore,
)
from inferwatch.analytics.model import Baseline, FeatureBaseline
from inferwatch.core.config import Duration, ElasticsearchConfig, Secret

BASELINE = Baseline(
    "churn/classifier",
    "1.4.2",
    datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
    "training:train.csv",
    100,
    {
        "inputs.country": FeatureBaseline(
            "inputs.country", "categorical", 100, 3, categories={"DE": 60, "FR": 37}
        ),
        "inputs.age": FeatureBaseline("inputs.age", "numeric", 100, 0, edges=(30.0,), bin_counts=(50, 50)),
    },
)


def test_local_store_round_trip(tmp_path: Path) -> None:
    store = LocalBaselineStore(tmp_path / "baselines")
    assert store.load(BASELINE.model, BASELINE.version) is None
    store.save(BASELINE)
    assert store.path(BASELINE.model, BASELINE.version).name.startswith("churn_classifier@1.4.2-")
    assert store.load(BASELINE.model, BASELINE.version) == BASELINE
    assert store.load(BASELINE.model, "2.0") is None


def test_local_store_ignores_an_uncommitted_write(tmp_path: Path) -> None:
    store = LocalBaselineStore(tmp_path)
    store.save(BASELINE)
    path = store.path(BASELINE.model, BASELINE.version)
    path.with_name(path.name + ".tmp").write_bytes(b'{"half": ')
    assert store.load(BASELINE.model, BASELINE.version) == BASELINE
    assert not path.with_name(path.name + ".tmp").exists()


def test_two_models_mapping_to_one_file_name_do_not_read_each_other(tmp_path: Path) -> None:
    store = LocalBaselineStore(tmp_path)
    store.save(BASELINE)
    assert store.load("churn_classifier", "1.4.2") is None


class FakeElasticsearch(ThreadingHTTPServer):
    """Just enough of Elasticsearch for the baselines index and one failing search."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.indices: dict[str, dict[str, Any]] = {}
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.auth: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeElasticsearch

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any] | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            raw = gzip.decompress(raw)
        return json.loads(raw) if raw else {}

    def _route(self) -> None:
        self.server.auth.append(self.headers.get("Authorization"))
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if len(parts) == 1 and self.command == "HEAD":
            return self._reply(200 if parts[0] in self.server.indices else 404, None)
        if len(parts) == 1 and self.command == "PUT":
            self.server.indices[parts[0]] = self._body()
            return self._reply(200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]})
        if len(parts) == 3 and parts[1] == "_doc" and self.command in ("PUT", "POST"):
            self.server.docs[(parts[0], parts[2])] = self._body()
            meta = {"_index": parts[0], "_id": parts[2], "_version": 1, "result": "created"}
            return self._reply(201, meta)
        if len(parts) == 3 and parts[1] == "_doc" and self.command == "GET":
            doc = self.server.docs.get((parts[0], parts[2]))
            if doc is None:
                return self._reply(404, {"_index": parts[0], "_id": parts[2], "found": False})
            return self._reply(200, {"_index": parts[0], "_id": parts[2], "found": True, "_source": doc})
        if len(parts) == 2 and parts[1] == "_search":
            error = {"type": "search_phase_execution_exception", "reason": "all shards failed"}
            root = {
                "type": "illegal_argument_exception",
                "reason": "Field [x] of type [keyword] is not supported",
            }
            return self._reply(400, {"error": {**error, "root_cause": [root]}, "status": 400})
        return self._reply(400, {"error": {"type": "unexpected", "reason": self.command + " " + self.path}})

    do_GET = do_PUT = do_POST = do_HEAD = _route


@pytest.fixture
def fake_es() -> Iterator[FakeElasticsearch]:
    server = FakeElasticsearch()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_elasticsearch_store_writes_both_and_reads_the_index_first(
    fake_es: FakeElasticsearch, tmp_path: Path
) -> None:
    client = es.make_client(ElasticsearchConfig(hosts=(fake_es.url,), api_key=Secret("k3y")))
    store = ElasticsearchBaselineStore(client, tmp_path)
    store.save(BASELINE)
    assert fake_es.indices[BASELINES_INDEX]["mappings"]["properties"]["baseline"] == {
        "type": "object",
        "enabled": False,
    }
    # green on a single node: no replica that can never be assigned
    assert fake_es.indices[BASELINES_INDEX]["settings"] == {"index": {"auto_expand_replicas": "0-1"}}
    source = fake_es.docs[(BASELINES_INDEX, "churn/classifier:1.4.2")]
    assert (source["model"], source["version"], source["rows"]) == ("churn/classifier", "1.4.2", 100)
    assert source["baseline"]["features"]["inputs.country"]["categories"] == {"DE": 60, "FR": 37}
    local = LocalBaselineStore(tmp_path)
    assert local.load(BASELINE.model, BASELINE.version) == BASELINE
    local.path(BASELINE.model, BASELINE.version).unlink()
    assert store.load(BASELINE.model, BASELINE.version) == BASELINE  # from the index
    assert fake_es.auth and all(a == "ApiKey k3y" for a in fake_es.auth)


def test_elasticsearch_store_falls_back_to_the_directory(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    LocalBaselineStore(tmp_path).save(BASELINE)
    client = es.make_client(
        ElasticsearchConfig(hosts=(fake_es.url,), username="elastic", password=Secret("pw"))
    )
    assert ElasticsearchBaselineStore(client, tmp_path).load(BASELINE.model, BASELINE.version) == BASELINE
    assert fake_es.auth[-1] == "Basic ZWxhc3RpYzpwdw=="  # elastic:pw
    assert ElasticsearchBaselineStore(client, tmp_path).load("other", "1") is None


def test_elasticsearch_store_unreachable_reads_the_directory(tmp_path: Path) -> None:
    server = FakeElasticsearch()
    url = server.url
    server.server_close()  # nothing listens there any more
    LocalBaselineStore(tmp_path).save(BASELINE)
    client = es.make_client(ElasticsearchConfig(hosts=(url,), request_timeout=Duration(2.0)))
    assert ElasticsearchBaselineStore(client, tmp_path).load(BASELINE.model, BASELINE.version) == BASELINE


def test_search_errors_carry_the_status_and_the_root_cause(fake_es: FakeElasticsearch) -> None:
    client = es.make_client(ElasticsearchConfig(hosts=(fake_es.url,)))
    with pytest.raises(es.ElasticsearchError) as info:
        es.search(client, "logs-inferwatch.m-*", {"size": 0})
    assert info.value.status == 400
    assert "illegal_argument_exception: Field [x] of type [keyword] is not supported" in str(info.value)


def test_elasticsearch_ids_that_read_alike_do_not_give_another_models_baseline(
    fake_es: FakeElasticsearch, tmp_path: Path
) -> None:
    """``a:b`` version ``1`` and ``a`` version ``b:1`` share the document id ``a:b:1``."""
    client = es.make_client(ElasticsearchConfig(hosts=(fake_es.url,), api_key=Secret("k")))
    store = ElasticsearchBaselineStore(client, tmp_path)
    colon = Baseline("a:b", "1", BASELINE.created, BASELINE.source, BASELINE.rows, BASELINE.features)
    store.save(colon)
    assert store.load("a:b", "1") == colon
    assert store.load("a", "b:1") is None


def test_two_models_mapping_to_one_file_name_keep_both_baselines(tmp_path: Path) -> None:
    """Saving ``churn_classifier`` overwrote the file of ``churn/classifier``: its worker then
    reported "no baseline" for a baseline that had been built."""
    store = LocalBaselineStore(tmp_path)
    other = Baseline("churn_classifier", "1.4.2", BASELINE.created, "training:b.csv", 7, BASELINE.features)
    store.save(BASELINE)
    store.save(other)
    assert store.load(BASELINE.model, BASELINE.version) == BASELINE
    assert store.load(other.model, other.version) == other
    assert store.path(other.model, other.version).name == "churn_classifier@1.4.2.json"


def test_a_baseline_saved_under_the_old_file_name_is_still_read(tmp_path: Path) -> None:
    legacy = tmp_path / "churn_classifier@1.4.2.json"
    LocalBaselineStore(tmp_path).save(BASELINE)
    store = LocalBaselineStore(tmp_path)
    store.path(BASELINE.model, BASELINE.version).rename(legacy)
    assert store.load(BASELINE.model, BASELINE.version) == BASELINE
    assert store.load("churn_classifier", "1.4.2") is None  # the file holds churn/classifier
