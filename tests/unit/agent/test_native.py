"""The native fast path (agent/native, ``agent.fastpath``) writes exactly what the Python
normalizer writes, and declines whatever it is not sure of.

The Python ``Normalizer`` is the definition: every test here runs both on the same lines and
compares bytes. The module is optional for a user, so these tests skip without it, except in CI
(``CI=true``), where ``make test`` builds it and a missing module is a failure.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import struct
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from inferwatch.agent.fastpath import LINES_NATIVE, LINES_PYTHON, describe, native_module
from inferwatch.agent.model import FileId, LineBatch
from inferwatch.agent.normalize import Normalizer, format_timestamp, parse_timestamp
from inferwatch.agent.parseworker import dumps
from inferwatch.core.config import FieldPaths, InputConfig, ModelConfig, RedactConfig
from inferwatch.core.tokenize import tokenize

native: Any = native_module()
if native is None:
    if os.environ.get("CI") == "true":
        raise ImportError(
            "inferwatch_native is not installed: `make venv` builds it from agent/native (needs cargo)"
        )
    pytest.skip("inferwatch_native is not installed (pip install ./agent/native)", allow_module_level=True)

INGESTED = "2026-12-06T10:00:00.000Z"
PATH = "/var/log/models/predictions.jsonl"
MODELS = MappingProxyType(
    {
        "churn": ModelConfig(
            features=MappingProxyType(
                {
                    "age": "numeric",
                    "country": "categorical",
                    "review": "text",
                    "user.tier": "categorical",
                    "user.visits": "numeric",
                    "user.bio": "text",
                }
            ),
            outputs=MappingProxyType({"score": "numeric", "label": "categorical"}),
        )
    }
)


def pair(**changes: Any) -> tuple[Normalizer, Normalizer]:
    args: dict[str, Any] = {
        "input_config": InputConfig(paths=("/var/log/models/*.jsonl",), model="churn"),
        "models": MODELS,
        "namespace": "prod",
        "host": "gpu-1",
        "agent_version": "0.1.0",
        "agent_id": "id-1",
    }
    args.update(changes)
    return Normalizer(**args), Normalizer(**args, accelerate=False)


def batch(lines: list[bytes], start: int = 0) -> LineBatch:
    offsets = []
    offset = start
    for line in lines:
        offsets.append(offset)
        offset += len(line) + 1
    return LineBatch(FileId("ab" * 16), PATH, 0, offsets, lines, offset)


def assert_same(fast: Normalizer, slow: Normalizer, lines: list[bytes]) -> tuple[int, int]:
    """Both normalizers on ``lines``, twice (the second time every model is known natively):
    the same items, rejects and repair counts. Returns (native, python) line counts."""
    assert fast.fast_path is not None
    for round_ in range(2):
        got = fast.bulk_items(batch(lines), INGESTED)
        want = slow.bulk_items(batch(lines), INGESTED)
        assert got[0] == want[0], f"round {round_}"
        assert [(r.offset, r.error.reason, r.error.detail) for r in got[1]] == [
            (r.offset, r.error.reason, r.error.detail) for r in want[1]
        ]
        assert repairs(fast) == repairs(slow)
    assert slow.counts[LINES_PYTHON] == 2 * len(lines) and LINES_NATIVE not in slow.counts
    native_lines, python_lines = fast.counts[LINES_NATIVE], fast.counts[LINES_PYTHON]
    assert native_lines + python_lines == 2 * len(lines)
    return native_lines, python_lines


def repairs(normalizer: Normalizer) -> dict[str, int]:
    return {k: n for k, n in normalizer.counts.items() if k not in (LINES_NATIVE, LINES_PYTHON)}


def line(**fields: Any) -> bytes:
    record: dict[str, Any] = {
        "timestamp": "2026-12-06T09:59:58.123Z",
        "model": "churn",
        "model_version": "1.4.2",
        "prediction_id": "p-1",
        "inputs": {
            "age": 41,
            "country": "DE",
            "review": "Late again, LATE!",
            "user": {"tier": "gold", "visits": 3},
        },
        "outputs": {"score": 0.82, "label": "churn"},
        "latency_ms": 12.7,
    }
    for key, value in fields.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


# ---- the common shape goes native, and equals Python byte for byte ----------------------------


def test_the_common_line_is_written_natively_and_equals_python() -> None:
    fast, slow = pair()
    lines = [
        line(prediction_id=f"p-{i}", inputs={"age": i, "country": "FR", "review": f"ok {i}"})
        for i in range(50)
    ]
    native_lines, python_lines = assert_same(fast, slow, lines)
    # the first batch taught the fast path the model; the second went native whole
    assert (native_lines, python_lines) == (50, 50)


@pytest.mark.parametrize("document_id", ["offset", "prediction_id"])
def test_document_ids_equal_for_both_id_rules(document_id: str) -> None:
    config = InputConfig(paths=("/x/*.jsonl",), model="churn", document_id=document_id)  # type: ignore[arg-type]
    fast, slow = pair(input_config=config)
    lines = [line(prediction_id=f"id-{i}") for i in range(5)] + [
        line(prediction_id=None),
        line(prediction_id=...),
    ]
    native_lines, _ = assert_same(fast, slow, lines)
    assert native_lines == 7


def test_lines_without_a_model_name_use_the_default_model_natively() -> None:
    fast, slow = pair()
    lines = [line(model=...), line(model=None), line(model=""), line(model="other-model")]
    native_lines, python_lines = assert_same(fast, slow, lines)
    assert (native_lines, python_lines) == (4, 4)


def test_describe_names_the_normalizer_and_the_fix() -> None:
    assert describe(True, redacting=False).startswith("native")
    assert "agent.redact" in describe(True, redacting=True)
    assert "pip install ./agent/native" in describe(False, redacting=False)


def test_redaction_builds_no_fast_path() -> None:
    fast, _ = pair(redact=RedactConfig(drop=("inputs.email",)))
    assert fast.fast_path is None


def test_overlapping_inputs_and_outputs_paths_build_no_fast_path() -> None:
    config = InputConfig(paths=("/x/*.jsonl",), fields=FieldPaths(inputs="data", outputs="data.out"))
    assert pair(input_config=config)[0].fast_path is None


def test_a_parse_worker_unpickles_a_normalizer_with_its_fast_path() -> None:
    fast, slow = pair()
    copy = pickle.loads(dumps(fast))  # as the parse pool sends it
    assert copy.fast_path is not None
    assert_same(copy, slow, [line()])


# ---- every line shape both ways: what the fast path takes it must equal -----------------------

EDGE_LINES = [
    line(inputs={"age": "41", "country": 7, "review": "ok"}),  # repairs: Python's
    line(inputs={"age": True}),
    line(inputs={"age": None, "country": None, "review": None}),
    line(inputs={"age": 12345678901234567, "user": {"visits": -9007199254740993}}),
    line(inputs={"age": 1e16, "x": [1e-7, 0.00001, 1e-6, 5e-324, 1.7976931348623157e308, -2.5, 100.0]}),
    line(inputs={"user.tier": "literal dotted", "user": {"tier": 5}}),
    line(inputs={"user.bio": None, "user": {"bio": "nested bio TEXT"}}),
    line(inputs={"review": "ｆｕｌｌ ｗｉｄｔｈ, 配送が遅い, café"}),
    line(inputs={"review": " ".join(f"w{i}" for i in range(400)) + " " + "x" * 41}),
    line(inputs="not an object"),
    line(outputs=[1, 2]),
    line(timestamp="2026-12-06T09:59:58Z"),
    line(timestamp="2026-02-30T09:59:58.123Z"),
    line(timestamp="2024-02-29T23:59:59.999Z"),
    line(timestamp=1765015198.123),
    line(timestamp=None),
    line(timestamp=...),
    line(model_version=2),
    line(model_version=None),
    line(prediction_id=2**70),
    line(prediction_id=12),
    line(latency_ms="12"),
    line(latency_ms=7),
    line(latency_ms=False),
    line(model=["a"]),
    line(model="Other Model!"),
    line(extra={"deep": [[[[{"a": None}]]]]}),
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"age":-0}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"age":-0.0}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"a":1,"a":2}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"ch\\u0075rn","inputs":{"\\u0061ge":1}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"s":"tab\\there \\"q\\" \\u00e9 \\ud83d\\ude00 \\/"}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"s":"\\ud800"}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"x":1e400}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"x":18446744073709551616}}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","inputs":{"x":1E2,"y":0.10,"z":-1.5e-3}}',
    b' \t{"timestamp" : "2026-12-06T09:59:58.123Z" , "model":"churn" } \r',
    b'\xef\xbb\xbf{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn"}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn"',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn",}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","x":01}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","x":NaN}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","x":"\xff"}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn","x":"a\x01b"}',
    b'{"timestamp":"2026-12-06T09:59:58.123Z","model":"churn"} {}',
    b"[1, 2]",
    b"",
    b'{"model":"churn","inputs":' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}",
]


def test_edge_lines_equal_python() -> None:
    fast, slow = pair()
    native_lines, python_lines = assert_same(fast, slow, EDGE_LINES)
    assert native_lines > 0 and python_lines > 0


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FEATURE_KEYS = ["age", "country", "review", "user", "user.tier", "user.visits", "user.bio", "other"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "timestamp": st.sampled_from(
                    ["2026-12-06T09:59:58.123Z", "2026-13-01T00:00:00.000Z", None, 17e8]
                )
                | st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
                    format_timestamp
                ),
                "model": st.sampled_from(["churn", "", None, "Other", 3]),
                "model_version": st.sampled_from(["1", None, 2.5]),
                "prediction_id": json_scalars,
                "latency_ms": json_scalars,
                "inputs": st.dictionaries(st.sampled_from(FEATURE_KEYS), json_values, max_size=6)
                | json_values,
                "outputs": st.dictionaries(st.sampled_from(["score", "label", "x"]), json_values, max_size=3),
                "extra": json_values,
            },
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["offset", "prediction_id"]),
    st.booleans(),
)
def test_generated_lines_equal_python(
    records: list[dict[str, Any]], document_id: str, ascii_only: bool
) -> None:
    config = InputConfig(paths=("/x/*.jsonl",), model="churn", document_id=document_id)  # type: ignore[arg-type]
    fast, slow = pair(input_config=config)
    lines = []
    for record in records:
        try:
            text = json.dumps(record, ensure_ascii=ascii_only, separators=(",", ":"))
        except ValueError:
            continue
        lines.append(text.encode("utf-8", "surrogatepass"))
    assume(lines)
    assert_same(fast, slow, lines)


# ---- the pieces: JSON writer, scanner, tokenizer, timestamps ----------------------------------


def test_every_double_is_written_as_orjson_writes_it() -> None:
    rng = random.Random(7)
    doubles = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)]
    doubles += [10.0**e for e in range(-30, 30)] + [1.5 * 10.0**e for e in range(-30, 30)]
    doubles += [2.0**e for e in range(-1074, 1024, 7)] + [9007199254740993.0, 123456789012345.6]
    for value in doubles:
        if not math.isfinite(value) or value == 0.0:
            continue
        text = orjson.dumps(value)
        assert native.reencode(text) == text, value
        assert native.reencode(repr(value).encode()) == text, value


@settings(max_examples=500)
@given(json_values, st.booleans())
def test_reencode_equals_orjson(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if ascii_only else None).encode(
        "utf-8", "surrogatepass"
    )
    try:
        want = orjson.dumps(orjson.loads(text))
    except orjson.JSONDecodeError:
        want = None
    got = native.reencode(text)
    assert got is None or got == want


@settings(max_examples=500)
@given(json_values, st.data())
def test_the_scanner_takes_nothing_orjson_refuses(value: Any, data: st.DataObject) -> None:
    text = bytearray(json.dumps(value).encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()) and at < len(text):
            del text[at]
        else:
            text.insert(at, data.draw(st.sampled_from(b'{}[]",:\\-.0e1 \x00\xff')))
    try:
        want = orjson.dumps(orjson.loads(bytes(text)))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        want = None
    got = native.reencode(bytes(text))
    assert got is None or got == want, bytes(text)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=300))
def test_ascii_tokens_equal_the_tokenizer(text: str) -> None:
    assert native.tokenize(text) == tokenize(text)


def test_long_ascii_texts_keep_256_tokens_and_drop_long_ones() -> None:
    text = " ".join(f"Token{i}" for i in range(300)) + " " + "y" * 41 + " " + "z" * 40
    assert native.tokenize(text) == tokenize(text)
    assert native.tokenize("café") is None


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_canonical_timestamps_are_what_parse_timestamp_keeps(moment: datetime) -> None:
    text = format_timestamp(moment)
    assert native.is_canonical_timestamp(text)
    assert parse_timestamp(text) == text


@given(st.text(alphabet="0123456789-T:.Z ", min_size=24, max_size=24))
def test_a_timestamp_taken_as_canonical_is_valid(text: str) -> None:
    if native.is_canonical_timestamp(text):
        assert parse_timestamp(text) == text


def test_invalid_dates_are_not_canonical() -> None:
    day = datetime(2023, 2, 28, tzinfo=UTC) + timedelta(days=1)
    assert native.is_canonical_timestamp(day.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    for text in (
        "2023-02-29T00:00:00.000Z",
        "2026-04-31T00:00:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "2026-01-01T24:00:00.000Z",
        "2026-01-01T00:60:00.000Z",
        "2026-01-01T00:00:60.000Z",
    ):
        assert not native.is_canonical_timestamp(text)


# -- gzip_lines: the ship loop's refused items out of a spooled body (bulkbody.decode_some) --------


def _python_decode_some(payload: bytes, wanted: list[int]) -> dict[int, Any] | str:
    from unittest import mock

    from inferwatch.agent import bulkbody

    with mock.patch.object(bulkbody, "_gzip_lines", None):
        result: dict[int, Any] | str = _safe(bulkbody.decode_some, payload, wanted)
        return result


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=60),
    picks=st.lists(st.integers(0, 59), max_size=12),
    level=st.sampled_from([0, 1, 6, 9]),
)
def test_gzip_lines_finds_what_the_python_inflate_finds(
    docs: list[bytes], picks: list[int], level: int
) -> None:
    from inferwatch.agent import bulkbody

    items = [("logs-inferwatch.m-default", f"id-{i}", d) for i, d in enumerate(docs)]
    payload = bulkbody.encode_items(items, level)  # isal at levels 1-2, zlib at the others
    wanted = sorted({p % len(items) for p in picks})
    lines = native.gzip_lines(payload, [n for i in wanted for n in (2 * i, 2 * i + 1)])
    assert lines is not None
    assert lines[1::2] == [items[i][2] for i in wanted]
    assert bulkbody.decode_some(payload, wanted) == _python_decode_some(payload, wanted)


def test_gzip_lines_declines_every_body_the_python_path_must_judge() -> None:
    import gzip

    from inferwatch.agent import bulkbody

    items = [("logs-inferwatch.m-default", f"id-{i}", b"{}") for i in range(3)]
    raw = bulkbody.raw_body(items)
    good = bulkbody.compress(raw)
    bad = {
        "cut": good[:-9],
        "corrupt": good[:20] + bytes(b ^ 0xFF for b in good[20:30]) + good[30:],
        "not gzip": b"not a gzip member, but long enough",
        "odd lines": bulkbody.compress(raw[: raw.index(b"\n") + 1]),
        "no final newline": bulkbody.compress(raw[:-1]),
        "a size its trailer lies about": good[:-4] + (10**9).to_bytes(4, "little"),
    }
    for name, payload in bad.items():
        assert native.gzip_lines(payload, [0, 1]) is None, name
    assert native.gzip_lines(good, [6]) is None  # past the end: the Python path names the line
    assert native.gzip_lines(good, [1, 0]) is None  # not ascending
    for name, payload in bad.items():  # and decode_some says what the Python path says
        assert _safe(bulkbody.decode_some, payload, [0]) == _python_decode_some(payload, [0]), name
    assert _safe(bulkbody.decode_some, good, [3]) == _python_decode_some(good, [3])
    # Bytes after the member (never spooled: the spool's checksum covers the payload) are
    # ignored by both, which read the first member only.
    twice = good + gzip.compress(raw)
    assert bulkbody.decode_some(twice, [2]) == _python_decode_some(twice, [2]) == {2: items[2]}


def _safe(f: Any, *args: Any) -> Any:
    """``f(*args)``, or the ValueError it raised as text (to compare two paths' answers)."""
    try:
        return f(*args)
    except ValueError as e:
        return f"ValueError: {e}"
