"""``inferwatch agent run|check`` as a user runs them (subprocesses, real config files)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from inferwatch.agent.daemon import AgentLocked, take_lock
from inferwatch.agent.fastpath import describe, native_module
from inferwatch.agent.files.identity import fingerprint
from inferwatch.agent.identity import agent_identity
from inferwatch.core.contract import document_id
from tests.fakes.bulk_server import BulkServer
from tests.scenario.harness import AgentProcess, free_port

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "inferwatch.core", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(tmp: Path, elasticsearch: dict[str, object] | None = None, **agent: object) -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    cfg: dict[str, object] = {
        "agent": {
            "data_dir": str(tmp / "data"),
            "inputs": [{"paths": [str(tmp / "logs" / "*.jsonl")]}],
            **agent,
        }
    }
    if elasticsearch is not None:
        cfg["elasticsearch"] = elasticsearch
    path = tmp / "inferwatch.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_agent_process_never_imports_the_analytics_stack() -> None:
    code = (
        "import sys\n"
        "from inferwatch.core.cli import main\n"
        "import inferwatch.agent.cli, inferwatch.agent.daemon, inferwatch.agent.reader, inferwatch.agent.shipper\n"
        "try:\n"
        "    main(['agent', 'run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = [m for m in ('pandas', 'scipy', 'apscheduler', 'numpy') if m in sys.modules]\n"
        "print('HEAVY:', bad)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert "HEAVY: []" in out.stdout, out.stdout + out.stderr
    assert "--config" in out.stdout


def test_run_help_teaches_with_examples() -> None:
    out = run_cli("agent", "run", "--help")
    assert out.returncode == 0
    assert "inferwatch agent run --config inferwatch.yml" in out.stdout
    assert "SIGTERM" in out.stdout


def test_check_lists_files_and_reaches_the_output(tmp_path: Path) -> None:
    with BulkServer() as srv:
        cfg = write_config(tmp_path, {"hosts": [srv.url]})
        (tmp_path / "logs" / "a.jsonl").write_text("{}\n")
        out = run_cli("agent", "check", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "-> 1 file\n" in out.stdout
    assert str(tmp_path / "logs" / "a.jsonl") in out.stdout
    assert "output:" in out.stdout
    installed = native_module() is not None
    assert f"normalizer: {describe(installed, redacting=False)}\n" in out.stdout


def test_check_exits_1_with_the_fix_when_the_output_is_unreachable(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"hosts": [f"http://127.0.0.1:{free_port()}"], "request_timeout": "2s"})
    out = run_cli("agent", "check", "--config", str(cfg))
    assert out.returncode == 1
    assert "unreachable" in out.stderr
    assert "fix:" in out.stderr


def test_a_config_without_inputs_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text("agent:\n  data_dir: ./data\n")
    out = run_cli("agent", "run", "--config", str(cfg))
    assert out.returncode == 2
    assert "agent.inputs" in out.stderr


def test_an_unknown_key_exits_2_with_its_path(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, batch={"max_dcos": 5})
    out = run_cli("agent", "run", "--config", str(cfg))
    assert out.returncode == 2
    assert "agent.batch.max_dcos" in out.stderr


def test_two_agents_never_share_a_data_dir(tmp_path: Path) -> None:
    fd = take_lock(tmp_path / "data")
    try:
        try:
            take_lock(tmp_path / "data")
        except AgentLocked as e:
            assert "agent.data_dir" in str(e)
        else:
            raise AssertionError("a second lock on the same data_dir was granted")
        cfg = write_config(tmp_path)
        out = run_cli("agent", "run", "--config", str(cfg))
        assert out.returncode == 1
        assert "another agent is running" in out.stderr
    finally:
        os.close(fd)


def test_run_refuses_to_start_when_the_output_refuses_the_credentials(tmp_path: Path) -> None:
    with BulkServer() as srv:
        srv.set_faults(require_auth="ApiKey right")
        cfg = write_config(tmp_path, {"hosts": [srv.url], "api_key": "wrong"})
        out = run_cli("agent", "run", "--config", str(cfg))
    assert out.returncode == 1, out.stderr
    assert "refuses" in out.stderr
    assert "fix:" in out.stderr


def test_check_with_the_local_store(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    out = run_cli("agent", "check", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "-> 0 files" in out.stdout
    assert "files created later are picked up" in out.stdout
    assert "output:" in out.stdout


def assert_clean_failure(out: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit ``code``, every needle in stderr, and no traceback anywhere."""
    assert out.returncode == code, out.stdout + out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_a_missing_config_file_exits_2_saying_how_to_give_one(tmp_path: Path) -> None:
    for command in ("check", "run"):
        out = run_cli("agent", command, "--config", str(tmp_path / "absent.yml"))
        assert_clean_failure(out, 2, "config file not found", "fix: pass --config PATH")


