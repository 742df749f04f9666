"""Query builders give exact bodies; parsers turn responses in Elasticsearch's documented shapes
into exact count tables; the Elasticsearch source's request count does not grow with events."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from inferwatch.analytics import queries
from inferwatch.analytics.es import ElasticsearchError
from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind, Window
from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource
from inferwatch.analytics.sources.tables import (
    categories_table,
    numeric_table,
    presence_table,
    text_docs_table,
    tokens_table,
    versions_table,
    volume_table,
)
from inferwatch.core import contract

MODEL = "churn-classifier"
WINDOW = Window(datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 12, tzinfo=UTC))
KINDS: dict[str, FeatureKind] = {
    "inputs.age": "numeric",
    "inputs.country": "categorical",
    "inputs.review": "text",
    "outputs.label": "categorical",
}
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
            "inputs.country", "categorical", 100, 0, categories={"FR": 40, "DE": 60}
        ),
        "inputs.review": FeatureBaseline(
            "inputs.review", "text", 100, 0, vocabulary={"late": 30, "again": 20}
        ),
    },
)
QUERY = {
    "bool": {
        "filter": [
            {"term": {"ml.model.name": MODEL}},
            {"term": {"ml.model.version": "1"}},
            {
                "range": {
                    "@timestamp": {
                        "gte": "2026-11-22T10:00:00+00:00",
                        "lt": "2026-11-22T12:00:00+00:00",
                        "format": "strict_date_optional_time",
                    }
                }
            },
        ]
    }
}


def test_names_follow_the_data_stream_rules() -> None:
    assert contract.dataset("Churn-Classifier v2") == "inferwatch.churn_classifier_v2"
    assert queries.search_target(MODEL) == "logs-inferwatch.churn_classifier-*"
    assert queries.search_target(MODEL, ["prod"]) == "logs-inferwatch.churn_classifier-prod"
    assert (
        queries.search_target(MODEL, ["default", "prod", "default"])
        == "logs-inferwatch.churn_classifier-default,logs-inferwatch.churn_classifier-prod"
    )
    assert queries.field_of("inputs.user.age") == "ml.inputs.user.age"
    assert queries.tokens_field("inputs.review") == "ml.tokens.review"


def test_window_body_is_one_request_with_every_aggregation() -> None:
    body = queries.window_body(MODEL, "1", WINDOW, BASELINE, KINDS)
    assert body == {
        "size": 0,
        "track_total_hits": True,
        "query": QUERY,
        "aggs": {
            "presence": {
                "filters": {
                    "filters": {
                        "0": {"exists": {"field": "ml.inputs.age"}},
                        "1": {"exists": {"field": "ml.inputs.country"}},
                        "2": {"exists": {"field": "ml.inputs.review"}},
                        "3": {"exists": {"field": "ml.outputs.label"}},
                    }
                }
            },
            "cat_seen_0": {"terms": {"field": "ml.inputs.country", "include": ["DE", "FR"], "size": 2}},
            "cat_new_0": {"terms": {"field": "ml.inputs.country", "size": 1000, "exclude": ["DE", "FR"]}},
            "cat_new_1": {"terms": {"field": "ml.outputs.label", "size": 1000}},
            "num_0": {
                "range": {
                    "field": "ml.inputs.age",
                    "ranges": [{"to": 10.0}, {"from": 10.0, "to": 50.0}, {"from": 50.0}],
                }
            },
            "tok_seen_0": {"terms": {"field": "ml.tokens.review", "include": ["again", "late"], "size": 2}},
            "tok_new_0": {"terms": {"field": "ml.tokens.review", "size": 1000, "exclude": ["again", "late"]}},
            "txt_0": {
                "filter": {"exists": {"field": "ml.tokens.review"}},
                "aggs": {
                    "oov": {
                        "filter": {
                            "script": {
                                "script": {
                                    "source": queries.OOV_SCRIPT,
                                    "lang": "painless",
                                    "params": {"field": "ml.tokens.review", "vocab": {"again": 1, "late": 1}},
                                }
                            }
                        }
                    }
                },
            },
        },
    }


def test_model_body_counts_versions_and_every_hour() -> None:
    body = queries.model_body(MODEL, WINDOW)
    assert body["query"] == {"bool": {"filter": [QUERY["bool"]["filter"][0], QUERY["bool"]["filter"][2]]}}
    assert body["aggs"] == {
        "versions": {"terms": {"field": "ml.model.version", "size": 1000}},
        "volume": {
            "date_histogram": {
                "field": "@timestamp",
                "fixed_interval": "1h",
                "min_doc_count": 0,
                "extended_bounds": {"min": 1795341600000, "max": 1795348799999},
            }
        },
    }


def terms(buckets: list[tuple[Any, int]], other: int = 0, error: int = 0) -> dict[str, Any]:
    return {
        "doc_count_error_upper_bound": error,
        "sum_other_doc_count": other,
        "buckets": [{"key": k, "doc_count": n} for k, n in buckets],
    }


RESPONSE: dict[str, Any] = {
    "took": 3,
    "timed_out": False,
    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
    "hits": {"total": {"value": 50, "relation": "eq"}, "max_score": None, "hits": []},
    "aggregations": {
        "presence": {
            "buckets": {
                "0": {"doc_count": 48},
                "1": {"doc_count": 45},
                "2": {"doc_count": 30},
                "3": {"doc_count": 0},
            }
        },
        "cat_seen_0": terms([("DE", 30), ("FR", 10)]),
        "cat_new_0": terms([("XX", 4), (4.0, 1)]),  # a double-mapped value comes back as a number
        "cat_new_1": terms([]),
        "num_0": {
            "buckets": [
                {"key": "*-10.0", "to": 10.0, "doc_count": 5},
                {"key": "10.0-50.0", "from": 10.0, "to": 50.0, "doc_count": 40},
                {"key": "50.0-*", "from": 50.0, "doc_count": 3},
            ]
        },
        "tok_seen_0": terms([("late", 12)]),
        "tok_new_0": terms([("refund", 7), ("broken", 2)]),
        "txt_0": {"doc_count": 28, "oov": {"doc_count": 8}},
    },
}


def test_parse_window_gives_exact_tables() -> None:
    counts = queries.parse_window(RESPONSE, MODEL, "1", WINDOW, BASELINE, KINDS)
    assert counts.docs == 50
    assert_frame_equal(
        counts.presence,
        presence_table(
            [
                ("inputs.age", 48, 2),
                ("inputs.country", 45, 5),
                ("inputs.review", 30, 20),
                ("outputs.label", 0, 50),
            ]
        ),
    )
    assert_frame_equal(
        counts.categories,
        categories_table(
            [
                ("inputs.country", "4", 1, False),
                ("inputs.country", "DE", 30, True),
                ("inputs.country", "FR", 10, True),
                ("inputs.country", "XX", 4, False),
            ]
        ),
    )
    assert_frame_equal(
        counts.numeric,
        numeric_table(
            [
                ("inputs.age", 0, -math.inf, 10.0, 5),
                ("inputs.age", 1, 10.0, 50.0, 40),
                ("inputs.age", 2, 50.0, math.inf, 3),
            ]
        ),
    )
    assert_frame_equal(
        counts.tokens,
        tokens_table(
            [
                ("inputs.review", "broken", 2, False),
                ("inputs.review", "late", 12, True),
                ("inputs.review", "refund", 7, False),
            ]
        ),
    )
    assert_frame_equal(counts.text_docs, text_docs_table([("inputs.review", 28, 8)]))


def test_without_a_baseline_the_numeric_bin_is_the_presence_count() -> None:
    body = queries.window_body(MODEL, "1", WINDOW, None, KINDS)
    assert "num_0" not in body["aggs"] and "cat_seen_0" not in body["aggs"]
    assert body["aggs"]["cat_new_0"] == {"terms": {"field": "ml.inputs.country", "size": 1000}}
    response = {
        "hits": {"total": {"value": 50, "relation": "eq"}},
        "aggregations": {"presence": RESPONSE["aggregations"]["presence"]},
    }
    counts = queries.parse_window(response, MODEL, "1", WINDOW, None, KINDS)
    assert_frame_equal(counts.numeric, numeric_table([("inputs.age", 0, -math.inf, math.inf, 48)]))
    assert_frame_equal(counts.text_docs, text_docs_table([("inputs.review", 0, 0)]))
    assert counts.categories.empty and counts.tokens.empty


def test_boolean_buckets_use_key_as_string() -> None:
    response = {
        "aggregations": {"cat_new_0": {"buckets": [{"key": 1, "key_as_string": "true", "doc_count": 3}]}}
    }
    counts = queries.parse_window(response, MODEL, "1", WINDOW, None, {"inputs.flag": "categorical"})
    assert_frame_equal(counts.categories, categories_table([("inputs.flag", "true", 3, False)]))


def test_overflowing_or_approximate_terms_ask_for_composite_pages() -> None:
    response = {
        "aggregations": {
            "cat_new_0": terms([("a", 1)], other=5),
            "cat_new_1": terms([("b", 1)], error=2),
            "tok_new_0": terms([("c", 1)]),
        }
    }
    assert queries.incomplete_fields(response, KINDS) == ["ml.inputs.country", "ml.outputs.label"]


def test_composite_pages_and_their_after_key() -> None:
    body = queries.composite_body(MODEL, "1", WINDOW, "ml.inputs.country", {"v": "DE"})
    assert body == {
        "size": 0,
        "query": QUERY,
        "aggs": {
            "all": {
                "composite": {
                    "size": queries.COMPOSITE_PAGE_SIZE,
                    "sources": [{"v": {"terms": {"field": "ml.inputs.country"}}}],
                    "after": {"v": "DE"},
                }
            }
        },
    }
    page = {
        "aggregations": {
            "all": {
                "after_key": {"v": "FR"},
                "buckets": [{"key": {"v": "DE"}, "doc_count": 3}, {"key": {"v": "FR"}, "doc_count": 2}],
            }
        }
    }
    assert queries.parse_composite(page) == ({"DE": 3, "FR": 2}, {"v": "FR"})
    assert queries.parse_composite({"aggregations": {"all": {"buckets": []}}}) == ({}, None)


def test_complete_counts_replace_the_terms_results() -> None:
    complete = {"ml.inputs.country": {"DE": 31, "XX": 4, "YY": 9}}
    counts = queries.parse_window(RESPONSE, MODEL, "1", WINDOW, BASELINE, KINDS, complete)
    assert_frame_equal(
        counts.categories,
        categories_table(
            [
                ("inputs.country", "DE", 31, True),
                ("inputs.country", "XX", 4, False),
                ("inputs.country", "YY", 9, False),
            ]
        ),
    )


def test_parse_model_gives_versions_and_volume() -> None:
    response = {
        "hits": {"total": {"value": 12, "relation": "eq"}},
        "aggregations": {
            "versions": terms([("1", 10), ("2", 2)]),
            "volume": {
                "buckets": [
                    {"key_as_string": "2026-11-22T10:00:00.000Z", "key": 1795341600000, "doc_count": 12},
                    {"key_as_string": "2026-11-22T11:00:00.000Z", "key": 1795345200000, "doc_count": 0},
                ]
            },
        },
    }
    counts = queries.parse_model(response, MODEL, WINDOW)
    assert_frame_equal(counts.versions, versions_table([("1", 10), ("2", 2)]))
    assert_frame_equal(
        counts.volume,
        volume_table([(pd.Timestamp("2026-11-22T10:00Z"), 12), (pd.Timestamp("2026-11-22T11:00Z"), 0)]),
    )


class StubClient:
    """Answers searches with canned responses and records every request."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def search(self, *, index: str, **body: Any) -> Any:
        self.requests.append((index, body))
        return self.answer(body)


