"""Index and component templates for the prediction-log data streams (pure builders + ``install``).

What ``inferwatch setup`` puts into Elasticsearch, in this order (all PUTs, so idempotent):

1. component template ``inferwatch-logs@mappings``: dynamic templates for ``ml.inputs.*`` and
   ``ml.outputs.*`` (strings -> keyword, ignore_above 1024; long and double -> double),
   ``ml.tokens.*`` -> keyword, and the fixed fields of docs/architecture.md "Documents in Elasticsearch";
2. per configured model ``inferwatch-logs.<m>@mappings``: its features by kind (text ->
   ``match_only_text``, categorical -> keyword, numeric -> double), as explicit properties;
3. index template ``logs-inferwatch`` for ``logs-inferwatch.*-*`` at priority 500 (above the
   built-in ``logs@template`` at 100), a data stream, ``index.mode: standard`` (9.x may default
   ``logs-*-*`` to logsdb, whose synthetic ``_source`` reorders arrays), a field limit of 2000 with
   ``ignore_dynamic_beyond_limit`` (a feature explosion drops extra fields instead of rejecting
   documents), and the data stream lifecycle ``data_retention`` from ``elasticsearch.retention``;
4. per configured model an index template ``logs-inferwatch.<m>`` for ``logs-inferwatch.<m>-*``
   at priority 510, the same plus the model's component.

Order in ``composed_of``: ours first, then ``logs@mappings``, ``logs@settings``, the ``@custom``
hooks, ``ecs@mappings``. Dynamic templates are tried in order and the first match wins;
``ecs@mappings`` maps leaf names such as ``*.ip``, ``*.name``, ``*.location`` and ``*_score*`` to
ip, text or geo_point, which would catch features called ``ip`` or ``location``. Being first,
``ml.*`` rules win for ``ml.*`` fields; everything else keeps Elastic's ECS behaviour. Settings that
must hold whatever the built-ins say sit in the index template itself, which overrides every
component.

The ``@custom`` hooks are where a site puts its own mappings and settings, composed as Elastic's
built-in ``logs@template`` composes ``logs@custom`` (after ``logs@settings``, before
``ecs@mappings``, listed in ``ignore_missing_component_templates`` so that they may not exist):
``logs@custom`` (the site's rules for every ``logs-*-*`` stream, which a template of higher priority
than the built-in would otherwise skip silently), ``logs-inferwatch@custom`` (every model) and,
in a model's template, ``logs-inferwatch.<m>@custom`` (as Fleet names ``<type>-<dataset>@custom``).
Later components win, so a hook overrides ours; ``setup`` never writes them.

ECS: ``ecs.version`` is a ``constant_keyword`` whose value is ``ECS_VERSION`` (every document of
the stream has it without carrying it in ``_source``, like ``data_stream.*``); ``agent.id`` and
``agent.name`` are keywords. ``ml.inference.*`` is left to Elastic's inference ingest processor
(its default target): no rule of ours matches it and nothing under ``ml`` is strict.

``logs@settings`` names the ILM policy ``logs@lifecycle``; when the data stream lifecycle is set,
``index.lifecycle.prefer_ilm: false`` lets the lifecycle's retention apply (Elastic's documented
migration path from ILM). Version gates: ``ignore_missing_component_templates`` >= 8.7 (before
it, the ``@custom`` hooks are left out: a missing component would fail the PUT),
``ignore_dynamic_beyond_limit`` >= 8.13, lifecycle >= 8.14; 8.7 to 8.13 get the rest and a note,
and ``install`` refuses a server older than ``Capabilities.MINIMUM`` (8.7), naming both versions.

The dead-letter index template is installed by ``analytics.alert_index.install`` (one owner).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from inferwatch.core.config import Config, FeatureKind, ModelConfig
from inferwatch.core.contract import LOGS_PATTERN, LOGS_TEMPLATE, model_dataset, model_pattern

TEMPLATE_VERSION = 1
BASE_COMPONENT = "inferwatch-logs@mappings"
BASE_TEMPLATE = LOGS_TEMPLATE
BASE_PATTERN = LOGS_PATTERN
BASE_PRIORITY = 500
MODEL_PRIORITY = 510
BUILTIN_COMPONENTS = ("logs@mappings", "logs@settings", "ecs@mappings")
CUSTOM_HOOK = "logs@custom"  # Elastic's hook for every logs-*-* stream (composed by logs@template)
ECS_VERSION = "8.16.0"  # the ECS release whose field names and types the documents follow
TOTAL_FIELDS_LIMIT = 2000
IGNORE_ABOVE = 1024

_META = {"managed_by": "inferwatch", "description": "prediction logs shipped by the inferwatch agent"}
_KEYWORD = {"type": "keyword", "ignore_above": IGNORE_ABOVE}
_KIND_MAPPING: Mapping[str, dict[str, Any]] = {
    "text": {"type": "match_only_text"},
    "categorical": _KEYWORD,
    "numeric": {"type": "double"},
}


class UnsupportedElasticsearch(Exception):
    """The server is older than ``Capabilities.MINIMUM``; the message names both versions."""

    def __init__(self, number: str) -> None:
        self.number = number
        minimum = ".".join(map(str, Capabilities.MINIMUM))
        super().__init__(
            f"Elasticsearch {number} is older than {minimum}, the oldest version inferwatch supports "
            f"(composable templates that may name absent built-in components need "
            f"ignore_missing_component_templates); upgrade Elasticsearch to {minimum} or later"
        )


@dataclass(frozen=True)
class Capabilities:
    """What the target Elasticsearch understands, from its version number."""

    # Our index templates compose Elastic's built-ins (logs@mappings from 8.12 on), which older
    # servers lack: only ignore_missing_component_templates (8.7) lets such a template be stored.
    MINIMUM: ClassVar[tuple[int, int, int]] = (8, 7, 0)
    version: tuple[int, int, int] = (8, 15, 0)

    @property
    def supported(self) -> bool:
        return self.version >= self.MINIMUM

    @classmethod
    def from_version(cls, number: str) -> Capabilities:
        parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in number.split("-")[0].split(".")[:3]]
        major, minor, patch = [*parts, 0, 0, 0][:3]
        return cls((major, minor, patch))

    @property
    def ignore_missing_components(self) -> bool:
        return self.version >= (8, 7, 0)

    @property
    def ignore_dynamic_beyond_limit(self) -> bool:
        return self.version >= (8, 13, 0)

    @property
    def lifecycle(self) -> bool:
        return self.version >= (8, 14, 0)


def model_component_name(model: str) -> str:
    return f"inferwatch-logs.{model_dataset(model)}@mappings"


def model_template_name(model: str) -> str:
    return f"{BASE_TEMPLATE}.{model_dataset(model)}"


def custom_hooks(model: str | None = None) -> tuple[str, ...]:
    """The ``@custom`` component templates an index template composes (a site's own, optional):
    ``logs@custom``, ``logs-inferwatch@custom`` and, for a model, ``logs-inferwatch.<m>@custom``."""
    hooks = (CUSTOM_HOOK, f"{BASE_TEMPLATE}@custom")
    return hooks if model is None else (*hooks, f"{model_template_name(model)}@custom")


# -- component templates ------------------------------------------------------------------------


def _dynamic_templates() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "ml_tokens": {
                "path_match": "ml.tokens.*",
                "match_mapping_type": "string",
                "mapping": dict(_KEYWORD),
            }
        }
    ]
    for part in ("inputs", "outputs"):
        for json_type, mapping in (
            ("string", _KEYWORD),
            ("long", {"type": "double"}),
            ("double", {"type": "double"}),
        ):
            rules.append(
                {
                    f"ml_{part}_{json_type}": {
                        "path_match": f"ml.{part}.*",
                        "match_mapping_type": json_type,
                        "mapping": dict(mapping),
                    }
                }
            )
    return rules


def _fixed_properties() -> dict[str, Any]:
    keyword = {"type": "keyword"}
    return {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"ingested": {"type": "date"}, "dataset": keyword}},
        "data_stream": {
            "properties": {
                "type": {"type": "constant_keyword"},
                "dataset": {"type": "constant_keyword"},
                "namespace": {"type": "constant_keyword"},
            }
        },
        "ecs": {"properties": {"version": {"type": "constant_keyword", "value": ECS_VERSION}}},
        "host": {"properties": {"name": keyword}},
        "agent": {"properties": {"type": keyword, "version": keyword, "id": keyword, "name": keyword}},
        "log": {"properties": {"file": {"properties": {"path": keyword}}, "offset": {"type": "long"}}},
        "ml": {
            "properties": {
                "model": {"properties": {"name": keyword, "version": keyword}},
                "prediction": {"properties": {"id": keyword, "latency_ms": {"type": "double"}}},
                "invalid": keyword,
                "inputs": {"type": "object"},
                "outputs": {"type": "object"},
                "tokens": {"type": "object"},
            }
        },
    }


def base_component() -> dict[str, Any]:
    """The body of ``PUT _component_template/inferwatch-logs@mappings``."""
    return {
        "template": {
            "mappings": {
                "date_detection": False,
                "dynamic_templates": _dynamic_templates(),
                "properties": _fixed_properties(),
            }
        },
        "version": TEMPLATE_VERSION,
        "_meta": dict(_META),
    }


def _nest(leaves: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"user.age": m}`` -> ``{"user": {"properties": {"age": m}}}``. A path that is both a leaf
    and a parent (``user`` and ``user.age``) cannot be mapped: ValueError."""
    root: dict[str, Any] = {}
    for path, mapping in sorted(leaves.items()):
        node = root
        *parents, leaf = path.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {"properties": {}})
            if "properties" not in child:
                raise ValueError(f"feature {'.'.join(parents[: i + 1])!r} is a value and also holds {path!r}")
            node = child["properties"]
        if leaf in node:
            raise ValueError(f"feature {path!r} is a value and also an object of other features")
        node[leaf] = dict(mapping)
    return root


