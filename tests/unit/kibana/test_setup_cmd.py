"""``inferwatch setup`` end to end against loopback Elasticsearch and Kibana fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from inferwatch.core.cli import cli
from tests.unit.kibana.fakes import FakeElasticsearch, FakeKibana

PASSWORD = "Very-s3cret-pw"
SLACK = "https://hooks.slack.example/T0001/B0001/zyxwvutsrq"


def _config(tmp_path: Path, es_url: str, kibana_url: str | None, connectors: bool = True) -> Path:
    text = f"""
agent:
  data_dir: {tmp_path / "data"}
  inputs: [{{paths: ["{tmp_path}/logs/*.jsonl"], model: cars_mpg}}]
  dead_letter_index: inferwatch-dead-letter
elasticsearch:
  hosts: ["{es_url}"]
  username: elastic
  password: ${{IW_TEST_PASSWORD}}
models:
  cars_mpg:
    features: {{origin: categorical, horsepower: numeric, name: text}}
    outputs: {{score: numeric, label: categorical}}
"""
    if kibana_url is not None:
        text += f"""
kibana:
  url: {kibana_url}
  space: ml
  username: elastic
  password: ${{IW_TEST_PASSWORD}}
  wait_timeout: 20s
"""
        if connectors:
            text += "  connectors:\n    slack_webhook_url: ${IW_TEST_SLACK}\n"
    path = tmp_path / "inferwatch.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["setup", "--config", str(path), *args], catch_exceptions=False)


def _all_output(result: Result, caplog: pytest.LogCaptureFixture) -> str:
    return result.output + (result.stderr if result.stderr_bytes is not None else "") + caplog.text


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("inferwatch.kibana.setup_cmd.STATUS_POLL_SECONDS", 0.01)
    monkeypatch.setenv("IW_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("IW_TEST_SLACK", SLACK)


def test_full_setup_installs_every_step_in_order_and_prints_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    es, kb = FakeElasticsearch(), FakeKibana([(503, ""), (200, "available")])
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url))
        assert result.exit_code == 0, result.output
        out = result.output
        steps = [line for line in out.splitlines() if line.startswith("[")]
        assert [s.split("] ", 1)[1].split(" ")[0] for s in steps] == [
            "Elasticsearch",
            "alert",
            "waiting",
            "saved",
            "connectors",
            "rules",
        ]
        assert steps[0].startswith("[1/6]") and steps[-1].startswith("[6/6]")
        assert "index inferwatch-alerts: created" in out
        assert "gold license" in out  # the Slack connector's note
        assert out.rstrip().endswith("setup complete")

        # Elasticsearch: the agent's templates, then the alert templates and the alerts index.
        es_puts = [r.path.split("?")[0] for r in es.server.requests if r.method == "PUT"]
        assert "/_index_template/logs-inferwatch" in es_puts
        assert es_puts.index("/_index_template/inferwatch-alerts") > es_puts.index(
            "/_index_template/logs-inferwatch"
        )
        assert "/inferwatch-alerts" in es_puts
        assert "/_index_template/inferwatch-alerts-history" in es_puts
        # The incidents: their template, then the index (the incidents data view reads it).
        assert "index inferwatch-incidents: created" in out
        assert es_puts.index("/_index_template/inferwatch-incidents") < es_puts.index("/inferwatch-incidents")
        incidents = es.templates["_index_template/inferwatch-incidents"]
        assert incidents["template"]["mappings"]["properties"]["incident"]["properties"]["opened"] == {
            "type": "date"
        }
        assert "/_index_template/inferwatch-dead-letter" in es_puts

        # Kibana: status, import into the space, connectors, rules (all created).
        paths = [(r.method, r.path) for r in kb.server.requests]
        assert paths[:3] == [
            ("GET", "/api/status"),
            ("GET", "/api/status"),
            ("POST", "/s/ml/api/saved_objects/_import?overwrite=true"),
        ]
        assert len(kb.connectors) == 3 and len(kb.rules) == 3
        assert kb.connectors and all(r.path.startswith("/s/ml/") for r in kb.server.requests[2:])
        titles = [json.loads(line)["attributes"]["title"] for line in kb.imported[0].splitlines()]
        assert "inferwatch: Inputs (cars_mpg)" in titles

        # The secret went only where it belongs: the Slack connector's secrets.
        slack = next(c for c in kb.connectors.values() if c["connector_type_id"] == ".slack")
        assert slack["secrets"] == {"webhookUrl": SLACK}
        text = _all_output(result, caplog)
        assert PASSWORD not in text and SLACK not in text
        assert "hooks.slack" not in text

        # A second run changes nothing and updates in place.
        again = _run(_config(tmp_path, es.server.url, kb.server.url))
        assert again.exit_code == 0, again.output
        assert "index inferwatch-alerts: exists, mappings updated" in again.output
        assert "index inferwatch-incidents: exists, mappings updated" in again.output
        assert again.output.count(": updated") == 6  # 3 connectors + 3 rules
        assert len(kb.connectors) == 3 and len(kb.rules) == 3
        assert PASSWORD not in _all_output(again, caplog)


def test_import_errors_fail_the_command_naming_object_type_and_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    es, kb = FakeElasticsearch(), FakeKibana()
    kb.import_errors = [
        {
            "id": "d1f47ebb-7917-54cf-b1e1-ded64e30ed3d",
            "type": "dashboard",
            "meta": {"title": "inferwatch: Overview"},
            "error": {"type": "unknown", "message": "Unsupported saved object type", "statusCode": 400},
        }
    ]
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url))
    assert result.exit_code == 1
    err = result.stderr if result.stderr_bytes is not None else result.output
    assert "setup failed" in err
    assert (
        "dashboard d1f47ebb-7917-54cf-b1e1-ded64e30ed3d 'inferwatch: Overview': unknown: Unsupported saved object type"
        in err
    )
    assert not kb.rules and not kb.connectors  # stopped before connectors and rules
    assert PASSWORD not in _all_output(result, caplog)


def test_skip_kibana_and_no_kibana_section(tmp_path: Path) -> None:
    es, kb = FakeElasticsearch(), FakeKibana()
    with es.server, kb.server:
        skipped = _run(_config(tmp_path, es.server.url, kb.server.url), "--skip-kibana")
        assert skipped.exit_code == 0
        assert "[3/3] Kibana: skipped (--skip-kibana)" in skipped.output
        assert kb.server.requests == []
        without = _run(_config(tmp_path, es.server.url, None))
        assert without.exit_code == 0
        assert "no 'kibana' section" in without.output


def test_dry_run_contacts_nothing_and_lists_objects(tmp_path: Path) -> None:
    es, kb = FakeElasticsearch(), FakeKibana()
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url), "--dry-run")
    assert result.exit_code == 0, result.output
    assert es.server.requests == [] and kb.server.requests == []
    assert "rule inferwatch: cars_mpg prediction volume dropped to zero (.index-threshold)" in result.output
    assert "dashboard" in result.output and "gold license" in result.output
    assert SLACK not in result.output


def test_elasticsearch_refusal_fails_with_its_reason(tmp_path: Path) -> None:
    es, kb = FakeElasticsearch(), FakeKibana()
    es.indices.add("inferwatch-alerts")
    original = es.route

    def refuse_mapping(rec):  # type: ignore[no-untyped-def]
        if rec.path.startswith("/inferwatch-alerts/_mapping"):
            from tests.unit.kibana.fakes import Answer

            err = {"type": "illegal_argument_exception", "reason": "mapper [status] cannot be changed"}
            return Answer(400, {"error": {"root_cause": [err], **err}, "status": 400}, es.PRODUCT)
        return original(rec)

    es.server._route = refuse_mapping
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url))
    assert result.exit_code == 1
    err = result.stderr if result.stderr_bytes is not None else result.output
    assert "HTTP 400 illegal_argument_exception: mapper [status] cannot be changed" in err
    assert kb.server.requests == []


def test_a_secret_echoed_back_in_an_error_is_scrubbed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    es, kb = FakeElasticsearch(), FakeKibana()
    original = kb.route

    def echo_url(rec):  # type: ignore[no-untyped-def]
        if rec.path.startswith("/s/ml/api/actions/connector/") and rec.method == "POST":
            from tests.unit.kibana.fakes import Answer

            url = rec.json()["secrets"].get("webhookUrl")
            if url:
                return Answer(400, {"statusCode": 400, "message": f'target url "{url}" is not allowed'})
        return original(rec)

    kb.server._route = echo_url
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url))
    assert result.exit_code == 1
    err = result.stderr if result.stderr_bytes is not None else result.output
    assert 'target url "***" is not allowed' in err
    assert SLACK not in _all_output(result, caplog)


def test_setup_in_a_space_keeps_connectors_an_earlier_version_created_there(tmp_path: Path) -> None:
    """Earlier versions gave the space 'ml' the space-less ids; setup updates those objects and
    points the rules at the connectors it kept, instead of creating a second set."""
    from inferwatch.core.config import ConnectorsConfig
    from inferwatch.kibana import rules as kr

    es, kb = FakeElasticsearch(), FakeKibana()
    earlier = kr.connectors(ConnectorsConfig())  # the space-less ids
    for c in earlier:
        kb.connectors[c.id] = c.create_body()
        kb.space_of[c.id] = "ml"
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url, connectors=False))
    assert result.exit_code == 0, result.output
    assert set(kb.connectors) == {c.id for c in earlier}
    assert all(kb.space_of[oid] == "ml" for oid in kb.rules)
    used = {a["id"] for rule in kb.rules.values() for a in rule["actions"]}
    assert used == {c.id for c in earlier}


@pytest.mark.parametrize("version", ["7.7.1", "8.6.2"])
def test_an_older_elasticsearch_is_refused_naming_its_version_and_the_minimum(
    tmp_path: Path, version: str
) -> None:
    """7.7 answered PUT _component_template with a raw 405 "Incorrect HTTP method"; 8.6 cannot
    store a template naming built-in components it lacks. Refused before any PUT, by name."""
    es, kb = FakeElasticsearch(version), FakeKibana()
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url))
    assert result.exit_code == 1
    err = result.stderr if result.stderr_bytes is not None else result.output
    assert f"Elasticsearch {version} is older than 8.7.0, the oldest version inferwatch supports" in err
    assert "405" not in err
    assert [r.method for r in es.server.requests] == ["GET"]  # only the version was read
    assert kb.server.requests == []


def test_a_kibana_older_than_the_bundle_is_refused_before_the_import(tmp_path: Path) -> None:
    """Kibana's document migrator refuses a saved object whose typeMigrationVersion is newer than
    the last migration it knows for the type ("belongs to a more recent version of Kibana",
    packages/core/saved-objects/core-saved-objects-migration-server-internal/src/document_migrator/
    pipelines/upgrade_pipeline.ts); setup names the versions instead of failing object by object."""
    es, kb = FakeElasticsearch(), FakeKibana(version="8.8.2")
    with es.server, kb.server:
        result = _run(_config(tmp_path, es.server.url, kb.server.url))
    assert result.exit_code == 1
    err = result.stderr if result.stderr_bytes is not None else result.output
    assert "Kibana 8.8.2 at http://127.0.0.1:" in err and "older than 8.9.0" in err
    assert [r.path for r in kb.server.requests] == ["/api/status"]


def test_an_existing_history_stream_gets_the_rules_time_field_mapped_at_once(tmp_path: Path) -> None:
    """The history template applies from the stream's next backing index; the existing ones get
    event.created (the incident rule's time field) mapped by setup, or with ``dynamic: false`` the
    rule would find nothing there until a rollover."""
    es = FakeElasticsearch()
    with es.server:
        fresh = _run(_config(tmp_path, es.server.url, None))
        assert fresh.exit_code == 0, fresh.output
        assert not [
            r
            for r in es.server.requests
            if r.method == "PUT" and "_mapping" in r.path and "history" in r.path
        ]
        es.indices.add("logs-inferwatch_alerts.history-default")  # the worker wrote a first event
        again = _run(_config(tmp_path, es.server.url, None))
    assert again.exit_code == 0, again.output
    assert "data stream logs-inferwatch_alerts.history-default: exists, mappings updated" in again.output
    (put,) = [
        r
        for r in es.server.requests
        if r.method == "PUT" and r.path.startswith("/logs-inferwatch_alerts.history-default/_mapping")
    ]
    assert put.json()["properties"]["event"]["properties"]["created"] == {"type": "date"}
