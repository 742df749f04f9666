"""The commands ``inferwatch-kibana`` adds to ``inferwatch`` (entry point ``inferwatch.commands``)."""

from inferwatch.core.commands import CommandSpec

COMMANDS = (
    CommandSpec(
        "setup",
        "inferwatch.kibana.setup_cmd:setup",
        "Install Elasticsearch templates, alert indices and Kibana assets.",
    ),
)
