"""Who shipped a document: ECS ``agent.id`` and ``agent.name`` (pure).

``agent.id`` must stay the same across restarts of one agent and differ between agents. One agent
owns one ``data_dir`` on one host (the lock file enforces it), so the id is derived from the two:
a UUID (version 5) of the host name and the absolute ``data_dir``. Nothing is stored; the id
changes only when the host is renamed or the agent is given another ``data_dir``, which is a new
agent as far as its state is concerned too. ``agent.name`` is ``agent.name`` of the config, else
the host name (as Beats do).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

_NAMESPACE = uuid.UUID("6f1c1a43-3f55-5b0e-9d7e-5a1b7f2d9c10")  # inferwatch agents (fixed forever)


@dataclass(frozen=True)
class AgentIdentity:
    id: str
    name: str


def agent_identity(host: str, data_dir: Path, name: str | None = None) -> AgentIdentity:
    """The ``agent.id`` and ``agent.name`` of the agent on ``host`` keeping its state in
    ``data_dir``."""
    key = f"{host}\0{Path(data_dir).absolute()}"
    return AgentIdentity(str(uuid.uuid5(_NAMESPACE, key)), name or host)


__all__ = ["AgentIdentity", "agent_identity"]
