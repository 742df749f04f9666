"""Elasticsearch request bodies (pure builders) and their parsers (response dict -> count tables).

Nothing here talks to Elasticsearch; ``inferwatch.analytics.sources.elasticsearch`` sends the bodies through
``analytics.es``. The tables and their columns are documented in ``analytics.model``.

Every request filters on ``ml.model.name`` (term), ``ml.model.version`` (term, except the
per-model request) and ``@timestamp`` in [window.start, window.end).

One evaluation of one model costs ``1 + V`` search requests (V = versions seen in the window):
``model_body`` (documents per version + hourly volume) and one ``window_body`` per version that
carries every aggregation of every feature at once:

- presence: one ``filters`` aggregation with an ``exists`` filter per feature (missing = docs -
  present; an unmapped field matches nothing, so a vanished feature is present 0, not an error).
  ``exists`` counts null and absent alike as missing, as the normalizer keeps null as null.
  (Text features are ``match_only_text``: no doc values and no norms, so ``exists`` becomes a
  term query on ``_field_names``, which ``MatchOnlyTextFieldMapper.parseCreateField`` fills
  (``context.addToFieldNames``) and which cannot be disabled on 8.x indices; elastic/elasticsearch
  ``MatchOnlyTextFieldMapper.java`` and ``FieldNamesFieldMapper.java``. The contract test runs it.)
- categories: ``terms`` with ``include`` = the baseline's values (size = their number: their
  exact counts) and ``terms`` with ``exclude`` = the baseline's values (size ``UNSEEN_TERMS_SIZE``):
  the unseen values come back directly.
- numeric: a ``range`` aggregation on the baseline's edges (exact counts per bin; ``from`` is
  inclusive and ``to`` exclusive, as the numeric table convention). Without edges the one bin
  (-inf, inf) is the presence count.
- tokens: ``terms`` on ``ml.tokens.<f>`` with ``include`` = the baseline vocabulary (the top-K
  training tokens) and with ``exclude`` = the vocabulary (the OOV tokens).
- text_docs: a ``filter`` on ``exists ml.tokens.<f>`` (documents with tokens) with a sub-``filter``
  that is a Painless ``script`` query: true when the document has a token that is not a key of
  ``params.vocab`` (a map, so each lookup is a hash probe). ``doc.containsKey`` is false for a
  field a backing index never mapped (``LeafDocLookup.containsKey`` asks the mapping), where
  ``doc[field]`` would throw; a mapped field without values iterates as empty. Script queries are
  refused on clusters with ``search.allow_expensive_queries: false``. Query DSL can say "has a token in a
  set" but not "has a token outside a set" for an array field (``must_not terms`` would drop
  every document holding one vocabulary token), and the agent cannot flag OOV documents because
  it has no vocabulary. The script runs inside Elasticsearch over doc values and only one number
  comes back, so the cost stays an aggregation's cost.

The count is independent of the number of events. Only cardinality adds requests: when an
unseen-value or OOV-token ``terms`` aggregation reports ``sum_other_doc_count > 0`` (more than
``UNSEEN_TERMS_SIZE`` distinct values) or a non-zero ``doc_count_error_upper_bound`` (approximate
counts across shards), that one field is re-counted exactly with a paginated ``composite``
aggregation (``COMPOSITE_PAGE_SIZE`` keys per request). ``UNSEEN_TERMS_SIZE`` is kept at 1000 and
``window_bodies`` splits the aggregations of a very large baseline (thousands of categories or
vocabulary tokens over many features) into several requests so that none can exceed
``search.max_buckets`` (65,535).

Terms counts on ``ml.tokens.<f>`` are document frequencies: a document counts once per distinct
token (the agent stores each token once per document).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from inferwatch.analytics.model import (
    Baseline,
    FeatureBaseline,
    FeatureKind,
    ModelCounts,
    Window,
    WindowCounts,
)
from inferwatch.analytics.sources.tables import (
    bin_bounds,
    categories_table,
    category_str,
    hour_starts,
    numeric_table,
    presence_table,
    text_docs_table,
    tokens_table,
    versions_table,
    volume_table,
)
from inferwatch.core.contract import data_stream

UNSEEN_TERMS_SIZE = 1000
COMPOSITE_PAGE_SIZE = 5000
VERSIONS_SIZE = 1000
BUCKET_BUDGET = 50_000  # per request, under the default search.max_buckets of 65,535
PERCENTS: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)

OOV_SCRIPT = (
    "if (!doc.containsKey(params.field)) { return false; } "
    "for (def t : doc[params.field]) { if (!params.vocab.containsKey(t)) { return true; } } "
    "return false;"
)


# --- names ---------------------------------------------------------------------------------------


def search_target(model: str, namespaces: Sequence[str] = ("*",)) -> str:
    """What one model's searches cover: its data stream in each namespace the agent may ship it
    into (``agent.namespace`` and every ``agent.inputs[].namespace``), comma-separated."""
    return ",".join(data_stream(model, ns) for ns in dict.fromkeys(namespaces))


def field_of(key: str) -> str:
    """``inputs.age`` -> ``ml.inputs.age``."""
    return f"ml.{key}"


def tokens_field(key: str) -> str:
    """``inputs.review_text`` -> ``ml.tokens.review_text``."""
    return "ml.tokens." + key.split(".", 1)[1]


def _features(kinds: Mapping[str, FeatureKind], kind: FeatureKind | None = None) -> list[str]:
    return sorted(k for k, v in kinds.items() if kind is None or v == kind)


def _feature_baseline(baseline: Baseline | None, key: str) -> FeatureBaseline | None:
    return baseline.features.get(key) if baseline is not None else None


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


# --- requests ------------------------------------------------------------------------------------


def base_query(model: str, window: Window, version: str | None = None) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"term": {"ml.model.name": model}}]
    if version is not None:
        filters.append({"term": {"ml.model.version": version}})
    filters.append(
        {
            "range": {
                "@timestamp": {
                    "gte": window.start.isoformat(),
                    "lt": window.end.isoformat(),
                    "format": "strict_date_optional_time",
                }
            }
        }
    )
    return {"bool": {"filter": filters}}


def _ranges(edges: Sequence[float]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for lower, upper in bin_bounds(edges):
        r: dict[str, float] = {}
        if not math.isinf(lower):
            r["from"] = lower
        if not math.isinf(upper):
            r["to"] = upper
        out.append(r)
    return out


def window_body(
    model: str,
    version: str,
    window: Window,
    baseline: Baseline | None,
    kinds: Mapping[str, FeatureKind],
) -> dict[str, Any]:
    """Every count table of one model version over one window, in one search body."""
    all_features = _features(kinds)
    aggs: dict[str, Any] = {}
    if all_features:
        exists = {str(i): {"exists": {"field": field_of(k)}} for i, k in enumerate(all_features)}
        aggs["presence"] = {"filters": {"filters": exists}}
    for i, key in enumerate(_features(kinds, "categorical")):
        fb = _feature_baseline(baseline, key)
        values = sorted(fb.categories) if fb is not None else []
        if values:
            aggs[f"cat_seen_{i}"] = {
                "terms": {"field": field_of(key), "include": values, "size": len(values)}
            }
        unseen: dict[str, Any] = {"field": field_of(key), "size": UNSEEN_TERMS_SIZE}
        if values:
            unseen["exclude"] = values
        aggs[f"cat_new_{i}"] = {"terms": unseen}
    for i, key in enumerate(_features(kinds, "numeric")):
        fb = _feature_baseline(baseline, key)
        if fb is not None and fb.edges:
            aggs[f"num_{i}"] = {"range": {"field": field_of(key), "ranges": _ranges(fb.edges)}}
    for i, key in enumerate(_features(kinds, "text")):
        fb = _feature_baseline(baseline, key)
        vocab = sorted(fb.vocabulary) if fb is not None else []
        field = tokens_field(key)
        if vocab:
            aggs[f"tok_seen_{i}"] = {"terms": {"field": field, "include": vocab, "size": len(vocab)}}
        oov: dict[str, Any] = {"field": field, "size": UNSEEN_TERMS_SIZE}
        if vocab:
            oov["exclude"] = vocab
        aggs[f"tok_new_{i}"] = {"terms": oov}
        script = {
            "source": OOV_SCRIPT,
            "lang": "painless",
            "params": {"field": field, "vocab": dict.fromkeys(vocab, 1)},
        }
        aggs[f"txt_{i}"] = {
            "filter": {"exists": {"field": field}},
            "aggs": {"oov": {"filter": {"script": {"script": script}}}},
        }
    body: dict[str, Any] = {"size": 0, "track_total_hits": True, "query": base_query(model, window, version)}
    if aggs:
        body["aggs"] = aggs
    return body


def _bucket_estimate(agg: Mapping[str, Any]) -> int:
    """The most buckets one aggregation can return (what ``search.max_buckets`` counts)."""
    if "terms" in agg:
        return int(agg["terms"].get("size", 10))
    if "range" in agg:
        return len(agg["range"]["ranges"])
    if "filters" in agg:
        return len(agg["filters"]["filters"])
    return 2  # filter + its sub-filter


def window_bodies(
    model: str,
    version: str,
    window: Window,
    baseline: Baseline | None,
    kinds: Mapping[str, FeatureKind],
    max_buckets: int = BUCKET_BUDGET,
) -> list[dict[str, Any]]:
    """``window_body`` split into as few requests as keep each one's possible buckets under
    ``max_buckets`` (one request unless the baseline is very large). The responses are combined
    with ``merge_responses``; the split depends on features and cardinality, never on events."""
    body = window_body(model, version, window, baseline, kinds)
    groups: list[dict[str, Any]] = []
    used = 0
    for name, agg in body.get("aggs", {}).items():
        cost = _bucket_estimate(agg)
        if not groups or used + cost > max_buckets:
            groups.append({})
            used = 0
        groups[-1][name] = agg
        used += cost
    if len(groups) <= 1:
        return [body]
    return [{**body, "aggs": group} for group in groups]


def merge_responses(responses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Responses to the parts of one split body -> one response (aggregation names are unique)."""
    merged: dict[str, Any] = dict(responses[0]) if responses else {}
    aggs: dict[str, Any] = {}
    for response in responses:
        aggs.update(response.get("aggregations") or {})
    merged["aggregations"] = aggs
    return merged