def _kinds(features: Mapping[str, FeatureKind]) -> dict[str, dict[str, Any]]:
    return {name: _KIND_MAPPING[kind] for name, kind in features.items()}


def model_component(model: ModelConfig) -> dict[str, Any]:
    """The body of ``PUT _component_template/inferwatch-logs.<m>@mappings``: configured features
    by kind under ``ml.inputs`` and ``ml.outputs``."""
    ml: dict[str, Any] = {}
    if model.features:
        ml["inputs"] = {"properties": _nest(_kinds(model.features))}
    if model.outputs:
        ml["outputs"] = {"properties": _nest(_kinds(model.outputs))}
    return {
        "template": {"mappings": {"properties": {"ml": {"properties": ml}}}},
        "version": TEMPLATE_VERSION,
        "_meta": dict(_META),
    }


# -- index templates ------------------------------------------------------------------------------


def _settings(caps: Capabilities, with_lifecycle: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "index.mode": "standard",
        "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
    }
    if caps.ignore_dynamic_beyond_limit:
        settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] = True
    if with_lifecycle:
        settings["index.lifecycle.prefer_ilm"] = False
    return settings


def index_template(
    pattern: str,
    priority: int,
    components: Iterable[str],
    retention: str | None,
    caps: Capabilities = Capabilities(),
    hooks: Iterable[str] = custom_hooks(),
) -> dict[str, Any]:
    """The body of ``PUT _index_template/<name>``: a data stream over ``pattern`` composed of our
    ``components`` (first), the built-ins and the ``@custom`` ``hooks`` (before ``ecs@mappings``,
    as in Elastic's ``logs@template``; left out before 8.7, which cannot ignore a missing one)."""
    with_lifecycle = retention is not None and caps.lifecycle
    template: dict[str, Any] = {"settings": _settings(caps, with_lifecycle)}
    if with_lifecycle:
        template["lifecycle"] = {"data_retention": retention}
    body: dict[str, Any] = {
        "index_patterns": [pattern],
        "priority": priority,
        "data_stream": {},
        "allow_auto_create": True,
        "composed_of": [*components, *_builtins_with(hooks if caps.ignore_missing_components else ())],
        "template": template,
        "version": TEMPLATE_VERSION,
        "_meta": dict(_META),
    }
    if caps.ignore_missing_components:
        body["ignore_missing_component_templates"] = [*BUILTIN_COMPONENTS, *hooks]
    return body


