"""Fixtures the black-box scenarios share: a fault-injecting bulk endpoint on loopback, and the
agent processes a test starts (every one closed at the end, also when the test fails)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.bulk_server import BulkServer
from tests.scenario.harness import AgentProcess


@pytest.fixture
def server() -> Iterator[BulkServer]:
    with BulkServer() as srv:
        yield srv


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    made: list[AgentProcess] = []
    yield made
    for a in made:
        a.close()
