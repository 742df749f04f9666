"""Kibana rules and connectors of inferwatch (ids are uuid5 of names: setup is idempotent).

Ids and spaces: rules and connectors are saved objects of Kibana's ``multiple-isolated`` types,
whose ids must be unique across all spaces (creating an id that lives in another space is answered
409 by src/core/packages/saved-objects/api-server-internal/src/lib/apis/internals/
preflight_check_for_create.ts, and the same id is 404 from this space). So an id is derived from
the space as well as the name (``object_id``); in the default space it is the space-less id
earlier versions used everywhere, and in another space an object found under that earlier id
(``earlier_id``) is adopted and updated instead of duplicated.

Rules
- "incidents" (``.es-query``, basic license) on the alert history stream, which holds incident
  events only (``inferwatch.analytics.alerts.incidents``): an incident of severity warning or
  critical that ``opened``, ``escalated`` or ``resolved`` (``NOTIFYING`` there; ``joined``,
  ``reopened`` within the cooldown and ``resolving`` are recorded, never told). Its time field is
  ``event.created``, the time the worker wrote the event: ``@timestamp`` is the end of the window
  the event describes, so an event written late (a backfill, a worker catching up) fell outside
  the 15-minute lookback, and one with the same window end as an event already seen (two models
  evaluated on the same window, written a minute apart) was excluded as "seen".
- "prediction volume dropped to zero" (``.index-threshold``, basic) per configured model, on that
  model's own data streams ``logs-inferwatch.<dataset>-*`` with ``groupBy: all``. A per-model rule
  rather than one rule grouped by ``ml.model.name``: a terms group with no documents in the window
  produces no group at all, so a grouped rule can never see a model fall to zero.
- "no predictions at all" (``.index-threshold``) on every prediction stream.

How they notify (per-action ``frequency``; Kibana's per-alert action scheduler,
x-pack/plugins/alerting/server/task_runner/action_scheduler/schedulers/per_alert_action_scheduler.ts):
- "incidents" is an event rule: ``excludeHitsFromPreviousRun`` makes each run count only history
  events written after the newest one the previous run saw, and its actions run ``onActiveAlert``,
  so every run that finds new events notifies once, naming them (up to ``size``; the count names
  them all), and a run without new events says nothing. An incident is therefore told once when it
  opens, once per escalation and once when it resolves. No recovery action: "no new events this
  minute" is not news, and a "recovered" message a minute after "opened" would read as if the
  incident were over while it is still open. (``onActionGroupChange`` kept the rule's single alert active while new events kept
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

from inferwatch.analytics.alerts.incidents import INCIDENT_TRANSITIONS, NOTIFYING
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
    previous_id: str | None = None  # the id an earlier version gave it in this space

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
    previous_id: str | None = None  # the id an earlier version gave it in this space

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


DEFAULT_SPACE = "default"


def object_id(space: str | None, *names: str) -> str:
    """The stable id of a rule or connector in a Kibana space: unique across spaces, and in the
    default space the id earlier versions gave it."""
    if not space or space == DEFAULT_SPACE:
        return stable_id(*names)
    return stable_id("space", space, *names)


def earlier_id(space: str | None, *names: str) -> str | None:
    """The space-less id earlier versions used in every space (``None`` in the default space,
    where it is still the id)."""
    return None if not space or space == DEFAULT_SPACE else stable_id(*names)


def connectors(cfg: ConnectorsConfig, space: str | None = None) -> list[ConnectorSpec]:
    out = [
        ConnectorSpec(
            name="inferwatch: Kibana server log",
            connector_type_id=".server-log",
            id=object_id(space, "connector", "server-log"),
            previous_id=earlier_id(space, "connector", "server-log"),
        ),
        ConnectorSpec(
            id=object_id(space, "connector", "index"),
            previous_id=earlier_id(space, "connector", "index"),
            name=f"inferwatch: index {NOTIFICATIONS_INDEX}",
            connector_type_id=".index",
            config={"index": NOTIFICATIONS_INDEX, "refresh": False, "executionTimeField": "@timestamp"},
        ),
    ]
    if cfg.slack_webhook_url is not None:
        out.append(
            ConnectorSpec(
                name="inferwatch: Slack",
                connector_type_id=".slack",
                id=object_id(space, "connector", "slack"),
                previous_id=earlier_id(space, "connector", "slack"),
                secrets={"webhookUrl": cfg.slack_webhook_url},
            )
        )
    if cfg.webhook_url is not None:
        # The URL sits in the connector's config (Kibana does not encrypt it); it may embed a token,
        # so it is never printed.
        out.append(
            ConnectorSpec(
                name="inferwatch: webhook",
                connector_type_id=".webhook",
                id=object_id(space, "connector", "webhook"),
                previous_id=earlier_id(space, "connector", "webhook"),
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


# The history events' fields (incidents.incident_history_document): the message names the likely
# cause first; incident.alerts counts its member alerts.
_INCIDENTS_MESSAGE = (
    "{{context.value}} inferwatch incident event(s):\n"
    "{{#context.hits}}- {{_source.event.action}} [{{_source.severity}}] {{_source.model}} "
    "{{_source.version}}: {{_source.message}} ({{_source.incident.alerts}} alert(s), "
    "incident {{_source.incident.id}})\n{{/context.hits}}"
)
# The incident transitions a person is told (incidents.NOTIFYING), in the order of an incident's life.
NOTIFIED_ACTIONS = tuple(a for a in INCIDENT_TRANSITIONS if a in NOTIFYING)
NOTIFIED_SEVERITIES = ("warning", "critical")
EVENT_TIME_FIELD = "event.created"  # the history event's write time (alerts.sink.WriteClock)


def new_alerts_query() -> dict[str, Any]:
    return {
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"severity": list(NOTIFIED_SEVERITIES)}},
                    {"terms": {"event.kind": ["incident"]}},
                    {"terms": {"event.action": list(NOTIFIED_ACTIONS)}},
                ]
            }
        }
    }


def rules(
    models: Mapping[str, ModelConfig],
    specs: list[ConnectorSpec],
    email_to: tuple[str, ...] = (),
    space: str | None = None,
) -> list[RuleSpec]:
    out = [
        RuleSpec(
            id=object_id(space, "rule", "new-alerts"),
            previous_id=earlier_id(space, "rule", "new-alerts"),
            name="inferwatch: incident opened, escalated or resolved",
            rule_type_id=".es-query",
            params={
                "searchType": "esQuery",
                "index": [HISTORY_PATTERN],
                "timeField": EVENT_TIME_FIELD,
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
                _INCIDENTS_MESSAGE,
                email_to,
                notify_when=ON_EVERY_RUN,
                on_recovery=False,
            ),
        ),
        RuleSpec(
            id=object_id(space, "rule", "volume", "*"),
            previous_id=earlier_id(space, "rule", "volume", "*"),
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
                id=object_id(space, "rule", "volume", model),
                previous_id=earlier_id(space, "rule", "volume", model),
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
