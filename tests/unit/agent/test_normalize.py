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

from inferwatch.agent.model import FileId, LineBatch, Rejected, Source
from inferwatch.agent.normalize import Normalizer, parse_timestamp
from inferwatch.core.config import FieldPaths, InputConfig, ModelConfig, RedactConfig
from inferwatch.core.contract import document_id
from inferwatch.core.contract import model_dataset as dataset_part

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


@pytest.mark.parametrize("document_id", ["prediction_id", "offset"])
def test_integer_ids_beyond_64_bits_keep_their_digits(document_id: str) -> None:
    normalizer = make(input_config=InputConfig(paths=("x",), document_id=document_id))
    ids = [2**64, 2**64 + 1, 2**127 + 12345, -(2**63) - 1]
    docs, doc_ids = [], set()
    for pid in ids:
        line = b'{"model": "m", "timestamp": 0, "prediction_id": %d}' % pid
        event = normalizer(line, SOURCE, INGESTED)
        docs.append(orjson.loads(event.body)["ml"]["prediction"]["id"])
        doc_ids.add(event.doc_id)
    assert docs == [str(pid) for pid in ids]
    if document_id == "prediction_id":
        assert doc_ids == {b64_blake(f"m:{pid}") for pid in ids}
    float_id = doc_of(b'{"model": "m", "timestamp": 0, "prediction_id": 1.5e30}')
    assert float_id["ml"]["prediction"]["id"] == "1.5e+30"  # a float stays as orjson writes it


def test_hashed_integer_ids_beyond_64_bits_hash_their_digits() -> None:
    normalizer = make(redact=RedactConfig(hash=("prediction_id",)), hash_key=b"k")
    got = set()
    for pid in (2**64, 2**64 + 1):
        line = b'{"model": "m", "timestamp": 0, "prediction_id": %d}' % pid
        got.add(orjson.loads(normalizer(line, SOURCE, INGESTED).body)["ml"]["prediction"]["id"])
    assert got == {keyed_hash(str(2**64)), keyed_hash(str(2**64 + 1))}
    small = doc_of(b'{"model": "m", "timestamp": 0, "prediction_id": 7}', normalizer)
    assert small["ml"]["prediction"]["id"] == keyed_hash("7")


# ---- batches --------------------------------------------------------------------------------


def test_a_batch_gives_events_in_order_and_rejected_lines_with_offsets() -> None:
    batch = LineBatch(FID, SOURCE.path, 0, [0, 10, 20], [LINE, b"garbage", LINE], 30)
    events, rejects = make().normalize_batch(batch, INGESTED)
    assert [orjson.loads(e.body)["log"]["offset"] for e in events] == [0, 20]
    assert [(r.offset, r.line, r.error.reason) for r in rejects] == [(10, b"garbage", "invalid_json")]
    single = make()(LINE, Source(FID, SOURCE.path, 20, 0), INGESTED)
    assert events[1] == single


def test_many_model_names_do_not_grow_the_cache_without_bound() -> None:
    from inferwatch.agent.normalize import MODEL_CACHE_SIZE

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


# ---- bulk items (the read loop's fast path) -------------------------------------------------

MIXED_LINES = [
    LINE,
    # non-ASCII in names, values and text (orjson writes UTF-8 as is; no escaping may differ)
    '{"timestamp": 1.7e9, "model": "Modèle-ß", "inputs": {"country": "Ελλάδα", "review_text": "Très bien 日本語 ☃"}}'.encode(),
    b"not json",  # rejected mid-batch
    b'{"model": "churn_classifier", "inputs": {"age": "41", "country": 4.0, "user": {"tier": true, "bio": "Hi"}}}',
    b'{"model": "other", "timestamp": "bad time"}',  # rejected: bad_timestamp
    b"\xff\xfe",  # rejected: invalid_utf8
    b'{"model": "other", "timestamp": 0, "prediction_id": 7, "inputs": {"x": [1, {"y": null}]}}',
    b'{"model": "churn-classifier", "timestamp": 0, "inputs": {"age": "old"}, "outputs": {"score": "x"}}',
]
MIXED_OFFSETS = [0, 400, 900, 1000, 1300, 1400, 1500, 1800]


