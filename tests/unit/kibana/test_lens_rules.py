"""The bundle against the rules Kibana itself applies to Lens layers and data views, each
reproduced from Kibana's source (paths in Kibana's repository, 8.x; Kibana cannot run here)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from inferwatch.kibana import build
from inferwatch.kibana.lens import Layer, count, date_histogram, filters, terms
from inferwatch.kibana.saved_objects import MINIMUM_KIBANA, older_than_minimum, version_tuple

ASSET = build.ASSET

# Operations whose definition sets ``shiftable: true`` (x-pack/plugins/lens/public/datasources/
# form_based/operations/definitions/{count,metrics,percentile,percentile_ranks,cardinality,
# last_value}.tsx); buckets (terms, date_histogram, filters, range) are not shiftable.
SHIFTABLE = {
    "count",
    "average",
    "sum",
    "min",
    "max",
    "median",
    "standard_deviation",
    "percentile",
    "percentile_rank",
    "unique_count",
    "last_value",
}


def _layers(path: Path = ASSET) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, formBased layer) for every Lens layer of every dashboard in a bundle."""
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        if obj["type"] != "dashboard":
            continue
        for panel in json.loads(obj["attributes"]["panelsJSON"]):
            if panel["type"] != "lens":
                continue
            attrs = panel["embeddableConfig"]["attributes"]
            for layer in attrs["state"]["datasourceStates"]["formBased"]["layers"].values():
                yield attrs["title"], layer


def disallowed_terms(layer: Mapping[str, Any]) -> bool:
    """Lens's ``getDisallowedTermsMessage`` (x-pack/plugins/lens/public/datasources/form_based/
    operations/definitions/terms/helpers.ts), which every terms column's ``getErrorMessage``
    calls: a layer with dynamic top values is in error when its shiftable columns that are not
    referenced by another column (or that carry a shift themselves) use more than one time shift,
    no shift counting as ``''``."""
    columns = layer["columns"]
    if not any(c["operationType"] == "terms" for c in columns.values()):
        return False
    referenced = {ref for c in columns.values() for ref in c.get("references", [])}
    shifts = {
        c.get("timeShift") or ""
        for cid, c in columns.items()
        if c["operationType"] in SHIFTABLE and (cid not in referenced or c.get("timeShift"))
    }
    return len(shifts) > 1


def test_the_rule_as_transcribed_refuses_a_shifted_and_an_unshifted_count_beside_terms() -> None:
    one_layer = Layer(
        "l",
        "dv",
        (terms("tok", "ml.tokens.name", "now"), count("now"), count("before", shift="1w")),
    ).state()
    assert disallowed_terms(one_layer)
    shifted_only = Layer("l", "dv", (terms("tok", "f", "b"), count("b", shift="1w"))).state()
    assert not disallowed_terms(shifted_only)
    with_filters = Layer(
        "l", "dv", (filters("f", [("a", "f : a")]), count("now"), count("before", shift="1w"))
    ).state()
    assert not disallowed_terms(with_filters)  # filters are the other way Lens offers


def test_no_layer_of_the_bundle_mixes_time_shifts_with_dynamic_top_values() -> None:
    layers = list(_layers())
    shifted = [title for title, layer in layers if any("timeShift" in c for c in layer["columns"].values())]
    assert shifted, "the Text dashboard compares tokens with a week earlier"
    refused = [title for title, layer in layers if disallowed_terms(layer)]
    assert not refused, f"Lens shows an error instead of these charts: {refused}"


def terms_before_date_histogram(layer: Mapping[str, Any]) -> bool:
    """Lens's ``addBucket`` (x-pack/plugins/lens/public/datasources/form_based/operations/
    layer_helpers.ts) inserts a new terms column above the first date histogram, and appends any
    other bucket after the existing ones: in a layer built in Lens's editor no terms column ever
    comes after a date histogram, so the top values are taken over the whole range (esaggs nests
    the buckets in column order)."""
    ops = [layer["columns"][cid]["operationType"] for cid in layer["columnOrder"]]
    dates = [i for i, op in enumerate(ops) if op == "date_histogram"]
    return not dates or all(i < dates[0] for i, op in enumerate(ops) if op == "terms")


def test_terms_come_before_the_date_histogram_as_lens_orders_them() -> None:
    over_time = [
        (title, layer)
        for title, layer in _layers()
        if {"terms", "date_histogram"} <= {c["operationType"] for c in layer["columns"].values()}
    ]
    assert len(over_time) >= 6  # volume by model, alert events, categories over time, p50 by version
    wrong = [title for title, layer in over_time if not terms_before_date_histogram(layer)]
    assert not wrong, wrong


def test_layer_column_order_follows_add_bucket_whatever_the_declaration_order() -> None:
    declared = Layer(
        "l",
        "dv",
        (
            date_histogram("t"),
            filters("f", [("a", "x : a")]),
            terms("v", "x", "c"),
            count("c"),
            terms("w", "y", "c"),
        ),
    )
    # terms above the first date histogram, in the order added; filters after the histogram.
    assert declared.column_order() == ["v", "w", "t", "f", "c"]
    assert terms_before_date_histogram(declared.state())


def test_every_data_view_allows_no_index() -> None:
    """Kibana fetches a data view's fields with ``allowNoIndex: dataView.allowNoIndex``
    (src/plugins/data_views/common/data_views/data_views.ts, getFieldsAndIndicesForDataView); the
    server's fetcher (src/plugins/data_views/server/fetcher/index_patterns_fetcher.ts) answers a
    pattern that matches no index with "no matching indices" unless that flag is set. Our streams
    and indices are created by their first document, after setup imported the data views."""
    views = [
        json.loads(line)
        for line in ASSET.read_text(encoding="utf-8").splitlines()
        if json.loads(line)["type"] == "index-pattern"
    ]
    assert len(views) == 5
    assert all(v["attributes"].get("allowNoIndex") is True for v in views)


def test_the_minimum_kibana_is_the_newest_version_in_the_bundle_and_the_readme_states_it() -> None:
    """Kibana refuses a document whose typeMigrationVersion is newer than the last migration it
    knows for the type ("belongs to a more recent version of Kibana", assertCompatibility in
    packages/core/saved-objects/core-saved-objects-migration-server-internal/src/document_migrator/
    pipelines/upgrade_pipeline.ts) and migrates older ones up; embedded panels carry their own
    version. So the newest version the bundle declares is the oldest Kibana that imports it."""
    declared: set[str] = set()
    for line in ASSET.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        declared |= {obj["coreMigrationVersion"], obj["typeMigrationVersion"]}
        if obj["type"] == "dashboard":
            declared |= {p["version"] for p in json.loads(obj["attributes"]["panelsJSON"])}
    assert max(declared, key=version_tuple) == MINIMUM_KIBANA == "8.9.0"
    assert older_than_minimum("8.8.2") and not older_than_minimum("8.9.0")
    assert not older_than_minimum("9.1.0-SNAPSHOT")
    readme = (build.ROOT / "README.md").read_text(encoding="utf-8")
    assert f"minimum is **Kibana {MINIMUM_KIBANA}**" in readme
