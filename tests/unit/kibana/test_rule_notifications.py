"""What the rules notify, run by run, under Kibana's own alerting rules (``alerting_sim``: the
``.es-query`` executor, x-pack/plugins/stack_alerts/server/rule_types/es_query/executor.ts, and the
per-alert action scheduler, x-pack/plugins/alerting/server/task_runner/action_scheduler/schedulers/
per_alert_action_scheduler.ts), not only the shape of their params.

The history documents of the incident tests are the ones the worker writes: findings go through
the worker's alert pipeline (``alerts.window.apply_findings``: alerts, then incidents) and the
Elasticsearch sink, whose bulk operations are recorded; each event becomes visible to the rule at
its write time (the sink writes with ``refresh=wait_for``)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from inferwatch.analytics.alerts import IncidentState
from inferwatch.analytics.alerts.incidents import NOTIFYING
from inferwatch.analytics.alerts.lifecycle import AlertState
from inferwatch.analytics.alerts.sink import HISTORY_STREAM, ElasticsearchAlertSink, WriteClock
from inferwatch.analytics.alerts.window import apply_findings
from inferwatch.analytics.model import Finding, Status, Window
from inferwatch.core.config import ConnectorsConfig, ModelConfig
from inferwatch.kibana import rules as kr
from tests.unit.kibana.alerting_sim import EsQueryRule, Notification, field_at

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CONNECTORS = kr.connectors(ConnectorsConfig())  # server log and index: two actions per group
FIRST = CONNECTORS[0].id


def _incident_rule() -> kr.RuleSpec:
    (rule,) = [r for r in kr.rules(MappingProxyType({}), CONNECTORS) if r.rule_type_id == ".es-query"]
    return rule


def _as_before(rule: kr.RuleSpec) -> kr.RuleSpec:
    """The rule as it was before dcb8bd5: every action onActionGroupChange, plus recovery actions."""
    actions = kr._actions(
        CONNECTORS, "query matched", "inferwatch: {{rule.name}}", "m", (), notify_when=kr.ON_STATUS_CHANGE
    )
    return dataclasses.replace(rule, actions=actions)


def _on_window_end(rule: kr.RuleSpec) -> kr.RuleSpec:
    """The rule with its previous time field, ``@timestamp`` (the end of the event's window)."""
    return dataclasses.replace(rule, params={**rule.params, "timeField": "@timestamp"})


def _run(
    rule: kr.RuleSpec, docs: list[dict[str, Any]], runs: int, offset: timedelta = timedelta(seconds=30)
) -> list[Notification]:
    """The rule every minute (its schedule), ``offset`` after the minute; each run sees the
    documents written (``event.created``) by then."""
    assert rule.schedule == "1m"
    sim = EsQueryRule(rule)
    out: list[Notification] = []
    for n in range(runs):
        now = T0 + timedelta(minutes=n) + offset
        out += sim.run(now, [d for d in docs if _written(d) <= now])
    return out


def _written(doc: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(doc["event"]["created"].replace("Z", "+00:00"))


def _told(notes: list[Notification], path: str = "incident.id") -> Counter[str]:
    """How many notifications (of one connector) named each value of ``path``."""
    return Counter(h for n in notes if n.connector == FIRST for h in n.named(path))


def test_the_rule_notifies_exactly_the_incident_transitions_that_notify() -> None:
    query = kr.new_alerts_query()["query"]["bool"]["filter"]
    actions = next(c["terms"]["event.action"] for c in query if "event.action" in c["terms"])
    assert set(actions) == set(NOTIFYING) == {"opened", "escalated", "resolved"}
    assert _incident_rule().params["timeField"] == "event.created"


# --- hand-made history events: the scheduler's semantics ---------------------------------


def _event(minute: float, incident: str, severity: str = "warning", action: str = "opened") -> dict[str, Any]:
    at = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return {
        "@timestamp": at,
        "incident": {"id": incident},
        "severity": severity,
        "event": {"action": action, "kind": "incident", "created": at},
    }


def test_back_to_back_new_incidents_each_notify_once() -> None:
    docs = [_event(m, f"i{m}") for m in range(5)]  # a new incident in each of five consecutive minutes
    rule = _incident_rule()
    notes = _run(rule, docs, runs=10)
    assert _told(notes) == Counter({f"i{m}": 1 for m in range(5)})
    assert len({n.at for n in notes}) == 5
    assert {n.group for n in notes} == {"query matched"}  # no "recovered" noise after the burst
    assert len(notes) == 5 * len(CONNECTORS)

    # The same events under the actions before dcb8bd5 (onActionGroupChange): the rule's one alert
    # stays active while new events keep arriving, so only the first is told -- the bug reproduced.
    before = _run(_as_before(rule), docs, runs=10)
    assert _told(before) == Counter({"i0": 1})


def test_several_events_in_one_minute_are_one_notification_naming_all() -> None:
    docs = [_event(2, "x"), _event(2.1, "y", severity="critical", action="escalated"), _event(2.2, "z")]
    notes = [n for n in _run(_incident_rule(), docs, runs=6) if n.connector == FIRST]
    assert len(notes) == 1 and sorted(notes[0].named("incident.id")) == ["x", "y", "z"]


def test_events_that_do_not_notify_are_never_told() -> None:
    docs = [
        _event(1, "info", severity="info"),
        _event(2, "j", action="joined"),
        _event(3, "r", action="reopened"),
        _event(4, "g", action="resolving"),
        {**_event(5, "alert-event", action="opened"), "event": {**_event(5, "a")["event"], "kind": "alert"}},
    ]
    assert _run(_incident_rule(), docs, runs=8) == []


def test_incidents_arriving_every_other_minute_are_each_told_also_while_flapping() -> None:
    # Active, recovered, active... Kibana marks the rule's alert flapping after 4 changes and keeps
    # it active ("pending recovered") through the quiet runs; news must still get through.
    docs = [_event(m, f"b{m}") for m in range(0, 30, 2)]
    rule = _incident_rule()
    notes = _run(rule, docs, runs=32)
    assert _told(notes) == Counter({f"b{m}": 1 for m in range(0, 30, 2)})
    assert {n.group for n in notes} == {"query matched"}

    before = _told(_run(_as_before(rule), docs, runs=32))
    assert sum(before.values()) < 15  # silent once the alert flaps


def test_volume_rules_still_notify_on_change_and_recovery() -> None:
    for r in kr.rules(MappingProxyType({"m": ModelConfig()}), CONNECTORS):
        if r.rule_type_id != ".index-threshold":
            continue
        assert {a["group"] for a in r.actions} == {"threshold met", "recovered"}
        assert {a["frequency"]["notify_when"] for a in r.actions} == {kr.ON_STATUS_CHANGE}


# --- the worker's own history events -----------------------------------------------------

WINDOW = timedelta(minutes=5)
COOLDOWN = 15 * 60.0  # seconds
LAG = timedelta(seconds=30)  # the worker writes a window's events this long after its end


def window(i: int) -> Window:
    return Window(T0 + WINDOW * i, T0 + WINDOW * (i + 1))


def finding(i: int, detector: str, feature: str, severity: str = "warning", model: str = "cars") -> Finding:
    return Finding(
        detector=detector,
        model=model,
        version="1",
        feature=feature,
        status=Status.FIRING,
        severity=severity,  # type: ignore[arg-type]
        message=f"{feature}: {detector}",
        window=window(i),
        strong=True,
    )


def storm(i: int, surge: str = "warning", drift: bool = False) -> list[Finding]:
    """Two fields that go empty together: null_surge and null_creep on both (and, with ``drift``,
    numeric_drift on one of them)."""
    out = [
        finding(i, "null_surge", "inputs.horsepower", severity=surge),
        finding(i, "null_creep", "inputs.horsepower"),
        finding(i, "null_surge", "inputs.weight"),
        finding(i, "null_creep", "inputs.weight"),
    ]
    return [*out, finding(i, "numeric_drift", "inputs.horsepower")] if drift else out


class _Bulk:
    """The Elasticsearch client's bulk call: every operation accepted, every operation kept."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def bulk(self, operations: list[dict[str, Any]], refresh: str) -> dict[str, Any]:
        assert refresh == "wait_for"  # visible when the call returns: the rule's next run sees it
        self.ops += operations
        items = [
            {name: {"_id": meta["_id"], "status": 201}} for op in operations[::2] for name, meta in op.items()
        ]
        return {"errors": False, "items": items}


class Worker:
    """The worker's alert pipeline on a simulated clock: per model, alert and incident states;
    the Elasticsearch sink (its write clock reads the simulated time)."""

    def __init__(self) -> None:
        self.now = T0
        self.client = _Bulk()
        self.sink = ElasticsearchAlertSink(self.client, clock=WriteClock(lambda: self.now))
        self.states: dict[str, tuple[dict[str, AlertState], dict[str, IncidentState]]] = {}

    def evaluate(self, i: int, findings: list[Finding], model: str = "cars", lag: timedelta = LAG) -> None:
        self.now = window(i).end + lag
        alerts, incidents = self.states.get(model, ({}, {}))
        alerts, incidents, update = apply_findings(
            alerts, incidents, findings, window(i).end, [(model, "1")], COOLDOWN
        )
        self.states[model] = (alerts, incidents)
        self.sink.write(update, window(i).end.isoformat())

    def history(self) -> list[dict[str, Any]]:
        ops = self.client.ops
        return [
            doc
            for meta, doc in zip(ops[::2], ops[1::2], strict=True)
            if meta.get("create", {}).get("_index") == HISTORY_STREAM
        ]


def test_a_storm_is_told_once_when_it_opens_once_when_it_escalates_once_when_it_resolves() -> None:
    worker = Worker()
    for i in range(4):
        worker.evaluate(i, storm(i, surge="critical" if i >= 2 else "warning", drift=i >= 1))
    for i in range(4, 14):  # clean: the alerts resolve after 3 windows, the incident after the cooldown
        worker.evaluate(i, [])
    history = worker.history()
    (incident,) = {h["incident"]["id"] for h in history}
    actions = [h["event"]["action"] for h in history]
    assert actions == ["opened", "joined", "escalated", "resolving", "resolved"]
    assert history[0]["incident"]["alerts"] == 4  # the storm opened with four member alerts

    rule = _incident_rule()
    # Every field the message names ({{_source.x.y}}) is in the events the worker writes.
    named = set(re.findall(r"\{\{_source\.([\w.]+)\}\}", json.dumps([a["params"] for a in rule.actions])))
    assert named == {
        "event.action",
        "severity",
        "model",
        "version",
        "message",
        "incident.alerts",
        "incident.id",
    }
    for path in named:
        assert all(field_at(h, path) is not None for h in history), path

    notes = _run(rule, history, runs=75, offset=timedelta(seconds=45))
    told = [n for n in notes if n.connector == FIRST]
    assert [n.named("event.action") for n in told] == [("opened",), ("escalated",), ("resolved",)]
    assert _told(notes) == Counter({incident: 3})
    assert {n.group for n in notes} == {"query matched"}  # never "recovered" while it is open
    assert len(notes) == 3 * len(CONNECTORS)
    for note, event in zip(told, [h for h in history if h["event"]["action"] in NOTIFYING], strict=True):
        assert timedelta(0) < note.at - _written(event) <= timedelta(minutes=1)  # the first run after it


def test_a_cause_that_flaps_within_the_cooldown_is_told_open_and_resolved_once() -> None:
    worker = Worker()
    worker.evaluate(0, storm(0))
    for i in range(1, 4):
        worker.evaluate(i, [])  # resolved after 3 clean windows: resolving
    # back within the cooldown, with one more detector: the same incident reopens silently
    worker.evaluate(4, storm(4, drift=True))
    for i in range(5, 16):
        worker.evaluate(i, [])
    history = worker.history()
    assert [h["event"]["action"] for h in history] == [
        "opened",
        "resolving",
        "reopened",
        "resolving",
        "resolved",
    ]
    notes = _run(_incident_rule(), history, runs=85)
    told = [n.named("event.action") for n in notes if n.connector == FIRST]
    assert told == [("opened",), ("resolved",)]


def test_events_of_two_models_with_the_same_window_end_written_a_minute_apart_each_notify_once() -> None:
    worker = Worker()
    worker.evaluate(0, [finding(0, "null_surge", "inputs.a", model="m1")], model="m1", lag=LAG)
    worker.evaluate(
        0, [finding(0, "null_surge", "inputs.a", model="m2")], model="m2", lag=LAG + timedelta(minutes=1)
    )
    history = worker.history()
    assert len({h["@timestamp"] for h in history}) == 1 and len({_written(h) for h in history}) == 2
    rule = _incident_rule()
    assert _told(_run(rule, history, runs=15, offset=timedelta(seconds=50)), "model") == Counter(
        {"m1": 1, "m2": 1}
    )

    # On @timestamp (the window end) the second model's event is "at or before" the one already
    # seen, and is never told.
    before = _run(_on_window_end(rule), history, runs=15, offset=timedelta(seconds=50))
    assert _told(before, "model") == Counter({"m1": 1})


def test_an_event_written_later_than_the_lookback_after_its_window_is_told() -> None:
    worker = Worker()
    worker.evaluate(0, storm(0), lag=timedelta(minutes=40))  # a worker catching up, or a backfill
    history = worker.history()
    rule = _incident_rule()
    assert rule.params["timeWindowSize"] == 15 and rule.params["timeWindowUnit"] == "m"
    assert sum(_told(_run(rule, history, runs=60)).values()) == 1
    assert _run(_on_window_end(rule), history, runs=60) == []  # outside the 15-minute lookback


def test_write_times_are_distinct_and_increasing_even_when_the_clock_is_not() -> None:
    times = iter([T0, T0, T0 - timedelta(seconds=5), T0 + timedelta(microseconds=1500)])
    clock = WriteClock(lambda: next(times))
    stamps = [clock.stamp() for _ in range(4)]
    assert stamps == [
        "2026-11-22T10:00:00.000Z",
        "2026-11-22T10:00:00.001Z",
        "2026-11-22T10:00:00.002Z",
        "2026-11-22T10:00:00.003Z",
    ]
