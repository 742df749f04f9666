"""The analytics commands through the root CLI, on the local store (documents as the agent's
local output writes them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from click.testing import CliRunner

from inferwatch.analytics.alerts.sink import LocalAlertSink
from inferwatch.core.cli import cli

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
CONFIG = """
agent:
  data_dir: ./data
  inputs: [{paths: ["./logs/*.jsonl"]}]
analytics:
  interval: 1h
  window: 1h
models:
  churn:
    features: {country: categorical, age: numeric}
    categorical_closed: [country]
"""


def setup(tmp_path: Path) -> Path:
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text(CONFIG, encoding="utf-8")
    train = tmp_path / "train.csv"
    rows = ["country,age,ignored"] + [f"{'DE' if i % 3 else 'FR'},{20 + i % 50},x" for i in range(300)]
    train.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return cfg


def write_store(tmp_path: Path, countries: list[str], start: datetime) -> None:
    """One segment of the local store in the documented shape (a document per line plus _id)."""
    seg = (
        tmp_path
        / "data"
        / "store"
        / "logs-inferwatch.churn-default"
        / f"{int(start.timestamp()):020d}.ndjson"
    )
    seg.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, country in enumerate(countries):
        ts = start + timedelta(seconds=i)
        doc = {
            "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "ml": {
                "model": {"name": "churn", "version": "1"},
                "inputs": {"country": country, "age": 30 + i % 20},
            },
            "_id": f"{start.timestamp()}-{i}",
        }
        lines.append(orjson.dumps(doc))
    seg.write_bytes(b"\n".join(lines) + b"\n")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_baseline_build_prints_the_summary_stores_it_and_show_reads_it_back(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    out = tmp_path / "copy.json"
    code, stdout, _ = invoke(
        "baseline",
        "build",
        "-c",
        str(cfg),
        "-m",
        "churn",
        "-v",
        "1",
        "--data",
        str(tmp_path / "train.csv"),
        "--out",
        str(out),
    )
    assert code == 0, stdout
    assert "inputs.country" in stdout and "categorical" in stdout and "300" in stdout
    assert "columns not in the model's features or outputs, ignored: ignored" in stdout
    stored = tmp_path / "data" / "baselines" / "churn@1.json"
    assert stored.exists() and out.read_bytes() == stored.read_bytes()
    assert json.loads(out.read_bytes())["features"]["inputs.country"]["categories"] == {"DE": 200, "FR": 100}

    code, stdout, _ = invoke("baseline", "show", "-c", str(cfg), "-m", "churn", "-v", "1")
    assert code == 0 and "baseline churn@1" in stdout and "inputs.age" in stdout


def test_baseline_show_of_a_missing_version_says_how_to_build_it(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    code, _, stderr = invoke("baseline", "show", "-c", str(cfg), "-m", "churn", "-v", "9")
    assert code == 1 and "inferwatch baseline build" in stderr


def test_baseline_build_needs_exactly_one_source(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    code, _, stderr = invoke("baseline", "build", "-c", str(cfg), "-m", "churn", "-v", "1")
    assert code == 2 and "--data" in stderr


def test_baseline_from_logs_takes_the_window_of_the_local_store(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    write_store(tmp_path, ["DE", "FR", "DE", "NL"] * 25, T0)
    code, _, stderr = invoke(
        "baseline",
        "build",
        "-c",
        str(cfg),
        "-m",
        "churn",
        "-v",
        "1",
        "--from-logs",
        "2026-11-22T10:00:00Z",
        "2026-11-22T11:00:00Z",
    )
    assert code == 0, stderr
    stored = json.loads((tmp_path / "data" / "baselines" / "churn@1.json").read_bytes())
    assert stored["rows"] == 100
    assert stored["features"]["inputs.country"]["categories"] == {"DE": 50, "FR": 25, "NL": 25}


def test_once_json_lists_the_firing_findings_with_the_documented_keys(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    assert (
        invoke(
            "baseline",
            "build",
            "-c",
            str(cfg),
            "-m",
            "churn",
            "-v",
            "1",
            "--data",
            str(tmp_path / "train.csv"),
        )[0]
        == 0
    )
    write_store(tmp_path, ["DE"] * 150 + ["FR"] * 80 + ["XX"] * 20, T0)
    code, stdout, stderr = invoke(
        "analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z", "--json"
    )
    assert code == 0, stderr
    findings = json.loads(stdout)
    assert all({"detector", "model", "version", "feature", "severity", "message"} <= set(f) for f in findings)
    assert all(f["status"] == "firing" for f in findings)
    unseen = [f for f in findings if f["detector"] == "unseen_category"]
    assert [(f["feature"], f["key"], f["model"], f["version"]) for f in unseen] == [
        ("inputs.country", "XX", "churn", "1")
    ]
    sink = LocalAlertSink(tmp_path / "data" / "alerts")
    assert any(d["detector"] == "unseen_category" and d["status"] == "open" for d in sink.alerts().values())

    history = sink.history_path.read_bytes()
    code, stdout, _ = invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z")
    assert code == 0
    assert "unseen_category" in stdout and "inputs.country" in stdout
    assert sink.history_path.read_bytes() == history  # the same window again writes nothing


def test_once_refuses_an_unknown_model_and_a_bad_config(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    assert invoke("analytics", "once", "-c", str(cfg), "--model", "nope")[0] == 2
    bad = tmp_path / "bad.yml"
    bad.write_text("analytics: {shard: 3/2}\n", encoding="utf-8")
    code, _, stderr = invoke("analytics", "once", "-c", str(bad))
    assert code == 2 and "analytics.shard" in stderr


def test_help_shows_examples() -> None:
    for args in (["analytics", "--help"], ["analytics", "once", "--help"], ["baseline", "build", "--help"]):
        code, stdout, _ = invoke(*args)
        assert code == 0 and "Example" in stdout


def test_run_evaluates_on_schedule_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    cfg.write_text(CONFIG.replace("interval: 1h", "interval: 1s"), encoding="utf-8")
    state = tmp_path / "data" / "analytics-state" / "churn.state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.core", "analytics", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "INFERWATCH_LOG_LEVEL": "info"},
    )
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a condition with a deadline, not synchronisation by sleep
        if not state.exists():
            _, err = proc.communicate(timeout=5) if proc.poll() is not None else (b"", b"no evaluation")
            raise AssertionError(err.decode())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert b"worker stopped" in err


def test_backends_follow_the_config_elasticsearch_section_or_the_local_store(tmp_path: Path) -> None:
    from inferwatch.analytics.alerts.sink import ElasticsearchAlertSink
    from inferwatch.analytics.baseline.store import ElasticsearchBaselineStore, LocalBaselineStore
    from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource
    from inferwatch.analytics.sources.local import LocalSource
    from inferwatch.analytics.wiring import backends
    from inferwatch.core.config import parse_config

    local = backends(parse_config(CONFIG, {}, source=tmp_path / "inferwatch.yml"))
    assert isinstance(local.source, LocalSource) and local.source.store_dir == tmp_path / "data" / "store"
    assert isinstance(local.sink, LocalAlertSink) and local.sink.directory == tmp_path / "data" / "alerts"
    assert isinstance(local.baselines, LocalBaselineStore)
    assert local.baselines.directory == tmp_path / "data" / "baselines"

    es_config = CONFIG + "elasticsearch:\n  hosts: ['http://127.0.0.1:9']\n  api_key: k\n"
    remote = backends(parse_config(es_config, {}, source=tmp_path / "inferwatch.yml"))  # no request is made
    assert isinstance(remote.source, ElasticsearchSource)
    assert isinstance(remote.sink, ElasticsearchAlertSink)
    assert isinstance(remote.baselines, ElasticsearchBaselineStore)
    assert "http://127.0.0.1:9" in remote.description


def build_args(cfg: Path, data: Path, model: str = "churn") -> list[str]:
    return ["baseline", "build", "-c", str(cfg), "-m", model, "-v", "1", "--data", str(data)]


def test_build_refuses_a_csv_without_the_configured_columns_and_keeps_the_stored_baseline(
    tmp_path: Path,
) -> None:
    cfg = setup(tmp_path)
    assert invoke(*build_args(cfg, tmp_path / "train.csv"))[0] == 0
    stored = tmp_path / "data" / "baselines" / "churn@1.json"
    good = stored.read_bytes()
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("foo,bar\n1,2\n", encoding="utf-8")
    code, _, stderr = invoke(*build_args(cfg, wrong))
    assert code == 1
    assert "has none of the columns of model churn (features and outputs: country, age)" in stderr
    assert "its columns: foo, bar" in stderr and "fix:" in stderr
    assert stored.read_bytes() == good


def test_build_refuses_an_empty_file_and_a_header_without_rows(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    code, _, stderr = invoke(*build_args(cfg, empty))
    assert code == 1 and "empty.csv is empty: expected a header row naming the features" in stderr
    header = tmp_path / "header.csv"
    header.write_text("country,age\n", encoding="utf-8")
    code, _, stderr = invoke(*build_args(cfg, header))
    assert code == 1 and "header.csv has a header but no rows" in stderr
    assert not (tmp_path / "data" / "baselines" / "churn@1.json").exists()


def test_build_refuses_a_model_not_in_the_config_listing_the_known_ones(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    code, _, stderr = invoke(*build_args(cfg, tmp_path / "train.csv", model="chrun"))
    assert code == 2
    assert "model 'chrun' is not in the config's models (known: churn)" in stderr
    assert not (tmp_path / "data" / "baselines").exists()


def test_build_with_a_missing_data_file_is_a_usage_error(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    code, _, stderr = invoke(*build_args(cfg, tmp_path / "absent.csv"))
    assert code == 2 and "absent.csv" in stderr and "does not exist" in stderr


def test_once_names_the_option_of_a_malformed_time(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    code, _, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", "yesterday")
    assert code == 2 and "Invalid value for --at: expected an ISO-8601 time" in stderr
    code, _, stderr = invoke("analytics", "once", "-c", str(cfg), "--window", "0s")
    assert code == 2 and "Invalid value for --window: must be positive" in stderr


def test_once_on_an_empty_store_says_nothing_was_tested(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    code, stdout, _ = invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z")
    assert code == 0
    assert "nothing firing" in stdout
    assert "note: no prediction logs of churn in this window" in stdout and "nothing was tested" in stdout

    code, stdout, stderr = invoke(
        "analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z", "--json"
    )
    assert code == 0 and json.loads(stdout) == []
    assert "note: no prediction logs of churn" in stderr


def test_once_without_a_baseline_says_how_to_build_one(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    write_store(tmp_path, ["DE", "FR"] * 150, T0)
    code, stdout, _ = invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z")
    assert code == 0
    assert "note: no baseline for churn version 1: its drift tests were skipped" in stdout
    assert f"inferwatch baseline build -c {cfg} -m churn -v 1 --data train.csv" in stdout


def test_the_analytics_commands_need_no_agent_inputs_but_need_models(tmp_path: Path) -> None:
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text(CONFIG.replace('  inputs: [{paths: ["./logs/*.jsonl"]}]\n', ""), encoding="utf-8")
    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z")
    assert code == 0, stderr
    assert "model churn" in stdout

    cfg.write_text("agent:\n  data_dir: ./data\n", encoding="utf-8")
    for args in (("analytics", "once"), ("analytics", "run")):
        code, _, stderr = invoke(*args, "-c", str(cfg))
        assert code == 2 and "the config has no models section" in stderr and "fix:" in stderr


def test_an_unreachable_elasticsearch_is_exit_1_with_the_fix_not_a_traceback(tmp_path: Path) -> None:
    from tests.scenario.harness import free_port

    cfg = setup(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    cfg.write_text(CONFIG + f"elasticsearch:\n  hosts: ['{url}']\n  request_timeout: 2s\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "inferwatch.core", "analytics", "once", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"Elasticsearch at {url} failed" in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_command_help_teaches_with_examples_and_exit_codes() -> None:
    for args in (
        ["agent", "run"],
        ["agent", "check"],
        ["setup"],
        ["baseline"],
        ["baseline", "build"],
        ["analytics", "once"],
        ["analytics", "run"],
    ):
        code, stdout, _ = invoke(*args, "--help")
        assert code == 0 and "Example" in stdout and "Exit codes" in stdout, args


def test_demo_refuses_a_zero_duration_before_doing_anything(tmp_path: Path) -> None:
    code, _, stderr = invoke("demo", "--duration", "0", "--data-dir", str(tmp_path / "demo"))
    assert code == 2 and "--duration" in stderr
    assert not (tmp_path / "demo").exists()


def test_run_logs_a_failing_elasticsearch_in_one_line_per_evaluation(tmp_path: Path) -> None:
    from tests.scenario.harness import free_port

    cfg = setup(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    text = CONFIG.replace("interval: 1h", "interval: 1s")
    cfg.write_text(text + f"elasticsearch:\n  hosts: ['{url}']\n  request_timeout: 1s\n", encoding="utf-8")
    log_file = tmp_path / "stderr.log"
    with log_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inferwatch.core", "analytics", "run", "-c", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "INFERWATCH_LOG_LEVEL": "info"},
        )
        try:
            deadline = time.monotonic() + 60
            while b"failed" not in log_file.read_bytes() and proc.poll() is None:
                assert time.monotonic() < deadline, log_file.read_text()
                time.sleep(0.05)  # polling a condition with a deadline
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    logged = log_file.read_text()
    assert proc.returncode == 0, logged
    assert "job evaluate:churn failed: ElasticsearchError" in logged
    assert "Traceback" not in logged and "apscheduler" not in logged


def test_demo_with_an_unusable_data_dir_says_so(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    code, _, stderr = invoke("demo", "--duration", "2", "--data-dir", str(tmp_path / "a-file" / "demo"))
    assert code == 1
    assert "demo failed: Not a directory" in stderr and "fix: give a --data-dir" in stderr


def test_the_evaluator_takes_min_window_docs_from_the_config(tmp_path: Path) -> None:
    from inferwatch.analytics.wiring import build_evaluator
    from inferwatch.core.config import load_config

    cfg_path = setup(tmp_path)
    cfg_path.write_text(
        CONFIG.replace("  window: 1h\n", "  window: 1h\n  min_window_docs: 777\n"), encoding="utf-8"
    )
    evaluator = build_evaluator(load_config(cfg_path))
    assert evaluator.min_window_docs == 777
    assert evaluator.params_for(None).min_window_docs == 777


def test_once_json_with_all_is_strict_json(tmp_path: Path) -> None:
    """A skipped distribution test carries an infinite cut; Python's json wrote it as the
    ``Infinity`` token, which jq and every other strict parser refuse."""
    cfg = setup(tmp_path)
    code, _, stderr = invoke(
        "baseline", "build", "-c", str(cfg), "-m", "churn", "-v", "1", "--data", str(tmp_path / "train.csv")
    )
    assert code == 0, stderr
    write_store(tmp_path, ["DE"] * 3, T0)  # too few values: the drift tests are skipped
    code, stdout, stderr = invoke(
        "analytics", "once", "-c", str(cfg), "--at", "2026-11-22T11:00:00Z", "--json", "--all"
    )
    assert code == 0, stderr
    assert any(f["status"] == "skipped" for f in json.loads(stdout))

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    json.loads(stdout, parse_constant=refuse)
