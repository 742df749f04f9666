"""Offline validation of the Kibana bundle, rules and connectors (Kibana cannot run here).

The checks follow what Kibana itself enforces on import and on rule creation: string-encoded
attributes, the dashboard attribute schema, references resolvable inside the bundle, Lens layers
with their data-view reference, rule params against the rule type's params schema (transcribed
from x-pack/plugins/stack_alerts .../es_query/rule_type_params.ts and
.../index_threshold/rule_type_params.ts), UUID ids. Every field a panel, search, control or rule
names must exist in our index mappings.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from inferwatch.analytics.alerts import index as alert_index
from inferwatch.core.config import ConnectorsConfig, ModelConfig
from inferwatch.core.configschema import Secret
from inferwatch.kibana import build, rules
from inferwatch.kibana.bundle import bundle

ROOT = Path(__file__).resolve().parents[3]
ASSET = ROOT / "kibana" / "src" / "inferwatch" / "kibana" / "assets" / "inferwatch.ndjson"

# --- the bundle as committed ---------------------------------------------------------------


def _lines() -> list[str]:
    return [line for line in ASSET.read_text(encoding="utf-8").splitlines() if line.strip()]


def _objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines()]


def test_committed_bundle_is_what_the_definitions_generate() -> None:
    assert ASSET.read_bytes() == build.generate(), "run: python -m inferwatch.kibana.build"


def test_every_line_parses_and_ids_are_unique() -> None:
    objs = _objects()
    assert len(objs) == len(_lines()) >= 10
    keys = [(o["type"], o["id"]) for o in objs]
    assert len(set(keys)) == len(keys)
    assert len({o["id"] for o in objs}) == len(objs)
    for o in objs:
        uuid.UUID(o["id"])  # stable uuid5 ids


def test_envelope_versions_are_set() -> None:
    expected = {"index-pattern": "7.11.0", "search": "7.9.3", "dashboard": "8.9.0"}
    for o in _objects():
        assert o["coreMigrationVersion"] == "8.8.0"
        assert o["typeMigrationVersion"] == expected[o["type"]]
        assert o["managed"] is False
        assert set(o) == {
            "type",
            "id",
            "attributes",
            "references",
            "coreMigrationVersion",
            "typeMigrationVersion",
            "managed",
        }


def _decoded(o: Mapping[str, Any]) -> dict[str, Any]:
    """The string-encoded attributes, decoded (each must be a JSON string)."""
    a = o["attributes"]
    out: dict[str, Any] = {}
    for key in ("panelsJSON", "optionsJSON"):
        if key in a:
            assert isinstance(a[key], str), key
            out[key] = json.loads(a[key])
    meta = a.get("kibanaSavedObjectMeta")
    if meta is not None:
        assert isinstance(meta["searchSourceJSON"], str)
        out["searchSourceJSON"] = json.loads(meta["searchSourceJSON"])
    cg = a.get("controlGroupInput")
    if cg is not None:
        assert isinstance(cg["panelsJSON"], str) and isinstance(cg["ignoreParentSettingsJSON"], str)
        out["controls"] = json.loads(cg["panelsJSON"])
        json.loads(cg["ignoreParentSettingsJSON"])
    if o["type"] == "index-pattern":
        for key in ("fields", "fieldFormatMap", "fieldAttrs", "runtimeFieldMap", "sourceFilters", "typeMeta"):
            if key in a:
                assert isinstance(a[key], str)
                json.loads(a[key])
    return out


# Kibana's dashboard saved-object schema '8.9.0' (src/plugins/dashboard/server/dashboard_saved_object/
# dashboard_saved_object.ts): unknown attributes are refused on import.
DASHBOARD_KEYS = {
    "title",
    "description",
    "panelsJSON",
    "optionsJSON",
    "kibanaSavedObjectMeta",
    "timeRestore",
    "timeFrom",
    "timeTo",
    "refreshInterval",
    "controlGroupInput",
    "version",
    "hits",
}
CONTROL_GROUP_KEYS = {"panelsJSON", "controlStyle", "chainingSystem", "ignoreParentSettingsJSON"}
REFRESH_KEYS = {"pause", "value", "display", "section"}
# SCHEMA_SEARCH_V8_8_0 (src/plugins/saved_search/server/saved_objects/schema.ts).
SEARCH_KEYS = {
    "title",
    "description",
    "columns",
    "sort",
    "grid",
    "rowHeight",
    "rowsPerPage",
    "hideChart",
    "breakdownField",
    "kibanaSavedObjectMeta",
    "isTextBasedQuery",
    "usesAdHocDataView",
    "timeRestore",
    "timeRange",
    "refreshInterval",
    "viewMode",
    "hideAggregatedPreview",
    "hits",
    "version",
}
INDEX_PATTERN_KEYS = {
    "title",
    "name",
    "timeFieldName",
    "fields",
    "fieldFormatMap",
    "fieldAttrs",
    "runtimeFieldMap",
    "sourceFilters",
    "typeMeta",
    "allowNoIndex",
}


def test_attributes_are_string_encoded_and_within_the_schemas() -> None:
    for o in _objects():
        decoded = _decoded(o)
        keys = set(o["attributes"])
        if o["type"] == "dashboard":
            assert keys <= DASHBOARD_KEYS, keys - DASHBOARD_KEYS
            assert isinstance(decoded["panelsJSON"], list) and decoded["panelsJSON"]
            assert set(o["attributes"]["refreshInterval"]) <= REFRESH_KEYS
            assert set(o["attributes"]["kibanaSavedObjectMeta"]) == {"searchSourceJSON"}
            assert set(o["attributes"].get("controlGroupInput", {})) <= CONTROL_GROUP_KEYS
        elif o["type"] == "search":
            assert keys <= SEARCH_KEYS, keys - SEARCH_KEYS
            assert (
                decoded["searchSourceJSON"]["indexRefName"] == "kibanaSavedObjectMeta.searchSourceJSON.index"
            )
        else:
            assert keys <= INDEX_PATTERN_KEYS, keys - INDEX_PATTERN_KEYS
            assert o["attributes"].get("timeFieldName") or o["attributes"]["title"] == "inferwatch-incidents"


def test_every_reference_resolves_inside_the_bundle() -> None:
    objs = _objects()
    present = {(o["type"], o["id"]) for o in objs}
    for o in objs:
        names = [r["name"] for r in o["references"]]
        assert len(names) == len(set(names)), f"duplicate reference names in {o['id']}"
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in present, f"{o['type']} {o['id']} -> {ref}"


def _panels(o: Mapping[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(o["attributes"]["panelsJSON"])
    return panels


def _dashboards() -> list[dict[str, Any]]:
    return [o for o in _objects() if o["type"] == "dashboard"]


def test_panels_grid_and_references() -> None:
    for d in _dashboards():
        refs = {r["name"]: r for r in d["references"]}
        indexes = [p["panelIndex"] for p in _panels(d)]
        assert len(indexes) == len(set(indexes))
        for p in _panels(d):
            g = p["gridData"]
            assert g["i"] == p["panelIndex"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 48 and g["w"] > 0 and g["h"] > 0
            if p["type"] == "search":
                assert f"{p['panelIndex']}:{p['panelRefName']}" in refs
                assert refs[f"{p['panelIndex']}:{p['panelRefName']}"]["type"] == "search"
                continue
            assert p["type"] == "lens"
            attrs = p["embeddableConfig"]["attributes"]
            assert attrs["visualizationType"] in {"lnsXY", "lnsMetric", "lnsDatatable"}
            layers = attrs["state"]["datasourceStates"]["formBased"]["layers"]
            inner = {r["name"]: r for r in attrs["references"]}
            for layer_id, layer in layers.items():
                name = f"indexpattern-datasource-layer-{layer_id}"
                hoisted = refs[f"{p['panelIndex']}:{name}"]
                assert hoisted["type"] == "index-pattern"
                assert inner[name]["id"] == hoisted["id"]
                assert layer["columnOrder"], "empty layer"
                assert set(layer["columnOrder"]) == set(layer["columns"])
                bucketed = [layer["columns"][c]["isBucketed"] for c in layer["columnOrder"]]
                assert bucketed == sorted(bucketed, reverse=True), "buckets come before metrics"
                for col in layer["columns"].values():
                    order = (col.get("params") or {}).get("orderBy") or {}
                    if order.get("type") == "column":
                        assert order["columnId"] in layer["columns"]
            _check_visualization(attrs, layers)


def _check_visualization(attrs: Mapping[str, Any], layers: Mapping[str, Any]) -> None:
    vis = attrs["state"]["visualization"]
    kind = attrs["visualizationType"]
    if kind == "lnsXY":
        for vl in vis["layers"]:
            cols = layers[vl["layerId"]]["columns"]
            for acc in [*vl["accessors"], vl.get("xAccessor"), vl.get("splitAccessor")]:
                assert acc is None or acc in cols
    elif kind == "lnsMetric":
        assert vis["metricAccessor"] in layers[vis["layerId"]]["columns"]
    else:
        cols = layers[vis["layerId"]]["columns"]
        assert [c["columnId"] for c in vis["columns"]] == layers[vis["layerId"]]["columnOrder"]
        assert all(c["columnId"] in cols for c in vis["columns"])


def test_controls_reference_their_data_view() -> None:
    for d in _dashboards():
        controls = _decoded(d).get("controls", {})
        refs = {r["name"] for r in d["references"]}
        for cid, control in controls.items():
            assert control["explicitInput"]["id"] == cid
            assert f"controlGroup_{cid}:optionsListDataView" in refs


def test_the_issue_dashboards_exist() -> None:
    titles = {d["attributes"]["title"] for d in _dashboards()}
    assert {"inferwatch: Overview", "inferwatch: Alerts"} <= titles
    for kind in ("Inputs", "Outputs", "Text"):
        assert f"inferwatch: {kind} (cars_mpg)" in titles
    searches = {o["attributes"]["title"] for o in _objects() if o["type"] == "search"}
    assert {"inferwatch: prediction logs", "inferwatch: dead-lettered lines"} <= searches
    views = {
        o["attributes"]["title"]: o["attributes"].get("timeFieldName")
        for o in _objects()
        if o["type"] == "index-pattern"
    }
    assert views == {
        "logs-inferwatch.*-*": "@timestamp",
        "inferwatch-alerts": "@timestamp",
        "inferwatch-incidents": None,
        "logs-inferwatch_alerts.history-*": "@timestamp",
        "inferwatch-dead-letter": "@timestamp",
    }


# --- fields exist in our mappings ----------------------------------------------------------

# The prediction-log document (docs/architecture.md "Documents in Elasticsearch" and the normalizer's
# document): fixed fields plus the dynamic ml.inputs.* / ml.outputs.* / ml.tokens.* families.
LOG_FIELDS = {
    "@timestamp",
    "event.ingested",
    "event.dataset",
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
    "host.name",
    "agent.type",
    "agent.version",
    "log.file.path",
    "log.offset",
    "ml.model.name",
    "ml.model.version",
    "ml.prediction.id",
    "ml.prediction.latency_ms",
    "ml.invalid",
}
LOG_PATTERNS = (
    re.compile(r"^ml\.inputs\..+"),
    re.compile(r"^ml\.outputs\..+"),
    re.compile(r"^ml\.tokens\..+"),
)


def _leaf_fields(properties: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            yield from _leaf_fields(spec["properties"], f"{path}.")
        else:
            yield path


def _template_log_fields() -> tuple[set[str], list[re.Pattern[str]]]:
    """Fields and path_match patterns of inferwatch.agent.templates, when that module provides them."""
    templates = pytest.importorskip("inferwatch.agent.templates")
    found: set[str] = set()
    patterns: list[re.Pattern[str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("properties"), Mapping):
                found.update(_leaf_fields(node["properties"]))
            for dyn in node.get("dynamic_templates") or []:
                for spec in dyn.values():
                    match = spec.get("path_match")
                    for m in [match] if isinstance(match, str) else match or []:
                        patterns.append(re.compile("^" + re.escape(m).replace(r"\*", ".*") + "$"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v)

    for name in dir(templates):
        fn = getattr(templates, name)
        if callable(fn) and not name.startswith("_") and getattr(fn, "__module__", "") == templates.__name__:
            try:
                walk(fn())
            except TypeError:
                continue
    return found, patterns


ALERT_FIELDS = set(_leaf_fields(alert_index.alert_properties()))
DEAD_LETTER_FIELDS = set(_leaf_fields(alert_index.dead_letter_properties()))


def _log_field_ok(name: str) -> bool:
    return name in LOG_FIELDS or any(p.match(name) for p in LOG_PATTERNS)


def _checker(view_title: str) -> Any:
    if view_title == "logs-inferwatch.*-*" or view_title.startswith("logs-inferwatch."):
        return _log_field_ok
    if view_title in ("inferwatch-alerts", "inferwatch-incidents", "logs-inferwatch_alerts.history-*"):
        return lambda n: n in ALERT_FIELDS
    if view_title == "inferwatch-dead-letter":
        return lambda n: n in DEAD_LETTER_FIELDS
    raise AssertionError(f"unknown data view {view_title}")


_KQL_FIELD = re.compile(r"([A-Za-z@_][\w.@]*)\s*:")


def kql_fields(query: str) -> list[str]:
    return _KQL_FIELD.findall(query)


def test_kql_field_extraction() -> None:
    assert kql_fields('ml.model.name : "a" and not ml.inputs.x : *') == ["ml.model.name", "ml.inputs.x"]


def _used_fields() -> Iterator[tuple[str, str, str]]:
    """(data view title, field, where) for every field the bundle names."""
    objs = _objects()
    views = {o["id"]: o["attributes"]["title"] for o in objs if o["type"] == "index-pattern"}
    for o in objs:
        if o["type"] == "search":
            view = views[o["references"][0]["id"]]
            for f in o["attributes"]["columns"]:
                yield view, f, o["attributes"]["title"]
            for f, _ in o["attributes"]["sort"]:
                yield view, f, o["attributes"]["title"]
            for f in kql_fields(_decoded(o)["searchSourceJSON"]["query"]["query"]):
                yield view, f, o["attributes"]["title"]
        if o["type"] != "dashboard":
            continue
        for control in _decoded(o).get("controls", {}).values():
            yield "logs-inferwatch.*-*", control["explicitInput"]["fieldName"], "control"
        for p in _panels(o):
            if p["type"] != "lens":
                continue
            attrs = p["embeddableConfig"]["attributes"]
            inner = {r["name"]: views[r["id"]] for r in attrs["references"]}
            for layer_id, layer in attrs["state"]["datasourceStates"]["formBased"]["layers"].items():
                view = inner[f"indexpattern-datasource-layer-{layer_id}"]
                where = attrs["title"]
                for f in kql_fields(attrs["state"]["query"]["query"]):
                    yield view, f, where
                for col in layer["columns"].values():
                    if col.get("sourceField") and col["sourceField"] != "___records___":
                        yield view, col["sourceField"], where
                    params = col.get("params") or {}
                    for f in params.get("secondaryFields") or []:
                        yield view, f, where
                    for flt in params.get("filters") or []:
                        for f in kql_fields(flt["input"]["query"]):
                            yield view, f, where
                    if col.get("filter"):
                        for f in kql_fields(col["filter"]["query"]):
                            yield view, f, where


def test_every_field_the_bundle_uses_is_mapped() -> None:
    used = list(_used_fields())
    assert len(used) > 50
    missing = [(v, f, w) for v, f, w in used if not _checker(v)(f)]
    assert not missing, missing


def test_log_fields_match_the_agent_index_template() -> None:
    fields, patterns = _template_log_fields()
    used = {f for v, f, _ in _used_fields() if v == "logs-inferwatch.*-*"}
    missing = [f for f in used if f not in fields and not any(p.match(f) for p in patterns)]
    assert not missing, missing


def _paths(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every field of a document, as dotted paths (``observed`` and ``expected`` are flattened)."""
    for k, v in node.items():
        if isinstance(v, Mapping) and k not in ("observed", "expected"):
            yield from _paths(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _worker_documents() -> dict[str, dict[str, Any]]:
    """The documents the worker writes for one incident, built by the analytics code itself:
    the alert, the incident, and the incident's history event as the sink writes it."""
    from inferwatch.analytics.alerts import (
        AlertState,
        IncidentChange,
        IncidentState,
        alert_document,
        incident_document,
        incident_history_document,
    )
    from inferwatch.analytics.alerts.sink import stamped

    state = AlertState(
        id="a1",
        detector="unseen_category",
        model="m",
        version="1",
        feature="inputs.country",
        key="XX",
        status="open",
        severity="warning",
        first_seen="2026-11-22T10:00:00+00:00",
        last_seen="2026-11-22T11:00:00+00:00",
        last_window="2026-11-22T11:00:00+00:00",
        windows=2,
        consecutive=2,
        clean=0,
        finding={"message": "new value", "window": {"gte": "a", "lt": "b"}, "p_value": 0.001},
        incident="i1",
    )
    incident = IncidentState(
        id="i1",
        model="m",
        version="1",
        status="open",
        severity="warning",
        opened=state.first_seen,
        resolved=None,
        last_window=state.last_window,
        members=("a1",),
        cause="a1",
        message="new value 'XX' on inputs.country",
    )
    event = IncidentChange("opened", incident, state, state.last_window)
    return {
        "alert": alert_document(state, state.last_window),
        "incident": incident_document(incident, state, state.last_window),
        "history": stamped(incident_history_document(event), "2026-11-22T11:00:30.000Z"),
    }


def test_alert_mappings_cover_every_alert_document_field() -> None:
    docs = _worker_documents()
    for kind, doc in docs.items():
        assert set(_paths(doc)) <= ALERT_FIELDS, (kind, set(_paths(doc)) - ALERT_FIELDS)
    assert "event.created" in set(_paths(docs["history"]))  # the incident rule's time field
    assert alert_index.alert_properties()["ml"]["properties"]["model"]["properties"]["name"] == {
        "type": "alias",
        "path": "model",
    }


# Fields a filter may name without the document carrying them: the model aliases of the controls.
_ALIASES = {"ml.model.name", "ml.model.version"}


def test_incident_and_history_panels_read_fields_their_documents_carry() -> None:
    """Mapped is not enough: the history stream now holds incident events only, so a panel there
    reading a detector's statistic (as the Text dashboard's OOV panel did) would stay empty."""
    docs = _worker_documents()
    carried = {
        "logs-inferwatch_alerts.history-*": set(_paths(docs["history"])) | _ALIASES,
        "inferwatch-incidents": set(_paths(docs["incident"])) | _ALIASES,
    }
    used = [(v, f, w) for v, f, w in _used_fields() if v in carried]
    assert {v for v, _, _ in used} == set(carried)
    missing = [(v, f, w) for v, f, w in used if f not in carried[v]]
    assert not missing, missing


def test_the_alerts_dashboard_shows_open_incidents_and_incident_events() -> None:
    from typing import get_args

    from inferwatch.analytics.alerts.incidents import IncidentTransition

    objs = _objects()
    by_id = {o["id"]: o for o in objs}
    (view,) = [
        o for o in objs if o["type"] == "index-pattern" and o["attributes"]["title"] == "inferwatch-incidents"
    ]
    assert view["attributes"]["allowNoIndex"] is True
    assert "timeFieldName" not in view["attributes"]  # an incident open for days stays listed
    (alerts,) = [d for d in _dashboards() if d["attributes"]["title"] == "inferwatch: Alerts"]
    refs = {r["name"]: r["id"] for r in alerts["references"]}
    searches = [
        by_id[refs[f"{p['panelIndex']}:{p['panelRefName']}"]]
        for p in _panels(alerts)
        if p["type"] == "search"
    ]
    (table,) = [s for s in searches if s["references"][0]["id"] == view["id"]]
    columns = table["attributes"]["columns"]
    assert {"model", "version", "severity", "message", "incident.opened", "incident.members"} <= set(columns)
    assert table["attributes"]["sort"] == [["incident.opened", "desc"]]
    assert _decoded(table)["searchSourceJSON"]["query"]["query"] == 'status : ("open" or "resolving")'

    # The history panels split and filter by incident actions that exist.
    transitions = set(get_args(IncidentTransition))
    lens = [p["embeddableConfig"]["attributes"] for p in _panels(alerts) if p["type"] == "lens"]
    on_history = [
        a
        for a in lens
        if {r["id"] for r in a["references"]} == {_view_id(objs, "logs-inferwatch_alerts.history-*")}
    ]
    assert len(on_history) == 2
    for a in on_history:
        for value in re.findall(r"event\.action : \(([^)]*)\)", a["state"]["query"]["query"]):
            assert {v.strip('" ') for v in value.split(" or ")} <= transitions
    notified = next(a for a in on_history if "notified" in a["title"].lower())
    assert 'event.action : ("opened" or "escalated" or "resolved")' in notified["state"]["query"]["query"]


def _view_id(objs: list[dict[str, Any]], title: str) -> str:
    (view,) = [o["id"] for o in objs if o["type"] == "index-pattern" and o["attributes"]["title"] == title]
    return view


# --- rules and connectors ------------------------------------------------------------------

# x-pack/plugins/stack_alerts/server/rule_types/es_query/rule_type_params.ts (8.9-8.x) with
# searchType esQuery: key -> (python types, required).
ES_QUERY_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "size": ((int,), True),
    "timeWindowSize": ((int,), True),
    "excludeHitsFromPreviousRun": ((bool,), False),
    "timeWindowUnit": ((str,), True),
    "threshold": ((list,), True),
    "thresholdComparator": ((str,), True),
    "aggType": ((str,), False),
    "aggField": ((str,), False),
    "groupBy": ((str,), False),
    "termField": ((str,), False),
    "termSize": ((int,), False),
    "searchType": ((str,), False),
    "timeField": ((str,), True),
    "esQuery": ((str,), True),
    "index": ((list,), True),
    "sourceFields": ((list,), False),
}
# .../index_threshold/rule_type_params.ts (CoreQueryParamsSchemaProperties + threshold).
INDEX_THRESHOLD_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "index": ((str, list), True),
    "timeField": ((str,), True),
    "aggType": ((str,), False),
    "aggField": ((str,), False),
    "groupBy": ((str,), False),
    "termField": ((str,), False),
    "filterKuery": ((str,), False),
    "termSize": ((int,), False),
    "timeWindowSize": ((int,), True),
    "timeWindowUnit": ((str,), True),
    "thresholdComparator": ((str,), True),
    "threshold": ((list,), True),
}
COMPARATORS = {">", ">=", "<", "<=", "between", "notBetween"}
TIME_UNITS = {"s", "m", "h", "d"}
AGG_TYPES = {"count", "avg", "min", "max", "sum"}
ACTION_GROUPS = {
    ".es-query": {"query matched", "recovered"},
    ".index-threshold": {"threshold met", "recovered"},
}


