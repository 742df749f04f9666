"""Acknowledging and muting: the worker honours controls.json, the documents show it, and
``inferwatch alerts list|ack|mute`` write it (real files, the real CLI)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from inferwatch.analytics.alerts.controls import Controls, ControlStore, Mute
from inferwatch.analytics.alerts.sink import LocalAlertSink
from inferwatch.analytics.baseline.store import LocalBaselineStore
from inferwatch.analytics.jobs import Evaluator
from inferwatch.analytics.model import Status
from inferwatch.analytics.state_store import StateStore
from inferwatch.core.cli import cli as inferwatch

from .test_jobs import BASELINE, MODEL, StubSource, counts, window

CONFIG = """\
agent:
  data_dir: {data_dir}
  inputs: [{{paths: ["{data_dir}/logs/*.jsonl"]}}]
analytics: {{interval: 1h, window: 1h}}
models:
  churn:
    features: {{country: categorical}}
    categorical_closed: [country]
"""


def setup(tmp_path: Path) -> tuple[Path, StubSource]:
    config = tmp_path / "inferwatch.yml"
    config.write_text(CONFIG.format(data_dir=tmp_path), encoding="utf-8")
    tables = {window(i).end: counts(window(i), 600, 390, xx=10) for i in range(0, 3)}
    tables.update({window(i).end: counts(window(i), 600, 400) for i in range(3, 6)})
    tables.update({window(i).end: counts(window(i), 500, 300, xx=200) for i in range(6, 8)})
    return config, StubSource(tables)


def evaluator(tmp_path: Path, source: StubSource) -> Evaluator:
    baselines = LocalBaselineStore(tmp_path / "baselines", fsync=False)
    baselines.save(BASELINE)
    return Evaluator(
        source=source,
        baselines=baselines,
        sink=LocalAlertSink(tmp_path / "alerts", fsync=False),
        states=StateStore(tmp_path / "analytics-state", fsync=False),
        features={MODEL: {"inputs.country": "categorical"}},
        closed={MODEL: frozenset({"inputs.country"})},
        interval=3600,
        controls=ControlStore.in_data_dir(tmp_path),
    )


def run(*args: str) -> str:
    result = CliRunner().invoke(inferwatch, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_ack_of_a_new_value_makes_it_accepted_and_it_never_alerts_again(tmp_path: Path) -> None:
    config, source = setup(tmp_path)
    ev = evaluator(tmp_path, source)
    ev.evaluate(MODEL, window(0))
    listed = run("alerts", "list", "-c", str(config))
    assert "new value 'XX' on inputs.country" in listed
    (xx,) = [a for a in StateStore(tmp_path / "analytics-state").load(MODEL).alerts.values() if a.key == "XX"]
    out = run("alerts", "ack", "-c", str(config), xx.id[:10])
    assert f"acknowledged {xx.id[:12]}" in out and "'XX' is now an accepted value of inputs.country" in out
    controls = ControlStore.in_data_dir(tmp_path).load()
    assert controls.accepted == {MODEL: {"inputs.country": ("XX",)}} and xx.id in controls.acknowledged
    doc = LocalAlertSink(tmp_path / "alerts").alerts()[xx.id]
    assert doc["alert"]["acknowledged"] is True  # marked at once, for a Kibana filter
    for i in range(1, 8):  # XX keeps coming (20% of traffic in windows 6 and 7): nothing new opens
        result = ev.evaluate(MODEL, window(i))
        assert not [f for f in result.findings if f.key == "XX" and f.status is Status.FIRING]
        assert [c.transition for c in result.changes if c.state.key == "XX"] in ([], ["resolved"])
    doc = LocalAlertSink(tmp_path / "alerts").alerts()[xx.id]
    assert doc["status"] == "resolved" and doc["alert"]["acknowledged"] is True


def test_a_muted_detector_opens_nothing_and_the_documents_say_until_when(tmp_path: Path) -> None:
    config, source = setup(tmp_path)
    out = run("alerts", "mute", "-c", str(config), "--model", MODEL, "--feature", "country", "--for", "2d")
    assert out.startswith("muted churn country until ")
    (mute,) = ControlStore.in_data_dir(tmp_path).load().mutes
    assert mute.feature == "country" and mute.detector is None
    ev = evaluator(tmp_path, source)
    result = ev.evaluate(MODEL, window(0))
    muted = [f for f in result.findings if f.feature == "inputs.country" and f.reason and "muted" in f.reason]
    assert muted and all(f.status is Status.SKIPPED for f in muted)
    assert result.changes == [] and result.incidents == []
    # unmuted, the next window opens the alert; its document carries no mute
    run("alerts", "mute", "-c", str(config), "--model", MODEL, "--feature", "country", "--for", "0")
    assert ControlStore.in_data_dir(tmp_path).load().mutes == ()
    result = ev.evaluate(MODEL, window(1))
    assert result.changes and {c.transition for c in result.changes} == {"opened"}
    for change in result.changes:
        doc = LocalAlertSink(tmp_path / "alerts").alerts()[change.state.id]
        assert doc["alert"]["muted_until"] is None and doc["incident"]["id"]


def test_a_mute_of_an_open_alert_is_marked_on_its_document(tmp_path: Path) -> None:
    config, source = setup(tmp_path)
    ev = evaluator(tmp_path, source)
    (opened,) = [c for c in ev.evaluate(MODEL, window(0)).changes if c.state.detector == "unseen_category"]
    out = run("alerts", "mute", "-c", str(config), "-m", MODEL, "-d", "unseen_category", "--for", "1h")
    assert "(1 existing alert(s) covered)" in out
    doc = LocalAlertSink(tmp_path / "alerts").alerts()[opened.state.id]
    assert datetime.fromisoformat(doc["alert"]["muted_until"]) > datetime.now(UTC)


def test_controls_round_trip_and_expired_mutes_are_dropped() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    c = Controls().mute(Mute("m", (now + timedelta(hours=1)).isoformat(), "a"), now)
    c = c.mute(Mute("m", (now + timedelta(days=1)).isoformat(), None, "volume"), now)
    assert Controls.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.muted_until("m", "inputs.a", "null_surge", now) == (now + timedelta(hours=1)).isoformat()
    assert c.muted_until("m", "inputs.b", "null_surge", now) is None
    assert c.muted_until("other", "inputs.a", "null_surge", now) is None
    later = now + timedelta(hours=2)
    assert c.muted_until("m", "inputs.a", "null_surge", later) is None
    assert len(c.mute(Mute("m", later.isoformat(), "x"), later).mutes) == 1  # the expired one is gone


def test_a_damaged_controls_file_is_ignored_not_fatal(tmp_path: Path) -> None:
    store = ControlStore(tmp_path / "controls.json")
    store.path.write_text("{not json", encoding="utf-8")
    assert store.load() == Controls()
