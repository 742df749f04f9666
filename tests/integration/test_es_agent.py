"""The agent's Elasticsearch side against a real cluster (INFERWATCH_TEST_ES_URL): templates
installed by ``agent.templates.install``, bulk into the data stream through ``ElasticsearchOutput``,
a replay answered with 409s, and the mapping the templates promise."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from elasticsearch import BadRequestError, NotFoundError

from inferwatch.agent.bulkbody import encode_items
from inferwatch.agent.model import Outcome
from inferwatch.agent.outputs.elasticsearch import ElasticsearchOutput
from inferwatch.agent.templates import (
    BASE_COMPONENT,
    BASE_TEMPLATE,
    install,
    model_component_name,
    model_template_name,
)
from inferwatch.core.config import Config, ElasticsearchConfig, ModelConfig

pytestmark = pytest.mark.integration

NAMESPACE = "itest"


@pytest.fixture
def model() -> str:
    return f"itest_{secrets.token_hex(4)}"


@pytest.fixture
def installed(es_client: Any, es_config: ElasticsearchConfig, model: str) -> Iterator[Config]:
    cfg = Config(
        elasticsearch=es_config,
        models=MappingProxyType(
            {
                model: ModelConfig(
                    features=MappingProxyType(
                        {"age": "numeric", "country": "categorical", "review_text": "text"}
                    ),
                    outputs=MappingProxyType({"score": "numeric"}),
                )
            }
        ),
    )
    # The shared base template and component are removed afterwards only if this run created
    # them (a cluster where setup already ran keeps its own).
    had_base = bool(es_client.indices.exists_index_template(name=BASE_TEMPLATE))
    had_component = bool(es_client.cluster.exists_component_template(name=BASE_COMPONENT))
    lines: list[str] = []
    install(es_client, cfg, lines.append)
    assert any(line.startswith(f"index template {model_template_name(model)} ") for line in lines)
    yield cfg
    cleanups = [
        lambda: es_client.indices.delete_data_stream(name=stream(model)),
        lambda: es_client.indices.delete_index_template(name=model_template_name(model)),
        lambda: es_client.cluster.delete_component_template(name=model_component_name(model)),
    ]
    if not had_base:
        cleanups.append(lambda: es_client.indices.delete_index_template(name=BASE_TEMPLATE))
    if not had_component:
        # 400 while another run's model template still uses it: that run's cleanup removes it.
        cleanups.append(lambda: es_client.cluster.delete_component_template(name=BASE_COMPONENT))
    for cleanup in cleanups:
        with contextlib.suppress(NotFoundError, BadRequestError):
            cleanup()


def stream(model: str) -> str:
    return f"logs-inferwatch.{model}-{NAMESPACE}"


def document(model: str, n: int) -> bytes:
    return orjson.dumps(
        {
            "@timestamp": f"2026-11-22T10:48:{n:02d}.000Z",
            "data_stream": {"type": "logs", "dataset": f"inferwatch.{model}", "namespace": NAMESPACE},
            "event": {"dataset": f"inferwatch.{model}", "ingested": "2026-11-22T10:49:00.000Z"},
            "host": {"name": "itest-host"},
            "log": {"file": {"path": "/var/log/models/p.jsonl"}, "offset": n * 100},
            "ml": {
                "model": {"name": model, "version": "1.0"},
                "prediction": {"id": f"p{n}", "latency_ms": 12.5},
                "inputs": {
                    "age": 40 + n,
                    "country": "DE",
                    "review_text": "late again",
                    "ip": "not-an-address",  # ECS would map *.ip to ip; ml.* rules come first
                    "extra_count": 3,
                },
                "outputs": {"score": 0.8, "label": "churn"},
                "tokens": {"review_text": ["late", "again"]},
            },
        }
    )


def leaf(mapping: dict[str, Any], dotted: str) -> dict[str, Any]:
    node: dict[str, Any] = mapping
    *parents, last = dotted.split(".")
    for part in parents:
        node = node["properties"][part]
    result: dict[str, Any] = node["properties"][last]
    return result


def test_bulk_replay_and_mapping(
    es_client: Any, es_config: ElasticsearchConfig, installed: Config, model: str
) -> None:
    out = ElasticsearchOutput(es_config)
    try:
        assert "Elasticsearch" in out.check()
        items = [(stream(model), f"{model}-{n}", document(model, n)) for n in range(3)]

        first = out.send(encode_items(items), 3)
        replay = out.send(encode_items(items), 3)
    finally:
        out.close()

    assert [r.outcome for r in first] == [Outcome.CREATED] * 3, first
    assert [(r.outcome, r.status) for r in replay] == [(Outcome.DUPLICATE, 409)] * 3
    assert replay[0].error_type == "version_conflict_engine_exception"

    es_client.indices.refresh(index=stream(model))
    assert es_client.count(index=stream(model))["count"] == 3

    backing = es_client.indices.get_data_stream(name=stream(model))["data_streams"][0]
    assert backing["template"] == model_template_name(model)

    (mapping,) = (m["mappings"] for m in es_client.indices.get_mapping(index=stream(model)).body.values())
    assert leaf(mapping, "ml.inputs.age")["type"] == "double"
    assert leaf(mapping, "ml.inputs.country")["type"] == "keyword"
    assert leaf(mapping, "ml.inputs.review_text")["type"] == "match_only_text"
    assert leaf(mapping, "ml.inputs.ip")["type"] == "keyword"
    assert leaf(mapping, "ml.inputs.extra_count")["type"] == "double"
    assert leaf(mapping, "ml.outputs.label")["type"] == "keyword"
    assert leaf(mapping, "ml.outputs.score")["type"] == "double"
    assert leaf(mapping, "ml.tokens.review_text")["type"] == "keyword"
    assert leaf(mapping, "ml.model.name")["type"] == "keyword"
    assert leaf(mapping, "log.offset")["type"] == "long"

    settings = es_client.indices.get_settings(index=stream(model)).body
    (index_settings,) = (s["settings"]["index"] for s in settings.values())
    assert index_settings["mapping"]["total_fields"]["limit"] == "2000"


def test_install_twice_is_idempotent(es_client: Any, installed: Config) -> None:
    again: list[str] = []
    install(es_client, installed, again.append)
    assert again