def _validate_params(params: Mapping[str, Any], schema: Mapping[str, tuple[tuple[type, ...], bool]]) -> None:
    unknown = set(params) - set(schema)
    assert not unknown, f"unknown params {unknown}"
    for key, (types, required) in schema.items():
        if key not in params:
            assert not required, f"missing {key}"
            continue
        value = params[key]
        assert isinstance(value, types) and not (isinstance(value, bool) and bool not in types), key
    assert params["thresholdComparator"] in COMPARATORS
    want = 2 if params["thresholdComparator"] in ("between", "notBetween") else 1
    assert len(params["threshold"]) == want and all(isinstance(t, int | float) for t in params["threshold"])
    assert params["timeWindowUnit"] in TIME_UNITS and params["timeWindowSize"] >= 1
    agg = params.get("aggType", "count")
    assert agg in AGG_TYPES and (agg == "count" or params.get("aggField"))
    if params.get("groupBy", "all") == "top":
        assert params.get("termField") and params.get("termSize")
    else:
        assert params.get("groupBy", "all") == "all"


_MODELS = build.models_of(build.COMPOSE_CONFIG)
_ALL_CONNECTORS = ConnectorsConfig(
    slack_webhook_url=Secret("https://hooks.slack.example/T000/B000/XXXX"),
    webhook_url=Secret("https://hooks.example/inferwatch?token=abc"),
    email_to=("ml-oncall@example.com",),
    email_connector_id="my-email",
)


