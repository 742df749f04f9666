"""Helpers shared by the command modules: config loading with exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.config import Config, ConfigError, load_config

EXIT_CONFIG = 2

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="INFERWATCH_CONFIG",
    help="The inferwatch YAML config (or $INFERWATCH_CONFIG).",
)


def load_or_exit(path: Path) -> Config:
    """Load and validate the config; on any problem print every key path and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{path}: {exc.render()}", err=True)
        sys.exit(EXIT_CONFIG)
