"""``inferwatch agent run|check`` as a user runs them (subprocesses, real config files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from agent.daemon import AgentLocked, take_lock
from tests.fakes.bulk_server import BulkServer
from tests.scenario.harness import free_port

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
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
        "from agent.cli import main\n"
        "import agent.cli.agent_cmd, agent.daemon, agent.reader, agent.shipper, agent.metrics\n"
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
    assert "-> 1 files" in out.stdout
    assert str(tmp_path / "logs" / "a.jsonl") in out.stdout
    assert "output:" in out.stdout


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
