"""Documents, a minimal index template and loaders shared by the sources contract test and the
Elasticsearch integration test: the same documents go into the local store and into a real
data stream."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from inferwatch.core.config import ElasticsearchConfig, Secret
from inferwatch.core.configschema import Duration
from inferwatch.core.contract import dataset as dataset_for
from inferwatch.core.tokenize import tokenize

NAMESPACE = "contract"


def es_config_from_env() -> ElasticsearchConfig | None:
    """The test cluster from INFERWATCH_TEST_ES_URL (+ _API_KEY or _USER/_PASSWORD, _CA)."""
    url = os.environ.get("INFERWATCH_TEST_ES_URL")
    if not url:
        return None
    api_key = os.environ.get("INFERWATCH_TEST_ES_API_KEY")
    password = os.environ.get("INFERWATCH_TEST_ES_PASSWORD")
    ca = os.environ.get("INFERWATCH_TEST_ES_CA")
    return ElasticsearchConfig(
        hosts=tuple(h.strip() for h in url.split(",") if h.strip()),
        api_key=Secret(api_key) if api_key else None,
        username=os.environ.get("INFERWATCH_TEST_ES_USER") or None,
        password=Secret(password) if password else None,
        ca_certs=Path(ca) if ca else None,
        request_timeout=Duration(30.0),
    )


def unique_model() -> str:
    return f"contract_{uuid.uuid4().hex[:10]}"


def index_name(model: str) -> str:
    return f"logs-{dataset_for(model)}-{NAMESPACE}"


def document(
    model: str,
    _id: str,
    ts: str,
    inputs: dict[str, Any],
    *,
    version: str = "1",
    outputs: dict[str, Any] | None = None,
    text: Sequence[str] = ("review",),
) -> dict[str, Any]:
    """A document in the normalizer's shape, tokens computed with the agent's tokenizer."""
    ml: dict[str, Any] = {"model": {"name": model, "version": version}, "inputs": inputs}
    if outputs is not None:
        ml["outputs"] = outputs
    tokens = {f: tokenize(inputs[f]) for f in text if isinstance(inputs.get(f), str)}
    if tokens:
        ml["tokens"] = tokens
    return {
        "_id": _id,
        "@timestamp": ts,
        "event": {"dataset": dataset_for(model)},
        "data_stream": {"type": "logs", "dataset": dataset_for(model), "namespace": NAMESPACE},
        "ml": ml,
    }


def write_local(store: Path, docs: Sequence[dict[str, Any]], per_segment: int = 4) -> None:
    """Documents into ``<store>/<index>/<n:020d>.ndjson`` segments, as the local output writes."""
    for n, i in enumerate(range(0, len(docs), per_segment), start=1):
        for doc in docs[i : i + per_segment]:
            path = store / index_name(doc["ml"]["model"]["name"]) / f"{n:020d}.ndjson"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as fh:
                fh.write(orjson.dumps(doc) + b"\n")


def _strings(path: str) -> dict[str, Any]:
    return {
        "path_match": path,
        "match_mapping_type": "string",
        "mapping": {"type": "keyword", "ignore_above": 1024},
    }


def _numbers(path: str, json_type: str) -> dict[str, Any]:
    return {"path_match": path, "match_mapping_type": json_type, "mapping": {"type": "double"}}


def template_body(model: str, text_features: Sequence[str] = ("review",)) -> dict[str, Any]:
    """A minimal stand-in for ``inferwatch setup``'s templates: the field conventions of docs/architecture.md
    (strings keyword with ignore_above 1024, numbers double, text match_only_text, tokens keyword)
    on one shard so that terms counts are exact."""
    inputs: dict[str, Any] = {f: {"type": "match_only_text"} for f in text_features}
    return {
        "index_patterns": [f"logs-{dataset_for(model)}-*"],
        "data_stream": {},
        "priority": 900,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": 0,
                "index.mapping.ignore_malformed": True,
            },
            "mappings": {
                "dynamic_templates": [
                    {"tokens": {"path_match": "ml.tokens.*", "mapping": {"type": "keyword"}}},
                    {"inputs_strings": _strings("ml.inputs.*")},
                    {"outputs_strings": _strings("ml.outputs.*")},
                    {"inputs_long": _numbers("ml.inputs.*", "long")},
                    {"inputs_double": _numbers("ml.inputs.*", "double")},
                    {"outputs_long": _numbers("ml.outputs.*", "long")},
                    {"outputs_double": _numbers("ml.outputs.*", "double")},
                ],
                "properties": {
                    "@timestamp": {"type": "date"},
                    "ml": {
                        "properties": {
                            "model": {
                                "properties": {"name": {"type": "keyword"}, "version": {"type": "keyword"}}
                            },
                            "inputs": {"properties": inputs},
                        }
                    },
                },
            },
        },
    }


@contextmanager
def indexed(client: Any, model: str, docs: Sequence[dict[str, Any]]) -> Iterator[None]:
    """Install the template, bulk-create the documents into the model's data stream, refresh;
    remove both afterwards."""
    name = f"inferwatch-test-{model}"
    client.indices.put_index_template(name=name, **template_body(model))
    try:
        operations: list[dict[str, Any]] = []
        for doc in docs:
            body = {k: v for k, v in doc.items() if k != "_id"}
            operations += [{"create": {"_index": index_name(model), "_id": doc["_id"]}}, body]
        response = client.bulk(operations=operations, refresh="wait_for")
        statuses = [next(iter(item.values()))["status"] for item in response["items"]]
        assert all(s in (201, 409) for s in statuses), response["items"]
        yield
    finally:
        client.options(ignore_status=404).indices.delete_data_stream(name=index_name(model))
        client.options(ignore_status=404).indices.delete_index_template(name=name)
