"""The value each distribution registers for the ``inferwatch`` command (see ``inferwatch.core.cli``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    """One subcommand: its name, ``"module:attribute"`` of its click command (imported only when
    it runs) and the one-line help shown by ``inferwatch --help``."""

    name: str
    target: str
    help: str
