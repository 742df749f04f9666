"""ECS agent.id / agent.name: stable for one agent, distinct between agents."""

from __future__ import annotations

import uuid
from pathlib import Path

from inferwatch.agent.identity import agent_identity


def test_one_agent_keeps_its_id_and_another_data_dir_or_host_is_another_agent(tmp_path: Path) -> None:
    first = agent_identity("web-1", tmp_path / "data")
    assert first == agent_identity("web-1", tmp_path / "data")  # a restart
    assert uuid.UUID(first.id).version == 5
    assert first.id != agent_identity("web-1", tmp_path / "other").id
    assert first.id != agent_identity("web-2", tmp_path / "data").id
    assert first.name == "web-1"
    assert agent_identity("web-1", tmp_path / "data", "ingest-eu").name == "ingest-eu"
