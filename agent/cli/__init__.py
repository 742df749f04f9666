"""The ``inferwatch`` command. Subcommands are imported only when used, so the agent's process
never imports pandas, scipy or apscheduler (the analytics commands do)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from agent import __version__
from agent.cli.common import EXIT_CONFIG, EXIT_FAILED
from agent.configschema import ConfigError

# command name -> "module:attribute"; each module owns its command and imports its own stack.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("agent.cli.agent_cmd:agent", "Run the shipping daemon or check its config and output."),
    "setup": (
        "agent.cli.setup_cmd:setup",
        "Install Elasticsearch templates, alert indices and Kibana assets.",
    ),
    "baseline": ("analytics.cli:baseline", "Build and show the reference a model version is compared with."),
    "analytics": ("analytics.cli:analytics", "Run the drift worker on a schedule, or one evaluation now."),
    "demo": ("analytics.demo.cli:demo", "Run the whole loop on this machine with a demo model, no servers."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above so that --help imports nothing heavy.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in SUBCOMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inferwatch")
@click.option(
    "--log-level",
    default=lambda: os.environ.get("INFERWATCH_LOG_LEVEL", "info"),
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    show_default="info, or $INFERWATCH_LOG_LEVEL",
    help="Verbosity of the logs written to stderr.",
)
def cli(log_level: str) -> None:
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
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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
