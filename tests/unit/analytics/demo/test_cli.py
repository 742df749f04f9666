from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from inferwatch.core.cli import cli


def test_serve_needs_a_log_dir_and_log_dir_needs_serve(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["demo", "--serve"])
    assert result.exit_code == 2 and "--log-dir" in result.output
    result = runner.invoke(cli, ["demo", "--log-dir", str(tmp_path), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "go with --serve" in result.output
    assert not (tmp_path / "d").exists()


def test_help_shows_the_examples() -> None:
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0
    assert "inferwatch demo --duration 40 --speed 150" in result.output
    assert "INFERWATCH_ES_URL" in result.output
