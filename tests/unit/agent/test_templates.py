from __future__ import annotations

import fnmatch
from types import MappingProxyType
from typing import Any

import pytest

from inferwatch.agent.templates import (
    BASE_COMPONENT,
    Capabilities,
    base_component,
    index_template,
    install,
    model_component,
    plan,
)
from inferwatch.core.config import Config, ElasticsearchConfig, ModelConfig, parse_config


def config(**models: ModelConfig) -> Config:
    return Config(
        elasticsearch=ElasticsearchConfig(hosts=("http://127.0.0.1:9200",), retention="14d"),
        models=MappingProxyType(models),
    )


def dynamic(component: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: rule
        for entry in component["template"]["mappings"]["dynamic_templates"]
        for name, rule in entry.items()
    }


def test_dynamic_templates_for_inputs_outputs_and_tokens() -> None:
    rules = dynamic(base_component())
    for part in ("inputs", "outputs"):
        assert rules[f"ml_{part}_string"] == {
            "path_match": f"ml.{part}.*",
            "match_mapping_type": "string",
            "mapping": {"type": "keyword", "ignore_above": 1024},
        }
        assert rules[f"ml_{part}_long"]["mapping"] == {"type": "double"}
        assert rules[f"ml_{part}_double"]["mapping"] == {"type": "double"}
    assert rules["ml_tokens"]["path_match"] == "ml.tokens.*"
    assert rules["ml_tokens"]["mapping"]["type"] == "keyword"


def test_fixed_fields_have_the_contract_types() -> None:
    props = base_component()["template"]["mappings"]["properties"]
    ml = props["ml"]["properties"]
    assert ml["model"]["properties"] == {"name": {"type": "keyword"}, "version": {"type": "keyword"}}
    assert ml["prediction"]["properties"] == {"id": {"type": "keyword"}, "latency_ms": {"type": "double"}}
    assert ml["invalid"] == {"type": "keyword"}
    assert props["log"]["properties"]["offset"] == {"type": "long"}
    assert props["log"]["properties"]["file"]["properties"]["path"] == {"type": "keyword"}
    assert props["host"]["properties"]["name"] == {"type": "keyword"}
    assert props["@timestamp"] == {"type": "date"}


def test_index_template_shape() -> None:
    body = index_template("logs-inferwatch.*-*", 500, [BASE_COMPONENT], "30d", Capabilities((8, 15, 0)))

    assert body["index_patterns"] == ["logs-inferwatch.*-*"]
    assert body["priority"] > 100  # above the built-in logs@template
    assert body["data_stream"] == {}
    # ours before ecs@mappings: the first matching dynamic template wins; the site's hooks where
    # Elastic's logs@template has logs@custom
    assert body["composed_of"] == [
        BASE_COMPONENT,
        "logs@mappings",
        "logs@settings",
        "logs@custom",
        "logs-inferwatch@custom",
        "ecs@mappings",
    ]
    assert body["ignore_missing_component_templates"] == [
        "logs@mappings",
        "logs@settings",
        "ecs@mappings",
        "logs@custom",
        "logs-inferwatch@custom",
    ]
    settings = body["template"]["settings"]
    assert settings["index.mode"] == "standard"
    assert settings["index.mapping.total_fields.limit"] == 2000
    assert settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] is True
    assert settings["index.lifecycle.prefer_ilm"] is False
    assert body["template"]["lifecycle"] == {"data_retention": "30d"}


def test_older_versions_leave_out_what_they_do_not_know() -> None:
    body = index_template("p-*", 500, [BASE_COMPONENT], "30d", Capabilities.from_version("8.6.2"))
    assert "ignore_missing_component_templates" not in body
    assert not [c for c in body["composed_of"] if c.endswith("@custom")]  # a missing one fails the PUT
    assert "lifecycle" not in body["template"]
    assert "index.lifecycle.prefer_ilm" not in body["template"]["settings"]
    assert "index.mapping.total_fields.ignore_dynamic_beyond_limit" not in body["template"]["settings"]
    mid = index_template("p-*", 500, [BASE_COMPONENT], "30d", Capabilities.from_version("8.13.4"))
    assert mid["template"]["settings"]["index.mapping.total_fields.ignore_dynamic_beyond_limit"] is True
    assert "lifecycle" not in mid["template"]


