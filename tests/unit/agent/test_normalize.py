"""Line -> document: literal lines, exact documents, every reject reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import FieldPaths, InputConfig, ModelConfig, RedactConfig
from agent.model import FileId, LineBatch, Rejected, Source
from agent.normalize import Normalizer, dataset_part, document_id, parse_timestamp

FID = FileId("f" * 32)
SOURCE = Source(FID, "/var/log/models/predictions.jsonl", 1234, 0)
INGESTED = "2026-11-22T10:48:13.000Z"
MODELS = MappingProxyType(
    {
        "churn_classifier": ModelConfig(
            features=MappingProxyType(
                {
                    "age": "numeric",
                    "country": "categorical",
                    "review_text": "text",
                    "user.tier": "categorical",
                    "user.bio": "text",
                }
            ),
            outputs=MappingProxyType({"score": "numeric", "label": "categorical"}),
        )
    }
)
LINE = (
    b'{"timestamp": "2026-11-22T10:48:12.486Z", "model": "churn-classifier", "model_version": "1.4.2",'
    b' "prediction_id": "b1f0", "inputs": {"age": 41, "country": "DE", "review_text": "Late again, LATE!"},'
    b' "outputs": {"score": 0.82, "label": "churn"}, "latency_ms": 12.7, "extra": "not shipped"}'
)


def make(**changes: Any) -> Normalizer:
    input_config = changes.pop("input_config", InputConfig(paths=("/var/log/models/*.jsonl",)))
    args: dict[str, Any] = {
        "input_config": input_config,
        "models": MODELS,
        "namespace": "prod",
        "host": "gpu-1",
        "agent_version": "0.1.0",
    }
    args.update(changes)
    return Normalizer(**args)


def doc_of(line: bytes, normalizer: Normalizer | None = None, source: Source = SOURCE) -> dict[str, Any]:
    event = (normalizer or make())(line, source, INGESTED)
    parsed: dict[str, Any] = orjson.loads(event.body)
    return parsed


def reason_of(line: bytes, normalizer: Normalizer | None = None) -> str:
    with pytest.raises(Rejected) as info:
        (normalizer or make())(line, SOURCE, INGESTED)
    return info.value.reason


def b64_blake(key: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.blake2b(key.encode(), digest_size=16).digest()).rstrip(b"=").decode()
    )


def test_the_default_line_becomes_the_contract_document() -> None:
    event = make()(LINE, SOURCE, INGESTED)
    assert event.index == "logs-inferwatch.churn_classifier-prod"
    assert event.doc_id == b64_blake("f" * 32 + ":1234")
    assert orjson.loads(event.body) == {
        "@timestamp": "2026-11-22T10:48:12.486Z",
        "event": {"ingested": INGESTED, "dataset": "inferwatch.churn_classifier"},
        "data_stream": {"type": "logs", "dataset": "inferwatch.churn_classifier", "namespace": "prod"},
        "host": {"name": "gpu-1"},
        "agent": {"type": "inferwatch", "version": "0.1.0"},
        "log": {"file": {"path": "/var/log/models/predictions.jsonl"}, "offset": 1234},
        "ml": {
            "model": {"name": "churn-classifier", "version": "1.4.2"},
            "prediction": {"id": "b1f0", "latency_ms": 12.7},
            "inputs": {"age": 41.0, "country": "DE", "review_text": "Late again, LATE!"},
            "outputs": {"score": 0.82, "label": "churn"},
            "tokens": {"review_text": ["late", "again"]},
        },
    }


def test_the_body_is_compact_json_with_timestamp_first() -> None:
    body = make()(LINE, SOURCE, INGESTED).body
    assert body.startswith(b'{"@timestamp":"2026-11-22T10:48:12.486Z","event":{')
    assert b"\n" not in body
    assert b"not shipped" not in body


def test_numeric_coercion_keeps_json_type_of_unconfigured_features() -> None:
    line = b'{"model": "churn-classifier", "timestamp": 0, "inputs": {"age": "41.5", "n_items": 3, "flag": true}}'
    assert doc_of(line)["ml"]["inputs"] == {"age": 41.5, "n_items": 3, "flag": True}
    assert isinstance(doc_of(line)["ml"]["inputs"]["n_items"], int)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(41, 41.0), ("41", 41.0), (" 7.25 ", 7.25), (0.5, 0.5), (None, None)],
)
def test_numeric_values_become_floats(value: Any, expected: Any) -> None:
    line = orjson.dumps({"model": "churn_classifier", "timestamp": 0, "inputs": {"age": value}})
    ml = doc_of(line)["ml"]
    assert ml["inputs"] == {"age": expected}
    assert "invalid" not in ml


@pytest.mark.parametrize("value", ["forty", True, [1], {"v": 1}, "nan", "inf"])
def test_non_numeric_values_become_null_and_are_listed_invalid(value: Any) -> None:
    normalizer = make()
    line = orjson.dumps(
        {"model": "churn_classifier", "timestamp": 0, "inputs": {"age": value, "country": "FR"}}
    )
    ml = doc_of(line, normalizer)["ml"]
    assert ml["inputs"] == {"age": None, "country": "FR"}
    assert ml["invalid"] == ["inputs.age"]
    assert normalizer.counts["invalid_value"] == 1


@pytest.mark.parametrize(
    ("value", "expected"), [("DE", "DE"), (True, "true"), (False, "false"), (4, "4"), (2.5, "2.5")]
)
def test_categorical_values_become_strings(value: Any, expected: str) -> None:
    line = orjson.dumps({"model": "churn_classifier", "timestamp": 0, "inputs": {"country": value}})
    assert doc_of(line)["ml"]["inputs"] == {"country": expected}


def test_categorical_objects_and_arrays_are_invalid() -> None:
    line = orjson.dumps({"model": "churn_classifier", "timestamp": 0, "inputs": {"country": ["DE"]}})
    ml = doc_of(line)["ml"]
    assert ml["inputs"] == {"country": None}
    assert ml["invalid"] == ["inputs.country"]


def test_output_kinds_are_coerced_and_labelled_as_outputs() -> None:
    line = orjson.dumps(
        {"model": "churn_classifier", "timestamp": 0, "outputs": {"score": "high", "label": 1}}
    )
    ml = doc_of(line)["ml"]
    assert ml["outputs"] == {"score": None, "label": "1"}
    assert ml["invalid"] == ["outputs.score"]
    assert "tokens" not in ml


def test_null_stays_null_and_absent_stays_absent() -> None:
    line = orjson.dumps({"model": "churn_classifier", "timestamp": 0, "inputs": {"review_text": None}})
    ml = doc_of(line)["ml"]
    assert ml["inputs"] == {"review_text": None}
    assert "tokens" not in ml
    assert "outputs" not in ml
    assert "prediction" not in ml


def test_nested_inputs_keep_their_nesting_and_use_dotted_feature_keys() -> None:
    line = orjson.dumps(
        {
            "model": "churn_classifier",
            "timestamp": 0,
            "inputs": {"user": {"tier": 3, "bio": "Loves CATS, cats!", "age": 7}, "review_text": 5},
        }
    )
    ml = doc_of(line)["ml"]
    assert ml["inputs"] == {"user": {"tier": "3", "bio": "Loves CATS, cats!", "age": 7}, "review_text": "5"}
    assert ml["tokens"] == {"review_text": ["5"], "user.bio": ["loves", "cats"]}


def test_a_literal_dotted_key_is_a_feature_too() -> None:
    line = orjson.dumps({"model": "churn_classifier", "timestamp": 0, "inputs": {"user.tier": 2}})
    ml = doc_of(line)["ml"]
    assert ml["inputs"] == {"user.tier": "2"}


def test_a_model_not_in_the_config_is_shipped_untouched_and_untokenized() -> None:
    line = orjson.dumps(
        {"model": "Fraud Model/v2", "timestamp": 0, "inputs": {"age": "41", "review_text": "x y"}}
    )
    event = make()(line, SOURCE, INGESTED)
    doc = orjson.loads(event.body)
    assert event.index == "logs-inferwatch.fraud_model_v2-prod"
    assert doc["data_stream"]["dataset"] == "inferwatch.fraud_model_v2"
    assert doc["event"]["dataset"] == "inferwatch.fraud_model_v2"
    assert doc["ml"]["model"] == {"name": "Fraud Model/v2", "version": "unknown"}
    assert doc["ml"]["inputs"] == {"age": "41", "review_text": "x y"}
    assert "tokens" not in doc["ml"]


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("churn-classifier", "churn_classifier"),
        ("A.B_c", "a.b_c"),
        ("modèle 1", "mod_le_1"),
        ("x" * 150, "x" * 100),
    ],
)
def test_dataset_part(name: str, part: str) -> None:
    assert dataset_part(name) == part


def test_the_model_config_is_found_by_the_exact_name_first() -> None:
    models = {
        "Churn-X": ModelConfig(features={"age": "categorical"}),
        "churn_x": ModelConfig(features={"age": "numeric"}),
    }
    normalizer = make(models=models)
    assert doc_of(b'{"model": "Churn-X", "timestamp": 0, "inputs": {"age": 1}}', normalizer)["ml"][
        "inputs"
    ] == {"age": "1"}
    assert doc_of(b'{"model": "churn-x", "timestamp": 0, "inputs": {"age": 1}}', normalizer)["ml"][
        "inputs"
    ] == {"age": 1.0}


def test_the_input_default_model_and_version_fill_in() -> None:
    normalizer = make(input_config=InputConfig(paths=("x",), model="churn-classifier", version="9"))
    for line in (b'{"timestamp": 0}', b'{"timestamp": 0, "model": null}', b'{"timestamp": 0, "model": ""}'):
        event = normalizer(line, SOURCE, INGESTED)
        assert event.index == "logs-inferwatch.churn_classifier-prod"
        assert orjson.loads(event.body)["ml"]["model"] == {"name": "churn-classifier", "version": "9"}
    assert doc_of(b'{"timestamp": 0, "model": "other", "model_version": 3}', normalizer)["ml"]["model"] == {
        "name": "other",
        "version": "3",
    }


def test_the_input_namespace_wins_over_the_agent_namespace() -> None:
    normalizer = make(input_config=InputConfig(paths=("x",), namespace="staging"))
    event = normalizer(LINE, SOURCE, INGESTED)
    assert event.index == "logs-inferwatch.churn_classifier-staging"
    assert orjson.loads(event.body)["data_stream"]["namespace"] == "staging"


def test_configured_field_paths_read_other_shapes() -> None:
    fields = FieldPaths(
        timestamp="ts",
        model="meta.model.name",
        version="meta.model.rev",
        prediction_id="req.id",
        inputs="request.features",
        outputs="response",
        latency="timing.total_ms",
    )
    normalizer = make(input_config=InputConfig(paths=("x",), fields=fields))
    line = orjson.dumps(
        {
            "ts": 1763808492486,
            "meta": {"model": {"name": "churn_classifier", "rev": "2"}},
            "req": {"id": 17},
            "request": {"features": {"age": "3"}},
            "response": {"label": "a"},
            "timing": {"total_ms": 3},
        }
    )
    doc = doc_of(line, normalizer)
    assert doc["@timestamp"] == "2025-11-22T10:48:12.486Z"
    assert doc["ml"] == {
        "model": {"name": "churn_classifier", "version": "2"},
        "prediction": {"id": "17", "latency_ms": 3.0},
        "inputs": {"age": 3.0},
        "outputs": {"label": "a"},
    }


def test_a_dotted_field_path_also_matches_a_literal_dotted_key() -> None:
    normalizer = make(input_config=InputConfig(paths=("x",), fields=FieldPaths(model="meta.model")))
    assert doc_of(b'{"meta.model": "m1", "timestamp": 0}', normalizer)["ml"]["model"]["name"] == "m1"


def test_a_bad_latency_is_left_out_and_listed_invalid() -> None:
    doc = doc_of(b'{"model": "m", "timestamp": 0, "latency_ms": "slow", "prediction_id": "p"}')
    assert doc["ml"]["prediction"] == {"id": "p"}
    assert doc["ml"]["invalid"] == ["prediction.latency_ms"]
    assert doc_of(b'{"model": "m", "timestamp": 0, "latency_ms": "12"}')["ml"]["prediction"] == {
        "latency_ms": 12.0
    }


# ---- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22T10:48:12.486Z", "2026-11-22T10:48:12.486Z"),
        ("2026-11-22T10:48:12Z", "2026-11-22T10:48:12.000Z"),
        ("2026-11-22T10:48:12.4869999Z", "2026-11-22T10:48:12.486Z"),
        ("2026-11-22T12:48:12.5+02:00", "2026-11-22T10:48:12.500Z"),
        ("2026-11-22T00:30:00-01:00", "2026-11-22T01:30:00.000Z"),
        ("2026-11-22 10:48:12", "2026-11-22T10:48:12.000Z"),
        ("2026-11-22", "2026-11-22T00:00:00.000Z"),
        (1763808492, "2025-11-22T10:48:12.000Z"),
        (1763808492.4867, "2025-11-22T10:48:12.487Z"),
        (1763808492486, "2025-11-22T10:48:12.486Z"),
        (1763808492486123, "2025-11-22T10:48:12.486Z"),
        (1763808492486123456, "2025-11-22T10:48:12.486Z"),
        ("1763808492", "2025-11-22T10:48:12.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
    ],
)
def test_timestamps_become_utc_milliseconds(value: Any, expected: str) -> None:
    assert parse_timestamp(value) == expected
    line = orjson.dumps({"model": "m", "timestamp": value})
    assert doc_of(line)["@timestamp"] == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00.000Z",
        "",
        True,
        [1],
        {"s": 1},
        1e30,
        -1e30,
        "9" * 40,
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_unparseable_timestamps_are_rejected(value: Any) -> None:
    line = orjson.dumps({"model": "m", "timestamp": value})
    assert reason_of(line) == "bad_timestamp"


def test_a_missing_timestamp_takes_the_ingest_time_and_is_counted() -> None:
    normalizer = make()
    assert doc_of(b'{"model": "m"}', normalizer)["@timestamp"] == INGESTED
    assert doc_of(b'{"model": "m", "timestamp": null}', normalizer)["@timestamp"] == INGESTED
    assert normalizer.counts["timestamp_missing"] == 2


def test_a_missing_timestamp_is_rejected_when_required() -> None:
    assert reason_of(b'{"model": "m"}', make(require_timestamp=True)) == "missing_field"


# ---- rejects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"model": "m", "timestamp": 0, "inputs": {"x": "\xff\xfe"}}', "invalid_utf8"),
        (b"\xc3\x28", "invalid_utf8"),
        (b'{"model": "m", ', "invalid_json"),
        (b"plain text log line", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"a": 1e400}', "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
        (b'{"model": "m", "timestamp": 0, "inputs": [1, 2]}', "not_an_object"),
        (b'{"model": "m", "timestamp": 0, "outputs": "yes"}', "not_an_object"),
        (b'{"timestamp": 0}', "missing_field"),
        (b'{"timestamp": 0, "model": null}', "missing_field"),
        (b'{"timestamp": 0, "model": {"name": "m"}}', "missing_field"),
        (b'{"timestamp": 0, "model": true}', "missing_field"),
        (b'{"model": "m", "timestamp": "soon"}', "bad_timestamp"),
    ],
)
def test_every_reject_reason(line: bytes, reason: str) -> None:
    assert reason_of(line) == reason


def test_too_deep_nesting_is_rejected_not_raised() -> None:
    deep = b'{"model": "m", "timestamp": 0, "inputs": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}"
    assert reason_of(deep) == "invalid_json"


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert doc_of(b"\xef\xbb\xbf" + LINE)["ml"]["model"]["name"] == "churn-classifier"


def test_a_numeric_model_name_is_written_as_a_string() -> None:
    event = make()(b'{"model": 7, "timestamp": 0}', SOURCE, INGESTED)
    assert event.index == "logs-inferwatch.7-prod"


# ---- redaction ---------------------------------------------------------------------------------


def test_redaction_happens_before_anything_reads_the_line() -> None:
    redact = RedactConfig(drop=("inputs.email", "model_version"), hash=("inputs.user_id", "prediction_id"))
    normalizer = make(redact=redact, hash_key=b"k")
    line = orjson.dumps(
        {
            "model": "churn_classifier",
            "timestamp": 0,
            "model_version": "secret-version",
            "prediction_id": "p-1",
            "inputs": {"email": "alice@example.com", "user_id": "u-42", "age": 3},
        }
    )
    event = normalizer(line, SOURCE, INGESTED)
    assert b"alice" not in event.body
    assert b"u-42" not in event.body
    assert b"secret-version" not in event.body
    doc = orjson.loads(event.body)
    assert doc["ml"]["model"]["version"] == "unknown"
    assert doc["ml"]["inputs"] == {"user_id": keyed_hash("u-42"), "age": 3.0}
    assert doc["ml"]["prediction"] == {"id": keyed_hash("p-1")}


def keyed_hash(value: str) -> str:
    return hmac.new(b"k", value.encode(), hashlib.sha256).hexdigest()


# ---- document ids ----------------------------------------------------------------------------


def test_offset_ids_are_deterministic_and_differ_per_offset_and_file() -> None:
    normalizer = make()
    other_file = Source(FileId("0" * 32), SOURCE.path, SOURCE.offset, 0)
    next_line = Source(FID, SOURCE.path, SOURCE.offset + 1, 0)
    a = normalizer(LINE, SOURCE, INGESTED).doc_id
    assert a == make()(LINE, SOURCE, "2030-01-01T00:00:00.000Z").doc_id
    assert a != normalizer(LINE, other_file, INGESTED).doc_id
    assert a != normalizer(LINE, next_line, INGESTED).doc_id
    assert len(a) == 22
    assert a == document_id(f"{'f' * 32}:1234")


def test_prediction_id_mode_uses_model_and_id_and_falls_back_to_offset() -> None:
    normalizer = make(input_config=InputConfig(paths=("x",), document_id="prediction_id"))
    moved = Source(FileId("1" * 32), "/elsewhere.jsonl", 99, 0)
    a = normalizer(LINE, SOURCE, INGESTED).doc_id
    assert a == b64_blake("churn_classifier:b1f0")
    assert a == normalizer(LINE, moved, INGESTED).doc_id  # the same prediction read from a copy
    no_id = b'{"model": "churn-classifier", "timestamp": 0}'
    assert normalizer(no_id, SOURCE, INGESTED).doc_id == b64_blake("f" * 32 + ":1234")


# ---- batches --------------------------------------------------------------------------------


def test_a_batch_gives_events_in_order_and_rejected_lines_with_offsets() -> None:
    batch = LineBatch(FID, SOURCE.path, 0, [0, 10, 20], [LINE, b"garbage", LINE], 30)
    events, rejects = make().normalize_batch(batch, INGESTED)
    assert [orjson.loads(e.body)["log"]["offset"] for e in events] == [0, 20]
    assert [(r.offset, r.line, r.error.reason) for r in rejects] == [(10, b"garbage", "invalid_json")]
    single = make()(LINE, Source(FID, SOURCE.path, 20, 0), INGESTED)
    assert events[1] == single


def test_normalize_lines_matches_normalize_batch() -> None:
    events, rejects = make().normalize_lines([LINE], [5], FID, "/p", INGESTED)
    assert not rejects
    assert events == [make()(LINE, Source(FID, "/p", 5, 0), INGESTED)]


def test_many_model_names_do_not_grow_the_cache_without_bound() -> None:
    from agent.normalize import MODEL_CACHE_SIZE

    normalizer = make()
    for i in range(MODEL_CACHE_SIZE + 10):
        normalizer(orjson.dumps({"model": f"m{i}", "timestamp": 0}), SOURCE, INGESTED)
    assert len(normalizer._cache) <= MODEL_CACHE_SIZE


def test_the_namespace_is_lowercased_for_the_index_and_the_document() -> None:
    event = make(namespace="Prod")(LINE, SOURCE, INGESTED)
    assert event.index == "logs-inferwatch.churn_classifier-prod"
    assert orjson.loads(event.body)["data_stream"]["namespace"] == "prod"


def test_normalize_at_is_the_call_without_a_source() -> None:
    normalizer = make()
    assert normalizer.normalize_at(
        LINE, SOURCE.file_id.fingerprint, SOURCE.path, SOURCE.offset, INGESTED
    ) == normalizer(LINE, SOURCE, INGESTED)


def test_a_rejected_line_is_not_counted_as_repaired() -> None:
    normalizer = make()
    assert reason_of(b'{"model": "m", "inputs": [1]}', normalizer) == "not_an_object"
    assert normalizer.counts["timestamp_missing"] == 0


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["timestamp", "model", "model_version", "prediction_id", "inputs", "outputs", "latency_ms"]
)
feature_names = st.sampled_from(["age", "country", "review_text", "user", "tier", "bio", "score", "label"])
inputs_like = st.dictionaries(
    feature_names, json_values | st.dictionaries(feature_names, json_values, max_size=3)
)
lines_like = st.fixed_dictionaries(
    {"model": st.sampled_from(["churn-classifier", "churn_classifier", "other"])},
    optional={
        "timestamp": json_values | st.integers(0, 2**41),
        "inputs": inputs_like,
        "outputs": inputs_like,
    },
).flatmap(
    lambda base: st.dictionaries(field_names, json_values, max_size=3).map(lambda noise: {**noise, **base})
)


@settings(max_examples=150, deadline=None)
@given(lines_like)
def test_any_json_line_becomes_a_document_or_a_rejection(line: dict[str, Any]) -> None:
    normalizer = make(redact=RedactConfig(drop=("inputs.bio",), hash=("inputs.user.tier",)), hash_key=b"k")
    try:
        event = normalizer(orjson.dumps(line), SOURCE, INGESTED)
    except Rejected as exc:
        assert exc.reason in {"not_an_object", "missing_field", "bad_timestamp", "invalid_json"}
        return
    doc = orjson.loads(event.body)
    assert doc["ml"]["model"]["name"] == line["model"]
    assert doc["@timestamp"].endswith("Z") and len(doc["@timestamp"]) == 24
    assert "bio" not in doc["ml"].get("inputs", {})
    for value in doc["ml"].get("tokens", {}).values():
        assert all(isinstance(t, str) and 0 < len(t) <= 40 for t in value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_become_a_document_or_a_rejection(line: bytes) -> None:
    normalizer = make(input_config=InputConfig(paths=("x",), model="fallback"))
    try:
        normalizer(line, SOURCE, INGESTED)
    except Rejected as exc:
        assert exc.reason in {"invalid_utf8", "invalid_json", "not_an_object", "bad_timestamp"}