def bulk_and_events(normalizer_args: dict[str, Any]) -> tuple[list[bytes], list[Any], list[Any], list[Any]]:
    batch = LineBatch(FID, "/logs/ünïcode.jsonl", 0, MIXED_OFFSETS, MIXED_LINES, 2000)
    items, rejects = make(**normalizer_args).bulk_items(batch, INGESTED)
    events, event_rejects = make(**normalizer_args).normalize_batch(batch, INGESTED)
    return items, rejects, events, event_rejects


NORMALIZER_VARIANTS = [
    {},
    {"redact": RedactConfig(drop=("inputs.review_text",), hash=("inputs.country",)), "hash_key": b"k"},
    {"input_config": InputConfig(paths=("x",), document_id="prediction_id", model="fallback")},
    {"namespace": "Pröd"},
]


@pytest.mark.parametrize("args", NORMALIZER_VARIANTS, ids=["plain", "redact", "prediction_id", "namespace"])
def test_bulk_items_are_exactly_the_raw_body_of_the_events(args: dict[str, Any]) -> None:
    from inferwatch.agent import bulkbody

    items, rejects, events, event_rejects = bulk_and_events(args)
    assert len(events) == 5
    assert [bulkbody.raw_body([(e.index, e.doc_id, e.body)]) for e in events] == items
    assert b"".join(items) == bulkbody.raw_body((e.index, e.doc_id, e.body) for e in events)
    got = [(r.offset, r.line, r.error.reason, r.error.detail) for r in rejects]
    assert got == [(r.offset, r.line, r.error.reason, r.error.detail) for r in event_rejects]
    assert [r for _, _, r, _ in got] == ["invalid_json", "bad_timestamp", "invalid_utf8"]


def test_bulk_items_hold_the_right_index_id_and_document_per_line() -> None:
    """Checked against values computed here, not against the normalizer's other paths (they share
    the per-line function)."""
    from inferwatch.agent import bulkbody

    items, _, _, _ = bulk_and_events({})
    decoded = bulkbody.decode(bulkbody.compress(b"".join(items)))
    kept = [0, 1, 3, 6, 7]  # line numbers not rejected
    assert [(index, doc_id) for index, doc_id, _ in decoded] == [
        ("logs-inferwatch.churn_classifier-prod", b64_blake(f"{'f' * 32}:{MIXED_OFFSETS[0]}")),
        ("logs-inferwatch.mod_le__-prod", b64_blake(f"{'f' * 32}:400")),
        ("logs-inferwatch.churn_classifier-prod", b64_blake(f"{'f' * 32}:1000")),
        ("logs-inferwatch.other-prod", b64_blake(f"{'f' * 32}:1500")),
        ("logs-inferwatch.churn_classifier-prod", b64_blake(f"{'f' * 32}:1800")),
    ]
    docs = [orjson.loads(doc) for _, _, doc in decoded]
    assert [d["log"]["offset"] for d in docs] == [MIXED_OFFSETS[i] for i in kept]
    assert all(d["log"]["file"]["path"] == "/logs/ünïcode.jsonl" for d in docs)
    assert [d["ml"]["model"]["name"] for d in docs] == [
        "churn-classifier",
        "Modèle-ß",
        "churn_classifier",
        "other",
        "churn-classifier",
    ]
    assert [d["data_stream"]["dataset"] for d in docs] == [
        "inferwatch.churn_classifier",
        "inferwatch.mod_le__",
        "inferwatch.churn_classifier",
        "inferwatch.other",
        "inferwatch.churn_classifier",
    ]
    assert docs[1]["ml"]["inputs"] == {"country": "Ελλάδα", "review_text": "Très bien 日本語 ☃"}
    assert docs[1]["@timestamp"] == "2023-11-14T22:13:20.000Z"
    assert docs[2]["ml"]["inputs"] == {"age": 41.0, "country": "4", "user": {"tier": "true", "bio": "Hi"}}
    assert docs[2]["ml"]["tokens"] == {"user.bio": ["hi"]}
    assert docs[2]["@timestamp"] == INGESTED
    assert docs[3]["ml"]["prediction"] == {"id": "7"}
    assert docs[4]["ml"]["invalid"] == ["inputs.age", "outputs.score"]


