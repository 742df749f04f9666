from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from inferwatch.analytics.demo.story import (
    ChangeLine,
    IncidentLine,
    WindowRecord,
    false_alarms,
    monitored_rates,
    summary_lines,
    verdicts,
)
from inferwatch.analytics.demo.stream import Injection
from inferwatch.analytics.model import Window, WindowCounts

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
SCHEDULE = [
    Injection("missing_feature", 2, 3, "inputs.horsepower", ("feature_vanished", "null_surge"), "hp gone"),
    Injection("unseen_category", 4, 5, "inputs.origin", ("unseen_category",), "korea"),
]


def counts(
    presence: list[tuple[str, int, int]],
    categories: list[tuple[str, str, int, bool]],
    text_docs: list[tuple[str, int, int]],
    docs: int = 100,
) -> WindowCounts:
    return WindowCounts(
        model="cars_mpg",
        version="1.0",
        window=Window(T0, T0 + timedelta(minutes=5)),
        docs=docs,
        presence=pd.DataFrame(presence, columns=["feature", "present", "missing"]),
        categories=pd.DataFrame(categories, columns=["feature", "value", "count", "in_baseline"]),
        numeric=pd.DataFrame(columns=["feature", "bin", "lower", "upper", "count"]),
        tokens=pd.DataFrame(columns=["feature", "token", "doc_count", "in_vocab"]),
        text_docs=pd.DataFrame(text_docs, columns=["feature", "docs", "oov_docs"]),
    )


def test_monitored_rates_are_percentages_of_the_window() -> None:
    c = counts(
        presence=[("inputs.horsepower", 98, 2), ("inputs.origin", 100, 0)],
        categories=[
            ("inputs.origin", "USA", 60, True),
            ("inputs.origin", "Korea", 25, False),
            ("inputs.origin", "Japan", 15, True),
            ("inputs.cylinders", "4", 100, True),
        ],
        text_docs=[("inputs.name", 100, 30)],
    )
    assert monitored_rates(c) == {"null": 2.0, "unseen": 25.0, "oov": 30.0}


def test_rates_are_unknown_without_counts_and_a_feature_absent_everywhere_is_all_null() -> None:
    assert monitored_rates(None) == {"null": None, "unseen": None, "oov": None}
    c = counts(presence=[], categories=[], text_docs=[], docs=50)
    assert monitored_rates(c) == {"null": 100.0, "unseen": None, "oov": None}


def change(window: int, transition: str, detector: str, feature: str) -> ChangeLine:
    return ChangeLine(window, transition, detector, feature, None, "critical", f"{feature} {detector}", "t")


def record(i: int, *changes: ChangeLine) -> WindowRecord:
    return WindowRecord(
        i, "s", "e", 100, 100, 100, [], {"null": 1.0, "unseen": 0.0, "oov": 30.0}, list(changes)
    )


def test_an_injection_counts_as_detected_only_by_an_expected_detector_on_its_feature_in_time() -> None:
    records = [
        record(0),
        record(1),
        record(2, change(2, "opened", "feature_vanished", "inputs.horsepower")),
        record(3, change(3, "opened", "prediction_drift", "outputs.score")),
        record(4),
        record(5, change(5, "opened", "unseen_category", "inputs.origin")),  # one window of grace
    ]
    v = verdicts(SCHEDULE, records)
    assert [(x.evaluated, x.detected_by) for x in v] == [
        (True, ("feature_vanished",)),
        (True, ("unseen_category",)),
    ]
    late = [*records[:5], record(5), record(6, change(6, "opened", "unseen_category", "inputs.origin"))]
    assert not verdicts(SCHEDULE, late)[1].detected


def test_false_alarms_are_alerts_opened_before_the_first_injection() -> None:
    early = change(1, "opened", "numeric_drift", "inputs.weight")
    records = [record(0), record(1, early, change(1, "resolved", "x", "inputs.weight")), record(2)]
    assert false_alarms(SCHEDULE, records) == [early]
    assert false_alarms(SCHEDULE, [record(0), record(1)]) == []


def test_summary_says_what_was_detected_missed_and_not_reached() -> None:
    records = [
        record(0),
        record(1),
        record(2, change(2, "opened", "null_surge", "inputs.horsepower")),
        record(3),
    ]
    lines = summary_lines(SCHEDULE, records, written=400, shipped=400)
    assert lines == [
        "4 windows evaluated; 400 prediction lines written, 400 shipped",
        "1 alerts opened, 0 resolved",
        "0 incidents opened (alerts of one cause are one incident); 0 notifications in all (opened, escalated, resolved)",
        "detected (null_surge): hp gone",
        "not reached: korea",
        "no alert opened on normal traffic before the first failure",
    ]


def test_the_summary_counts_incidents_and_their_notifications_not_alerts() -> None:
    storm = record(
        2,
        change(2, "opened", "feature_vanished", "inputs.horsepower"),
        change(2, "opened", "prediction_drift", "outputs.score"),
    )
    storm.incidents = [IncidentLine(2, "opened", "critical", "inputs.horsepower vanished", 2)]
    calm = record(4, change(4, "resolved", "feature_vanished", "inputs.horsepower"))
    calm.incidents = [IncidentLine(4, "resolved", "critical", "inputs.horsepower vanished", 2)]
    lines = summary_lines(SCHEDULE, [record(0), record(1), storm, record(3), calm], written=500, shipped=500)
    assert lines[1] == "2 alerts opened, 1 resolved"
    assert lines[2] == (
        "1 incidents opened (alerts of one cause are one incident); "
        "2 notifications in all (opened, escalated, resolved)"
    )
    assert storm.to_dict()["incidents"] == [
        {
            "window": 2,
            "transition": "opened",
            "severity": "critical",
            "message": "inputs.horsepower vanished",
            "members": 2,
        }
    ]