def test_a_yaml_syntax_error_exits_2_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text("agent:\n  inputs: [\n")
    out = run_cli("agent", "check", "--config", str(cfg))
    assert_clean_failure(out, 2, "not valid YAML at line 3, column 1")
    assert "<unicode string>" not in out.stderr


def test_a_missing_api_key_file_exits_2_naming_the_key_and_the_path(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"hosts": ["http://127.0.0.1:9"], "api_key_file": "es-key"})
    for command in ("check", "run"):
        out = run_cli("agent", command, "--config", str(cfg))
        assert_clean_failure(out, 2, f"elasticsearch.api_key_file: file {tmp_path / 'es-key'} does not exist")


def test_an_unset_variable_exits_2_naming_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"hosts": ["http://127.0.0.1:9"], "api_key": "${INFERWATCH_TEST_UNSET}"})
    out = run_cli("agent", "run", "--config", str(cfg))
    assert_clean_failure(
        out, 2, "elasticsearch.api_key: environment variable INFERWATCH_TEST_UNSET is not set"
    )


def test_a_password_in_a_host_url_is_refused_and_never_printed(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"hosts": ["http://elastic:hunter2@127.0.0.1:9"]})
    out = run_cli("agent", "check", "--config", str(cfg))
    assert_clean_failure(out, 2, "elasticsearch.hosts[0]: must not carry credentials")
    assert "hunter2" not in out.stdout + out.stderr


def test_an_unusable_data_dir_exits_1_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    cfg = write_config(tmp_path, data_dir=str(tmp_path / "a-file" / "data"))
    for command in ("check", "run"):
        out = run_cli("agent", command, "--config", str(cfg))
        assert_clean_failure(out, 1, "agent.data_dir", "is not a folder", "fix: make the folder writable")


def test_check_without_inputs_exits_2_saying_the_agent_needs_one(tmp_path: Path) -> None:
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text("agent:\n  data_dir: ./data\n")
    out = run_cli("agent", "check", "--config", str(cfg))
    assert_clean_failure(out, 2, "agent.inputs: needs at least one input to run the agent")


