"""The commands ``inferwatch-analytics`` adds to ``inferwatch`` (entry point ``inferwatch.commands``)."""

from inferwatch.core.commands import CommandSpec

COMMANDS = (
    CommandSpec(
        "baseline",
        "inferwatch.analytics.cli.baselines:baseline",
        "Build and show the reference a model version is compared with.",
    ),
    CommandSpec(
        "analytics",
        "inferwatch.analytics.cli.worker:analytics",
        "Run the drift worker on a schedule, or one evaluation now.",
    ),
    CommandSpec(
        "report",
        "inferwatch.analytics.cli.report:report",
        "Write an HTML report of a model over a period (distributions, monitored rates, alerts).",
    ),
    CommandSpec(
        "alerts",
        "inferwatch.analytics.alerts.cli:alerts",
        "List incidents and alerts; acknowledge them, mute a feature or a detector.",
    ),
    CommandSpec(
        "demo",
        "inferwatch.analytics.demo.cli:demo",
        "Run the whole loop on this machine with a demo model, no servers.",
    ),
)
