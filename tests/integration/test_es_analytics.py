"""The analytics data side against a real Elasticsearch (INFERWATCH_TEST_ES_URL): the baselines
index, a baseline taken from logs, and one aggregation request per version however many events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics import es
from analytics.baseline import build_from_counts
from analytics.baseline_store import BASELINES_INDEX, ElasticsearchBaselineStore
from analytics.model import Baseline, FeatureBaseline, FeatureKind, Window
from analytics.sources.elasticsearch import ElasticsearchSource
from analytics.sources.local import LocalSource
from tests.contract.sources_fixtures import document, indexed, unique_model, write_local

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 22, 10, tzinfo=UTC)
KINDS: dict[str, FeatureKind] = {
    "inputs.age": "numeric",
    "inputs.country": "categorical",
    "inputs.review": "text",
}
COUNTRIES = ["DE", "FR", "US", "IT"]
WORDS = ["late", "again", "refund", "great", "box"]


def make_docs(model: str, n: int) -> list[dict[str, Any]]:
    docs = []
    for i in range(n):
        ts = (
            (START + timedelta(seconds=7200 * i / n))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        review = f"{WORDS[i % 5]} {WORDS[(i * 3) % 5]}" + (" zebra" if i % 50 == 0 else "")
        inputs = {"age": float(i % 90), "country": COUNTRIES[i % 4] if i % 20 else None, "review": review}
        docs.append(document(model, f"d{i}", ts, inputs))
    return docs


class CountingClient:
    """The real client, with its searches counted."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.searches = 0

    def search(self, **kwargs: Any) -> Any:
        self.searches += 1
        return self.client.search(**kwargs)


@pytest.fixture
def model_docs(es_client: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    model = unique_model()
    docs = make_docs(model, 2000)
    with indexed(es_client, model, docs):
        yield model, docs


def test_baselines_index_round_trip(es_client: Any, tmp_path: Path) -> None:
    model = unique_model()
    baseline = Baseline(
        model,
        "1",
        datetime(2026, 11, 22, tzinfo=UTC),
        "training:t.csv",
        10,
        {
            "inputs.c": FeatureBaseline(
                "inputs.c", "categorical", 10, 1, categories={f"v{i}": 1 for i in range(3000)}
            )
        },
    )
    store = ElasticsearchBaselineStore(es_client, tmp_path)
    try:
        store.save(baseline)
        (tmp_path / f"{model}@1.json").unlink()  # the next load must come from the index
        assert store.load(model, "1") == baseline
        assert es.get_document(es_client, BASELINES_INDEX, f"{model}:1") is not None
    finally:
        es_client.options(ignore_status=404).delete(index=BASELINES_INDEX, id=f"{model}:1")


def test_one_request_per_version_and_equal_to_the_local_store(
    es_client: Any, model_docs: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    model, docs = model_docs
    write_local(tmp_path, docs, per_segment=500)
    window = Window(START, START + timedelta(hours=2))
    local = build_from_counts(LocalSource(tmp_path), model, "1", window, KINDS, START)
    counting = CountingClient(es_client)
    remote = build_from_counts(ElasticsearchSource(counting), model, "1", window, KINDS, START)
    # Percentiles are estimates in Elasticsearch (TDigest): compare the edges loosely and the rest
    # exactly after counting the window again on the local edges.
    assert remote.rows == local.rows == 2000
    assert remote.features["inputs.country"] == local.features["inputs.country"]
    assert remote.features["inputs.review"] == local.features["inputs.review"]
    assert remote.hourly_volume == local.hourly_volume
    for a, b in zip(remote.features["inputs.age"].edges, local.features["inputs.age"].edges, strict=True):
        assert abs(a - b) <= 1.0
    counting.searches = 0
    tables = ElasticsearchSource(counting).window_counts(model, "1", window, local, KINDS)
    assert counting.searches == 1
    expected = LocalSource(tmp_path).window_counts(model, "1", window, local, KINDS)
    assert tables.numeric.equals(expected.numeric)
    assert tables.text_docs.equals(expected.text_docs)
