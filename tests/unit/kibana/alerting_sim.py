"""A small model of how Kibana runs an ungrouped ``.es-query`` rule and schedules its per-alert
actions, transcribed from Kibana's source (8.x; paths in Kibana's repository):

- the rule type: x-pack/plugins/stack_alerts/server/rule_types/es_query/executor.ts and
  lib/fetch_es_query.ts -- hits whose ``timeField`` is in ``[now - timeWindow, now]``, minus (with
  ``excludeHitsFromPreviousRun``) every hit at or before the state's ``latestTimestamp``; the count
  against the threshold; when met, the one alert ``query matched`` is reported and
  ``latestTimestamp`` becomes the newest hit's ``timeField`` (the sort value: milliseconds);
- the framework's bookkeeping: x-pack/plugins/alerting/server/lib/process_alerts.ts (reported ->
  active, new when it was not active in the previous run; an active alert not reported ->
  recovered; a re-activated alert is a new Alert without the old ``lastScheduledActions``),
  flapping_utils.ts (history of status changes, 20 runs, flapping at 4 changes) and
  get_alerts_for_notification.ts (a flapping alert that recovers stays active, "pending recovered",
  for up to 4 runs, keeping its last action group);
- action scheduling: x-pack/plugins/alerting/server/task_runner/action_scheduler/schedulers/
  per_alert_action_scheduler.ts and x-pack/plugins/alerting/server/alert/alert.ts
  (``scheduledActionGroupHasChanged``): ``onActionGroupChange`` runs an action only when the
  alert's action group differs from its last scheduled one; ``onActiveAlert`` on every run the
  alert is active, except while it is pending recovered; recovery actions run for the alerts that
  recovered in this run.
Muting, maintenance windows, throttling and summary actions are not modelled (the rules use none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from inferwatch.kibana.rules import RuleSpec

FLAPPING_LOOK_BACK = 20
FLAPPING_CHANGES = 4
RECOVERY_GROUP = "recovered"
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
COMPARATORS = {
    ">": lambda v, t: v > t[0],
    ">=": lambda v, t: v >= t[0],
    "<": lambda v, t: v < t[0],
    "<=": lambda v, t: v <= t[0],
}


@dataclass
class Alert:
    id: str
    last_group: str | None = None  # meta.lastScheduledActions.group
    history: list[bool] = field(default_factory=list)  # flapping history
    flapping: bool = False
    pending_recovered: int = 0
    scheduled: str | None = None  # the action group scheduled in this run
    hits: list[Mapping[str, Any]] = field(default_factory=list)  # context.hits

    def record(self, changed: bool) -> None:
        self.history = [*self.history, changed][-FLAPPING_LOOK_BACK:]

    def update_flapping(self) -> None:
        changes = sum(self.history)
        if self.flapping:
            self.flapping = not (len(self.history) >= FLAPPING_LOOK_BACK and changes == 0)
        else:
            self.flapping = changes >= FLAPPING_CHANGES


@dataclass(frozen=True)
class Notification:
    at: datetime
    group: str
    connector: str
    hits: tuple[Mapping[str, Any], ...]  # the hits named in the action's context (context.hits)

    def named(self, path: str) -> tuple[str, ...]:
        """One field of each hit named, e.g. ``incident.id``."""
        return tuple(str(field_at(h, path)) for h in self.hits)


def field_at(doc: Mapping[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _time(doc: Mapping[str, Any], path: str) -> datetime | None:
    """A date field as Elasticsearch reads it (a datetime here, or an ISO-8601 string as the sinks
    write it), truncated to milliseconds like a ``date`` field; ``None`` when the document has none
    (a document without the time field is never a hit)."""
    value = field_at(doc, path)
    if value is None:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """The rule's ``esQuery``: a bool filter of ``terms`` clauses (any other shape fails loudly)."""
    clauses = query["query"]["bool"]["filter"]
    for clause in clauses:
        ((kind, body),) = clause.items()
        assert kind == "terms", f"the model knows only terms clauses, not {kind}"
        ((path, values),) = body.items()
        if field_at(doc, path) not in values:
            return False
    return True