def test_source_pages_through_composite_only_for_overflowing_fields() -> None:
    pages = [
        {
            "after_key": {"v": "b"},
            "buckets": [{"key": {"v": "a"}, "doc_count": 5}, {"key": {"v": "b"}, "doc_count": 4}],
        },
        {"after_key": {"v": "c"}, "buckets": [{"key": {"v": "c"}, "doc_count": 1}]},
        {"buckets": []},
    ]

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if "all" in body["aggs"]:
            return {"aggregations": {"all": pages.pop(0)}}
        return {"hits": {"total": {"value": 10}}, "aggregations": {"cat_new_0": terms([("a", 5)], other=5)}}

    client = StubClient(answer)
    kinds: dict[str, FeatureKind] = {"inputs.country": "categorical"}
    counts = ElasticsearchSource(client, "prod").window_counts(MODEL, "1", WINDOW, None, kinds)
    assert [i for i, _ in client.requests] == ["logs-inferwatch.churn_classifier-prod"] * 4
    assert client.requests[2][1]["aggs"]["all"]["composite"]["after"] == {"v": "b"}
    assert_frame_equal(
        counts.categories,
        categories_table(
            [
                ("inputs.country", "a", 5, False),
                ("inputs.country", "b", 4, False),
                ("inputs.country", "c", 1, False),
            ]
        ),
    )