def test_check_summary_names_a_missing_folder_and_says_ready(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_text("{}\n")
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text(
        "agent:\n  data_dir: ./data\n  inputs:\n    - paths: [./logs/*.jsonl]\n    - paths: [./lgos/*.jsonl]\n"
    )
    out = run_cli("agent", "check", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert f"data_dir {tmp_path / 'data'}: writable, created at the first run" in out.stdout
    assert f"the folder {tmp_path / 'lgos'} does not exist" in out.stdout
    assert "ready: 1 file of 2 inputs would be shipped to the local store; no file matches input 1 yet" in (
        out.stdout
    )


def test_an_unexpected_error_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import inferwatch.agent.cli as agent_cmd
    from inferwatch.core.cli import main

    def boom(data_dir: Path) -> str | None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(agent_cmd, "data_dir_problem", boom)
    cfg = write_config(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--log-level", "warning", "agent", "check", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert "unexpected error: RuntimeError: disk on fire" in err and "--log-level debug" in err
    assert "Traceback" not in err


def test_a_metrics_address_in_use_is_named_with_its_key(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        cfg = write_config(tmp_path, metrics={"listen": listen})
        out = run_cli("agent", "run", "--config", str(cfg))
        assert_clean_failure(
            out, 1, f"cannot start: agent.metrics.listen {listen}:", "fix: choose a free port"
        )
        assert "agent.data_dir" not in out.stderr.split("fix:")[1]  # not the data_dir fix
        out = run_cli("agent", "check", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "warning: cannot listen there" in out.stdout
    assert out.stdout.rstrip().endswith("; the metrics address is in use")


def test_check_says_when_an_agent_is_running_on_the_data_dir(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    fd = take_lock(tmp_path / "data")
    try:
        out = run_cli("agent", "check", "--config", str(cfg))
    finally:
        os.close(fd)
    assert out.returncode == 0, out.stderr
    assert "an agent is running on it now" in out.stdout
    out = run_cli("agent", "check", "--config", str(cfg))
    assert "an agent is running" not in out.stdout


def test_check_offline_never_contacts_the_output(tmp_path: Path) -> None:
    with socket.socket() as listener:  # an "Elasticsearch" that records any connection
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        cfg = write_config(tmp_path, {"hosts": [url], "request_timeout": "2s"})
        out = run_cli("agent", "check", "--config", str(cfg), "--offline")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected
    assert out.returncode == 0, out.stderr
    assert f"output: Elasticsearch at {url}: not contacted (--offline)" in out.stdout
    assert "valid (output not contacted): 0 files of 1 input would be shipped to Elasticsearch" in out.stdout


def test_check_offline_still_refuses_an_invalid_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, batch={"max_docs": "${MAXDOCS}"})
    out = run_cli("agent", "check", "--config", str(cfg), "--offline")
    assert_clean_failure(out, 2, "environment variable MAXDOCS is not set")


def explain_lines(cfg: Path, data: bytes, *args: str) -> tuple[int, list[dict[str, Any]]]:
    out = subprocess.run(
        [sys.executable, "-m", "inferwatch.core", "agent", "explain", "-c", str(cfg), "--json", *args, "-"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        input=data,
        capture_output=True,
        timeout=60,
    )
    return out.returncode, [orjson.loads(line) for line in out.stdout.splitlines()]


def test_explain_shows_the_documents_and_ids_the_agent_ships(tmp_path: Path) -> None:
    content = (
        b'{"timestamp": "2026-11-22T10:48:12Z", "model": "churn", "prediction_id": "p1", '
        b'"inputs": {"review": "\xe9\x85\x8d\xe9\x80\x81\xe3\x81\x8c\xe9\x81\x85\xe3\x81\x84", '
        b'"email": "a@b.c"}}\n'
        b'{"timestamp": 1764000000, "model": "Churn-2", "inputs": {"review": "late"}}\n'
    )
    with BulkServer() as srv:
        agent = AgentProcess(tmp_path, srv, redact={"drop": ["inputs.email"]})
        cfg = yaml.safe_load(agent.config.read_text())
        cfg["models"] = {"churn": {"features": {"review": "text"}}}
        agent.config.write_text(yaml.safe_dump(cfg))
        code, explained = explain_lines(agent.config, content)
        assert code == 0
        (agent.logs / "a.jsonl").write_bytes(content)
        agent.start()
        try:
            assert srv.wait_for(2), agent.output_log()
            shipped = srv.documents()
        finally:
            agent.stop()
            agent.close()
    assert {(e["index"], e["id"]) for e in explained} == set(shipped)
    for e in explained:
        doc = shipped[(e["index"], e["id"])]
        for d in (doc, e["document"]):
            d["event"].pop("ingested")
            d["log"]["file"].pop("path")
        assert e["document"] == doc
    first = explained[0]["document"]
    assert first["ml"]["tokens"]["review"] == ["配送", "送が", "が遅", "遅い"]
    assert "email" not in first["ml"]["inputs"]  # redacted as when shipping


def test_explain_names_the_dead_letter_reason_and_exits_1(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, explained = explain_lines(cfg, b'{"model": "churn"}\nnot json\n[1]\n')
    assert code == 1
    assert [e.get("dead_letter", {}).get("reason") for e in explained] == [
        None,
        "invalid_json",
        "not_an_object",
    ]
    assert explained[1]["offset"] == len(b'{"model": "churn"}\n')
    out = run_cli("agent", "explain", "--config", str(cfg), "not json")
    assert out.returncode == 1
    assert "line 1 (offset 0): dead letter, reason invalid_json" in out.stdout
    assert "1 line of 1 would go to the dead letter" in out.stderr


def test_explain_refuses_an_input_the_config_does_not_have(tmp_path: Path) -> None:
    out = run_cli("agent", "explain", "--config", str(write_config(tmp_path)), "--input", "1", "{}")
    assert_clean_failure(out, 2, "--input 1: the config has 1 input", "give --input 0 to 0")


def test_explain_ids_follow_the_file_identity_and_offset_rule(tmp_path: Path) -> None:
    """Without running the daemon: ``document_id: offset`` ids are made of the identity the tailer
    gives the file (its first line) and each line's byte offset."""
    content = b'{"model": "churn", "prediction_id": "a"}\n\n{"model": "churn", "prediction_id": "b"}\r\n'
    log = tmp_path / "a.jsonl"
    log.write_bytes(content)
    with log.open("rb") as f:
        file_id = fingerprint(f)
    assert file_id is not None
    cfg = write_config(tmp_path)
    code, explained = explain_lines(cfg, content)
    assert code == 0
    second = content.index(b'{"model": "churn", "prediction_id": "b"}')
    assert [(e["offset"], e["id"]) for e in explained] == [
        (0, document_id(f"{file_id}:0")),
        (second, document_id(f"{file_id}:{second}")),
    ]
    assert [e["index"] for e in explained] == ["logs-inferwatch.churn-default"] * 2
    by_prediction = write_config(tmp_path, inputs=[{"paths": ["x"], "document_id": "prediction_id"}])
    _, explained = explain_lines(by_prediction, content)
    assert [e["id"] for e in explained] == [document_id("churn:a"), document_id("churn:b")]


def test_documents_name_the_agent_that_shipped_them(tmp_path: Path) -> None:
    line = b'{"model": "churn"}\n'
    _, (doc,) = explain_lines(write_config(tmp_path), line)
    agent = doc["document"]["agent"]
    assert agent["name"] == socket.gethostname()
    assert agent["id"] == agent_identity(socket.gethostname(), tmp_path / "data").id
    _, (named,) = explain_lines(write_config(tmp_path, name="ingest-eu"), line)
    assert named["document"]["agent"]["name"] == "ingest-eu"
    assert named["document"]["agent"]["id"] == agent["id"]  # the name is a label, not the identity