class EsQueryRule:
    """One ungrouped ``.es-query`` rule run after run against a list of documents."""

    def __init__(self, spec: RuleSpec) -> None:
        assert spec.rule_type_id == ".es-query" and spec.params.get("groupBy", "all") == "all"
        self.spec = spec
        self.params = spec.params
        self.query = json.loads(spec.params["esQuery"])
        self.latest: datetime | None = None  # rule state latestTimestamp
        self.active: dict[str, Alert] = {}
        self.recovered: dict[str, Alert] = {}  # tracked for flapping

    def _search(
        self, now: datetime, docs: Sequence[Mapping[str, Any]]
    ) -> list[tuple[datetime, Mapping[str, Any]]]:
        """(time, document) of each hit, newest first."""
        p = self.params
        window = timedelta(**{UNITS[p["timeWindowUnit"]]: p["timeWindowSize"]})
        exclude = p.get("excludeHitsFromPreviousRun") and self.latest is not None
        timed = [(t, d) for d in docs if (t := _time(d, p["timeField"])) is not None]
        hits = [
            (t, d)
            for t, d in timed
            if now - window <= t <= now
            and _matches(self.query, d)
            and not (exclude and self.latest is not None and t <= self.latest)
        ]
        hits.sort(key=lambda h: h[0], reverse=True)
        return hits

    def run(self, now: datetime, docs: Sequence[Mapping[str, Any]]) -> list[Notification]:
        hits = self._search(now, docs)
        met = COMPARATORS[self.params["thresholdComparator"]](len(hits), self.params["threshold"])
        group = self.spec.actions[0]["group"] if self.spec.actions else "query matched"
        reported: dict[str, Alert] = {}
        if met:
            named = [d for _, d in hits[: self.params["size"]]]
            reported["query matched"] = Alert("query matched", hits=named)
            self.latest = hits[0][0]

        # process_alerts.ts
        active: dict[str, Alert] = {}
        current_recovered: dict[str, Alert] = {}
        for aid, fresh in reported.items():
            if aid in self.active:
                alert = self.active[aid]
                alert.record(False)
            else:
                alert = Alert(aid)
                if aid in self.recovered:
                    alert.history = self.recovered.pop(aid).history
                alert.record(True)
            alert.scheduled, alert.hits = group, fresh.hits
            active[aid] = alert
        for aid, alert in self.active.items():
            if aid not in reported:
                alert.record(True)
                alert.scheduled, alert.hits = None, []
                current_recovered[aid] = alert
        for alert in self.recovered.values():
            alert.record(False)
        for alert in [*active.values(), *current_recovered.values(), *self.recovered.values()]:
            alert.update_flapping()

        # get_alerts_for_notification.ts
        for alert in active.values():
            alert.pending_recovered = 0
        for aid, alert in list(current_recovered.items()):
            if alert.flapping:
                alert.pending_recovered += 1
                if alert.pending_recovered < FLAPPING_CHANGES:
                    alert.scheduled = alert.last_group or group
                    active[aid] = alert
                    del current_recovered[aid]
                else:
                    alert.pending_recovered = 0

        # per_alert_action_scheduler.ts: decide for every action first, then record what ran.
        out: list[Notification] = []
        ran: list[tuple[Alert, str]] = []
        for action in self.spec.actions:
            notify_when = action["frequency"]["notify_when"]
            if action["group"] == RECOVERY_GROUP:
                out += [Notification(now, RECOVERY_GROUP, action["id"], ()) for _ in current_recovered]
                continue
            for alert in active.values():
                if alert.pending_recovered > 0 and notify_when != "onActionGroupChange":
                    continue  # hasPendingCountButNotNotifyOnChange
                if alert.scheduled != action["group"]:
                    continue
                if notify_when == "onActionGroupChange" and alert.last_group == alert.scheduled:
                    continue  # scheduledActionGroupHasChanged() is false
                out.append(Notification(now, action["group"], action["id"], tuple(alert.hits)))
                ran.append((alert, action["group"]))
        for alert, grp in ran:
            alert.last_group = grp

        for aid, alert in current_recovered.items():
            self.recovered[aid] = alert
        self.active = active
        return out