def _rules(connectors: ConnectorsConfig = _ALL_CONNECTORS) -> list[rules.RuleSpec]:
    return rules.rules(_MODELS, rules.connectors(connectors), connectors.email_to)


def test_rule_params_match_the_rule_type_schemas() -> None:
    specs = _rules()
    assert {r.rule_type_id for r in specs} == {".es-query", ".index-threshold"}
    for r in specs:
        if r.rule_type_id == ".es-query":
            _validate_params(r.params, ES_QUERY_SCHEMA)
            assert r.params["searchType"] == "esQuery"
            query = json.loads(r.params["esQuery"])
            assert "query" in query
            assert 0 <= r.params["size"] <= 10000
        else:
            _validate_params(r.params, INDEX_THRESHOLD_SCHEMA)


def test_rule_fields_exist_in_the_mappings() -> None:
    for r in _rules():
        index = r.params["index"][0]
        check = _checker("logs-inferwatch.*-*" if index.startswith("logs-inferwatch.") else index)
        assert check(r.params["timeField"])
        for f in (r.params.get("termField"), r.params.get("aggField")):
            assert f is None or check(f)
        if r.rule_type_id == ".es-query":
            for clause in json.loads(r.params["esQuery"])["query"]["bool"]["filter"]:
                for f in next(iter(clause.values())):
                    assert check(f), f