def _builtins_with(hooks: Iterable[str]) -> list[str]:
    """``logs@mappings``, ``logs@settings``, the hooks, ``ecs@mappings``: Elastic's order."""
    *before, last = BUILTIN_COMPONENTS
    return [*before, *hooks, last]


def plan(cfg: Config, caps: Capabilities = Capabilities()) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request ``install`` makes, in order: ``(kind, name, body)`` with kind
    ``component`` or ``index``. Components come before the index templates that use them."""
    retention = cfg.elasticsearch.retention if cfg.elasticsearch is not None else None
    steps: list[tuple[str, str, dict[str, Any]]] = [("component", BASE_COMPONENT, base_component())]
    models = {name: m for name, m in sorted(cfg.models.items()) if m.features or m.outputs}
    for name, model in models.items():
        steps.append(("component", model_component_name(name), model_component(model)))
    steps.append(
        (
            "index",
            BASE_TEMPLATE,
            index_template(BASE_PATTERN, BASE_PRIORITY, [BASE_COMPONENT], retention, caps, custom_hooks()),
        )
    )
    for name in models:
        ours = [BASE_COMPONENT, model_component_name(name)]
        body = index_template(model_pattern(name), MODEL_PRIORITY, ours, retention, caps, custom_hooks(name))
        steps.append(("index", model_template_name(name), body))
    return steps


# -- install --------------------------------------------------------------------------------------

_JSON = {"accept": "application/json", "content-type": "application/json"}


def install(client: Any, cfg: Config, log: logging.Logger | Callable[[str], None]) -> list[str]:
    """PUT every template of ``plan`` (idempotent) with ``client`` (an ``elasticsearch.Elasticsearch``;
    its ``ApiError``/``TransportError`` propagate). Returns one line per action."""
    say: Callable[[str], None] = log.info if isinstance(log, logging.Logger) else log
    info = _body(client.perform_request("GET", "/", headers={"accept": "application/json"}))
    number = str(info.get("version", {}).get("number", "8.15.0"))
    caps = Capabilities.from_version(number)
    if not caps.supported:
        raise UnsupportedElasticsearch(number)
    done: list[str] = []
    for kind, name, body in plan(cfg, caps):
        path = f"/_component_template/{name}" if kind == "component" else f"/_index_template/{name}"
        client.perform_request("PUT", path, headers=_JSON, body=body)
        if kind == "component":
            done.append(f"component template {name}")
        else:
            life = body["template"].get("lifecycle")
            keep = f", retention {life['data_retention']}" if life else ""
            done.append(
                f"index template {name} ({body['index_patterns'][0]}, priority {body['priority']}{keep})"
            )
    if cfg.elasticsearch is not None and not caps.lifecycle:
        done.append(
            f"retention not set: Elasticsearch {number} has no data stream lifecycle (needs 8.14); "
            "the built-in ILM policy logs@lifecycle applies"
        )
    for line in done:
        say(line)
    return done


def _body(response: Any) -> dict[str, Any]:
    body = getattr(response, "body", response)
    return body if isinstance(body, dict) else {}
