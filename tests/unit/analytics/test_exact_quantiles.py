"""A baseline built ``--from-logs`` has the same numeric edges on both backends: the Elasticsearch
source's percentiles are exact (refined range counts) and equal the local source's numpy
percentiles to the bit, on real data and on edge cases, through the real client and a loopback
server answering as Elasticsearch does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from pandas.testing import assert_frame_equal

from inferwatch.analytics.baseline import build_from_counts
from inferwatch.analytics.model import FeatureKind, Window
from inferwatch.analytics.queries import PERCENTS
from inferwatch.analytics.sources import exact_quantiles
from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource
from inferwatch.analytics.sources.local import LocalSource
from tests.contract.sources_fixtures import NAMESPACE, write_local
from tests.fakes.search_server import SearchServer

MODEL = "cars"
WINDOW = Window(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC))
EDGE_PCTS = [10.0 * i for i in range(1, 10)]


def docs_of(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    n = len(next(iter(columns.values())))
    out = []
    for i in range(n):
        ts = WINDOW.start + timedelta(seconds=i * 86400 / (n + 1))
        inputs = {k: v[i] for k, v in columns.items() if v[i] is not None}
        out.append(
            {
                "_id": f"d{i}",
                "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "ml": {"model": {"name": MODEL, "version": "1"}, "inputs": inputs},
            }
        )
    return out


def cars() -> dict[str, list[Any]]:
    from inferwatch.analytics.demo.data import load_cars

    df = load_cars()
    return {
        c: [None if v != v else float(v) for v in df[c]] for c in ("horsepower", "weight", "acceleration")
    }


def edge_cases() -> dict[str, list[Any]]:
    rng = np.random.default_rng(7)
    n = 3000
    return {
        "ties": [float(v) for v in rng.integers(0, 4, n)],  # four values: every edge on a tie
        "huge": [float(v) for v in rng.normal(0, 1e300, n)],
        "tiny": [float(v) for v in rng.normal(0, 1e-300, n)],
        "skewed": [float(v) for v in rng.lognormal(0, 4, n)],  # most values in the first sliver
        "one": [42.5] * n,
        "sparse": [float(i) if i % 500 == 0 else None for i in range(n)],
        "ints": [int(v) for v in rng.integers(-(2**40), 2**40, n)],
    }


@pytest.fixture
def server() -> Iterator[SearchServer]:
    with SearchServer() as srv:
        yield srv


def both(
    server: SearchServer, tmp_path: Path, columns: dict[str, list[Any]]
) -> tuple[LocalSource, ElasticsearchSource]:
    docs = docs_of(columns)
    write_local(tmp_path / "store", docs, per_segment=500)
    server.add(
        f"logs-inferwatch.cars-{NAMESPACE}", [{k: v for k, v in d.items() if k != "_id"} for d in docs]
    )
    client = Elasticsearch(server.url, max_retries=0, request_timeout=30)
    return LocalSource(tmp_path / "store", NAMESPACE), ElasticsearchSource(client, NAMESPACE)


@pytest.mark.parametrize("exact_values", [exact_quantiles.EXACT_VALUES, 7])
@pytest.mark.parametrize("data", [cars, edge_cases])
def test_percentiles_are_equal_to_the_bit(
    server: SearchServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_values: int, data: Any
) -> None:
    """``exact_values`` 7 forces the range refinement down to a handful of values per interval."""
    monkeypatch.setattr(exact_quantiles, "EXACT_VALUES", exact_values)
    columns = data()
    local, remote = both(server, tmp_path, columns)
    keys = [f"inputs.{k}" for k in columns]
    percents = sorted({*EDGE_PCTS, *PERCENTS, 0.0, 100.0, 33.3})
    want = local.percentiles(MODEL, "1", WINDOW, keys, percents)
    got = remote.percentiles(MODEL, "1", WINDOW, keys, percents)
    assert len(want) == len(keys) * len(percents)
    assert_frame_equal(got, want, check_exact=True)
    for key, values in columns.items():  # and both are numpy's own percentiles
        present = np.array([v for v in values if v is not None], dtype="float64")
        expected = np.percentile(present, percents)
        assert want[want["feature"] == f"inputs.{key}"]["value"].tolist() == expected.tolist()


def test_the_request_count_depends_on_the_spread_not_the_count(server: SearchServer, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    columns = {"x": [float(v) for v in rng.normal(0, 1, 30_000)]}
    _, remote = both(server, tmp_path, columns)
    remote.percentiles(MODEL, "1", WINDOW, ["inputs.x"], PERCENTS)
    assert len(server.requests) <= 4  # stats, one range round, the exact values


def test_a_baseline_from_logs_has_the_same_edges_on_both_backends(
    server: SearchServer, tmp_path: Path
) -> None:
    """Real data, the t-digest case of the issue: horsepower and weight edges used to differ
    (828 vs 852, 958.7 vs 965.9 on one data set)."""
    local, remote = both(server, tmp_path, cars())
    kinds: dict[str, FeatureKind] = {f"inputs.{k}": "numeric" for k in cars()}
    created = datetime(2026, 11, 24, tzinfo=UTC)
    a = build_from_counts(local, MODEL, "1", WINDOW, kinds, created)
    b = build_from_counts(remote, MODEL, "1", WINDOW, kinds, created)
    for key in kinds:
        assert a.features[key].edges == b.features[key].edges, key
        assert a.features[key].quantiles == b.features[key].quantiles, key
        assert len(a.features[key].edges) >= 5
