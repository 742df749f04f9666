"""Helpers shared by the command modules: config loading with exit code 2, exit codes, and
printing URLs without the credentials they may carry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from inferwatch.core.config import Config, ConfigError, load_config, url_without_credentials

EXIT_FAILED = 1  # the command ran and failed: a server unreachable, a file unusable
EXIT_CONFIG = 2  # the config or the command line is wrong: nothing was done

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
    if not path.exists():
        click.echo(
            f"{path}: config file not found (looked in {path.resolve().parent})\n"
            "  fix: pass --config PATH or set $INFERWATCH_CONFIG; to start one, copy "
            "inferwatch.example.yml (every key with its default and a comment)",
            err=True,
        )
        sys.exit(EXIT_CONFIG)
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{path}: {exc.render()}", err=True)
        sys.exit(EXIT_CONFIG)


def fail(message: str, fix: str | None = None, code: int = EXIT_FAILED) -> NoReturn:
    """Print the problem (and what to change) to stderr and exit with ``code``."""
    click.echo(message, err=True)
    if fix:
        click.echo(f"fix: {fix}", err=True)
    sys.exit(code)


def safe_url(url: str) -> str:
    """``url`` without a user or password (``https://elastic:pw@host:9200`` -> ``https://host:9200``)."""
    return url_without_credentials(url)


def hosts_text(hosts: tuple[str, ...] | list[str]) -> str:
    return ", ".join(safe_url(h) for h in hosts)
