"""The local source: literal documents in a store -> exact count tables."""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind, Window
from inferwatch.analytics.sources.local import LocalSource
from inferwatch.analytics.sources.tables import (
    categories_table,
    category_str,
    numeric_table,
    presence_table,
    text_docs_table,
    tokens_table,
    versions_table,
    volume_table,
)
from inferwatch.core.tokenize import tokenize

MODEL = "churn-classifier"
INDEX = "logs-inferwatch.churn_classifier-default"
WINDOW = Window(datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))
KINDS: dict[str, FeatureKind] = {
    "inputs.age": "numeric",
    "inputs.country": "categorical",
    "inputs.review": "text",
    "inputs.gone": "numeric",
    "outputs.label": "categorical",
}
INF = math.inf


def doc(
    _id: str,
    ts: str,
    inputs: dict[str, Any],
    *,
    version: str = "1",
    model: str = MODEL,
    outputs: dict[str, Any] | None = None,
    tokens: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    ml: dict[str, Any] = {"model": {"name": model, "version": version}, "inputs": inputs}
    if outputs is not None:
        ml["outputs"] = outputs
    if tokens is not None:
        ml["tokens"] = tokens
    return {
        "_id": _id,
        "@timestamp": ts,
        "data_stream": {"type": "logs", "dataset": "inferwatch.churn_classifier", "namespace": "default"},
        "ml": ml,
    }


D1 = doc(
    "d1",
    "2026-11-22T10:05:00.000Z",
    {"age": 41.0, "country": "DE", "review": "late again"},
    outputs={"score": 0.8, "label": "churn"},
    tokens={"review": ["late", "again"]},
)
DOCS_A = [
    D1,
    doc(
        "d2",
        "2026-11-22T10:10:00.000Z",
        {"age": "37", "country": "FR", "review": "new words here"},
        tokens={"review": ["new", "words", "here"]},
    ),
    doc("d3", "2026-11-22T10:20:00.000Z", {"age": None, "country": None}),
    doc(
        "d4",
        "2026-11-22T10:30:00.000Z",
        {"age": 99.0, "country": "XX", "review": "late"},
        tokens={"review": ["late"]},
    ),
    doc("d5", "2026-11-22T10:40:00.000Z", {"age": 5.0, "country": 4}),
]
DOCS_B = [
    doc(
        "d6", "2026-11-22T10:45:00.000Z", {"country": True, "review": "", "age": "n/a"}, tokens={"review": []}
    ),
    doc("d7", "2026-11-22T10:50:00.000Z", {"country": "a" * 1025}),
    dict(D1),  # a replayed duplicate: counted once
    doc("d8", "2026-11-22T11:00:00.000Z", {"country": "DE"}),  # the window's end is exclusive
    doc("d9", "2026-11-22T09:59:59.999Z", {"country": "DE"}),
    doc("d10", "2026-11-22T10:15:00.000Z", {"country": "DE"}, version="2"),
    doc("d11", "2026-11-22T10:15:00.000Z", {"country": "DE"}, model="Churn-Classifier"),  # same data stream
]
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
    },
)


def write_segment(store: Path, name: str, lines: list[bytes], index: str = INDEX) -> Path:
    path = store / index / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    write_segment(tmp_path, "00000000000000000001.ndjson", [orjson.dumps(d) for d in DOCS_A])
    write_segment(tmp_path, "00000000000000000002.ndjson", [orjson.dumps(d) for d in DOCS_B] + [b"not json"])
    return tmp_path


