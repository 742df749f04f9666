"""The Kibana setup client against a loopback Kibana that answers in the documented shapes."""

from __future__ import annotations

import base64
import json
from types import MappingProxyType

import pytest

from inferwatch.core.config import ConnectorsConfig, KibanaConfig
from inferwatch.core.configschema import Duration, Secret
from inferwatch.kibana import rules as kr
from inferwatch.kibana.bundle import bundle
from inferwatch.kibana.saved_objects import to_ndjson
from inferwatch.kibana.setup_client import ImportFailed, KibanaClient, KibanaError, KibanaUnavailable
from tests.unit.kibana.fakes import FakeKibana

PASSWORD = "s3cret-Pa55"


def _client(url: str, space: str | None = None, **kw: object) -> KibanaClient:
    cfg = KibanaConfig(url=url, space=space, username="elastic", password=Secret(PASSWORD), **kw)  # type: ignore[arg-type]
    return KibanaClient(cfg, request_timeout=5.0)


def test_waits_until_status_is_available_and_reports_progress() -> None:
    fake = FakeKibana([(503, ""), (200, "degraded"), (200, "degraded"), (200, "available")])
    messages: list[str] = []
    with fake.server:
        _client(fake.server.url).wait_available(30.0, messages.append, interval=0.01)
    assert [r.path for r in fake.server.requests] == ["/api/status"] * 4
    assert messages[0].endswith("HTTP 503")
    assert messages[1].endswith("degraded")
    assert len(messages) == 3  # one per change, then available
    assert messages[-1].startswith("Kibana is available")
    auth = fake.server.requests[0].headers["authorization"]
    assert base64.b64decode(auth.split()[1]).decode() == f"elastic:{PASSWORD}"


def test_wait_gives_up_at_the_deadline() -> None:
    fake = FakeKibana([(200, "unavailable")])
    with fake.server, pytest.raises(KibanaUnavailable, match="last: unavailable"):
        _client(fake.server.url).wait_available(0.05, lambda m: None, interval=0.01)


def test_wait_fails_at_once_on_wrong_credentials() -> None:
    fake = FakeKibana([(401, "")])
    with fake.server, pytest.raises(KibanaError, match="HTTP 401"):
        _client(fake.server.url).wait_available(30.0, lambda m: None, interval=0.01)
    assert len(fake.server.requests) == 1


def test_unreachable_kibana_is_an_error_naming_the_url() -> None:
    client = _client("http://127.0.0.1:9")
    with pytest.raises(KibanaError, match=r"cannot reach Kibana at http://127\.0\.0\.1:9"):
        client.status_level()


NDJSON = to_ndjson(bundle(MappingProxyType({})))


def test_import_sends_the_ndjson_file_with_overwrite_and_xsrf() -> None:
    fake = FakeKibana()
    with fake.server:
        result = _client(fake.server.url).import_objects(NDJSON)
    (req,) = fake.server.requests
    assert req.method == "POST" and req.path == "/api/saved_objects/_import?overwrite=true"
    assert req.headers["kbn-xsrf"] == "true"
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert fake.imported == [NDJSON]
    assert result.success_count == len(NDJSON.splitlines())


def test_import_with_per_object_errors_fails_naming_each() -> None:
    objs = [json.loads(line) for line in NDJSON.splitlines()]
    dash = next(o for o in objs if o["type"] == "dashboard")
    search = next(o for o in objs if o["type"] == "search")
    fake = FakeKibana()
    fake.import_errors = [
        {
            "id": dash["id"],
            "type": "dashboard",
            "title": dash["attributes"]["title"],
            "meta": {"title": dash["attributes"]["title"], "icon": "dashboardApp"},
            "error": {
                "type": "unknown",
                "message": "[attributes.bogus]: definition for this key is missing",
                "statusCode": 400,
            },
        },
        {
            "id": search["id"],
            "type": "search",
            "meta": {"title": "inferwatch: prediction logs"},
            "error": {"type": "missing_references", "references": [{"type": "index-pattern", "id": "nope"}]},
        },
    ]
    with fake.server, pytest.raises(ImportFailed) as info:
        _client(fake.server.url).import_objects(NDJSON)
    exc = info.value
    assert [(e.id, e.type, e.error_type) for e in exc.errors] == [
        (dash["id"], "dashboard", "unknown"),
        (search["id"], "search", "missing_references"),
    ]
    text = str(exc)
    assert "definition for this key is missing" in text
    assert "index-pattern nope" in text
    assert "inferwatch: Overview" in text or "inferwatch: Alerts" in text
    assert exc.success_count == len(objs) - 2