def test_volume_rule_per_model_targets_its_own_streams() -> None:
    by_name = {r.name: r for r in _rules()}
    r = by_name["inferwatch: cars_mpg prediction volume dropped to zero"]
    assert r.params["index"] == ["logs-inferwatch.cars_mpg-*"]
    assert (r.params["thresholdComparator"], r.params["threshold"], r.params["groupBy"]) == ("<", [1], "all")


def test_rule_and_connector_ids_are_stable_uuids() -> None:
    first, second = _rules(), _rules()
    assert [r.id for r in first] == [r.id for r in second]
    for r in first:
        uuid.UUID(r.id)
    specs = rules.connectors(_ALL_CONNECTORS)
    for c in specs:
        if not c.preconfigured:
            uuid.UUID(c.id)
    assert len({r.id for r in first} | {c.id for c in specs}) == len(first) + len(specs)


def test_actions_use_the_rule_types_groups_and_a_per_action_frequency() -> None:
    """What they notify, run by run, is tested in test_rule_notifications.py."""
    for r in _rules():
        groups = {a["group"] for a in r.actions}
        assert groups <= ACTION_GROUPS[r.rule_type_id] and groups - {"recovered"}
        for a in r.actions:
            assert set(a["frequency"]) == {"summary", "notify_when", "throttle"}
            assert a["frequency"]["summary"] is False and a["frequency"]["throttle"] is None
            assert a["frequency"]["notify_when"] in {"onActionGroupChange", "onActiveAlert"}
        body = r.update_body()
        assert set(body) <= {"name", "tags", "schedule", "throttle", "params", "actions", "notify_when"}
        assert not {"rule_type_id", "consumer", "enabled"} & set(body)
        create = r.create_body()
        assert create["consumer"] == "stackAlerts" and create["enabled"] is True


