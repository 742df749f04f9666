from __future__ import annotations

import email.utils

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferwatch.agent.model import ItemResult, Outcome
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.outputs.classify import (
    MalformedResponse,
    classify_item,
    classify_response,
    error_summary,
    outcome_for,
    retry_after,
)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.CREATED),
        (201, Outcome.CREATED),
        (409, Outcome.DUPLICATE),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (400, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (413, Outcome.REJECTED),
    ],
)
def test_status_buckets(status: int, outcome: Outcome) -> None:
    assert outcome_for(status) is outcome
    assert classify_item(status, None).outcome is outcome


def test_item_keeps_error_type_and_reason_with_cause() -> None:
    error = {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [ml.inputs.age] of type [double]",
        "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "x"'},
    }
    assert classify_item(400, error) == ItemResult(
        Outcome.REJECTED,
        400,
        "mapper_parsing_exception",
        'failed to parse field [ml.inputs.age] of type [double] (caused by illegal_argument_exception: For input string: "x")',
    )


def test_reason_is_capped() -> None:
    result = classify_item(400, {"type": "x", "reason": "r" * 10_000})
    assert len(result.error_reason) == 2000


def test_response_without_errors_is_all_created() -> None:
    answer = {"took": 3, "errors": False, "items": [{"create": {"status": 201}}] * 3}
    assert classify_response(orjson.dumps(answer)) == [ItemResult(Outcome.CREATED, 201)] * 3


def test_response_with_mixed_items_in_order() -> None:
    answer = {
        "errors": True,
        "items": [
            {"create": {"_id": "a", "status": 201}},
            {
                "create": {
                    "_id": "b",
                    "status": 409,
                    "error": {"type": "version_conflict_engine_exception", "reason": "exists"},
                }
            },
            {
                "create": {
                    "_id": "c",
                    "status": 429,
                    "error": {"type": "es_rejected_execution_exception", "reason": "busy"},
                }
            },
            {
                "create": {
                    "_id": "d",
                    "status": 400,
                    "error": {"type": "document_parsing_exception", "reason": "bad"},
                }
            },
            {
                "create": {
                    "_id": "e",
                    "status": 503,
                    "error": {"type": "unavailable_shards_exception", "reason": "no"},
                }
            },
        ],
    }
    results = classify_response(orjson.dumps(answer))
    assert [(r.outcome, r.status, r.error_type) for r in results] == [
        (Outcome.CREATED, 201, ""),
        (Outcome.DUPLICATE, 409, "version_conflict_engine_exception"),
        (Outcome.RETRY, 429, "es_rejected_execution_exception"),
        (Outcome.REJECTED, 400, "document_parsing_exception"),
        (Outcome.RETRY, 503, "unavailable_shards_exception"),
    ]


def test_item_without_status_is_retried_not_lost() -> None:
    results = classify_response(b'{"errors":true,"items":[{"create":{"_id":"a"}}]}')
    assert results[0].outcome is Outcome.RETRY


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"errors":false}',
        b'{"errors":true,"items":[{"create":1}]}',
        b'{"errors":true,"items":[{}]}',
    ],
)
def test_malformed_answers_raise(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        classify_response(raw)


def test_error_summary() -> None:
    assert error_summary(b'{"error":{"type":"security_exception","reason":"no"},"status":401}') == (
        "security_exception: no"
    )
    assert error_summary(b"<html>Bad gateway</html>") == "<html>Bad gateway</html>"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"RETRY-AFTER": "0"}, 0.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-3"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    when = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"Retry-After": when}, now=now) == 30.0
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after({"Retry-After": past}, now=now) == 0.0