def test_space_prefix_on_api_paths_not_on_status() -> None:
    fake = FakeKibana()
    with fake.server:
        client = _client(fake.server.url, space="ml-team")
        client.wait_available(5.0, lambda m: None, interval=0.01)
        client.import_objects(NDJSON)
        spec = kr.connectors(ConnectorsConfig())[0]
        client.upsert_connector(spec)
    paths = [r.path for r in fake.server.requests]
    assert paths[0] == "/api/status"
    assert paths[1] == "/s/ml-team/api/saved_objects/_import?overwrite=true"
    assert paths[2:] == [f"/s/ml-team/api/actions/connector/{spec.id}"] * 2


def _rule() -> kr.RuleSpec:
    specs = kr.connectors(ConnectorsConfig())
    return kr.rules(MappingProxyType({}), specs)[0]


def test_rule_is_created_when_get_answers_404() -> None:
    fake = FakeKibana()
    rule = _rule()
    with fake.server:
        assert _client(fake.server.url).upsert_rule(rule).outcome == "created"
    get, post = fake.server.requests
    assert (get.method, post.method) == ("GET", "POST")
    assert post.path == f"/api/alerting/rule/{rule.id}"
    body = post.json()
    assert (
        body["rule_type_id"] == ".es-query" and body["consumer"] == "stackAlerts" and body["enabled"] is True
    )
    assert fake.rules[rule.id]["params"]["index"] == ["logs-inferwatch_alerts.history-*"]


def test_existing_rule_is_updated_without_the_fields_put_refuses() -> None:
    fake = FakeKibana()
    rule = _rule()
    fake.rules[rule.id] = rule.create_body()
    with fake.server:
        assert _client(fake.server.url).upsert_rule(rule).outcome == "updated"
    get, put = fake.server.requests
    assert (get.method, put.method) == ("GET", "PUT")
    sent = put.json()
    assert not {"rule_type_id", "consumer", "enabled"} & set(sent)
    assert set(sent) == {"name", "tags", "schedule", "params", "actions"}


def test_409_on_create_falls_back_to_update() -> None:
    fake = FakeKibana()
    rule = _rule()
    fake.conflict_on_create.add(rule.id)
    with fake.server:
        assert _client(fake.server.url).upsert_rule(rule).outcome == "updated"
    assert [r.method for r in fake.server.requests] == ["GET", "POST", "PUT"]


def test_refused_update_raises_with_kibanas_message() -> None:
    fake = FakeKibana()
    rule = _rule()
    fake.rules[rule.id] = rule.create_body()
    bad = kr.RuleSpec(rule.id, rule.name, rule.rule_type_id, rule.params, rule.actions)
    with fake.server:
        client = _client(fake.server.url)
        # Simulate a client that sent a forbidden field: the fake answers like Kibana does.
        status, body = client.request(
            "PUT", f"/api/alerting/rule/{rule.id}", {**bad.update_body(), "consumer": "x"}
        )
    assert status == 400 and "consumer" in body["message"]


def test_connectors_create_then_update_and_secrets_only_in_the_body() -> None:
    fake = FakeKibana()
    cfg = ConnectorsConfig(slack_webhook_url=Secret("https://hooks.slack.example/T/B/tok"))
    specs = kr.connectors(cfg)
    with fake.server:
        client = _client(fake.server.url)
        assert [client.upsert_connector(s).outcome for s in specs] == ["created"] * 3
        assert [client.upsert_connector(s).outcome for s in specs] == ["updated"] * 3
    slack = next(s for s in specs if s.connector_type_id == ".slack")
    assert fake.connectors[slack.id]["secrets"] == {"webhookUrl": "https://hooks.slack.example/T/B/tok"}
    puts = [r for r in fake.server.requests if r.method == "PUT"]
    assert all("connector_type_id" not in r.json() for r in puts)


def test_preconfigured_email_connector_must_exist() -> None:
    fake = FakeKibana()
    spec = kr.ConnectorSpec("my-email", "inferwatch: email", ".email", preconfigured=True)
    with fake.server, pytest.raises(KibanaError, match=r"not defined in kibana\.yml"):
        _client(fake.server.url).upsert_connector(spec)
    fake2 = FakeKibana()
    fake2.connectors["my-email"] = {"name": "mail", "connector_type_id": ".email", "is_preconfigured": True}
    with fake2.server:
        assert _client(fake2.server.url).upsert_connector(spec).outcome == "preconfigured"
    assert [r.method for r in fake2.server.requests] == ["GET"]


