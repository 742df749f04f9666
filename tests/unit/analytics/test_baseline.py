"""Baselines: literal frames -> known counts, quantiles, vocabularies and OOV; chunking never
changes a baseline; files and logs give the same baselines as frames; JSON round trips."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.analytics.baseline import (
    baseline_from_json,
    baseline_to_json,
    build_baseline,
    build_baseline_chunks,
    build_baseline_from_file,
    build_from_counts,
    heldout_mask,
    infer_kind,
    read_training,
    summary_table,
)
from inferwatch.analytics.model import Baseline, FeatureKind, Window
from inferwatch.analytics.sources.local import LocalSource
from inferwatch.analytics.sources.tables import category_str
from inferwatch.core.config import ModelConfig
from inferwatch.core.tokenize import tokenize

CREATED = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def build(frame: pd.DataFrame, kinds: dict[str, FeatureKind], **kw: float) -> Baseline:
    return build_baseline(frame, "m", "1", kinds, "training:test", CREATED, **kw)  # type: ignore[arg-type]


def test_categorical_values_follow_the_shared_string_rule() -> None:
    frame = pd.DataFrame(
        {
            "inputs.flag": [True, False, True, None],
            "inputs.n": [4, None, 4, 7],  # pandas widens to float64: 4.0 is still "4"
            "inputs.x": [0.5, 1.0, None, 0.5],
            "inputs.s": ["a", "b", "a", None],
            "unqualified": [1, 2, 3, 4],
        }
    )
    kinds: dict[str, FeatureKind] = {
        k: "categorical" for k in ("inputs.flag", "inputs.n", "inputs.x", "inputs.s")
    }
    b = build(frame, kinds)
    assert set(b.features) == {"inputs.flag", "inputs.n", "inputs.x", "inputs.s"}
    assert b.rows == 4
    assert dict(b.features["inputs.flag"].categories) == {"false": 1, "true": 2}
    assert dict(b.features["inputs.n"].categories) == {"4": 2, "7": 1}
    assert dict(b.features["inputs.x"].categories) == {"0.5": 2, "1": 1}
    assert dict(b.features["inputs.s"].categories) == {"a": 2, "b": 1}
    assert [b.features[k].nulls for k in ("inputs.flag", "inputs.n", "inputs.x", "inputs.s")] == [1, 1, 1, 1]
    # Good-Turing: one value seen once among three observations
    assert b.features["inputs.n"].unseen_rate == pytest.approx(1 / 3)
    assert b.features["inputs.flag"].unseen_rate == pytest.approx(1 / 3)


def test_numeric_edges_bins_and_quantiles() -> None:
    frame = pd.DataFrame({"inputs.v": [*map(float, range(1, 101)), None, "abc"]}, dtype="object")
    b = build(frame, {"inputs.v": "numeric"}, bins=4)
    fb = b.features["inputs.v"]
    assert (fb.rows, fb.nulls) == (102, 2)  # a value that is not a number is null, as in the agent
    assert fb.edges == (25.75, 50.5, 75.25)
    assert fb.bin_counts == (25, 25, 25, 25)
    assert dict(fb.quantiles) == pytest.approx(
        {"p1": 1.99, "p5": 5.95, "p25": 25.75, "p50": 50.5, "p75": 75.25, "p95": 95.05, "p99": 99.01}
    )


def test_repeated_values_give_fewer_edges_but_every_value_is_counted() -> None:
    b = build(pd.DataFrame({"inputs.v": [0.0] * 6 + [1.0, 2.0, 3.0, 4.0]}), {"inputs.v": "numeric"}, bins=4)
    assert b.features["inputs.v"].edges == (0.0, 1.75)  # quartiles 0, 0, 1.75
    assert b.features["inputs.v"].bin_counts == (0, 7, 3)


def test_beyond_the_sample_edges_are_estimated_but_bin_counts_stay_exact() -> None:
    values = np.arange(1000, dtype=float)
    frame = pd.DataFrame({"inputs.v": values})
    whole = build_baseline_chunks(lambda: [frame], "m", "1", {}, "t", CREATED, bins=10, sample_size=50)
    chunked = build_baseline_chunks(
        lambda: [frame.iloc[i : i + 77] for i in range(0, 1000, 77)],
        "m",
        "1",
        {},
        "t",
        CREATED,
        bins=10,
        sample_size=50,
    )
    assert whole == chunked
    fb = whole.features["inputs.v"]
    assert fb.kind == "numeric"
    assert len(fb.edges) == 9
    assert all(
        abs(e - 100 * (i + 1)) < 150 for i, e in enumerate(fb.edges)
    )  # a sample of 50 estimates deciles
    expected = [
        int(((values >= lo) & (values < hi)).sum())
        for lo, hi in zip((-np.inf, *fb.edges), (*fb.edges, np.inf), strict=True)
    ]
    assert list(fb.bin_counts) == expected
    assert sum(fb.bin_counts) == 1000


def test_vocabulary_is_document_frequencies_capped_at_top_k() -> None:
    texts = ["late again", "Late, LATE!", "on time", None, "again and again", ""]
    b = build(pd.DataFrame({"inputs.t": texts}), {"inputs.t": "text"}, heldout_fraction=0.0, top_k_vocab=3)
    fb = b.features["inputs.t"]
    assert dict(fb.vocabulary) == {"again": 2, "late": 2, "and": 1}  # ties by token: and < on < time
    assert (fb.text_docs, fb.nulls, fb.heldout_docs) == (4, 1, 0)


def test_oov_is_measured_on_held_out_rows_against_the_fit_vocabulary() -> None:
    held = heldout_mask(0, 20, seed=0, fraction=0.2)
    assert held.nonzero()[0].tolist() == [1, 4, 18]  # the split is a fixed function of row and seed
    texts = ["common words"] * 20
    texts[4] = "common zebra"  # held out, has a token the fit rows never had
    texts[18] = "!!"  # held out, no tokens: not a document with tokens
    b = build(pd.DataFrame({"inputs.t": texts}), {"inputs.t": "text"})
    fb = b.features["inputs.t"]
    assert dict(fb.vocabulary) == {"common": 17, "words": 17}
    assert (fb.text_docs, fb.heldout_docs, fb.heldout_oov_docs) == (17, 2, 1)
    assert fb.oov_rate == 0.5


def test_heldout_share_is_close_to_the_fraction() -> None:
    assert heldout_mask(0, 100_000, seed=3, fraction=0.2).mean() == pytest.approx(0.2, abs=0.005)
    assert (heldout_mask(500, 10, 3, 0.5) == heldout_mask(0, 510, 3, 0.5)[500:]).all()


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1, 2, 3], "numeric"),
        ([1.5, None], "numeric"),
        ([True, False], "categorical"),
        (["DE", "FR", "DE"], "categorical"),
        (["the parcel arrived late again", "not what I ordered at all"], "text"),
        ([f"user{i}" for i in range(30)], "text"),  # mostly distinct strings
        ([f"user{i}" for i in range(10)], "categorical"),  # too few values for the distinct rule
        ([None, None], "categorical"),
    ],
)
def test_kind_inference(values: list[object], kind: str) -> None:
    assert infer_kind(pd.Series(values)) == kind


def mixed_frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["late", "again", "refund", "great", "broken", "box", "fast", "slow", "ok"])
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 5))) for _ in range(n)]
    age = rng.normal(40, 10, n)
    age[rng.random(n) < 0.1] = np.nan
    country = rng.choice(
        np.array(["DE", "FR", "US", "IT", None], dtype=object), size=n, p=[0.4, 0.3, 0.2, 0.05, 0.05]
    )
    return pd.DataFrame(
        {"inputs.age": age, "inputs.country": country, "inputs.review": texts, "outputs.score": rng.random(n)}
    )


def test_chunked_equals_unchunked() -> None:
    frame = mixed_frame(1000)
    kinds: dict[str, FeatureKind] = {"inputs.review": "text", "inputs.country": "categorical"}

    def chunks() -> Iterator[pd.DataFrame]:
        for i in range(0, len(frame), 97):
            yield frame.iloc[i : i + 97]

    for sample_size in (100, 100_000):
        whole = build_baseline_chunks(lambda: [frame], "m", "1", kinds, "t", CREATED, sample_size=sample_size)
        assert build_baseline_chunks(chunks, "m", "1", kinds, "t", CREATED, sample_size=sample_size) == whole
    assert whole.features["outputs.score"].kind == "numeric"
    assert whole.features["inputs.review"].heldout_docs > 0


def test_json_round_trip_is_exact_and_stable() -> None:
    b = build(mixed_frame(300), {"inputs.review": "text", "inputs.country": "categorical"})
    b = Baseline(
        b.model, b.version, b.created, b.source, b.rows, b.features, MappingProxyType({0: 1.5, 167: 12.0})
    )
    data = baseline_to_json(b)
    assert baseline_from_json(data) == b
    assert baseline_to_json(baseline_from_json(data)) == data
    raw = orjson.loads(data)
    assert raw["format"] == 1 and raw["hourly_volume"] == {"0": 1.5, "167": 12.0}
    raw["format"] = 99
    with pytest.raises(ValueError, match="unsupported baseline format 99"):
        baseline_from_json(orjson.dumps(raw))


def test_summary_table_has_a_row_per_feature() -> None:
    b = build(mixed_frame(300), {"inputs.review": "text", "inputs.country": "categorical"})
    table = summary_table(b)
    lines = table.splitlines()
    assert lines[0].startswith("baseline m@1")
    assert lines[1].split() == ["feature", "kind", "rows", "nulls", "reference", "unseen/oov"]
    assert [line.split()[0] for line in lines[2:]] == [
        "inputs.age",
        "inputs.country",
        "inputs.review",
        "outputs.score",
    ]
    assert "categories (top: DE, FR, US)" in table and "vocabulary 9 tokens" in table


TRAINING = pd.DataFrame(
    {
        "age": [41.0, 37.0, None, 52.0, 29.0, 33.0, 61.0],
        "country": ["007", "DE", "DE", None, "FR", "DE", "007"],
        "review": ["late again", "great", "broken box", "ok", None, "late", "fast"],
        "label": ["churn", "stay", "stay", "churn", "stay", "stay", "stay"],
        "cylinders": [4, 6, None, 4, 8, 4, 6],  # float64 with nulls: written "4.0" in CSV
        "row_id": range(7),
    }
)
MODEL_CONFIG = ModelConfig(
    features={
        "age": "numeric",
        "country": "categorical",
        "review": "text",
        "absent": "numeric",
        "cylinders": "categorical",
    },
    outputs={"label": "categorical"},
)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_training_files_give_the_frame_baseline(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    if suffix == ".csv":
        TRAINING.to_csv(path, index=False)
    else:
        TRAINING.to_parquet(path, index=False, row_group_size=2)
    seen: list[int] = []
    b, notes = build_baseline_from_file(
        path, "m", "1", MODEL_CONFIG, CREATED, chunksize=3, progress=seen.append
    )
    assert sum(seen) == 2 * len(TRAINING)  # the text feature needs a second pass
    assert b.source == f"training:train{suffix}"
    assert any("row_id" in n for n in notes) and any("inputs.absent" in n for n in notes)
    assert dict(b.features["inputs.country"].categories) == {"007": 2, "DE": 3, "FR": 1}
    assert dict(b.features["inputs.cylinders"].categories) == {"4": 3, "6": 2, "8": 1}
    frame = TRAINING.drop(columns=["row_id"]).rename(
        columns={
            "age": "inputs.age",
            "country": "inputs.country",
            "review": "inputs.review",
            "label": "outputs.label",
            "cylinders": "inputs.cylinders",
        }
    )
    kinds: dict[str, FeatureKind] = {
        "inputs.age": "numeric",
        "inputs.country": "categorical",
        "inputs.review": "text",
        "outputs.label": "categorical",
        "inputs.cylinders": "categorical",
    }
    expected = build_baseline(frame, "m", "1", kinds, b.source, CREATED)
    assert b == expected


def test_read_training_refuses_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected a \.csv or \.parquet"):
        list(read_training(tmp_path / "train.xlsx"))


def test_a_baseline_from_logs_uses_count_tables(tmp_path: Path) -> None:
    start = datetime(2026, 11, 22, 10, tzinfo=UTC)  # a Sunday: hour-of-week 6 * 24 + 10 = 154
    times = [start + timedelta(minutes=6 * i) for i in range(10)]
    times += [start + timedelta(hours=1, minutes=5 * i) for i in range(5)]
    times += [start + timedelta(hours=1, minutes=m) for m in (40, 45, 50)]  # after the split at 11:36
    reviews = ["hello world"] * 15 + ["hello world", "hello mars", "hello world"]
    lines = []
    for i, (ts, review) in enumerate(zip(times, reviews, strict=True)):
        value = "C" if i == 17 else ("A" if i % 2 == 0 else "B")
        doc = {
            "_id": f"d{i}",
            "@timestamp": ts.isoformat().replace("+00:00", "Z"),
            "ml": {
                "model": {"name": "m", "version": "1"},
                "inputs": {"age": float(i), "country": value, "review": review},
                "tokens": {"review": tokenize(review)},
            },
        }
        lines.append(orjson.dumps(doc))
    segment = tmp_path / "logs-inferwatch.m-default" / "00000000000000000001.ndjson"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"\n".join(lines) + b"\n")
    kinds: dict[str, FeatureKind] = {
        "inputs.age": "numeric",
        "inputs.country": "categorical",
        "inputs.review": "text",
    }
    window = Window(start, start + timedelta(hours=2))

    b = build_from_counts(LocalSource(tmp_path), "m", "1", window, kinds, CREATED, bins=4)

    assert b.rows == 18 and b.source == "logs:2026-11-22T10:00:00+00:00/2026-11-22T12:00:00+00:00"
    country = b.features["inputs.country"]
    assert dict(country.categories) == {"A": 9, "B": 8, "C": 1}
    assert country.unseen_rate == pytest.approx(1 / 18)
    age = b.features["inputs.age"]
    assert age.edges == (4.25, 8.5, 12.75)
    assert age.bin_counts == (5, 4, 4, 5)
    assert age.quantiles["p50"] == 8.5
    text = b.features["inputs.review"]
    assert dict(text.vocabulary) == {"hello": 15, "world": 15}
    assert (text.text_docs, text.heldout_docs, text.heldout_oov_docs) == (15, 3, 1)
    assert dict(b.hourly_volume) == {154: 10.0, 155: 8.0}


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=200),
    chunk=st.integers(min_value=1, max_value=60),
    sample_size=st.integers(min_value=3, max_value=80),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_chunking_gives_the_same_baseline(n: int, chunk: int, sample_size: int, seed: int) -> None:
    frame = mixed_frame(n, seed)
    kinds: dict[str, FeatureKind] = {
        "inputs.review": "text",
        "inputs.country": "categorical",
        "inputs.age": "numeric",
    }

    def build_with(chunks: list[pd.DataFrame]) -> Baseline:
        return build_baseline_chunks(
            lambda: chunks, "m", "1", kinds, "t", CREATED, seed=seed, sample_size=sample_size
        )

    whole = build_with([frame])
    assert build_with([frame.iloc[i : i + chunk] for i in range(0, n, chunk)]) == whole
    age = whole.features["inputs.age"]
    assert sum(age.bin_counts) == age.rows - age.nulls  # bins always count every value exactly


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DE", "DE"),
        ("007", "007"),
        (True, "true"),
        (np.bool_(False), "false"),
        (4, "4"),
        (4.0, "4"),  # pandas int column with nulls; Elasticsearch double keys
        (np.int64(3), "3"),
        (2.5, "2.5"),
        (1e-7, "1e-7"),  # as the agent's normalizer (orjson) writes it
        (float("nan"), None),
        (None, None),
    ],
)
def test_category_string_rule(value: object, expected: str | None) -> None:
    assert category_str(value) == expected


def test_infinite_training_values_are_missing_as_in_production() -> None:
    """The agent turns a non-finite number into null (JSON has no Infinity), so production
    never holds one: training infinities are nulls, not values piled into the outer bins."""
    frame = pd.DataFrame({"inputs.x": [1.0, np.inf, -np.inf, 2.0, np.nan, 3.0]})
    fb = build(frame, {"inputs.x": "numeric"}).features["inputs.x"]
    assert (fb.rows, fb.nulls, sum(fb.bin_counts)) == (6, 3, 3)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_boolean_categorical_is_true_false_from_csv_as_from_parquet(tmp_path: Path, suffix: str) -> None:
    """pandas writes booleans to CSV as True/False; the agent writes a JSON boolean as
    "true"/"false" and category_str does too: a CSV baseline held "True" and every value of
    the window was unseen."""
    path = tmp_path / f"train{suffix}"
    frame = pd.DataFrame({"promo": [True, False, True, None]})
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    config = ModelConfig(features={"promo": "categorical"})
    b, _ = build_baseline_from_file(path, "m", "1", config, CREATED)
    fb = b.features["inputs.promo"]
    assert dict(fb.categories) == {"false": 1, "true": 2} and fb.nulls == 1
