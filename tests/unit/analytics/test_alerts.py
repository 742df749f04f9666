from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from inferwatch.analytics.alerts import RESOLVE_AFTER, AlertState, alert_id, apply_window, history_document
from inferwatch.analytics.model import Finding, Status, Window

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
PAIR = [("churn", "1")]
LITERAL_ID = "08855bf09067d7c47a7dc0310b09d6a0"


def window(i: int) -> Window:
    return Window(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1))


def finding(
    i: int, status: Status = Status.FIRING, strong: bool = False, severity: str = "warning"
) -> Finding:
    return Finding(
        detector="null_surge",
        model="churn",
        version="1",
        feature="inputs.age",
        status=status,
        severity=severity,  # type: ignore[arg-type]
        message="inputs.age: 12% null vs 1% in training",
        window=window(i),
        strong=strong,
        p_value=1e-9,
    )


def run(seq: list[list[Finding]]) -> tuple[dict[str, AlertState], list[str]]:
    states: dict[str, AlertState] = {}
    log: list[str] = []
    for i, fs in enumerate(seq):
        states, changes = apply_window(states, fs, window(i).end, PAIR)
        log += [c.transition for c in changes]
    return states, log


def test_strong_window_opens_at_once() -> None:
    states, log = run([[finding(0, strong=True)]])
    assert log == ["opened"]
    assert next(iter(states.values())).status == "open"


def test_weak_window_needs_a_second_consecutive_one() -> None:
    _, log = run([[finding(0)], [finding(1)]])
    assert log == ["opened"]
    _, log = run([[finding(0)], [], [finding(2)]])
    assert log == []


def test_resolves_after_three_clean_windows_and_updates_in_place() -> None:
    seq = [[finding(0, strong=True)], [finding(1)]] + [[] for _ in range(RESOLVE_AFTER)]
    states, log = run(seq)
    assert log == ["opened", "updated", "resolved"]
    assert len(states) == 1
    (state,) = states.values()
    assert state.status == "resolved" and state.windows == 2


def test_skipped_window_does_not_count_as_clean() -> None:
    skipped = [finding(i, status=Status.SKIPPED) for i in range(1, 6)]
    _, log = run([[finding(0, strong=True)]] + [[s] for s in skipped])
    assert log == ["opened"]


def test_reapplying_a_window_changes_nothing() -> None:
    states, changes = apply_window({}, [finding(0, strong=True)], window(0).end, PAIR)
    again, changes2 = apply_window(states, [finding(0, strong=True)], window(0).end, PAIR)
    assert changes and not changes2 and again == states


def test_escalation_is_its_own_transition() -> None:
    _, log = run([[finding(0, strong=True)], [finding(1, severity="critical")]])
    assert log == ["opened", "escalated"]


def test_ids_are_deterministic_and_distinct_per_key() -> None:
    a = alert_id("unseen_category", "m", "1", "inputs.country", "BR")
    assert a == alert_id("unseen_category", "m", "1", "inputs.country", "BR")
    assert a != alert_id("unseen_category", "m", "1", "inputs.country", "AR")


def test_history_event_ids_are_stable_for_replays() -> None:
    _, c1 = apply_window({}, [finding(0, strong=True)], window(0).end, PAIR)
    _, c2 = apply_window({}, [finding(0, strong=True)], window(0).end, PAIR)
    assert c1[0].history_id == c2[0].history_id
    doc = history_document(c1[0])
    assert doc["event"]["action"] == "opened" and doc["status"] == "open"
    assert doc["message"].startswith("inputs.age")


def test_state_round_trips_through_dict() -> None:
    states, _ = run([[finding(0, strong=True)]])
    (state,) = states.values()
    assert AlertState.from_dict(state.to_dict()) == state


def test_an_older_window_after_a_newer_one_changes_nothing() -> None:
    states, _ = run([[finding(0, strong=True)], [finding(1)], [finding(2)]])
    late, changes = apply_window(states, [finding(1, severity="critical", strong=True)], window(1).end, PAIR)
    assert changes == [] and late == states
    late, changes = apply_window(states, [], window(0).end, PAIR)  # an old clean window
    assert changes == [] and late == states


def test_window_ends_in_another_offset_compare_as_instants() -> None:
    """The idempotence guard compared ISO strings: 12:00+02:00 (10:00 UTC, older) sorted after
    11:00+00:00 and re-applied an old window as a new one."""
    states, _ = run([[finding(0, strong=True)]])  # last window ends 11:00 UTC
    older = window(0).start.astimezone(timezone(timedelta(hours=2)))  # 10:00 UTC as 12:00+02:00
    late, changes = apply_window(states, [finding(0, severity="critical")], older, PAIR)
    assert changes == [] and late == states
    same, changes = apply_window(states, [], window(0).end.astimezone(timezone(timedelta(hours=-5))), PAIR)
    assert changes == [] and same == states


def test_a_pending_alert_that_escalates_opens_at_the_higher_severity() -> None:
    states, log = run([[finding(0)], [finding(1, severity="critical", strong=True)]])
    assert log == ["opened"]
    assert next(iter(states.values())).severity == "critical"


def test_severity_never_drops_while_open_and_a_return_to_it_is_not_news() -> None:
    seq = [[finding(0, strong=True, severity="critical")], [finding(1)], [finding(2, severity="critical")]]
    states, log = run(seq)
    assert log == ["opened", "updated", "updated"]
    assert next(iter(states.values())).severity == "critical"


def test_alert_ids_are_the_same_in_every_process() -> None:
    """blake2b of the parts, not Python's salted hash(): a literal value pins it."""
    assert alert_id("null_surge", "churn", "1", "inputs.age", None) == alert_id(
        "null_surge", "churn", "1", "inputs.age", ""
    )
    assert alert_id("null_surge", "churn", "1", "inputs.age", None) == LITERAL_ID
