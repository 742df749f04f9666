"""The ``inferwatch`` command, assembled from the distributions that are installed.

Each distribution registers a *command table* under the entry-point group ``inferwatch.commands``
(``inferwatch-agent``: ``agent``; ``inferwatch-analytics``: ``baseline``, ``analytics``, ``demo``;
``inferwatch-kibana``: ``setup``). A table is a light module: the command itself is imported only
when it runs, so ``inferwatch --help`` and the agent's process never import pandas, scipy or
apscheduler. A command whose distribution is absent answers with the package to install.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from importlib.metadata import entry_points
from typing import Any

import click

from inferwatch.core import __version__
from inferwatch.core.clitools import EXIT_CONFIG, EXIT_FAILED
from inferwatch.core.commands import CommandSpec
from inferwatch.core.configschema import ConfigError
from inferwatch.core.logs import LOG_FORMATS, configure

ENTRY_POINT_GROUP = "inferwatch.commands"

# command -> the distribution that provides it: the message for a command that is not installed.
PROVIDED_BY: dict[str, str] = {
    "agent": "inferwatch-agent",
    "setup": "inferwatch-kibana",
    "baseline": "inferwatch-analytics",
    "analytics": "inferwatch-analytics",
    "alerts": "inferwatch-analytics",
    "report": "inferwatch-analytics",
    "demo": "inferwatch-analytics",
}


def installed_commands() -> dict[str, CommandSpec]:
    """Every command registered by an installed distribution, in the order of ``PROVIDED_BY``."""
    found: dict[str, CommandSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        for spec in ep.load():
            found[spec.name] = spec
    order = {name: i for i, name in enumerate(PROVIDED_BY)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


class LazyGroup(click.Group):
    def _specs(self) -> dict[str, CommandSpec]:
        specs = getattr(self, "_spec_cache", None)
        if specs is None:
            specs = installed_commands()
            self._spec_cache = specs
        return specs

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self._specs())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = self._specs().get(cmd_name)
        if spec is None:
            package = PROVIDED_BY.get(cmd_name)
            if package is not None:
                raise click.UsageError(
                    f"'{cmd_name}' is not installed here: it comes with the {package} package "
                    f"(fix: pip install {package}, or pip install inferwatch for every command)",
                    ctx,
                )
            return None
        module_name, attr = spec.target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the command tables so that --help imports nothing heavy.
        rows = [(name, spec.help) for name, spec in self._specs().items()]
        missing = [name for name in PROVIDED_BY if name not in self._specs()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        if missing:
            with formatter.section("Not installed"):
                formatter.write_dl([(name, f"pip install {PROVIDED_BY[name]}") for name in missing])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inferwatch")
@click.option(
    "--log-level",
    default=lambda: os.environ.get("INFERWATCH_LOG_LEVEL", "info"),
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    show_default="info, or $INFERWATCH_LOG_LEVEL",
    help="Verbosity of the logs written to stderr.",
)
@click.option(
    "--log-format",
    default=lambda: os.environ.get("INFERWATCH_LOG_FORMAT", "text"),
    type=click.Choice(LOG_FORMATS, case_sensitive=False),
    show_default="text, or $INFERWATCH_LOG_FORMAT",
    help="text: one line a person reads; json: one ECS document per line, to ship these logs too.",
)
def cli(log_level: str, log_format: str) -> None:
    """inferwatch watches machine-learning models in production through their prediction logs.

    \b
    A typical setup:
      inferwatch agent check --config inferwatch.yml     # validate config, reach the output
      inferwatch setup --config inferwatch.yml           # templates, alert indices, Kibana
      inferwatch agent run --config inferwatch.yml       # ship logs (one per host)
      inferwatch baseline build --config inferwatch.yml --model M --version V --data train.csv
      inferwatch analytics run --config inferwatch.yml   # evaluate on a schedule, write alerts

    Try it all locally with `inferwatch demo`.
    """
    configure(log_level, "json" if log_format.lower() == "json" else "text")
    if log_level.lower() != "debug":
        # The Elasticsearch client logs every request (info) and every retried connection
        # failure with its traceback (warning); the commands report failures themselves, with
        # the fix. --log-level debug shows the client's own lines again.
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> Any:
    """The ``inferwatch`` entry point. Commands report the failures they expect with the fix and
    exit 1 or 2; this is the net for the others: one line instead of a traceback (exit 1), the
    traceback itself with ``--log-level debug``."""
    try:
        return cli.main(args=argv, prog_name="inferwatch")
    except ConfigError as exc:  # e.g. a secret file removed after the config was loaded
        click.echo(f"inferwatch: {exc.render()}", err=True)
        sys.exit(EXIT_CONFIG)
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        click.echo(f"inferwatch: unexpected error: {type(exc).__name__}: {exc}", err=True)
        click.echo(
            "this is a bug or an unusual environment; run again with --log-level debug for the "
            "traceback, and report it",
            err=True,
        )
        sys.exit(EXIT_FAILED)