@pytest.mark.parametrize("events", [10, 10_000, 10_000_000])
def test_source_request_count_does_not_depend_on_events(events: int) -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        aggs = body["aggs"]
        out: dict[str, Any] = {k: terms([("x", events)]) for k in aggs if k.startswith(("cat_", "tok_"))}
        out["presence"] = {
            "buckets": {k: {"doc_count": events} for k in aggs["presence"]["filters"]["filters"]}
        }
        return {"hits": {"total": {"value": events}}, "aggregations": out}

    client = StubClient(answer)
    ElasticsearchSource(client).window_counts(MODEL, "1", WINDOW, BASELINE, KINDS)
    assert len(client.requests) == 1


def test_search_failures_become_elasticsearch_errors() -> None:
    from elastic_transport import ConnectionError as TransportConnectionError

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        raise TransportConnectionError("connection refused")

    with pytest.raises(ElasticsearchError, match=r"search on logs-inferwatch\.churn_classifier-\* failed"):
        ElasticsearchSource(StubClient(answer)).model_counts(MODEL, WINDOW)


def test_no_features_is_a_plain_document_count() -> None:
    body = queries.window_body(MODEL, "1", WINDOW, None, {})
    assert body == {"size": 0, "track_total_hits": True, "query": QUERY}
    counts = queries.parse_window(
        {"hits": {"total": {"value": 7, "relation": "eq"}}}, MODEL, "1", WINDOW, None, {}
    )
    assert counts.docs == 7
    assert counts.presence.empty and counts.numeric.empty and counts.text_docs.empty