def test_bulk_items_with_redaction_drop_and_hash_before_the_document_is_built() -> None:
    from inferwatch.agent import bulkbody

    args = NORMALIZER_VARIANTS[1]
    items, _, _, _ = bulk_and_events(args)
    docs = [orjson.loads(doc) for _, _, doc in bulkbody.decode(bulkbody.compress(b"".join(items)))]
    digest = hmac.new(b"k", b"DE", hashlib.sha256).hexdigest()
    assert docs[0]["ml"]["inputs"] == {"age": 41.0, "country": digest}
    assert "tokens" not in docs[0]["ml"]  # the text was dropped before tokenizing
    assert docs[1]["ml"]["inputs"] == {
        "country": hmac.new(b"k", "Ελλάδα".encode(), hashlib.sha256).hexdigest()
    }


def test_bulk_items_and_events_count_repairs_alike() -> None:
    batch = LineBatch(FID, "/p", 0, MIXED_OFFSETS, MIXED_LINES, 2000)
    a, b = make(), make()
    a.bulk_items(batch, INGESTED)
    b.normalize_batch(batch, INGESTED)
    repairs = {"timestamp_missing": 1, "invalid_value": 2}
    assert b.counts == repairs  # and bulk_items also counts its lines, by normalizer
    assert {k: n for k, n in a.counts.items() if not k.startswith("lines_")} == repairs
    assert a.counts["lines_native"] + a.counts["lines_python"] == len(MIXED_LINES)


@settings(max_examples=100, deadline=None)
@given(st.lists(lines_like, min_size=1, max_size=6), st.integers(0, 5))
def test_bulk_items_equal_the_events_for_any_lines(
    batch_lines: list[dict[str, Any]], garbage_at: int
) -> None:
    from inferwatch.agent import bulkbody

    raw = [orjson.dumps(x) for x in batch_lines]
    raw.insert(min(garbage_at, len(raw)), b"{oops")
    offsets = [i * 100 for i in range(len(raw))]
    batch = LineBatch(FID, "/p", 0, offsets, raw, len(raw) * 100)
    args = {"redact": RedactConfig(drop=("inputs.bio",), hash=("inputs.user.tier",)), "hash_key": b"k"}
    items, rejects = make(**args).bulk_items(batch, INGESTED)
    events, event_rejects = make(**args).normalize_batch(batch, INGESTED)
    assert b"".join(items) == bulkbody.raw_body((e.index, e.doc_id, e.body) for e in events)
    assert [(r.offset, r.error.reason) for r in rejects] == [
        (r.offset, r.error.reason) for r in event_rejects
    ]


# ---- the categorical string rule (twin of analytics.sources.tables.category_str) -----------

CATEGORY_TABLE: list[tuple[Any, str]] = [
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (4, "4"),
    (-3, "-3"),
    (2**63 - 1, "9223372036854775807"),
    (4.0, "4"),
    (-0.0, "0"),
    (0.0, "0"),
    (-12.0, "-12"),
    (2.0**53 - 1, "9007199254740991"),
    (2.0**53, "9007199254740992.0"),  # past exact integers: as orjson writes it
    (1e20, "1e+20"),
    (2.5, "2.5"),
    (-0.125, "-0.125"),
    (1e-7, "1e-7"),
    (123456.789, "123456.789"),
    ("DE", "DE"),
    ("4.0", "4.0"),  # a string is never reinterpreted
    ("", ""),
]


@pytest.mark.parametrize(("value", "expected"), CATEGORY_TABLE)
def test_category_str_table(value: Any, expected: str) -> None:
    from inferwatch.core.contract import category_str

    assert category_str(value) == expected


@pytest.mark.parametrize(("value", "expected"), CATEGORY_TABLE)
def test_categorical_features_in_documents_follow_the_table(value: Any, expected: str) -> None:
    line = orjson.dumps(
        {
            "model": "churn_classifier",
            "timestamp": 0,
            "inputs": {"country": value},
            "outputs": {"label": value},
        }
    )
    ml = doc_of(line)["ml"]
    assert ml["inputs"] == {"country": expected}
    assert ml["outputs"] == {"label": expected}
    assert "invalid" not in ml