# The connector config/secrets/params schemas (x-pack/plugins/stack_connectors/server/connector_types).
CONNECTOR_SCHEMAS: dict[str, dict[str, set[str]]] = {
    ".server-log": {"config": set(), "secrets": set(), "params": {"message", "level"}},
    ".index": {
        "config": {"index", "refresh", "executionTimeField"},
        "secrets": set(),
        "params": {"documents", "indexOverride"},
    },
    ".slack": {"config": set(), "secrets": {"webhookUrl"}, "params": {"message"}},
    ".webhook": {
        "config": {"url", "method", "headers", "hasAuth", "authType", "certType", "ca", "verificationMode"},
        "secrets": {"user", "password", "crt", "key", "pfx"},
        "params": {"body"},
    },
    ".email": {
        "config": set(),
        "secrets": set(),
        "params": {"to", "cc", "bcc", "subject", "message", "messageHTML"},
    },
}


def test_connectors_match_their_schemas_and_defaults_are_basic_license() -> None:
    default = rules.connectors(ConnectorsConfig())
    assert [c.connector_type_id for c in default] == [".server-log", ".index"]
    assert rules.license_notes(default) == []
    specs = rules.connectors(_ALL_CONNECTORS)
    assert [c.connector_type_id for c in specs] == [".server-log", ".index", ".slack", ".webhook", ".email"]
    notes = rules.license_notes(specs)
    assert len(notes) == 3 and all("gold license" in n for n in notes)
    for c in specs:
        schema = CONNECTOR_SCHEMAS[c.connector_type_id]
        body = c.create_body()
        assert set(body["config"]) <= schema["config"]
        assert set(body["secrets"]) <= schema["secrets"]
        assert "connector_type_id" not in c.update_body()
    index = next(c for c in specs if c.connector_type_id == ".index")
    assert index.config["index"] == "inferwatch-notifications"
    for r in _rules():
        for a in r.actions:
            ctype = next(c.connector_type_id for c in specs if c.id == a["id"])
            assert set(a["params"]) <= CONNECTOR_SCHEMAS[ctype]["params"]