def test_window_counts_give_exact_tables(store: Path) -> None:
    source = LocalSource(store)
    counts = source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS)
    assert counts.docs == 7
    assert_frame_equal(
        counts.presence,
        presence_table(
            [
                ("inputs.age", 4, 3),  # 41, "37", 99, 5; null, "n/a" and absent are missing
                ("inputs.country", 5, 2),  # null and the 1025-character string are missing
                ("inputs.gone", 0, 7),
                ("inputs.review", 4, 3),  # "" is a value
                ("outputs.label", 1, 6),
            ]
        ),
    )
    assert_frame_equal(
        counts.categories,
        categories_table(
            [
                ("inputs.country", "4", 1, False),
                ("inputs.country", "DE", 1, True),
                ("inputs.country", "FR", 1, True),
                ("inputs.country", "XX", 1, False),
                ("inputs.country", "true", 1, False),
                ("outputs.label", "churn", 1, False),
            ]
        ),
    )
    assert_frame_equal(
        counts.numeric,
        numeric_table(
            [
                ("inputs.age", 0, -INF, 10.0, 1),
                ("inputs.age", 1, 10.0, 50.0, 2),
                ("inputs.age", 2, 50.0, INF, 1),
                ("inputs.gone", 0, -INF, INF, 0),
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
    assert source.dropped["invalid_json"] == 1


def test_without_a_baseline_everything_is_unseen_and_numeric_has_one_bin(store: Path) -> None:
    counts = LocalSource(store).window_counts(MODEL, "1", WINDOW, None, KINDS)
    assert not counts.categories["in_baseline"].any()
    assert not counts.tokens["in_vocab"].any()
    assert_frame_equal(counts.text_docs, text_docs_table([("inputs.review", 3, 3)]))
    assert_frame_equal(
        counts.numeric,
        numeric_table([("inputs.age", 0, -INF, INF, 4), ("inputs.gone", 0, -INF, INF, 0)]),
    )


def test_model_counts_count_versions_and_hours(store: Path) -> None:
    counts = LocalSource(store).model_counts(MODEL, WINDOW)
    assert_frame_equal(counts.versions, versions_table([("1", 7), ("2", 1)]))
    assert_frame_equal(counts.volume, volume_table([(pd.Timestamp("2026-11-22T10:00Z"), 8)]))


def test_volume_covers_every_hour_the_window_touches_with_zeros(store: Path) -> None:
    window = Window(datetime(2026, 11, 22, 9, 30, tzinfo=UTC), datetime(2026, 11, 22, 12, 0, 1, tzinfo=UTC))
    counts = LocalSource(store).model_counts(MODEL, window)
    assert_frame_equal(
        counts.volume,
        volume_table(
            [
                (pd.Timestamp("2026-11-22T09:00Z"), 1),
                (pd.Timestamp("2026-11-22T10:00Z"), 8),
                (pd.Timestamp("2026-11-22T11:00Z"), 1),
                (pd.Timestamp("2026-11-22T12:00Z"), 0),
            ]
        ),
    )


def test_an_empty_store_gives_empty_tables(tmp_path: Path) -> None:
    source = LocalSource(tmp_path)
    counts = source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS)
    assert counts.docs == 0
    assert counts.presence["missing"].tolist() == [0] * 5
    assert counts.categories.empty and counts.tokens.empty
    assert counts.numeric["count"].tolist() == [0, 0, 0, 0]
    model = source.model_counts(MODEL, WINDOW)
    assert model.versions.empty
    assert model.volume["docs"].tolist() == [0]


def test_nested_inputs_and_arrays_follow_elasticsearch_semantics(tmp_path: Path) -> None:
    docs = [
        doc("n1", "2026-11-22T10:01:00Z", {"user": {"age": 20.0, "tags": ["a", "b", "a"]}}),
        doc("n2", "2026-11-22T10:02:00Z", {"user.age": 60.0, "user": {"tags": []}}),
        doc("n3", "2026-11-22T10:03:00Z", {"user": {"tags": ["b", None]}}),
    ]
    write_segment(tmp_path, "00000000000000000001.ndjson", [orjson.dumps(d) for d in docs])
    kinds: dict[str, FeatureKind] = {"inputs.user.age": "numeric", "inputs.user.tags": "categorical"}
    counts = LocalSource(tmp_path).window_counts(MODEL, "1", WINDOW, None, kinds)
    assert_frame_equal(
        counts.presence, presence_table([("inputs.user.age", 2, 1), ("inputs.user.tags", 2, 1)])
    )
    assert_frame_equal(
        counts.categories,
        categories_table([("inputs.user.tags", "a", 1, False), ("inputs.user.tags", "b", 2, False)]),
    )


def test_a_changed_segment_is_read_again_and_an_unchanged_one_is_not(store: Path) -> None:
    source = LocalSource(store)
    assert source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS).docs == 7
    cached = dict(source._cache[MODEL])
    extra = doc("d12", "2026-11-22T10:55:00.000Z", {"country": "FR"})
    path = store / INDEX / "00000000000000000002.ndjson"
    path.write_bytes(path.read_bytes() + orjson.dumps(extra) + b"\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS).docs == 8
    first = str(store / INDEX / "00000000000000000001.ndjson")
    second = str(path)
    assert source._cache[MODEL][first] is cached[first]
    assert source._cache[MODEL][second] is not cached[second]


def test_segments_before_the_window_leave_memory_and_come_back_when_needed(store: Path) -> None:
    source = LocalSource(store)
    later = Window(datetime(2026, 11, 22, 10, 42, tzinfo=UTC), datetime(2026, 11, 22, 12, tzinfo=UTC))
    assert source.window_counts(MODEL, "1", later, BASELINE, KINDS).docs == 3  # d6, d7, d8
    first = source._cache[MODEL][str(store / INDEX / "00000000000000000001.ndjson")]
    assert first.frame is None and first.last is not None  # ends at 10:40, before the window
    assert source.window_counts(MODEL, "1", WINDOW, BASELINE, KINDS).docs == 7


def test_percentiles_are_computed_over_the_values(store: Path) -> None:
    table = LocalSource(store).percentiles(MODEL, "1", WINDOW, ["inputs.age", "inputs.gone"], [50.0, 100.0])
    assert table.to_dict("records") == [
        {"feature": "inputs.age", "percent": 50.0, "value": 39.0},
        {"feature": "inputs.age", "percent": 100.0, "value": 99.0},
    ]


# --- against a plain reference: a per-document loop that states the semantics directly ----------

WORDS = ["late", "again", "refund", "ok", "zebra"]
_doc_strategy = st.fixed_dictionaries(
    {
        "id": st.integers(0, 15),
        "minute": st.integers(-30, 90),  # 09:30 .. 11:30
        "version": st.sampled_from(["1", "2"]),
        "country": st.sampled_from(["DE", "FR", "XX", None, 4, 4.0, True, 2.5, "absent", ["DE", "XX"]]),
        "age": st.sampled_from([5.0, 10.0, 49.9, 50.0, 80.0, None, "12", "n/a", "absent", [1.0, 60.0]]),
        "review": st.lists(st.sampled_from(WORDS), max_size=4),
    }
)


def _make(spec: dict[str, Any]) -> dict[str, Any]:
    ts = (WINDOW.start + timedelta(minutes=spec["minute"])).isoformat().replace("+00:00", "Z")
    inputs = {k: spec[k] for k in ("country", "age") if spec[k] != "absent"}
    tokens = None
    if spec["review"]:
        inputs["review"] = " ".join(spec["review"])
        tokens = {"review": tokenize(inputs["review"])}
    return doc(f"i{spec['id']}", ts, inputs, version=spec["version"], tokens=tokens)


def _leaves(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if v is not None]


def reference_counts(docs: list[dict[str, Any]], version: str) -> dict[str, Any]:
    seen: set[str] = set()
    kept = []
    for d in docs:
        if d["_id"] in seen:
            continue
        seen.add(d["_id"])
        ts = pd.Timestamp(d["@timestamp"])
        if d["ml"]["model"]["version"] == version and WINDOW.start <= ts < WINDOW.end:
            kept.append(d)
    cats: Counter[str] = Counter()
    bins: Counter[int] = Counter()
    toks: Counter[str] = Counter()
    present = {"country": 0, "age": 0, "review": 0}
    text_docs = oov_docs = 0
    for d in kept:
        inputs = d["ml"]["inputs"]
        values = {c for v in _leaves(inputs.get("country")) if (c := category_str(v)) is not None}
        present["country"] += bool(values)
        cats.update(values)
        numbers = []
        for v in _leaves(inputs.get("age")):
            with contextlib.suppress(ValueError):
                numbers.append(float(v))
        present["age"] += bool(numbers)
        bins.update({0 if x < 10 else 1 if x < 50 else 2 for x in numbers})
        present["review"] += "review" in inputs
        tokens = set(d["ml"].get("tokens", {}).get("review", []))
        toks.update(tokens)
        if tokens:
            text_docs += 1
            oov_docs += any(t not in BASELINE.features["inputs.review"].vocabulary for t in tokens)
    return {
        "docs": len(kept),
        "present": present,
        "categories": dict(cats),
        "bins": [bins.get(b, 0) for b in range(3)],
        "tokens": dict(toks),
        "text_docs": (text_docs, oov_docs),
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(_doc_strategy, max_size=25), split=st.integers(0, 25), version=st.sampled_from(["1", "2"])
)
def test_tables_match_a_per_document_reference(
    tmp_path_factory: pytest.TempPathFactory, specs: list[dict[str, Any]], split: int, version: str
) -> None:
    store = tmp_path_factory.mktemp("store")
    first: dict[int, dict[str, Any]] = {}
    docs = [_make(first.setdefault(s["id"], s)) for s in specs]  # a replayed id is the same document
    write_segment(store, "00000000000000000001.ndjson", [orjson.dumps(d) for d in docs[:split]])
    write_segment(store, "00000000000000000002.ndjson", [orjson.dumps(d) for d in docs[split:]])
    kinds: dict[str, FeatureKind] = {
        "inputs.age": "numeric",
        "inputs.country": "categorical",
        "inputs.review": "text",
    }
    counts = LocalSource(store).window_counts(MODEL, version, WINDOW, BASELINE, kinds)
    expected = reference_counts(docs, version)
    assert counts.docs == expected["docs"]
    present = dict(zip(counts.presence["feature"], counts.presence["present"], strict=True))
    assert present == {f"inputs.{k}": v for k, v in expected["present"].items()}
    assert (counts.presence["present"] + counts.presence["missing"] == counts.docs).all()
    assert (
        dict(zip(counts.categories["value"], counts.categories["count"], strict=True))
        == expected["categories"]
    )
    assert counts.numeric["count"].tolist() == expected["bins"]
    assert dict(zip(counts.tokens["token"], counts.tokens["doc_count"], strict=True)) == expected["tokens"]
    assert tuple(counts.text_docs[["docs", "oov_docs"]].iloc[0]) == expected["text_docs"]


def test_documents_without_an_id_are_each_a_document(tmp_path: Path) -> None:
    """Elasticsearch gives a document without ``_id`` an id of its own; deduplication by
    (index, _id) made every such line one document (null == null for drop_duplicates)."""
    docs = [doc("x", f"2026-11-22T10:0{i}:00Z", {"country": c}) for i, c in enumerate(["DE", "FR", "FR"])]
    for d in docs:
        del d["_id"]
    docs.append(doc("dup", "2026-11-22T10:05:00Z", {"country": "IT"}))
    docs.append(doc("dup", "2026-11-22T10:05:00Z", {"country": "IT"}))  # a replayed line
    write_segment(tmp_path, "00000000000000000001.ndjson", [orjson.dumps(d) for d in docs])
    counts = LocalSource(tmp_path).window_counts(MODEL, "1", WINDOW, None, {"inputs.country": "categorical"})
    assert counts.docs == 4
    assert_frame_equal(
        counts.categories,
        categories_table(
            [
                ("inputs.country", "DE", 1, False),
                ("inputs.country", "FR", 2, False),
                ("inputs.country", "IT", 1, False),
            ]
        ),
    )


def test_booleans_are_never_numbers_whatever_the_column_holds(tmp_path: Path) -> None:
    """Elasticsearch ignores a boolean in a numeric field; a segment whose column held only
    booleans (a bool dtype, not object) counted them as 1.0 and 0.0."""
    cases: list[tuple[str, list[Any]]] = [("1", [True, False]), ("2", [True, 3.0])]
    for name, values in cases:
        root = tmp_path / name
        docs = [doc(f"b{i}", f"2026-11-22T10:0{i}:00Z", {"age": v}) for i, v in enumerate(values)]
        write_segment(root, "00000000000000000001.ndjson", [orjson.dumps(d) for d in docs])
        counts = LocalSource(root).window_counts(MODEL, "1", WINDOW, None, {"inputs.age": "numeric"})
        numbers = [v for v in values if not isinstance(v, bool)]
        assert_frame_equal(counts.presence, presence_table([("inputs.age", len(numbers), 2 - len(numbers))]))
        assert counts.numeric["count"].tolist() == [len(numbers)]


def _day_store(tmp_path: Path, days: int = 5) -> Path:
    """One segment a day (docs at 10:00-10:50 each day); the window is the last day's 10:00 hour."""
    for day in range(days):
        docs = [
            doc(f"d{day}-{i}", f"2026-11-{18 + day:02d}T10:{i * 10:02d}:00.000Z", {"country": "DE", "age": i})
            for i in range(6)
        ]
        write_segment(tmp_path, f"{day + 1:020d}.ndjson", [orjson.dumps(d) for d in docs])
    return tmp_path


LAST_HOUR = Window(datetime(2026, 11, 22, 10, tzinfo=UTC), datetime(2026, 11, 22, 11, tzinfo=UTC))


def test_only_segments_that_overlap_the_window_are_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost of an evaluation follows the window: segments outside it have their span scanned
    (timestamps only), never their documents parsed."""
    store = _day_store(tmp_path / "store")
    parsed: list[str] = []
    real = LocalSource._parse

    def spy(self: LocalSource, path: str, stamp: tuple[int, int]) -> Any:
        parsed.append(path)
        return real(self, path, stamp)

    monkeypatch.setattr(LocalSource, "_parse", spy)
    source = LocalSource(store)
    assert source.window_counts(MODEL, "1", LAST_HOUR, None, KINDS).docs == 6
    assert [Path(p).name for p in parsed] == [f"{5:020d}.ndjson"]


def test_a_fresh_process_reads_spans_from_the_index_not_the_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _day_store(tmp_path / "store")
    index = tmp_path / "state" / "store-index.json"
    assert LocalSource(store, index_file=index).model_counts(MODEL, LAST_HOUR).versions["docs"].tolist() == [
        6
    ]
    assert len(orjson.loads(index.read_bytes())["segments"]) == 5

    import inferwatch.analytics.sources.local as local

    scanned: list[str] = []
    real_scan = local.scan_span

    def spy(path: str) -> Any:
        scanned.append(path)
        return real_scan(path)

    monkeypatch.setattr(local, "scan_span", spy)
    fresh = LocalSource(store, index_file=index)  # what the next `analytics once` builds
    assert fresh.window_counts(MODEL, "1", LAST_HOUR, None, KINDS).docs == 6
    assert scanned == []

    # an old segment that changes (a late document inside the window) is scanned and read again
    old = store / INDEX / f"{1:020d}.ndjson"
    late = doc("late", "2026-11-22T10:59:00.000Z", {"country": "FR"})
    old.write_bytes(old.read_bytes() + orjson.dumps(late) + b"\n")
    os.utime(old, ns=(old.stat().st_atime_ns, old.stat().st_mtime_ns + 1_000_000))
    again = LocalSource(store, index_file=index)
    assert again.window_counts(MODEL, "1", LAST_HOUR, None, KINDS).docs == 7
    assert [Path(p).name for p in scanned] == [old.name]

    # a segment removed (retention) leaves the index; an unreadable index is rebuilt, not an error
    old.unlink()
    assert LocalSource(store, index_file=index).window_counts(MODEL, "1", LAST_HOUR, None, KINDS).docs == 6
    assert len(orjson.loads(index.read_bytes())["segments"]) == 4
    index.write_bytes(b"{not json")
    assert LocalSource(store, index_file=index).window_counts(MODEL, "1", LAST_HOUR, None, KINDS).docs == 6


def test_every_namespace_given_is_read(tmp_path: Path) -> None:
    prod = doc("p1", "2026-11-22T10:05:00.000Z", {"country": "DE"})
    write_segment(tmp_path, "1.ndjson", [orjson.dumps(prod)], index="logs-inferwatch.churn_classifier-prod")
    write_segment(tmp_path, "1.ndjson", [orjson.dumps(D1)])
    other = "logs-inferwatch.churn_classifier-staging"
    write_segment(
        tmp_path, "1.ndjson", [orjson.dumps(doc("s1", "2026-11-22T10:05:00.000Z", {}))], index=other
    )
    assert LocalSource(tmp_path, "default").window_counts(MODEL, "1", WINDOW, None, KINDS).docs == 1
    assert LocalSource(tmp_path, ("default", "prod")).window_counts(MODEL, "1", WINDOW, None, KINDS).docs == 2