@pytest.mark.parametrize(
    ("number", "version"),
    [("8.15.0", (8, 15, 0)), ("9.0.0-SNAPSHOT", (9, 0, 0)), ("8.14", (8, 14, 0)), ("8.17.1-rc1", (8, 17, 1))],
)
def test_capabilities_from_version(number: str, version: tuple[int, int, int]) -> None:
    assert Capabilities.from_version(number).version == version


def test_model_component_maps_features_by_kind_with_nesting() -> None:
    model = ModelConfig(
        features=MappingProxyType({"review_text": "text", "country": "categorical", "user.age": "numeric"}),
        outputs=MappingProxyType({"score": "numeric", "label": "categorical"}),
    )
    ml = model_component(model)["template"]["mappings"]["properties"]["ml"]["properties"]
    assert ml["inputs"]["properties"] == {
        "country": {"type": "keyword", "ignore_above": 1024},
        "review_text": {"type": "match_only_text"},
        "user": {"properties": {"age": {"type": "double"}}},
    }
    assert ml["outputs"]["properties"] == {
        "label": {"type": "keyword", "ignore_above": 1024},
        "score": {"type": "double"},
    }


def test_feature_that_is_both_value_and_object_is_refused() -> None:
    model = ModelConfig(features=MappingProxyType({"user": "categorical", "user.age": "numeric"}))
    with pytest.raises(ValueError, match="user"):
        model_component(model)


def test_plan_orders_components_before_index_templates_and_names_per_model() -> None:
    cfg = config(
        **{
            "churn-classifier": ModelConfig(features=MappingProxyType({"age": "numeric"})),
            "empty": ModelConfig(),
        }
    )
    steps = [(kind, name) for kind, name, _ in plan(cfg)]
    assert steps == [
        ("component", "inferwatch-logs@mappings"),
        ("component", "inferwatch-logs.churn_classifier@mappings"),
        ("index", "logs-inferwatch"),
        ("index", "logs-inferwatch.churn_classifier"),
    ]
    per_model = plan(cfg)[3][2]
    assert per_model["index_patterns"] == ["logs-inferwatch.churn_classifier-*"]
    assert per_model["priority"] == 510
    assert per_model["composed_of"][:2] == [
        "inferwatch-logs@mappings",
        "inferwatch-logs.churn_classifier@mappings",
    ]
    assert per_model["template"]["lifecycle"] == {"data_retention": "14d"}


class RecordingClient:
    """Answers GET / like Elasticsearch and records every other request."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.calls: list[tuple[str, str, Any]] = []

    def perform_request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, Any]:
        if method == "GET" and path == "/":
            return {"version": {"number": self.version}, "cluster_name": "c"}
        self.calls.append((method, path, body))
        return {"acknowledged": True}


def test_install_puts_every_template_and_is_repeatable() -> None:
    cfg = config(churn=ModelConfig(features=MappingProxyType({"age": "numeric"})))
    client = RecordingClient("8.15.1")
    said: list[str] = []

    first = install(client, cfg, said.append)
    calls = list(client.calls)
    second = install(client, cfg, said.append)

    assert [(m, p) for m, p, _ in calls] == [
        ("PUT", "/_component_template/inferwatch-logs@mappings"),
        ("PUT", "/_component_template/inferwatch-logs.churn@mappings"),
        ("PUT", "/_index_template/logs-inferwatch"),
        ("PUT", "/_index_template/logs-inferwatch.churn"),
    ]
    assert client.calls[4:] == calls  # the same requests again: PUT is idempotent
    assert first == second
    assert first[2] == "index template logs-inferwatch (logs-inferwatch.*-*, priority 500, retention 14d)"
    assert said == first + second


def test_install_on_old_server_says_retention_was_not_set() -> None:
    client = RecordingClient("8.10.4")
    done = install(client, config(), lambda line: None)
    assert "lifecycle" not in client.calls[1][2]["template"]
    assert any(line.startswith("retention not set") for line in done)


def test_install_from_yaml_config() -> None:
    cfg = parse_config(
        """
elasticsearch:
  hosts: ["http://127.0.0.1:9200"]
models:
  churn_classifier:
    features: {country: categorical, age: numeric, review_text: text}