def test_secrets_stay_hidden_until_the_request_body_is_built() -> None:
    slack = next(c for c in rules.connectors(_ALL_CONNECTORS) if c.connector_type_id == ".slack")
    assert "hooks.slack" not in repr(slack)
    assert slack.create_body()["secrets"]["webhookUrl"].startswith("https://hooks.slack")


def test_bundle_without_models_has_only_the_shared_dashboards() -> None:
    objs = bundle(MappingProxyType({}))
    titles = sorted(o["attributes"]["title"] for o in objs if o["type"] == "dashboard")
    assert titles == ["inferwatch: Alerts", "inferwatch: Overview"]
    text_only = bundle({"m": ModelConfig(features=MappingProxyType({"t": "text"}))})
    titles = sorted(o["attributes"]["title"] for o in text_only if o["type"] == "dashboard")
    assert titles == ["inferwatch: Alerts", "inferwatch: Overview", "inferwatch: Text (m)"]


def test_panels_do_not_overlap() -> None:
    for d in _dashboards():
        cells: dict[tuple[int, int], str] = {}
        for p in _panels(d):
            g = p["gridData"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, (
                        f"{d['attributes']['title']}: {p['title']} overlaps {cells[(x, y)]}"
                    )
                    cells[(x, y)] = p["title"]
