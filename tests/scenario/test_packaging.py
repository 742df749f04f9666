"""The agent distribution installs on its own, small, and the `inferwatch` command is assembled from
what is installed: a fresh venv with only ``pip install ./agent``."""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT_BUDGET_BYTES = 25 * 1024 * 1024  # what installing the agent may add to a venv
HEAVY = ("numpy", "pandas", "scipy", "elasticsearch", "elastic_transport", "apscheduler", "pyarrow")


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    work = tmp_path_factory.mktemp("agent-only")
    # pip builds in the source folder (build/, *.egg-info): build a copy, not the checkout
    source = work / "agent"
    shutil.copytree(
        ROOT / "agent", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    before = _tree_bytes(env_dir)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        timeout=600,
    )
    return env_dir, _tree_bytes(env_dir) - before


def run(env_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(env_dir / "bin" / "inferwatch"), *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.scenario
def test_the_agent_alone_is_small_and_brings_no_heavy_package(agent_venv: tuple[Path, int]) -> None:
    env_dir, added = agent_venv
    print(f"pip install ./agent added {added / 1e6:.1f} MB")
    assert added <= AGENT_BUDGET_BYTES
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    installed = {p.name.lower() for p in site.iterdir()}
    assert not [h for h in HEAVY if h in installed]
    # Top-level names: only the namespace, never agent/analytics/kibana (all taken on PyPI).
    assert "inferwatch" in installed
    assert not {"agent", "analytics", "kibana"} & installed


@pytest.mark.scenario
def test_only_the_installed_commands_are_offered_and_the_others_name_their_package(
    agent_venv: tuple[Path, int], tmp_path: Path
) -> None:
    env_dir, _ = agent_venv
    top = run(env_dir, "--help")
    assert top.returncode == 0, top.stderr
    commands = top.stdout.split("Commands:")[1].split("Not installed:")[0]
    assert "agent" in commands and "analytics" not in commands and "setup" not in commands
    assert "pip install inferwatch-analytics" in top.stdout.split("Not installed:")[1]

    agent_help = run(env_dir, "agent", "run", "--help")
    assert agent_help.returncode == 0 and "--config" in agent_help.stdout

    absent = run(env_dir, "analytics", "once")
    assert absent.returncode == 2
    assert "comes with the inferwatch-analytics package" in absent.stderr
    assert "pip install inferwatch-analytics" in absent.stderr
    assert "Traceback" not in absent.stderr

    unknown = run(env_dir, "frobnicate")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr


@pytest.mark.scenario
def test_the_writer_imports_in_the_agent_only_venv(agent_venv: tuple[Path, int], tmp_path: Path) -> None:
    env_dir, _ = agent_venv
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import inferwatch.agent.writer as w\n"
        "w.PredictionLogger(sys.argv[1], 'm').log({'a': 1}, {'s': 0.5})\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names))\n"
    )
    out = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", code, str(tmp_path / "p.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "['inferwatch', 'inferwatch.agent', 'inferwatch.agent.writer']"
    assert (tmp_path / "p.jsonl").read_text().count("\n") == 1


def test_every_distribution_registers_its_commands() -> None:
    """In the full install (this test run's venv) every command of the product is present."""
    from inferwatch.core.cli import PROVIDED_BY, installed_commands

    assert sorted(installed_commands()) == sorted(PROVIDED_BY)
