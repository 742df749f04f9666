"""``inferwatch alerts list|ack|mute``: the incidents and alerts the worker keeps, and what people
decide about them (``alerts/controls.py``).

The alerts are read from the worker's state under ``agent.data_dir`` (the same for the local store
and Elasticsearch); decisions go to ``analytics-state/controls.json``, which the worker reads at
every evaluation, and are marked at once on the alert documents (``alert.acknowledged``,
``alert.muted_until``) so a Kibana user can filter on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from inferwatch.analytics.alerts.controls import Controls, ControlStore, Mute
from inferwatch.analytics.alerts.incidents import IncidentState
from inferwatch.analytics.alerts.lifecycle import AlertState
from inferwatch.analytics.state_store import StateStore
from inferwatch.core.clitools import EXIT_CONFIG, config_option, fail, load_or_exit
from inferwatch.core.config import Config
from inferwatch.core.configschema import Duration
from inferwatch.core.layout import DataDir


def control_store(cfg: Config) -> ControlStore:
    return ControlStore.in_data_dir(cfg.agent.data_dir)


@dataclass(frozen=True)
class Known:
    alerts: dict[str, AlertState]
    incidents: dict[str, IncidentState]


def known(cfg: Config, models: tuple[str, ...] = ()) -> Known:
    """Every alert and incident of the configured models (or of ``models``) in the worker's state."""
    store = StateStore(DataDir(cfg.agent.data_dir).analytics_state)
    alerts: dict[str, AlertState] = {}
    incidents: dict[str, IncidentState] = {}
    for model in models or tuple(cfg.models):
        state = store.load(model)
        alerts.update(state.alerts)
        incidents.update(state.incidents)
    return Known(alerts, incidents)


def _mark(cfg: Config, marks: dict[str, dict[str, Any]]) -> None:
    """Mark the documents now; the worker keeps the marks with every later change."""
    from inferwatch.analytics.wiring import backends

    if marks:
        backends(cfg).sink.mark(marks)