def test_a_large_baseline_is_split_under_the_bucket_budget() -> None:
    assert queries.window_bodies(MODEL, "1", WINDOW, BASELINE, KINDS) == [
        queries.window_body(MODEL, "1", WINDOW, BASELINE, KINDS)
    ]
    bodies = queries.window_bodies(MODEL, "1", WINDOW, BASELINE, KINDS, max_buckets=1500)
    assert [sorted(b["aggs"]) for b in bodies] == [
        ["cat_new_0", "cat_seen_0", "presence"],  # 4 + 2 + 1000 buckets at most
        ["cat_new_1", "num_0", "tok_seen_0"],  # 1000 + 3 + 2
        ["tok_new_0", "txt_0"],  # 1000 + 2
    ]
    assert all(b["query"] == QUERY and b["size"] == 0 for b in bodies)
    parts = [
        {"hits": RESPONSE["hits"], "aggregations": {k: RESPONSE["aggregations"].get(k) for k in b["aggs"]}}
        for b in bodies
    ]
    merged = queries.merge_responses(parts)
    whole = queries.parse_window(RESPONSE, MODEL, "1", WINDOW, BASELINE, KINDS)
    split = queries.parse_window(merged, MODEL, "1", WINDOW, BASELINE, KINDS)
    for table in ("presence", "categories", "numeric", "tokens", "text_docs"):
        assert_frame_equal(getattr(split, table), getattr(whole, table))


def test_volume_has_every_hour_even_when_the_response_has_no_buckets() -> None:
    counts = queries.parse_model({"hits": {"total": {"value": 0, "relation": "eq"}}}, MODEL, WINDOW)
    assert counts.versions.empty
    assert_frame_equal(
        counts.volume,
        volume_table([(pd.Timestamp("2026-11-22T10:00Z"), 0), (pd.Timestamp("2026-11-22T11:00Z"), 0)]),
    )


def test_searches_tolerate_a_data_stream_that_does_not_exist_yet() -> None:
    """With a configured namespace the index is a concrete name; Elasticsearch answers a missing
    one with 404 unless ``ignore_unavailable`` is set, and then an empty response (no
    ``aggregations``) that must give empty tables, not an error."""
    empty = {
        "_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": 0.0, "hits": []},
    }
    client = StubClient(lambda body: empty)
    source = ElasticsearchSource(client, "default")
    counts = source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS)
    model = source.model_counts(MODEL, WINDOW)
    assert [i for i, _ in client.requests] == ["logs-inferwatch.churn_classifier-default"] * 2
    for _, params in client.requests:
        assert params["ignore_unavailable"] is True and params["allow_no_indices"] is True
    assert counts.docs == 0
    assert counts.presence["present"].tolist() == [0, 0, 0, 0]
    assert counts.categories.empty and counts.tokens.empty
    assert counts.numeric["count"].tolist() == [0, 0, 0]
    assert_frame_equal(counts.text_docs, text_docs_table([("inputs.review", 0, 0)]))
    assert model.versions.empty and model.volume["docs"].tolist() == [0, 0]


def test_the_worker_searches_the_data_stream_the_agent_writes_even_for_a_long_model_name() -> None:
    from inferwatch.core.contract import data_stream, model_dataset

    for model in ("churn-classifier", "Churn Classifier v2", "m" * 150):
        assert data_stream(model, "default") == f"logs-inferwatch.{model_dataset(model)}-default"
    assert len(contract.dataset("m" * 150)) == len("inferwatch.") + 100
