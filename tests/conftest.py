"""Shared fixtures. Integration tests need INFERWATCH_TEST_ES_URL; scenario tests run the daemon."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("INFERWATCH_TEST_ES_URL"):
        return
    skip = pytest.mark.skip(reason="set INFERWATCH_TEST_ES_URL to run against a real Elasticsearch")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
