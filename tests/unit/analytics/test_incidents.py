from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inferwatch.analytics.alerts import RESOLVE_AFTER, AlertState, IncidentState
from inferwatch.analytics.alerts.window import AlertUpdate, apply_findings
from inferwatch.analytics.model import Finding, Status, Window

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
PAIR = [("cars", "1")]
DAY = 86400.0


def window(i: int) -> Window:
    return Window(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1))


def finding(
    i: int,
    detector: str,
    feature: str,
    severity: str = "critical",
    strong: bool = True,
    key: str | None = None,
) -> Finding:
    return Finding(
        detector=detector,
        model="cars",
        version="1",
        feature=feature,
        status=Status.FIRING,
        severity=severity,  # type: ignore[arg-type]
        message=f"{feature}: {detector}",
        window=window(i),
        strong=strong,
        key=key,
    )


def vanished(i: int) -> list[Finding]:
    return [
        finding(i, "prediction_drift", "outputs.score", severity="warning"),
        finding(i, "null_surge", "inputs.horsepower"),
        finding(i, "feature_vanished", "inputs.horsepower"),
        finding(i, "null_creep", "inputs.horsepower", severity="warning"),
    ]


class Run:
    def __init__(self, cooldown: float = DAY) -> None:
        self.alerts: dict[str, AlertState] = {}
        self.incidents: dict[str, IncidentState] = {}
        self.updates: list[AlertUpdate] = []
        self.cooldown = cooldown

    def window(self, i: int, findings: list[Finding]) -> AlertUpdate:
        self.alerts, self.incidents, update = apply_findings(
            self.alerts, self.incidents, findings, window(i).end, PAIR, self.cooldown
        )
        self.updates.append(update)
        return update

    def events(self) -> list[str]:
        return [c.transition for u in self.updates for c in u.incidents]

    def notifications(self) -> list[str]:
        return [c.transition for u in self.updates for c in u.notifications]


def test_one_cause_seen_by_four_detectors_is_one_incident_with_one_notification() -> None:
    run = Run()
    update = run.window(0, vanished(0))
    assert [c.transition for c in update.alerts] == ["opened"] * 4
    (incident,) = run.incidents.values()
    assert len(incident.members) == 4 and incident.status == "open" and incident.severity == "critical"
    assert {a.incident for a in run.alerts.values()} == {incident.id}
    assert {c.state.incident for c in update.alerts} == {incident.id}  # the documents carry it
    assert run.notifications() == ["opened"]
    assert incident.message == (
        "inputs.horsepower vanished (also null_creep, null_surge); prediction drift on outputs.score follows"
    )
    assert run.alerts[incident.cause].detector == "feature_vanished"


def test_a_prediction_shift_that_follows_an_input_failure_joins_its_incident_silently() -> None:
    run = Run()
    run.window(0, [finding(0, "feature_vanished", "inputs.horsepower")])
    run.window(
        1,
        [
            finding(1, "feature_vanished", "inputs.horsepower"),
            finding(1, "prediction_drift", "outputs.score"),
        ],
    )
    assert len(run.incidents) == 1
    assert run.events() == ["opened", "joined"]
    assert run.notifications() == ["opened"]


def test_an_unrelated_failure_later_is_its_own_incident() -> None:
    run = Run()
    run.window(0, [finding(0, "feature_vanished", "inputs.horsepower")])
    # the first incident's alert is quiet in window 1 (still open), another input breaks
    run.window(1, [finding(1, "unseen_category", "inputs.origin", key="Korea")])
    assert len(run.incidents) == 2
    assert run.notifications() == ["opened", "opened"]


def test_features_failing_in_the_same_window_share_the_incident() -> None:
    run = Run()
    run.window(0, [finding(0, "null_surge", "inputs.a")])
    run.window(1, [finding(1, "null_surge", "inputs.a"), finding(1, "null_surge", "inputs.b")])
    assert len(run.incidents) == 1 and run.notifications() == ["opened"]