def test_api_key_auth_header() -> None:
    fake = FakeKibana()
    cfg = KibanaConfig(url="http://x", api_key=Secret("a2V5OnZhbHVl"), wait_timeout=Duration(1))
    with fake.server:
        cfg = KibanaConfig(url=fake.server.url, api_key=Secret("a2V5OnZhbHVl"))
        KibanaClient(cfg).status_level()
    assert fake.server.requests[0].headers["authorization"] == "ApiKey a2V5OnZhbHVl"


def test_an_id_colon_secret_api_key_is_encoded_as_for_elasticsearch() -> None:
    fake = FakeKibana()
    with fake.server:
        cfg = KibanaConfig(url=fake.server.url, api_key=Secret("key:value"))
        KibanaClient(cfg).status_level()
    assert fake.server.requests[0].headers["authorization"] == "ApiKey a2V5OnZhbHVl"  # base64("key:value")


# --- spaces: rule and connector ids are unique across the whole Kibana ------------------------


def test_ids_differ_per_space_and_keep_the_default_spaces_ids() -> None:
    default = [c.id for c in kr.connectors(ConnectorsConfig())]
    assert [c.id for c in kr.connectors(ConnectorsConfig(), "default")] == default
    ml, ops = ([c.id for c in kr.connectors(ConnectorsConfig(), s)] for s in ("ml", "ops"))
    assert len(set(default) | set(ml) | set(ops)) == 3 * len(default)
    rules_ml = kr.rules(MappingProxyType({}), kr.connectors(ConnectorsConfig(), "ml"), space="ml")
    assert {a["id"] for r in rules_ml for a in r.actions} <= set(ml)
    assert rules_ml[0].previous_id == kr.object_id(None, "rule", "new-alerts")


def test_an_id_living_in_another_space_is_409_then_404_and_the_error_says_so() -> None:
    """What preflight_check_for_create.ts makes of a space-less id reused in a second space (the
    earlier behaviour): POST 409, the PUT fallback 404 from this space."""
    fake = FakeKibana()
    rule = _rule()  # the default space's id
    with fake.server:
        assert _client(fake.server.url).upsert_rule(rule).outcome == "created"
        same_id = kr.RuleSpec(rule.id, rule.name, rule.rule_type_id, rule.params, rule.actions)
        with pytest.raises(KibanaError, match="exists in another Kibana space") as info:
            _client(fake.server.url, space="ml").upsert_rule(same_id)
    assert info.value.status == 404
    last = fake.server.requests[-3:]
    assert [r.method for r in last] == ["GET", "POST", "PUT"]
    assert all(r.path == f"/s/ml/api/alerting/rule/{rule.id}" for r in last)


def test_a_second_space_installs_beside_the_first() -> None:
    fake = FakeKibana()
    with fake.server:
        for space in ("default", "ml"):
            client = _client(fake.server.url, space=space)
            specs = kr.connectors(ConnectorsConfig(), space)
            assert [client.upsert_connector(c).outcome for c in specs] == ["created"] * 2
            rules = kr.rules(MappingProxyType({}), specs, space=space)
            assert [client.upsert_rule(r).outcome for r in rules] == ["created"] * len(rules)
            assert [client.upsert_rule(r).outcome for r in rules] == ["updated"] * len(rules)
    assert sorted(set(fake.space_of.values())) == ["default", "ml"]
    assert len(fake.rules) == 4 and len(fake.connectors) == 4


def test_an_earlier_versions_object_in_a_non_default_space_is_kept_not_duplicated() -> None:
    fake = FakeKibana()
    new_id = kr.rules(MappingProxyType({}), [], space="ml")[0]
    legacy = new_id.previous_id
    assert legacy is not None
    fake.rules[legacy] = new_id.create_body()
    fake.space_of[legacy] = "ml"
    with fake.server:
        done = _client(fake.server.url, space="ml").upsert_rule(new_id)
    assert (done.outcome, done.id) == ("updated", legacy)
    assert [r.method for r in fake.server.requests] == ["GET", "GET", "PUT"]
    assert set(fake.rules) == {legacy}
