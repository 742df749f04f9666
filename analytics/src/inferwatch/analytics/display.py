"""How evaluations are shown on a terminal: findings as an aligned table (or JSON), and the notes
that say when nothing was tested."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from inferwatch.analytics.jobs import Evaluation
from inferwatch.analytics.model import Finding, Status
from inferwatch.analytics.wiring import Backends


def finding_rows(findings: Sequence[Finding]) -> list[tuple[str, ...]]:
    return [
        (f.severity, f.detector, f.version, f.feature or "-", f.key or "", f.status.value, f.message)
        for f in findings
    ]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 80) -> str:
    """A plain aligned text table; long cells are cut with an ellipsis."""
    cut = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cut)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cut]
    return "\n".join(lines)


FINDING_HEADER = ("severity", "detector", "version", "feature", "key", "status", "message")


def evaluation_notes(ev: Evaluation, chosen: Backends, config_path: Path) -> list[str]:
    """What kept an evaluation from testing anything: no logs in the window, or versions without
    a baseline. "nothing firing" alone would read as "all is well" when nothing was checked."""
    if not ev.counts:
        return [
            f"no prediction logs of {ev.model} in this window ({chosen.description}): nothing was "
            "tested; is the agent shipping (`inferwatch agent check`), is the model named "
            f"{ev.model!r} in the logs, or try another --at / --window"
        ]
    missing = [v for v in sorted(ev.counts) if chosen.baselines.load(ev.model, v) is None]
    if not missing:
        return []
    return [
        f"no baseline for {ev.model} version {', '.join(missing)}: its drift tests were skipped; "
        f"build one with `inferwatch baseline build -c {config_path} -m {ev.model} -v {missing[0]} "
        "--data train.csv`"
    ]


def print_evaluation(
    ev: Evaluation, as_json: bool, include_all: bool, notes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    shown = [f for f in ev.findings if include_all or f.status is Status.FIRING]
    dicts = [f.to_dict() for f in shown]
    if as_json:
        for note in notes:  # stdout stays a JSON array
            click.echo(f"note: {note}", err=True)
        for line in ev.skipped_lines():
            click.echo(f"skipped: {line}", err=True)
        return dicts
    click.echo(f"model {ev.model}, window {ev.window.start.isoformat()} .. {ev.window.end.isoformat()}")
    if shown:
        click.echo(render_table(FINDING_HEADER, finding_rows(shown)))
    else:
        click.echo("  no findings" if include_all else "  nothing firing")
    for note in notes:
        click.echo(f"  note: {note}")
    for line in ev.skipped_lines():  # a test that did not run must not pass for a quiet one
        click.echo(f"  skipped: {line}")
    for change in ev.changes:
        click.echo(
            f"  alert {change.transition}: {change.state.detector} {change.state.feature or ''}".rstrip()
        )
    for event in ev.incidents:
        click.echo(f"  incident {event.transition}: [{event.incident.severity}] {event.incident.message}")
    return dicts


__all__ = ["FINDING_HEADER", "evaluation_notes", "finding_rows", "print_evaluation", "render_table"]
