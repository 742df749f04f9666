"""One suite, every count source: the same documents go into the local store and (when
INFERWATCH_TEST_ES_URL is set) into a real Elasticsearch data stream; each source must give the
expected tables, and the two must give equal tables for every window and baseline tried."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind, Window
from inferwatch.analytics.sources.base import CountSource
from inferwatch.analytics.sources.local import LocalSource
from inferwatch.analytics.sources.tables import (
    categories_table,
    numeric_table,
    presence_table,
    text_docs_table,
    tokens_table,
    versions_table,
    volume_table,
)
from tests.contract.sources_fixtures import document, es_config_from_env, indexed, unique_model, write_local

MODEL = unique_model()
WINDOW = Window(datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))
KINDS: dict[str, FeatureKind] = {
    "inputs.age": "numeric",
    "inputs.country": "categorical",
    "inputs.review": "text",
    "inputs.gone": "numeric",
    "outputs.label": "categorical",
    "outputs.score": "numeric",
}


def _docs() -> list[dict[str, Any]]:
    d = document
    first = d(
        MODEL,
        "d1",
        "2026-11-22T10:05:00.000Z",
        {"age": 41.0, "country": "DE", "review": "Late again!"},
        outputs={"label": "churn", "score": 0.8},
    )
    return [
        first,
        d(MODEL, "d2", "2026-11-22T10:10:00.000Z", {"age": 37, "country": "FR", "review": "new words here"}),
        d(MODEL, "d3", "2026-11-22T10:20:00.000Z", {"age": None, "country": None}, outputs={"score": 0.1}),
        d(MODEL, "d4", "2026-11-22T10:30:00.000Z", {"age": 99.5, "country": "XX", "review": "late"}),
        d(MODEL, "d5", "2026-11-22T10:40:00.000Z", {"age": 10.0, "country": "DE"}, outputs={"label": "stay"}),
        d(MODEL, "d6", "2026-11-22T10:45:00.000Z", {"age": "12.5", "country": "a" * 1025}),
        dict(first),  # replayed: counted once
        d(MODEL, "d7", "2026-11-22T11:00:00.000Z", {"country": "DE"}),  # the window's end is exclusive
        d(MODEL, "d8", "2026-11-22T09:59:59.999Z", {"country": "DE"}),
        d(MODEL, "d9", "2026-11-22T10:15:00.000Z", {"country": "DE", "review": "late"}, version="2"),
        d(MODEL, "d10", "2026-11-22T12:30:00.000Z", {"country": "FR"}),
    ]


DOCS = _docs()
BASELINE = Baseline(
    MODEL,
    "1",
    datetime(2026, 11, 1, tzinfo=UTC),
    "test",
    100,
    {
        "inputs.age": FeatureBaseline(
            "inputs.age", "numeric", 100, 0, edges=(10.0, 50.0), bin_counts=(30, 40, 30)
        ),
        "inputs.country": FeatureBaseline(
            "inputs.country", "categorical", 100, 0, categories={"DE": 60, "FR": 40}
        ),
        "inputs.review": FeatureBaseline(
            "inputs.review", "text", 100, 0, vocabulary={"late": 30, "again": 20}
        ),
        "outputs.score": FeatureBaseline(
            "outputs.score", "numeric", 100, 0, edges=(0.5,), bin_counts=(50, 50)
        ),
    },
)


@pytest.fixture(scope="module")
def local_source(tmp_path_factory: pytest.TempPathFactory) -> LocalSource:
    store: Path = tmp_path_factory.mktemp("store")
    write_local(store, DOCS)
    return LocalSource(store)


@pytest.fixture(scope="module")
def es_source() -> Iterator[CountSource]:
    cfg = es_config_from_env()
    if cfg is None:
        pytest.skip("set INFERWATCH_TEST_ES_URL to run the Elasticsearch half of the contract")
    from inferwatch.analytics.es import make_client
    from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource

    client = make_client(cfg)
    try:
        with indexed(client, MODEL, DOCS):
            yield ElasticsearchSource(client)
    finally:
        client.close()


@pytest.fixture(params=["local", "elasticsearch"])
def source(request: pytest.FixtureRequest) -> CountSource:
    name = "local_source" if request.param == "local" else "es_source"
    source: CountSource = request.getfixturevalue(name)
    return source


def test_window_tables(source: CountSource) -> None:
    counts = source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS)
    assert counts.docs == 6
    assert_frame_equal(
        counts.presence,
        presence_table(
            [
                ("inputs.age", 5, 1),
                ("inputs.country", 4, 2),
                ("inputs.gone", 0, 6),
                ("inputs.review", 3, 3),
                ("outputs.label", 2, 4),
                ("outputs.score", 2, 4),
            ]
        ),
    )
    assert_frame_equal(
        counts.categories,
        categories_table(
            [
                ("inputs.country", "DE", 2, True),
                ("inputs.country", "FR", 1, True),
                ("inputs.country", "XX", 1, False),
                ("outputs.label", "churn", 1, False),
                ("outputs.label", "stay", 1, False),
            ]
        ),
    )
    inf = math.inf
    assert_frame_equal(
        counts.numeric,
        numeric_table(
            [
                ("inputs.age", 0, -inf, 10.0, 0),
                ("inputs.age", 1, 10.0, 50.0, 4),  # 41, 37, 10 (lower edges are inclusive), "12.5"
                ("inputs.age", 2, 50.0, inf, 1),
                ("inputs.gone", 0, -inf, inf, 0),
                ("outputs.score", 0, -inf, 0.5, 1),
                ("outputs.score", 1, 0.5, inf, 1),
            ]
        ),
    )
    assert_frame_equal(
        counts.tokens,
        tokens_table(
            [
                ("inputs.review", "again", 1, True),
                ("inputs.review", "here", 1, False),
                ("inputs.review", "late", 2, True),
                ("inputs.review", "new", 1, False),
                ("inputs.review", "words", 1, False),
            ]
        ),
    )
    assert_frame_equal(counts.text_docs, text_docs_table([("inputs.review", 3, 1)]))


def test_model_tables(source: CountSource) -> None:
    counts = source.model_counts(MODEL, Window(WINDOW.start, datetime(2026, 11, 22, 12, 30, tzinfo=UTC)))
    assert_frame_equal(counts.versions, versions_table([("1", 7), ("2", 1)]))
    assert_frame_equal(
        counts.volume,
        volume_table(
            [
                (pd.Timestamp("2026-11-22T10:00Z"), 7),
                (pd.Timestamp("2026-11-22T11:00Z"), 1),
                (pd.Timestamp("2026-11-22T12:00Z"), 0),  # 12:30 is outside [10:00, 12:30)
            ]
        ),
    )


WINDOWS = [
    WINDOW,
    Window(datetime(2026, 11, 22, 9, 30, tzinfo=UTC), datetime(2026, 11, 22, 13, tzinfo=UTC)),
    Window(datetime(2026, 11, 22, 10, 12, tzinfo=UTC), datetime(2026, 11, 22, 10, 41, tzinfo=UTC)),
    Window(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)),
]


@pytest.mark.parametrize("window", WINDOWS, ids=["hour", "wide", "partial", "empty"])
@pytest.mark.parametrize("with_baseline", [True, False], ids=["baseline", "no-baseline"])
@pytest.mark.parametrize("version", ["1", "2", "9"])
def test_sources_agree(
    local_source: LocalSource, es_source: CountSource, window: Window, with_baseline: bool, version: str
) -> None:
    baseline = BASELINE if with_baseline else None
    local = local_source.window_counts(MODEL, version, window, baseline, KINDS)
    remote = es_source.window_counts(MODEL, version, window, baseline, KINDS)
    assert remote.docs == local.docs
    for table in ("presence", "categories", "numeric", "tokens", "text_docs"):
        assert_frame_equal(getattr(remote, table), getattr(local, table), obj=table)
    local_model = local_source.model_counts(MODEL, window)
    remote_model = es_source.model_counts(MODEL, window)
    assert_frame_equal(remote_model.versions, local_model.versions)
    assert_frame_equal(remote_model.volume, local_model.volume)


def test_sources_agree_when_values_overflow_the_terms_size(
    local_source: LocalSource, es_source: CountSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a terms size of 1 every unseen value/token set overflows: Elasticsearch must re-count
    those fields exactly with composite pages and still match the local store."""
    from inferwatch.analytics import queries

    monkeypatch.setattr(queries, "UNSEEN_TERMS_SIZE", 1)
    monkeypatch.setattr(queries, "COMPOSITE_PAGE_SIZE", 2)
    for baseline in (BASELINE, None):
        local = local_source.window_counts(MODEL, "1", WINDOWS[1], baseline, KINDS)
        remote = es_source.window_counts(MODEL, "1", WINDOWS[1], baseline, KINDS)
        assert_frame_equal(remote.categories, local.categories)
        assert_frame_equal(remote.tokens, local.tokens)
