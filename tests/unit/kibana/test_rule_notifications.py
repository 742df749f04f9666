"""What the rules notify, run by run, under Kibana's own alerting rules (``alerting_sim``: the
``.es-query`` executor, x-pack/plugins/stack_alerts/server/rule_types/es_query/executor.ts, and the
per-alert action scheduler, x-pack/plugins/alerting/server/task_runner/action_scheduler/schedulers/
per_alert_action_scheduler.ts), not only the shape of their params."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from inferwatch.core.config import ConnectorsConfig, ModelConfig
from inferwatch.kibana import rules as kr
from tests.unit.kibana.alerting_sim import EsQueryRule, Notification

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CONNECTORS = kr.connectors(ConnectorsConfig())  # server log and index: two actions per group


def _new_alerts_rule() -> kr.RuleSpec:
    (rule,) = [r for r in kr.rules(MappingProxyType({}), CONNECTORS) if r.rule_type_id == ".es-query"]
    return rule


def _as_before(rule: kr.RuleSpec) -> kr.RuleSpec:
    """The rule as it was: every action onActionGroupChange, plus recovery actions."""
    actions = kr._actions(
        CONNECTORS, "query matched", "inferwatch: {{rule.name}}", "m", (), notify_when=kr.ON_STATUS_CHANGE
    )
    return dataclasses.replace(rule, actions=actions)


def _event(minute: float, alert_id: str, severity: str = "warning", action: str = "opened") -> dict[str, Any]:
    return {
        "@timestamp": T0 + timedelta(minutes=minute),
        "alert": {"id": alert_id},
        "severity": severity,
        "event": {"action": action},
    }


def _run(rule: kr.RuleSpec, docs: list[dict[str, Any]], runs: int) -> list[Notification]:
    """The rule every minute (its schedule), each run 30 s after the minute's events."""
    assert rule.schedule == "1m"
    sim = EsQueryRule(rule)
    out: list[Notification] = []
    for n in range(runs):
        out += sim.run(T0 + timedelta(minutes=n, seconds=30), docs)
    return out


def _notified(notes: list[Notification]) -> Counter[str]:
    """How many notifications (of one connector) named each history event."""
    first = CONNECTORS[0].id
    return Counter(h for n in notes if n.connector == first for h in n.hits)


def test_back_to_back_new_alerts_each_notify_once() -> None:
    docs = [_event(m, f"a{m}") for m in range(5)]  # a new alert in each of five consecutive minutes
    rule = _new_alerts_rule()
    notes = _run(rule, docs, runs=10)
    assert _notified(notes) == Counter({f"a{m}": 1 for m in range(5)})
    runs_with_news = sorted({n.at for n in notes})
    assert len(runs_with_news) == 5
    assert {n.group for n in notes} == {"query matched"}  # no "recovered" noise after the burst
    assert len(notes) == 5 * len(CONNECTORS)

    # The same events under the previous actions (onActionGroupChange): the rule's one alert stays
    # active while new events keep arriving, so only the first is told -- the bug reproduced.
    before = _run(_as_before(rule), docs, runs=10)
    assert _notified(before) == Counter({"a0": 1})


def test_several_events_in_one_minute_are_one_notification_naming_all() -> None:
    docs = [_event(2, "x"), _event(2.1, "y", severity="critical", action="escalated"), _event(2.2, "z")]
    notes = _run(_new_alerts_rule(), docs, runs=6)
    first = [n for n in notes if n.connector == CONNECTORS[0].id]
    assert len(first) == 1 and sorted(first[0].hits) == ["x", "y", "z"]


def test_events_that_are_not_new_warnings_or_criticals_never_notify() -> None:
    docs = [
        _event(1, "info", severity="info"),
        _event(2, "upd", action="updated"),
        _event(3, "res", action="resolved"),
    ]
    assert _run(_new_alerts_rule(), docs, runs=6) == []


def test_alerts_arriving_every_other_minute_are_each_told_also_while_flapping() -> None:
    # Active, recovered, active... Kibana marks the rule's alert flapping after 4 changes and keeps
    # it active ("pending recovered") through the quiet runs; news must still get through.
    docs = [_event(m, f"b{m}") for m in range(0, 30, 2)]
    rule = _new_alerts_rule()
    notes = _run(rule, docs, runs=32)
    assert _notified(notes) == Counter({f"b{m}": 1 for m in range(0, 30, 2)})
    assert {n.group for n in notes} == {"query matched"}

    before = _notified(_run(_as_before(rule), docs, runs=32))
    assert sum(before.values()) < 15  # silent once the alert flaps


def test_volume_rules_still_notify_on_change_and_recovery() -> None:
    for r in kr.rules(MappingProxyType({"m": ModelConfig()}), CONNECTORS):
        if r.rule_type_id != ".index-threshold":
            continue
        assert {a["group"] for a in r.actions} == {"threshold met", "recovered"}
        assert {a["frequency"]["notify_when"] for a in r.actions} == {kr.ON_STATUS_CHANGE}
