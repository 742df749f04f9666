"""``inferwatch setup``: install, in order and idempotently,

1. the Elasticsearch index templates and retention of the prediction logs (agent.templates),
2. the alert indices (analytics.alerts.index),
3. when a ``kibana`` section is configured: wait for Kibana, import the saved objects, create or
   update the connectors, create or update the rules.

Each step prints what it did. Any refusal (a per-object import error included) stops the command
with exit status 1 and names the object, the error type and the message. Credentials come from the
config (``${ENV}``) and are never printed.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from inferwatch.core.clitools import EXIT_FAILED, config_option, load_or_exit
from inferwatch.core.config import Config
from inferwatch.core.configschema import Secret

log = logging.getLogger("inferwatch.setup")
STATUS_POLL_SECONDS = 5.0  # between GET /api/status while Kibana starts


class SetupFailed(Exception):
    pass


def _echo(line: str) -> None:
    click.echo(line)


def _step(number: int, total: int, title: str) -> None:
    _echo(f"[{number}/{total}] {title}")


def _items(lines: Any) -> None:
    for line in lines or []:
        _echo(f"  - {line}")


def _elasticsearch_steps(cfg: Config, dry_run: bool, step: Callable[[str], None]) -> None:
    if cfg.elasticsearch is None:
        step("Elasticsearch: no 'elasticsearch' section (embedded mode): nothing to install")
        return
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from inferwatch.agent import templates
    from inferwatch.analytics.alerts import index as alert_index
    from inferwatch.analytics.es import make_client

    hosts = ", ".join(cfg.elasticsearch.hosts)
    if dry_run:
        step(f"Elasticsearch templates and retention at {hosts} (dry run: not contacted)")
        step(
            "alert indices: "
            + ", ".join([alert_index.ALERTS_INDEX, alert_index.HISTORY_PATTERN])
            + " (dry run)"
        )
        return
    client = make_client(cfg.elasticsearch)
    try:
        step(f"Elasticsearch templates and retention at {hosts}")
        done = templates.install(client, cfg, log.debug)
        _items(done if isinstance(done, list) else ["installed"])
        step("alert indices")
        _items(alert_index.install(client, cfg, log))
    except templates.UnsupportedElasticsearch as exc:
        raise SetupFailed(str(exc)) from None
    except (ApiError, TransportError) as exc:
        raise SetupFailed(f"Elasticsearch refused the setup: {_es_reason(exc)}") from None
    finally:
        client.close()


def _es_reason(exc: Exception) -> str:
    from elasticsearch import ApiError

    if isinstance(exc, ApiError):
        info = exc.info if isinstance(exc.info, dict) else {}
        err = info.get("error")
        if isinstance(err, dict):
            root = (err.get("root_cause") or [err])[0]
            return f"HTTP {exc.status_code} {root.get('type')}: {root.get('reason')}"
        return f"HTTP {exc.status_code} {exc.message}"
    return f"{exc.__class__.__name__}: {exc}"


def _kibana_steps(cfg: Config, dry_run: bool, step: Callable[[str], None]) -> None:
    from inferwatch.kibana import rules as kr
    from inferwatch.kibana.bundle import bundle
    from inferwatch.kibana.saved_objects import MINIMUM_KIBANA, older_than_minimum, to_ndjson
    from inferwatch.kibana.setup_client import ImportFailed, KibanaClient, KibanaError, KibanaUnavailable

    kcfg = cfg.kibana
    assert kcfg is not None
    objects = bundle(cfg.models, cfg.agent.dead_letter_index)
    ndjson = to_ndjson(objects)
    space = kcfg.space or kr.DEFAULT_SPACE
    connectors = kr.connectors(kcfg.connectors, space)
    email_to = kcfg.connectors.email_to
    notes = kr.license_notes(connectors)
    if dry_run:
        step(f"Kibana at {kcfg.url}, space {space} (dry run: not contacted)")
        _items(f"{o['type']} {o['id']} {o['attributes'].get('title', '')}" for o in objects)
        _items(f"connector {c.name} ({c.connector_type_id}) {c.id}" for c in connectors)
        rules = kr.rules(cfg.models, connectors, email_to, space)
        _items(f"rule {r.name} ({r.rule_type_id}) {r.id}" for r in rules)
        for note in notes:
            _echo(f"  note: {note}")
        return
    client = KibanaClient(kcfg)
    try:
        step(f"waiting for Kibana at {kcfg.url}")
        client.wait_available(
            float(kcfg.wait_timeout), progress=lambda m: _echo(f"  - {m}"), interval=STATUS_POLL_SECONDS
        )
        if client.version is not None and older_than_minimum(client.version):
            raise SetupFailed(
                f"Kibana {client.version} at {kcfg.url} is older than {MINIMUM_KIBANA}, the oldest "
                "version the inferwatch dashboards import into (Kibana refuses a saved object that "
                "'belongs to a more recent version of Kibana'); upgrade Kibana to "
                f"{MINIMUM_KIBANA} or later"
            )
        step(f"saved objects into space {space}")
        result = client.import_objects(ndjson)
        kinds: dict[str, int] = {}
        for o in objects:
            kinds[o["type"]] = kinds.get(o["type"], 0) + 1
        summary = ", ".join(f"{n} {t}" for t, n in kinds.items())
        _items([f"imported {result.success_count} objects ({summary}), overwriting earlier versions"])
        step("connectors")
        for note in notes:
            _echo(f"  note: {note}")
        in_kibana = []  # with the ids they have there (an earlier version's, when kept)
        for c in connectors:
            done = client.upsert_connector(c)
            in_kibana.append(dataclasses.replace(c, id=done.id))
            _items([f"{c.name} ({c.connector_type_id}) {done.id}: {done.outcome}"])
        step("rules")
        for r in kr.rules(cfg.models, in_kibana, email_to, space):
            done = client.upsert_rule(r)
            _items([f"{r.name} ({r.rule_type_id}) {done.id}: {done.outcome}"])
    except ImportFailed as exc:
        raise SetupFailed(str(exc)) from None
    except (KibanaError, KibanaUnavailable) as exc:
        raise SetupFailed(str(exc)) from None
    finally:
        client.close()


def _secret_values(cfg: Config) -> list[str]:
    values: list[Secret | None] = []
    if cfg.elasticsearch is not None:
        values += [cfg.elasticsearch.resolved_api_key(), cfg.elasticsearch.resolved_password()]
    if cfg.kibana is not None:
        k = cfg.kibana
        values += [k.resolved_api_key(), k.resolved_password()]
        values += [k.connectors.slack_webhook_url, k.connectors.webhook_url]
    return sorted({v.reveal() for v in values if v is not None and v.reveal()}, key=len, reverse=True)


def scrub(text: str, cfg: Config) -> str:
    """Remove every configured secret from a message (a server may echo a URL or a token back)."""
    for value in _secret_values(cfg):
        text = text.replace(value, "***")
    return text


def run_setup(cfg: Config, skip_kibana: bool = False, dry_run: bool = False) -> None:
    """The whole setup; raises SetupFailed with a message naming what was refused."""
    with_kibana = cfg.kibana is not None and not skip_kibana
    total = (2 if cfg.elasticsearch is not None else 1) + (4 if with_kibana and not dry_run else 1)
    counter = iter(range(1, total + 1))

    def step(title: str) -> None:
        _step(next(counter), total, title)

    _elasticsearch_steps(cfg, dry_run, step)
    if cfg.kibana is None:
        step("Kibana: no 'kibana' section: dashboards, connectors and rules not installed")
    elif skip_kibana:
        step("Kibana: skipped (--skip-kibana)")
    else:
        _kibana_steps(cfg, dry_run, step)


@click.command("setup")
@config_option
@click.option("--skip-kibana", is_flag=True, help="Install only the Elasticsearch parts.")
@click.option("--dry-run", is_flag=True, help="Print what would be installed; contact nothing.")
def setup(config_path: Path, skip_kibana: bool, dry_run: bool) -> None:
    """Install Elasticsearch templates, alert indices and Kibana assets (idempotent).

    \b
    Order: index templates and retention, alert indices, then (with a 'kibana' section)
    wait for Kibana, import dashboards and data views, create or update connectors and rules.
    Slack, webhook and email connectors need a Kibana gold license.

    \b
    Examples:
      inferwatch setup --config inferwatch.yml --dry-run     # list the steps, contact nothing
      inferwatch setup --config inferwatch.yml               # Elasticsearch, then Kibana
      inferwatch setup --config inferwatch.yml --skip-kibana
    Exit codes: 0 installed (running it again changes nothing), 1 a step was refused or a server
    unreachable (the message names it), 2 invalid config.
    """
    cfg = load_or_exit(config_path)
    try:
        run_setup(cfg, skip_kibana=skip_kibana, dry_run=dry_run)
    except SetupFailed as exc:
        click.echo(f"setup failed: {scrub(str(exc), cfg)}", err=True)
        click.echo(
            "fix: the reason above names the server and what it refused; check that it is reachable "
            "at the configured URL (elasticsearch.hosts, kibana.url) and that the credentials may "
            "manage templates, indices and saved objects; setup is safe to run again",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    _echo("setup complete" + (" (dry run)" if dry_run else ""))