def _alert_row(a: AlertState, controls: Controls, now: datetime) -> tuple[str, ...]:
    flags = []
    if a.id in controls.acknowledged:
        flags.append("acked")
    muted = controls.muted_until(a.model, a.feature, a.detector, now)
    if muted:
        flags.append(f"muted until {muted}")
    if a.recurrences:
        flags.append(f"back {a.recurrences}x")
    message = str(a.finding.get("message", ""))
    return (
        a.id[:12],
        a.status,
        a.severity,
        a.detector,
        a.feature or "-",
        a.key or "",
        ", ".join(flags),
        message,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def alerts() -> None:
    """List the incidents and alerts, acknowledge them, mute a feature or a detector.

    \b
      inferwatch alerts list -c inferwatch.yml
      inferwatch alerts ack -c inferwatch.yml 3f2a9c01b7d4
      inferwatch alerts mute -c inferwatch.yml --model churn --feature country --for 2d
    """


@alerts.command("list", short_help="Incidents and their alerts, open ones first.")
@config_option
@click.option("--model", "-m", "models", multiple=True, help="Only this model (repeatable).")
@click.option("--all", "include_all", is_flag=True, help="Resolved ones too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (incidents with their alerts).")
def list_(config_path: Path, models: tuple[str, ...], include_all: bool, as_json: bool) -> None:
    """Each incident (its likely cause first) with its member alerts, and whether people have
    acknowledged or muted them."""
    cfg = load_or_exit(config_path)
    found = known(cfg, models)
    controls = control_store(cfg).load()
    now = datetime.now(UTC)
    incidents = sorted(
        (i for i in found.incidents.values() if include_all or i.status != "resolved"),
        key=lambda i: (i.status == "resolved", i.opened),
        reverse=False,
    )
    if as_json:
        out = [
            {**i.to_dict(), "alerts": [found.alerts[m].to_dict() for m in i.members if m in found.alerts]}
            for i in incidents
        ]
        click.echo(json.dumps(out, indent=1))
        return
    if not incidents:
        click.echo("no open incidents" if not include_all else "no incidents")
        return
    for inc in incidents:
        click.echo(
            f"incident {inc.id[:12]}  {inc.status:<9} {inc.severity:<8} {inc.model} {inc.version}  "
            f"opened {inc.opened}" + (f", back {inc.recurrences}x" if inc.recurrences else "")
        )
        click.echo(f"  {inc.message}")
        for member in inc.members:
            a = found.alerts.get(member)
            if a is None:
                continue
            row = _alert_row(a, controls, now)
            flags = f"  [{row[6]}]" if row[6] else ""
            key = f" {row[5]!r}" if row[5] else ""
            click.echo(f"    alert {row[0]}  {row[1]:<8} {row[2]:<8} {row[3]} {row[4]}{key}{flags}")


def _resolve(found: Known, prefix: str) -> AlertState:
    hits = [a for a in found.alerts.values() if a.id.startswith(prefix)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        fail(
            f"no alert id starts with {prefix!r}", "`inferwatch alerts list --all` shows the ids", EXIT_CONFIG
        )
    fail(f"{len(hits)} alerts start with {prefix!r}", "give more characters of the id", EXIT_CONFIG)


@alerts.command(short_help="Acknowledge an alert; a new value becomes an accepted one.")
@config_option
@click.argument("alert_ids", nargs=-1, required=True, metavar="ALERT_ID...")
def ack(config_path: Path, alert_ids: tuple[str, ...]) -> None:
    """Acknowledge alerts (by id or a unique prefix, as `list` shows them). Acknowledging an
    unseen_category alert adds its value to the model's accepted values: it is treated as seen
    in training from the next evaluation on and never alerts again."""
    cfg = load_or_exit(config_path)
    found = known(cfg)
    chosen = [_resolve(found, prefix) for prefix in alert_ids]
    store = control_store(cfg)
    controls = store.load()
    now = datetime.now(UTC)
    for a in chosen:
        controls = controls.acknowledge(a, now)
    store.save(controls)
    _mark(cfg, {a.id: {"acknowledged": True} for a in chosen})
    for a in chosen:
        accepted = a.detector == "unseen_category" and a.key is not None
        then = f"; {a.key!r} is now an accepted value of {a.feature}" if accepted else ""
        click.echo(f"acknowledged {a.id[:12]} ({a.detector} {a.feature or a.model}){then}")


@alerts.command(short_help="Mute a model's feature or detector for a time.")
@config_option
@click.option("--model", "-m", required=True, help="The model, as in the config.")
@click.option("--feature", "-f", help="Only this feature (bare or inputs./outputs.); default every one.")
@click.option("--detector", "-d", help="Only this detector (e.g. numeric_drift); default every one.")
@click.option("--for", "duration", required=True, metavar="DURATION", help="How long: 1h, 2d, 1w; 0 unmutes.")
@click.option("--reason", default="", help="Why (kept with the mute).")
def mute(
    config_path: Path, model: str, feature: str | None, detector: str | None, duration: str, reason: str
) -> None:
    """Muted findings open no alert and send nothing; an open alert they cover is held as it is.
    The alert documents show alert.muted_until."""
    cfg = load_or_exit(config_path)
    if model not in cfg.models:
        fail(
            f"model {model!r} is not in the config",
            f"one of: {', '.join(cfg.models) or '(none)'}",
            EXIT_CONFIG,
        )
    try:
        seconds = float(Duration.parse(duration))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    now = datetime.now(UTC)
    until = (now + timedelta(seconds=seconds)).isoformat()
    store = control_store(cfg)
    controls = store.load().mute(Mute(model, until, feature, detector, reason), now)
    store.save(controls)
    covered = [
        a
        for a in known(cfg, (model,)).alerts.values()
        if Mute(model, until, feature, detector).matches(a.model, a.feature, a.detector)
    ]
    _mark(cfg, {a.id: {"muted_until": until if seconds > 0 else None} for a in covered})
    what = " ".join(x for x in (feature, detector) if x) or "every feature and detector"
    if seconds > 0:
        click.echo(f"muted {model} {what} until {until} ({len(covered)} existing alert(s) covered)")
    else:
        click.echo(f"unmuted {model} {what}")