""",
        env={},
    )
    client = RecordingClient("9.1.0")
    install(client, cfg, lambda line: None)
    component = client.calls[1][2]
    inputs = component["template"]["mappings"]["properties"]["ml"]["properties"]["inputs"]["properties"]
    assert inputs["review_text"] == {"type": "match_only_text"}


def test_install_through_the_official_client_over_http() -> None:
    from inferwatch.analytics.es import make_client
    from tests.fakes.bulk_server import BulkServer

    with BulkServer() as srv:
        cfg = Config(
            elasticsearch=ElasticsearchConfig(hosts=(srv.url,), retention="7d"),
            models=MappingProxyType({"churn": ModelConfig(features=MappingProxyType({"age": "numeric"}))}),
        )
        client = make_client(cfg.elasticsearch)  # type: ignore[arg-type]
        try:
            done = install(client, cfg, lambda line: None)
        finally:
            client.close()
        stored = srv.templates()

    assert len(done) == 4
    assert sorted(stored) == [
        "/_component_template/inferwatch-logs.churn@mappings",
        "/_component_template/inferwatch-logs@mappings",
        "/_index_template/logs-inferwatch",
        "/_index_template/logs-inferwatch.churn",
    ]
    assert stored["/_index_template/logs-inferwatch"] == plan(cfg, Capabilities.from_version("8.15.0"))[2][2]


# -- Elastic conventions: @custom hooks, ECS, ml.inference -------------------------------------


def elastic_logs_template() -> dict[str, Any]:
    """Elastic's built-in ``logs@template`` (x-pack template-resources, logs@template.json)."""
    return {
        "index_patterns": ["logs-*-*"],
        "priority": 100,
        "composed_of": ["logs@mappings", "logs@settings", "logs@custom", "ecs@mappings"],
        "ignore_missing_component_templates": ["logs@custom"],
    }


def test_every_index_template_composes_the_custom_hooks_as_the_built_in_does() -> None:
    cfg = config(churn=ModelConfig(features=MappingProxyType({"age": "numeric"})))
    builtin = elastic_logs_template()
    for _, name, body in (step for step in plan(cfg) if step[0] == "index"):
        composed = body["composed_of"]
        # what logs@template composes, in its order (our components only come first)
        assert [c for c in composed if c in builtin["composed_of"]] == builtin["composed_of"], name
        hooks = [c for c in composed if c.endswith("@custom")]
        assert hooks[0] == "logs@custom" and f"{name}@custom" in hooks, name
        assert (
            composed.index("logs@settings") < composed.index("logs@custom") < composed.index("ecs@mappings")
        )
        assert set(hooks) <= set(body["ignore_missing_component_templates"]), name
    model = {name: body for kind, name, body in plan(cfg) if kind == "index"}["logs-inferwatch.churn"]
    assert [c for c in model["composed_of"] if c.endswith("@custom")] == [
        "logs@custom",
        "logs-inferwatch@custom",
        "logs-inferwatch.churn@custom",
    ]
    # setup never writes a hook: they are the site's
    assert not [name for _, name, _ in plan(cfg) if name.endswith("@custom")]


def test_ecs_version_and_agent_identity_are_mapped() -> None:
    props = base_component()["template"]["mappings"]["properties"]
    assert props["ecs"]["properties"]["version"] == {"type": "constant_keyword", "value": "8.16.0"}
    agent = props["agent"]["properties"]
    assert agent["id"] == {"type": "keyword"} and agent["name"] == {"type": "keyword"}


def simple_match(pattern: str, path: str) -> bool:
    """Elasticsearch's ``Regex.simpleMatch`` for one ``*`` wildcard pattern (path_match)."""
    return fnmatch.fnmatchcase(path, pattern)


def test_ml_inference_is_left_to_the_inference_processor() -> None:
    mappings = base_component()["template"]["mappings"]
    fields = ["ml.inference.predicted_value", "ml.inference.model_id", "ml.inference.my_tag.predicted_value"]
    for rule in dynamic(base_component()).values():
        assert not any(simple_match(rule["path_match"], f) for f in fields), rule
    ml = mappings["properties"]["ml"]
    assert "inference" not in ml["properties"]
    assert ml.get("dynamic", True) is True and mappings.get("dynamic", True) is True