def model_body(model: str, window: Window) -> dict[str, Any]:
    """Documents per version and the hourly volume of one model over one window."""
    return {
        "size": 0,
        "track_total_hits": True,
        "query": base_query(model, window),
        "aggs": {
            "versions": {"terms": {"field": "ml.model.version", "size": VERSIONS_SIZE}},
            "volume": {
                "date_histogram": {
                    "field": "@timestamp",
                    "fixed_interval": "1h",
                    "min_doc_count": 0,
                    "extended_bounds": {"min": _ms(window.start), "max": _ms(window.end) - 1},
                }
            },
        },
    }


def composite_body(
    model: str, version: str, window: Window, field: str, after: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One page of the exact, complete value counts of one field (every value, paginated)."""
    composite: dict[str, Any] = {"size": COMPOSITE_PAGE_SIZE, "sources": [{"v": {"terms": {"field": field}}}]}
    if after is not None:
        composite["after"] = dict(after)
    return {
        "size": 0,
        "query": base_query(model, window, version),
        "aggs": {"all": {"composite": composite}},
    }


# --- responses -----------------------------------------------------------------------------------


def _aggs(response: Mapping[str, Any]) -> Mapping[str, Any]:
    return response.get("aggregations") or {}


def _total(response: Mapping[str, Any]) -> int:
    total = (response.get("hits") or {}).get("total", 0)
    return int(total["value"] if isinstance(total, Mapping) else total)


def _bucket_key(bucket: Mapping[str, Any]) -> str | None:
    if "key_as_string" in bucket:
        return str(bucket["key_as_string"])
    return category_str(bucket["key"])


def _terms(agg: Mapping[str, Any] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for bucket in (agg or {}).get("buckets", []):
        key = _bucket_key(bucket)
        if key is not None:
            counts[key] = counts.get(key, 0) + int(bucket["doc_count"])
    return counts


def incomplete_fields(response: Mapping[str, Any], kinds: Mapping[str, FeatureKind]) -> list[str]:
    """Fields whose unseen/OOV ``terms`` did not return every value with an exact count: the
    source re-counts those with ``composite_body`` pages."""
    aggs = _aggs(response)
    out: list[str] = []
    checks: list[tuple[str, FeatureKind, Callable[[str], str]]] = [
        ("cat_new", "categorical", field_of),
        ("tok_new", "text", tokens_field),
    ]
    for prefix, kind, to_field in checks:
        for i, key in enumerate(_features(kinds, kind)):
            agg = aggs.get(f"{prefix}_{i}") or {}
            if agg.get("sum_other_doc_count", 0) > 0 or agg.get("doc_count_error_upper_bound", 0) > 0:
                out.append(to_field(key))
    return out


def parse_composite(response: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, Any] | None]:
    """One composite page -> (value -> doc count, the ``after`` key of the next page or None)."""
    agg = _aggs(response).get("all") or {}
    buckets = agg.get("buckets", [])
    counts: dict[str, int] = {}
    for bucket in buckets:
        key = category_str(bucket["key"]["v"])
        if key is not None:
            counts[key] = counts.get(key, 0) + int(bucket["doc_count"])
    after = agg.get("after_key")
    return counts, (dict(after) if after and buckets else None)


def parse_window(
    response: Mapping[str, Any],
    model: str,
    version: str,
    window: Window,
    baseline: Baseline | None,
    kinds: Mapping[str, FeatureKind],
    complete: Mapping[str, Mapping[str, int]] | None = None,
) -> WindowCounts:
    """The response to ``window_body`` -> ``WindowCounts``. ``complete`` holds, per field, the
    exact counts of every value from composite pages; they replace that field's terms results."""
    aggs = _aggs(response)
    complete = complete or {}
    docs = _total(response)

    present_by_key: dict[str, int] = {}
    buckets = (aggs.get("presence") or {}).get("buckets", {})
    for i, key in enumerate(_features(kinds)):
        present_by_key[key] = int((buckets.get(str(i)) or {}).get("doc_count", 0))
    presence = presence_table((k, n, docs - n) for k, n in present_by_key.items())

    cat_rows: list[tuple[str, str, int, bool]] = []
    for i, key in enumerate(_features(kinds, "categorical")):
        fb = _feature_baseline(baseline, key)
        known = fb.categories if fb is not None else {}
        if field_of(key) in complete:
            counts = dict(complete[field_of(key)])
        else:
            counts = {**_terms(aggs.get(f"cat_new_{i}")), **_terms(aggs.get(f"cat_seen_{i}"))}
        cat_rows += [(key, v, n, v in known) for v, n in counts.items() if n > 0]

    num_rows: list[tuple[str, int, float, float, int]] = []
    for i, key in enumerate(_features(kinds, "numeric")):
        fb = _feature_baseline(baseline, key)
        edges = fb.edges if fb is not None else ()
        bounds = bin_bounds(edges)
        if edges:
            range_buckets = (aggs.get(f"num_{i}") or {}).get("buckets", [])
            counts_list = [int(b["doc_count"]) for b in range_buckets]
            counts_list += [0] * (len(bounds) - len(counts_list))
        else:
            counts_list = [present_by_key.get(key, 0)]
        num_rows += [
            (key, b, lo, up, n) for b, ((lo, up), n) in enumerate(zip(bounds, counts_list, strict=True))
        ]

    tok_rows: list[tuple[str, str, int, bool]] = []
    txt_rows: list[tuple[str, int, int]] = []
    for i, key in enumerate(_features(kinds, "text")):
        fb = _feature_baseline(baseline, key)
        vocab = fb.vocabulary if fb is not None else {}
        field = tokens_field(key)
        if field in complete:
            counts = dict(complete[field])
        else:
            counts = {**_terms(aggs.get(f"tok_new_{i}")), **_terms(aggs.get(f"tok_seen_{i}"))}
        tok_rows += [(key, t, n, t in vocab) for t, n in counts.items() if n > 0]
        txt = aggs.get(f"txt_{i}") or {}
        txt_rows.append((key, int(txt.get("doc_count", 0)), int((txt.get("oov") or {}).get("doc_count", 0))))

    return WindowCounts(
        model=model,
        version=version,
        window=window,
        docs=docs,
        presence=presence,
        categories=categories_table(cat_rows),
        numeric=numeric_table(num_rows),
        tokens=tokens_table(tok_rows),
        text_docs=text_docs_table(txt_rows),
    )


def parse_model(response: Mapping[str, Any], model: str, window: Window) -> ModelCounts:
    aggs = _aggs(response)
    versions = _terms(aggs.get("versions"))
    per_hour = {
        pd.Timestamp(int(b["key"]), unit="ms", tz="UTC"): int(b["doc_count"])
        for b in (aggs.get("volume") or {}).get("buckets", [])
    }
    # Every hour of the window, whether or not Elasticsearch returned an empty bucket for it
    # (extended_bounds asks for them; a window with no documents may still come back bare).
    hours = hour_starts(pd.Timestamp(window.start), pd.Timestamp(window.end))
    volume = [(h, per_hour.get(h, 0)) for h in hours]
    return ModelCounts(
        model=model,
        window=window,
        versions=versions_table(versions.items()),
        volume=volume_table(volume),
    )


__all__ = [
    "COMPOSITE_PAGE_SIZE",
    "OOV_SCRIPT",
    "PERCENTS",
    "UNSEEN_TERMS_SIZE",
    "base_query",
    "composite_body",
    "field_of",
    "incomplete_fields",
    "merge_responses",
    "model_body",
    "parse_composite",
    "parse_model",
    "parse_window",
    "search_target",
    "tokens_field",
    "window_bodies",
    "window_body",
]