def test_fast_path_counts_items_of_full_and_filtered_answers() -> None:
    full = {
        "took": 30,
        "errors": False,
        "items": [
            {
                "create": {
                    "_index": "logs-x-default",
                    "_id": 'tricky "status": id',
                    "_version": 1,
                    "result": "created",
                    "_shards": {"total": 2, "successful": 1, "failed": 0},
                    "_seq_no": i,
                    "_primary_term": 1,
                    "status": 201,
                }
            }
            for i in range(4)
        ],
    }
    assert classify_response(orjson.dumps(full)) == [ItemResult(Outcome.CREATED, 201)] * 4
    filtered = b'{"errors":false,"items":[{"create":{"status":201}},{"create":{"status":201}}]}'
    assert classify_response(filtered) == [ItemResult(Outcome.CREATED, 201)] * 2


def test_fast_path_does_not_hide_a_truncated_answer() -> None:
    with pytest.raises(MalformedResponse):
        classify_response(b'{"errors":false,"items":[{"create":{"status":201}},{"create":{"sta')


@pytest.mark.parametrize(
    ("value", "expected_wait"),
    [
        ("5", 5.0),
        ("86400", 60.0),  # huge: capped
        ("-5", None),  # negative: ignored, plain backoff
        ("1e9", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no floor
        ("soon", None),
    ],
)
def test_retry_after_values_are_read_and_capped(value: str, expected_wait: float | None) -> None:
    seconds = retry_after({"Retry-After": value})
    if expected_wait is None:
        assert seconds is None  # unreadable: the plain backoff applies
    elif expected_wait == 0.0:
        assert seconds == 0.0
    else:
        assert Backoff(initial=0.001, cap=60.0).next(seconds) == expected_wait


def test_bulk_answers_that_must_not_be_acked() -> None:
    # errors:true with mixed statuses: one outcome each, in order
    mixed = orjson.dumps(
        {
            "errors": True,
            "items": [
                {"create": {"status": 201}},
                {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
                {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
                {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "x"}}},
                {"create": {"status": 503}},
            ],
        }
    )
    assert [r.outcome for r in classify_response(mixed)] == [
        Outcome.CREATED,
        Outcome.DUPLICATE,
        Outcome.RETRY,
        Outcome.REJECTED,
        Outcome.RETRY,
    ]
    for body in (b"<html><body>502 Bad Gateway</body></html>", b"", b'{"errors":false}'):
        with pytest.raises(MalformedResponse):
            classify_response(body)


ITEMS = [
    {"create": {"status": 201}},
    {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "x"}}},
    {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}},
    {
        "create": {
            "status": 400,
            "error": {"type": "mapper_parsing_exception", "reason": '{"create":{"status":201}},'},
        }
    },
    {"create": {"status": 503}},
    {"create": {"_index": "logs-x-default", "_id": "a", "result": "created", "status": 201}},
    {"create": {"status": 200}},
]


@given(picks=st.lists(st.integers(0, len(ITEMS) - 1), min_size=1, max_size=30), took=st.booleans())
def test_an_answer_with_errors_gets_the_same_results_item_by_item_as_parsed_whole(
    picks: list[int], took: bool
) -> None:
    from inferwatch.agent.outputs import classify

    answer = {**({"took": 3} if took else {}), "errors": True, "items": [ITEMS[p] for p in picks]}
    body = orjson.dumps(answer)
    by_item = classify._by_item(body)
    assert by_item is not None  # the shape the agent's filter_path asks for
    whole = [classify._classify_entry(entry) for entry in answer["items"]]
    assert by_item == whole == classify_response(body)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429}}',  # cut
        b'{"errors":true,"items":[{"create":{"status":201}}x,{"create":{"status":429}}]}',
        b'{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":4',
        b'{"errors":true,"items":[{"create":1}]}',
    ],
)
def test_an_answer_with_errors_not_shaped_as_one_is_refused(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        classify_response(raw)


def test_an_answer_of_another_shape_is_parsed_whole() -> None:
    from inferwatch.agent.outputs import classify

    other_op = b'{"errors":true,"items":[{"create":{"status":201}},{"index":{"status":429}}]}'
    pretty = b'{"errors": true, "items": [{"create": {"status": 201}}, {"create": {"status": 429}}]}'
    for body in (other_op, pretty):
        assert classify._by_item(body) is None
        assert [r.status for r in classify_response(body)] == [201, 429]
