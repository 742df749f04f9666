"""`inferwatch demo` end to end: the demo model, the agent daemon (a real subprocess) and the
analytics worker on the local store. From the alerts the run wrote, each injected failure must
have opened the right alert, and nothing may open on the normal traffic before the first one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.scenario

EXPECTED = {  # injected failure -> (feature, detectors any of which must open)
    "missing_feature": ("inputs.horsepower", {"feature_vanished", "null_surge"}),
    "unseen_category": ("inputs.origin", {"unseen_category"}),
    "vocabulary_shift": ("inputs.name", {"oov_rate", "vocabulary_drift"}),
}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    data_dir = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "inferwatch.core",
            "demo",
            "--duration",
            "30",
            "--speed",
            "200",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        stdin=subprocess.DEVNULL,
    )
    return data_dir, proc


def test_the_demo_exits_0_and_leaves_its_report(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    data_dir, proc = demo_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = data_dir / "report.html"
    assert f"report: {report.resolve()}" in proc.stdout
    page = report.read_text(
        encoding="utf-8"
    )  # inferwatch report's page (tests/unit/analytics/test_report.py)
    assert page.count('class="iw-chart"') >= 1 + 8 and "<script src=" not in page
    assert (data_dir / "summary.txt").read_text(encoding="utf-8").startswith("20 windows evaluated")
    demo = orjson.loads((data_dir / "demo.json").read_bytes())
    assert demo["shipped"] == demo["written"] > 0, "the agent shipped every line the demo model wrote"


def test_each_injected_failure_opened_the_right_alert_and_none_opened_before(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    data_dir, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    demo = orjson.loads((data_dir / "demo.json").read_bytes())
    span = demo["span"]
    history = [
        orjson.loads(line) for line in (data_dir / "alerts" / "history.ndjson").read_bytes().splitlines()
    ]
    opened = [h for h in history if h["event"]["action"] == "opened"]
    assert {h["model"] for h in opened} == {"cars_mpg"}

    schedule = demo["schedule"]
    assert [s["kind"] for s in schedule] == list(EXPECTED)
    first_injection = min(ts(s["start"]) for s in schedule)
    early = [
        (h["detector"], h["feature"], h["message"]) for h in opened if ts(h["first_seen"]) <= first_injection
    ]
    assert early == [], "alerts opened on normal traffic"

    for s in schedule:
        feature, detectors = EXPECTED[s["kind"]]
        start, end = ts(s["start"]), ts(s["end"])
        # an alert's first_seen is the end of its first firing window: inside the injection, or
        # one window after it (an alert that needs two windows to open)
        hits = [
            h
            for h in opened
            if h["feature"] == feature
            and h["detector"] in detectors
            and start.timestamp() < ts(h["first_seen"]).timestamp() <= end.timestamp() + span
        ]
        assert hits, f"{s['kind']}: no {sorted(detectors)} alert on {feature}; opened: " + str(
            [(h["detector"], h["feature"], h["first_seen"]) for h in opened]
        )


def test_the_alert_documents_carry_what_a_person_needs(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    data_dir, _ = demo_run
    alerts = orjson.loads((data_dir / "alerts" / "alerts.json").read_bytes())
    vanished = [a for a in alerts.values() if a["detector"] == "feature_vanished"]
    assert len(vanished) == 1
    (doc,) = vanished
    assert doc["feature"] == "inputs.horsepower" and doc["severity"] == "critical"
    assert doc["status"] == "resolved", "the field came back: the alert resolved after clean windows"
    korea = [a for a in alerts.values() if a["detector"] == "unseen_category"]
    assert [(a["feature"], a["key"]) for a in korea] == [("inputs.origin", "Korea")]
    assert "Korea" in korea[0]["message"]


def test_serve_writes_prediction_logs_until_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "cars_mpg.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferwatch.core",
            "demo",
            "--serve",
            "--log-dir",
            str(tmp_path / "logs"),
            "--speed",
            "300",
            "--baseline-dir",
            str(tmp_path / "baselines"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(b"\n") >= 100:
                break
            time.sleep(0.1)  # polling a condition with a deadline
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert len(lines) >= 100 and "stopped after" in out
    assert {line["model"] for line in lines} == {"cars_mpg"}
    assert set(lines[0]) >= {"timestamp", "model", "model_version", "prediction_id", "inputs", "outputs"}
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)
    baseline = orjson.loads((tmp_path / "baselines" / "cars_mpg@1.0.json").read_bytes())
    assert baseline["model"] == "cars_mpg" and "inputs.name" in baseline["features"]


def test_ctrl_c_stops_the_agent_evaluates_once_more_and_leaves_the_report(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.core", "demo", "--speed", "200", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    third_window = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if re.match(r"\s+2\s+\d\d:\d\d-", line):
                third_window.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert third_window.wait(90), "".join(lines)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out + (proc.stderr.read() if proc.stderr else "")
    assert "final evaluation" in out and f"report: {(tmp_path / 'report.html').resolve()}" in out
    demo = orjson.loads((tmp_path / "demo.json").read_bytes())
    assert demo["interrupted"] is True and len(demo["windows"]) >= 3
    agent_pid = int(re.search(r"agent started \(pid (\d+)\)", out).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(agent_pid, 0)


def test_each_injected_failure_is_one_incident_told_once_when_it_opens(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """Alerts of one cause (the vanished field opens feature_vanished and prediction_drift) are one
    incident: a person hears one "opened" per injected failure, and nothing on normal traffic."""
    data_dir, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    demo = orjson.loads((data_dir / "demo.json").read_bytes())
    windows = demo["windows"]
    by_index = {w["index"]: w for w in windows}
    told = [(w["index"], i) for w in windows for i in w["incidents"]]
    opened = [(k, i) for k, i in told if i["transition"] == "opened"]
    schedule = demo["schedule"]
    span = demo["span"]
    for s in schedule:
        start, end = ts(s["start"]), ts(s["end"])
        inside = [
            i
            for k, i in opened
            if start.timestamp() < ts(by_index[k]["end"]).timestamp() <= end.timestamp() + span
        ]
        assert len(inside) == 1, f"{s['kind']}: {len(inside)} incidents opened: {inside}"
    assert len(opened) == len(schedule), f"incidents opened outside the injected failures: {opened}"
    assert len(told) <= 3 * len(opened)  # opened, escalated, resolved at most
    assert "INCIDENT opened" in proc.stdout
