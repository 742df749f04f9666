"""Fixtures for tests against a real Elasticsearch, selected by environment variables:

- ``INFERWATCH_TEST_ES_URL`` (required; without it every ``integration`` test is skipped by the root
  conftest), e.g. ``https://127.0.0.1:9200``;
- ``INFERWATCH_TEST_ES_API_KEY`` or ``INFERWATCH_TEST_ES_USER`` + ``INFERWATCH_TEST_ES_PASSWORD``;
- ``INFERWATCH_TEST_ES_CA``: a CA certificate file for https (verification stays on).

``es_config`` is the ``ElasticsearchConfig`` the agent and setup would get from YAML;
``es_client`` an official client made from it (``analytics.es.make_client``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferwatch.core.config import ElasticsearchConfig, Secret
from inferwatch.core.configschema import Duration


@pytest.fixture(scope="session")
def es_config() -> ElasticsearchConfig:
    url = os.environ.get("INFERWATCH_TEST_ES_URL")
    if not url:
        pytest.skip("set INFERWATCH_TEST_ES_URL to run against a real Elasticsearch")
    api_key = os.environ.get("INFERWATCH_TEST_ES_API_KEY")
    user = os.environ.get("INFERWATCH_TEST_ES_USER")
    password = os.environ.get("INFERWATCH_TEST_ES_PASSWORD")
    ca = os.environ.get("INFERWATCH_TEST_ES_CA")
    return ElasticsearchConfig(
        hosts=tuple(h.strip() for h in url.split(",") if h.strip()),
        api_key=Secret(api_key) if api_key else None,
        username=user or None,
        password=Secret(password) if password else None,
        ca_certs=Path(ca) if ca else None,
        request_timeout=Duration(30.0),
    )


@pytest.fixture(scope="session")
def es_client(es_config: ElasticsearchConfig) -> Iterator[Any]:
    from inferwatch.analytics.es import make_client

    client = make_client(es_config)
    try:
        yield client
    finally:
        client.close()
