"""The analytics data side against a real Elasticsearch (INFERWATCH_TEST_ES_URL): the baselines
index, a baseline taken from logs, and one aggregation request per version however many events."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from inferwatch.analytics import es
from inferwatch.analytics.alerts.sink import ElasticsearchAlertSink
from inferwatch.analytics.alerts.window import apply_findings
from inferwatch.analytics.baseline import build_from_counts
from inferwatch.analytics.baseline.store import ElasticsearchBaselineStore
from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind, Finding, Status, Window
from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource
from inferwatch.analytics.sources.local import LocalSource
from inferwatch.core.contract import BASELINES_INDEX
from inferwatch.core.contract import dataset as dataset_for
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
    had_index = bool(es_client.indices.exists(index=BASELINES_INDEX))
    try:
        store.save(baseline)
        (tmp_path / f"{model}@1.json").unlink()  # the next load must come from the index
        assert store.load(model, "1") == baseline
        assert es.get_document(es_client, BASELINES_INDEX, f"{model}:1") is not None
    finally:
        if had_index:
            es_client.options(ignore_status=404).delete(index=BASELINES_INDEX, id=f"{model}:1")
        else:  # this run created it
            es_client.options(ignore_status=404).indices.delete(index=BASELINES_INDEX)


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


def test_a_model_without_a_data_stream_gives_empty_tables(es_client: Any) -> None:
    """A configured namespace makes the index a concrete name; before the model ships anything
    Elasticsearch must answer with empty results (``ignore_unavailable``), not 404."""
    model = unique_model()
    window = Window(START, START + timedelta(hours=2))
    source = ElasticsearchSource(es_client, "default")
    counts = source.window_counts(model, "1", window, None, KINDS)
    assert counts.docs == 0
    assert counts.presence["present"].tolist() == [0, 0, 0]
    assert counts.categories.empty and counts.tokens.empty
    volume = source.model_counts(model, window)
    assert volume.versions.empty and volume.volume["docs"].tolist() == [0, 0]


def test_oov_script_runs_over_backing_indices_without_the_tokens_field(es_client: Any) -> None:
    """Two data streams under one model pattern; one never saw a text value, so its backing index
    has no ``ml.tokens.review`` mapping. The Painless OOV script (``doc.containsKey``) and the
    ``exists`` filter must not fail there, and the counts must equal the local store's."""
    model = unique_model()
    other = f"logs-{dataset_for(model)}-other"
    with_text = [
        document(model, "t1", "2026-11-22T10:05:00.000Z", {"age": 1.0, "review": "late again"}),
        document(model, "t2", "2026-11-22T10:06:00.000Z", {"age": 2.0, "review": "zebra crossing"}),
    ]
    without_text = [document(model, "n1", "2026-11-22T10:07:00.000Z", {"age": 3.0, "country": "DE"})]
    baseline = Baseline(
        model,
        "1",
        START,
        "test",
        10,
        {
            "inputs.review": FeatureBaseline(
                "inputs.review", "text", 10, 0, vocabulary={"late": 5, "again": 5}
            )
        },
    )
    window = Window(START, START + timedelta(hours=1))
    with indexed(es_client, model, with_text):
        try:
            operations: list[dict[str, Any]] = []
            for doc in without_text:
                body = {k: v for k, v in doc.items() if k != "_id"}
                body["data_stream"] = {**body["data_stream"], "namespace": "other"}
                operations += [{"create": {"_index": other, "_id": doc["_id"]}}, body]
            response = es_client.bulk(operations=operations, refresh="wait_for")
            assert not response["errors"], response["items"]
            counts = ElasticsearchSource(es_client).window_counts(model, "1", window, baseline, KINDS)
        finally:
            es_client.options(ignore_status=404).indices.delete_data_stream(name=other)
    assert counts.docs == 3
    assert counts.text_docs.to_dict("records") == [{"feature": "inputs.review", "docs": 2, "oov_docs": 1}]
    presence = dict(zip(counts.presence["feature"], counts.presence["present"], strict=True))
    assert presence == {"inputs.age": 3, "inputs.country": 1, "inputs.review": 2}


def test_alert_sink_writes_non_finite_values_and_replays_idempotently(es_client: Any) -> None:
    """The alert document is indexed by id, the history event created in a data stream; an
    infinite effect (a ratio over a zero baseline) must not make Elasticsearch refuse either,
    and writing the same changes again stores no second history event."""
    suffix = uuid.uuid4().hex[:10]
    alerts_index = f"inferwatch-itest-alerts-{suffix}"
    incidents_index = f"inferwatch-itest-incidents-{suffix}"
    history = f"logs-inferwatch_itest{suffix}.history-default"
    window = Window(START, START + timedelta(hours=1))
    finding = Finding(
        detector="unseen_rate",
        model="itest",
        version="1",
        feature="inputs.country",
        status=Status.FIRING,
        severity="warning",
        message="inputs.country: 5% unseen values vs none in training",
        window=window,
        strong=True,
        effect=math.inf,
        p_value=1e-9,
        observed={"rate": 0.05, "ratio": math.inf},
    )
    _, _, update = apply_findings({}, {}, [finding], window.end, [("itest", "1")])
    sink = ElasticsearchAlertSink(
        es_client, alerts_index=alerts_index, history_stream=history, incidents_index=incidents_index
    )
    try:
        sink.write(update, window.end.isoformat())
        sink.write(update, window.end.isoformat())  # replay: documents updated, history 409
        (change,) = update.alerts
        alert = es_client.get(index=alerts_index, id=change.state.id)["_source"]
        assert alert["effect"] is None and alert["observed"] == {"rate": 0.05, "ratio": None}
        assert es_client.count(index=history)["count"] == 1
    finally:
        es_client.options(ignore_status=404).indices.delete_data_stream(name=history)
        es_client.options(ignore_status=404).indices.delete(
            index=[alerts_index, incidents_index, history], ignore_unavailable=True
        )
