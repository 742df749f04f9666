"""The commands ``inferwatch-agent`` adds to ``inferwatch`` (entry point ``inferwatch.commands``)."""

from inferwatch.core.commands import CommandSpec

COMMANDS = (
    CommandSpec(
        "agent", "inferwatch.agent.cli:agent", "Run the shipping daemon or check its config and output."
    ),
)
