"""Kibana rules and connectors of inferwatch (ids are uuid5 of names: setup is idempotent).

Rules
- "new alerts" (``.es-query``, basic license) on the alert history stream: any ``opened`` or
  ``escalated`` event of severity warning or critical in the last 15 minutes.
- "prediction volume dropped to zero" (``.index-threshold``, basic) per configured model, on that
  model's own data streams ``logs-inferwatch.<dataset>-*`` with ``groupBy: all``. A per-model rule
  rather than one rule grouped by ``ml.model.name``: a terms group with no documents in the window
  produces no group at all, so a grouped rule can never see a model fall to zero.
- "no predictions at all" (``.index-threshold``) on every prediction stream.

How they notify (per-action ``frequency``; Kibana's per-alert action scheduler,
x-pack/plugins/alerting/server/task_runner/action_scheduler/schedulers/per_alert_action_scheduler.ts):
- "new alerts" is an event rule: ``excludeHitsFromPreviousRun`` makes each run count only history
  events newer than the newest one the previous run saw, and its actions run ``onActiveAlert``, so
  every run that finds new events notifies once, naming them (up to ``size``; the count names them
  all), and a run without new events says nothing. No recovery action: "no new events this minute"
  is not news. (``onActionGroupChange`` kept the rule's single alert active while new events kept
  arriving run after run, and stayed silent about all but the first.)
- the volume rules are state rules: they notify when the threshold is met (``onActionGroupChange``)
  and once more on recovery.

Connectors: ``.server-log`` and ``.index`` (to ``inferwatch-notifications``) always (basic
license); Slack (``.slack``, incoming webhook URL), ``.webhook`` and email (a preconfigured
``.email`` connector named by id) only when configured in ``kibana.connectors`` -- those three
need a Kibana gold license.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inferwatch.core.config import ConnectorsConfig, ModelConfig
from inferwatch.core.configschema import Secret
from inferwatch.core.contract import HISTORY_PATTERN, LOGS_PATTERN, model_pattern
from inferwatch.kibana.lens import stable_id

NOTIFICATIONS_INDEX = "inferwatch-notifications"
GOLD_TYPES = frozenset({".slack", ".slack_api", ".webhook", ".email"})
RULE_UPDATE_FIELDS = ("name", "tags", "schedule", "throttle", "params", "actions", "notify_when")
TAGS = ["inferwatch"]


@dataclass(frozen=True)
class ConnectorSpec:
    id: str
    name: str
    connector_type_id: str
    config: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    preconfigured: bool = False  # defined in kibana.yml: referenced, never created

    @property
    def needs_gold(self) -> bool:
        return self.connector_type_id in GOLD_TYPES

    def create_body(self) -> dict[str, Any]:
        """The request body; secrets are revealed here, at the point of use."""
        return {
            "name": self.name,
            "connector_type_id": self.connector_type_id,
            "config": dict(self.config),
            "secrets": {k: v.reveal() for k, v in self.secrets.items()},
        }

    def update_body(self) -> dict[str, Any]:
        body = self.create_body()
        del body["connector_type_id"]  # PUT /api/actions/connector/<id> takes name, config, secrets
        return body


@dataclass(frozen=True)
class RuleSpec:
    id: str
    name: str
    rule_type_id: str
    params: Mapping[str, Any]
    actions: tuple[Mapping[str, Any], ...]
    schedule: str = "1m"
    consumer: str = "stackAlerts"
    tags: tuple[str, ...] = tuple(TAGS)
    enabled: bool = True

    def create_body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule_type_id": self.rule_type_id,
            "consumer": self.consumer,
            "enabled": self.enabled,
            "tags": list(self.tags),
            "schedule": {"interval": self.schedule},
            "params": dict(self.params),
            "actions": [dict(a) for a in self.actions],
        }

    def update_body(self) -> dict[str, Any]:
        """Only the fields ``PUT /api/alerting/rule/<id>`` accepts."""
        body = self.create_body()
        return {k: body[k] for k in RULE_UPDATE_FIELDS if k in body}


def connectors(cfg: ConnectorsConfig) -> list[ConnectorSpec]:
    out = [
        ConnectorSpec(stable_id("connector", "server-log"), "inferwatch: Kibana server log", ".server-log"),
        ConnectorSpec(
            stable_id("connector", "index"),
            f"inferwatch: index {NOTIFICATIONS_INDEX}",
            ".index",
            config={"index": NOTIFICATIONS_INDEX, "refresh": False, "executionTimeField": "@timestamp"},
        ),
    ]
    if cfg.slack_webhook_url is not None:
        out.append(
            ConnectorSpec(
                stable_id("connector", "slack"),
                "inferwatch: Slack",
                ".slack",
                secrets={"webhookUrl": cfg.slack_webhook_url},
            )
        )
    if cfg.webhook_url is not None:
        # The URL sits in the connector's config (Kibana does not encrypt it); it may embed a token,
        # so it is never printed.
        out.append(
            ConnectorSpec(
                stable_id("connector", "webhook"),
                "inferwatch: webhook",
                ".webhook",
                config={
                    "url": cfg.webhook_url.reveal(),
                    "method": "post",
                    "headers": {"Content-Type": "application/json"},
                    "hasAuth": False,
                },
            )
        )
    if cfg.email_connector_id and cfg.email_to:
        out.append(ConnectorSpec(cfg.email_connector_id, "inferwatch: email", ".email", preconfigured=True))
    return out


def license_notes(specs: Iterable[ConnectorSpec]) -> list[str]:
    return [
        f"connector {s.name} ({s.connector_type_id}) needs a Kibana gold license or higher; "
        "on the basic license Kibana refuses to create or run it"
        for s in specs
        if s.needs_gold
    ]


ON_STATUS_CHANGE = "onActionGroupChange"
ON_EVERY_RUN = "onActiveAlert"


def _frequency(notify_when: str) -> dict[str, Any]:
    return {"summary": False, "notify_when": notify_when, "throttle": None}


def _actions(
    specs: Iterable[ConnectorSpec],
    group: str,
    title: str,
    message: str,
    email_to: tuple[str, ...],
    *,
    notify_when: str = ON_STATUS_CHANGE,
    on_recovery: bool = True,
) -> tuple[dict[str, Any], ...]:
    groups = ((group, ""), ("recovered", "Recovered: ")) if on_recovery else ((group, ""),)
    out: list[dict[str, Any]] = []
    for s in specs:
        for grp, prefix in groups:
            text = f"{prefix}{title}\n{message}" if not prefix else f"{prefix}{title}"
            params: dict[str, Any]
            if s.connector_type_id == ".server-log":
                params = {"level": "warn" if not prefix else "info", "message": text}
            elif s.connector_type_id == ".index":
                params = {
                    "documents": [
                        {
                            "rule": {"id": "{{rule.id}}", "name": "{{rule.name}}"},
                            "alert": {"id": "{{alert.id}}", "action_group": "{{alert.actionGroup}}"},
                            "event": {"action": "recovered" if prefix else "fired"},
                            "message": text,
                        }
                    ]
                }
            elif s.connector_type_id in (".slack", ".slack_api"):
                params = {"message": text}
            elif s.connector_type_id == ".webhook":
                params = {"body": json.dumps({"rule": "{{rule.name}}", "group": grp, "message": text})}
            else:  # .email
                params = {"to": list(email_to), "subject": f"{prefix}{{{{rule.name}}}}", "message": text}
            out.append({"group": grp, "id": s.id, "params": params, "frequency": _frequency(notify_when)})
    return tuple(out)


_NEW_ALERTS_MESSAGE = (
    "{{context.value}} new or escalated inferwatch alert(s):\n"
    "{{#context.hits}}- [{{_source.severity}}] {{_source.model}} {{_source.version}} "
    "{{_source.detector}} {{_source.feature}}: {{_source.message}}\n{{/context.hits}}"
)


def new_alerts_query() -> dict[str, Any]:
    return {
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"severity": ["warning", "critical"]}},
                    {"terms": {"event.action": ["opened", "escalated"]}},
                ]
            }
        }
    }


def rules(
    models: Mapping[str, ModelConfig], specs: list[ConnectorSpec], email_to: tuple[str, ...] = ()
) -> list[RuleSpec]:
    out = [
        RuleSpec(
            id=stable_id("rule", "new-alerts"),
            name="inferwatch: new warning or critical alert",
            rule_type_id=".es-query",
            params={
                "searchType": "esQuery",
                "index": [HISTORY_PATTERN],
                "timeField": "@timestamp",
                "esQuery": json.dumps(new_alerts_query()),
                "size": 20,
                "threshold": [0],
                "thresholdComparator": ">",
                "timeWindowSize": 15,
                "timeWindowUnit": "m",
                "excludeHitsFromPreviousRun": True,
                "aggType": "count",
                "groupBy": "all",
            },
            actions=_actions(
                specs,
                "query matched",
                "inferwatch: {{rule.name}}",
                _NEW_ALERTS_MESSAGE,
                email_to,
                notify_when=ON_EVERY_RUN,
                on_recovery=False,
            ),
        ),
        RuleSpec(
            id=stable_id("rule", "volume", "*"),
            name="inferwatch: no predictions from any model",
            rule_type_id=".index-threshold",
            params=_volume_params(LOGS_PATTERN),
            actions=_actions(
                specs,
                "threshold met",
                "inferwatch: no predictions logged by any model",
                "{{context.message}}",
                email_to,
            ),
        ),
    ]
    for model in sorted(models):
        out.append(
            RuleSpec(
                id=stable_id("rule", "volume", model),
                name=f"inferwatch: {model} prediction volume dropped to zero",
                rule_type_id=".index-threshold",
                params=_volume_params(model_pattern(model)),
                actions=_actions(
                    specs,
                    "threshold met",
                    f"inferwatch: model {model} logged no predictions in 15 minutes",
                    "{{context.message}}",
                    email_to,
                ),
            )
        )
    return out


def _volume_params(index: str) -> dict[str, Any]:
    return {
        "index": [index],
        "timeField": "@timestamp",
        "aggType": "count",
        "groupBy": "all",
        "timeWindowSize": 15,
        "timeWindowUnit": "m",
        "thresholdComparator": "<",
        "threshold": [1],
    }