def test_an_incident_escalates_once_and_resolves_a_cooldown_after_its_last_member() -> None:
    run = Run(cooldown=2 * 3600.0)
    run.window(0, [finding(0, "null_surge", "inputs.a", severity="warning")])
    run.window(1, [finding(1, "null_surge", "inputs.a", severity="critical")])
    run.window(2, [finding(2, "null_surge", "inputs.a", severity="critical")])
    quiet = 2 + RESOLVE_AFTER  # the alert resolves on this window
    for i in range(3, quiet + 4):
        run.window(i, [])
        (incident,) = run.incidents.values()
        assert incident.status == ("open" if i < quiet else "resolving" if i <= quiet + 2 else "resolved")
    assert run.events() == ["opened", "escalated", "resolving", "resolved"]
    assert run.notifications() == ["opened", "escalated", "resolved"]
    assert incident.resolved == window(quiet).end.isoformat()


def test_without_a_cooldown_an_incident_resolves_with_its_last_member() -> None:
    run = Run(cooldown=0.0)
    run.window(0, [finding(0, "null_surge", "inputs.a")])
    for i in range(1, 1 + RESOLVE_AFTER):
        run.window(i, [])
    assert run.notifications() == ["opened", "resolved"]


def test_an_alert_back_within_the_cooldown_reopens_in_place_without_a_new_notification() -> None:
    run = Run(cooldown=DAY)
    run.window(0, [finding(0, "unseen_category", "inputs.origin", key="Korea")])
    for i in range(1, 1 + RESOLVE_AFTER):
        run.window(i, [])
    update = run.window(10, [finding(10, "unseen_category", "inputs.origin", key="Korea", strong=False)])
    assert [c.transition for c in update.alerts] == ["reopened"]
    (alert,) = run.alerts.values()
    assert alert.status == "open" and alert.recurrences == 1 and alert.first_seen == window(0).end.isoformat()
    (incident,) = run.incidents.values()
    assert incident.status == "open" and incident.recurrences == 1
    assert run.events() == ["opened", "resolving", "reopened"]
    assert run.notifications() == ["opened"]  # the flap is not news: nothing was said resolved


def test_a_new_alert_on_the_cause_that_reopens_its_incident_joins_it() -> None:
    """The storm comes back within the cooldown with one more detector on its feature: the
    resolving incident reopens and the new alert joins it, whatever their cause order (the new
    alert ranks first here), instead of opening and notifying a second incident."""
    run = Run(cooldown=DAY)
    run.window(0, [finding(0, "null_surge", "inputs.horsepower")])
    for i in range(1, 1 + RESOLVE_AFTER):
        run.window(i, [])
    back = [
        finding(10, "null_surge", "inputs.horsepower"),
        finding(10, "feature_vanished", "inputs.horsepower"),  # new, and first in CAUSE_ORDER
    ]
    update = run.window(10, back)
    assert sorted(c.transition for c in update.alerts) == ["opened", "reopened"]
    (incident,) = run.incidents.values()
    assert incident.status == "open" and len(incident.members) == 2 and incident.recurrences == 1
    assert incident.message.startswith("inputs.horsepower vanished")
    assert run.events() == ["opened", "resolving", "reopened"]
    assert run.notifications() == ["opened"]


def test_an_alert_back_after_the_cooldown_is_news_again() -> None:
    run = Run(cooldown=3600.0)
    run.window(0, [finding(0, "unseen_category", "inputs.origin", key="Korea")])
    for i in range(1, 1 + RESOLVE_AFTER):
        run.window(i, [])
    update = run.window(10, [finding(10, "unseen_category", "inputs.origin", key="Korea")])
    assert [c.transition for c in update.alerts] == ["opened"]
    assert next(iter(run.alerts.values())).recurrences == 0
    assert len(run.incidents) == 2
    assert run.notifications() == ["opened", "resolved", "opened"]  # the old one resolved first


def test_replaying_a_window_changes_no_incident() -> None:
    run = Run()
    run.window(0, vanished(0))
    alerts, incidents, update = apply_findings(
        run.alerts, run.incidents, vanished(0), window(0).end, PAIR, DAY
    )
    assert not update and alerts == run.alerts and incidents == run.incidents


def test_incident_state_round_trips_through_dict() -> None:
    run = Run()
    run.window(0, vanished(0))
    (incident,) = run.incidents.values()
    assert IncidentState.from_dict(incident.to_dict()) == incident
    for alert in run.alerts.values():
        assert AlertState.from_dict(alert.to_dict()) == alert
