"""Count tables from the local store: pandas over the agent's NDJSON segments.

The store is ``<store>/<index>/<segment>.ndjson`` (written by ``inferwatch.agent.outputs.local``), each
line a document exactly as it would be indexed plus a top-level ``_id``. The semantics follow the
Elasticsearch path (``analytics.queries``) so that both give equal tables for the same documents:

- A document counts once per index and ``_id`` (the first one written wins, as ``create`` in
  Elasticsearch; a document without ``_id`` is one document, as auto ids are); a line that does
  not parse is skipped, counted in ``dropped`` and per segment (``skipped_lines``), and logged.
- A field is present when it has at least one non-null value (null, absent and ``[]`` are
  missing, as ``exists``). Numeric features need a number or a numeric string (Elasticsearch
  coerces those and ignores malformed values); categorical strings longer than 1024 characters
  are not keywords (the template's ``ignore_above``) and count as missing.
- Array values count the document once per distinct value or bin (as terms and range
  aggregations do); categorical values are compared as ``category_str``.

Segments are known by (path, mtime, size) with their time span, kept in ``SpanIndex`` (a small
JSON file under the worker's state, so a fresh process knows them too, and a scan of their
``@timestamp`` values for a segment new or changed); only segments that overlap the window are
parsed, and a repeated evaluation re-reads only what changed: the cost of an evaluation follows
the window, not the store.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import orjson
import pandas as pd

from inferwatch.analytics.model import Baseline, FeatureKind, ModelCounts, Window, WindowCounts
from inferwatch.analytics.sources.tables import (
    KEYWORD_IGNORE_ABOVE,
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
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes
from inferwatch.core.contract import data_stream

log = logging.getLogger(__name__)

_META = ("_index", "_id", "_ts", "_model", "_version")
_SCALAR_KINDS = frozenset(
    {"string", "floating", "integer", "mixed-integer-float", "boolean", "decimal", "empty"}
)


@dataclass(frozen=True)
class _Segment:
    stamp: tuple[int, int]  # (mtime_ns, size) when parsed
    frame: pd.DataFrame | None  # None: rows dropped from memory (the segment ends before the window)
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclass(frozen=True)
class SkippedLines:
    """The lines of one segment that were not counted (``reasons``: invalid_json, torn_last_line
    (a last line cut short), not_an_object, bad_timestamp) beside the ``documents`` it gave."""

    FIX: ClassVar[str] = (
        "the agent writes whole segments atomically, so the file was damaged (cut short, edited, "
        "a disk problem): those documents are not in the counts; restore it, or remove it and "
        "let the agent ship its logs again"
    )

    segment: str
    documents: int
    reasons: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def describe(self) -> str:
        why = ", ".join(f"{n:,} {reason}" for reason, n in sorted(self.reasons.items()))
        lines = self.total + self.documents
        return f"segment {self.segment}: {self.total:,} of {lines:,} lines skipped ({why})"


_TIMESTAMP = re.compile(rb'"@timestamp":"([^"]*)"')


def scan_span(path: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The earliest and latest ``@timestamp`` of a segment without parsing its documents: every
    ``"@timestamp":"..."`` in the file (a field of that name elsewhere in a document can only
    widen the span, which is safe: the span decides which segments to skip)."""
    with open(path, "rb") as fh:
        found = _TIMESTAMP.findall(fh.read())
    if not found:
        return None, None
    ts = pd.to_datetime(
        pd.Series([f.decode("utf-8", "replace") for f in found]), utc=True, format="ISO8601", errors="coerce"
    )
    ts = ts.dropna()
    return (ts.min(), ts.max()) if len(ts) else (None, None)


class SpanIndex:
    """Segment path (relative to the store) -> (mtime_ns, size, first, last), in one JSON file
    written atomically; an entry is used only while the segment's mtime and size are unchanged.
    A missing or unreadable file is an empty index (it is a cache: rebuilt by scanning)."""

    def __init__(self, store_dir: Path, path: Path | None) -> None:
        self.store_dir = store_dir
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.dirty = False
        self._lock = threading.Lock()  # the worker evaluates several models at once
        if path is not None:
            data = read_state_bytes(path)
            try:
                loaded = orjson.loads(data) if data else {}
            except orjson.JSONDecodeError:
                loaded = {}
            if isinstance(loaded, dict) and isinstance(loaded.get("segments"), dict):
                self.entries = loaded["segments"]

    def span(self, path: str, stamp: tuple[int, int]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        key = os.path.relpath(path, self.store_dir)
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 4 and (entry[0], entry[1]) == stamp:
            return (
                pd.Timestamp(entry[2], tz="UTC") if entry[2] is not None else None,
                pd.Timestamp(entry[3], tz="UTC") if entry[3] is not None else None,
            )
        first, last = scan_span(path)
        with self._lock:
            self.entries[key] = [stamp[0], stamp[1], _ns(first), _ns(last)]
            self.dirty = True
        return first, last

    def save(self) -> None:
        """Write the index when it learned something (segments gone are dropped from it)."""
        if self.path is None:
            return
        with self._lock:  # another model's span() must not change the entries while they are written
            self._save(self.path)

    def _save(self, path: Path) -> None:
        present = {k: v for k, v in self.entries.items() if (self.store_dir / k).exists()}
        if not self.dirty and len(present) == len(self.entries):
            return
        self.entries = present
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, orjson.dumps({"format": 1, "segments": present}), fsync=False)
        except OSError as exc:  # a cache: the next process scans again
            log.warning("cannot write the local store's segment index %s: %s", path, exc)
        self.dirty = False


def _ns(ts: pd.Timestamp | None) -> int | None:
    return None if ts is None else int(ts.value)


def _flatten(prefix: str, value: dict[str, Any], out: dict[str, Any]) -> None:
    for k, v in value.items():
        if type(v) is dict:
            _flatten(f"{prefix}{k}.", v, out)
        else:
            out[prefix + k] = v


def _record(index: str, doc: dict[str, Any]) -> dict[str, Any]:
    ml = doc.get("ml") or {}
    model = ml.get("model") or {}
    rec: dict[str, Any] = {
        "_index": index,
        "_id": doc.get("_id"),
        "_ts": doc.get("@timestamp"),
        "_model": model.get("name"),
        "_version": category_str(model.get("version")),
    }
    for section in ("inputs", "outputs"):
        part = ml.get(section)
        if isinstance(part, dict):
            _flatten(section + ".", part, rec)
    prediction = ml.get("prediction")
    if isinstance(prediction, dict) and "latency_ms" in prediction:  # the latency detector's percentiles
        rec["prediction.latency_ms"] = prediction["latency_ms"]
    tokens = ml.get("tokens")
    if isinstance(tokens, dict):
        for name, toks in tokens.items():
            rec[f"tokens.{name}"] = toks
    return rec


def _values(frame: pd.DataFrame, column: str) -> pd.Series:
    """The non-null leaf values of ``column``, one row per (document, value); the index is the
    document's row label (repeated when a document holds an array)."""
    if column not in frame.columns:
        return pd.Series([], dtype="object")
    s = frame[column]
    if s.dtype != object:  # numbers or strings only: no arrays, no objects
        return s[s.notna()]
    if pd.api.types.infer_dtype(s, skipna=True) in _SCALAR_KINDS:
        return s[s.notna()]
    s = _explode(s)
    s = s[s.notna()]
    if pd.api.types.infer_dtype(s, skipna=True) in _SCALAR_KINDS:
        return s
    return s[[not isinstance(v, dict | list) for v in s.to_numpy()]]


def _explode(s: pd.Series) -> pd.Series:
    """``Series.explode`` for columns of lists and scalars, several times faster on token lists."""
    lists = [v if isinstance(v, list) else [v] for v in s.to_numpy()]
    lengths = np.array([len(v) for v in lists], dtype=np.int64)
    flat = list(chain.from_iterable(lists))
    return pd.Series(flat, index=np.repeat(s.index.to_numpy(), lengths), dtype="object")


def _numbers(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):  # booleans are not numbers (as in Elasticsearch)
        return pd.Series([], dtype="float64")
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values):
        return values.astype("float64")
    values = values[[not isinstance(v, bool) for v in values.to_numpy()]]
    out = pd.to_numeric(values, errors="coerce")
    return out[out.notna()].astype("float64")


def _category_values(values: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        out = values
    else:
        out = values.map(category_str).astype("object")
        out = out[out.notna()]
    return out[out.str.len() <= KEYWORD_IGNORE_ABOVE]


def _doc_counts(values: pd.Series) -> dict[Any, int]:
    """value -> number of documents holding it (each document counted once per value)."""
    if values.empty:
        return {}
    if values.index.is_unique:  # one value per document
        counts = values.value_counts(sort=False)
        return {k: int(n) for k, n in counts.items()}
    codes, uniques = pd.factorize(values, sort=False)
    docs = np.asarray(values.index, dtype=np.int64)
    keys = np.sort(docs * len(uniques) + codes)
    pairs = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # each (document, value) once
    per_value = np.bincount(pairs % len(uniques), minlength=len(uniques))
    return {k: int(n) for k, n in zip(uniques, per_value, strict=True) if n}


class LocalSource:
    """``index_file``: where the time span of every segment is kept between processes (keyed by
    the segment's size and mtime), so that a fresh process (``analytics once``, a restarted
    worker) reads only the segments that overlap its window; None keeps spans in memory only."""

    def __init__(
        self, store_dir: Path, namespaces: str | Sequence[str] = "*", index_file: Path | None = None
    ) -> None:
        self.store_dir = store_dir
        self.namespaces = (namespaces,) if isinstance(namespaces, str) else tuple(namespaces)
        self.dropped: Counter[str] = Counter()
        self._skipped: dict[str, SkippedLines] = {}  # segment path -> its lines not counted
        self._cache: dict[str, dict[str, _Segment]] = {}  # model -> segment path -> parsed
        self._joined: tuple[tuple[tuple[str, tuple[int, int]], ...], pd.DataFrame] | None = None
        self._spans = SpanIndex(store_dir, index_file)

    # --- reading -------------------------------------------------------------------------------

    def _paths(self, model: str) -> list[str]:
        """The segments of the model's data stream in every namespace searched."""
        paths: set[str] = set()
        for namespace in self.namespaces:
            stream = data_stream(model, namespace)
            paths.update(glob.glob(os.path.join(glob.escape(str(self.store_dir)), stream, "*.ndjson")))
        return sorted(paths)

    def _parse(self, path: str, stamp: tuple[int, int]) -> _Segment:
        index = Path(path).parent.name
        records: list[dict[str, Any]] = []
        skipped: Counter[str] = Counter()  # this segment's lines not counted, by reason
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    skipped["invalid_json" if line.endswith(b"\n") else "torn_last_line"] += 1
                    continue
                if not isinstance(doc, dict):
                    skipped["not_an_object"] += 1
                    continue
                records.append(_record(index, doc))
        frame = (
            pd.DataFrame.from_records(records, columns=None) if records else pd.DataFrame(columns=list(_META))
        )
        frame["_ts"] = pd.to_datetime(frame["_ts"], utc=True, format="ISO8601", errors="coerce")
        bad = frame["_ts"].isna()
        if bad.any():
            skipped["bad_timestamp"] += int(bad.sum())
            frame = frame[~bad]
        self._count_skipped(SkippedLines(path, len(frame), MappingProxyType(dict(skipped))))
        first = frame["_ts"].min() if len(frame) else None
        last = frame["_ts"].max() if len(frame) else None
        return _Segment(stamp, frame, first, last)

    def _count_skipped(self, lines: SkippedLines) -> None:
        """A segment's lines that were not counted are counted (``dropped``, and per segment for
        ``skipped_lines``) and logged when it is read: a damaged segment is never silent."""
        self.dropped.update(lines.reasons)
        if not lines.total:
            self._skipped.pop(lines.segment, None)
            return
        self._skipped[lines.segment] = lines
        log.warning("local store %s; %s", lines.describe(), lines.FIX)

    def skipped_lines(self, model: str) -> list[SkippedLines]:
        """The segments of ``model`` read by this source that have lines it could not count."""
        return [lines for p in self._paths(model) if (lines := self._skipped.get(p)) is not None]

    def _segments(self, model: str) -> dict[str, _Segment]:
        """The model's segments: their time spans (from the span index, else a scan of their
        timestamps; rows are parsed later, only for segments that overlap a window); a segment
        that changed is forgotten and read again; segments that vanished are forgotten."""
        known = self._cache.get(model, {})
        current: dict[str, _Segment] = {}
        for path in self._paths(model):
            try:
                st = Path(path).stat()
                stamp = (st.st_mtime_ns, st.st_size)
                cached = known.get(path)
                if cached is None or cached.stamp != stamp:
                    first, last = self._spans.span(path, stamp)
                    cached = _Segment(stamp, None, first, last)
            except FileNotFoundError:  # removed by retention between listing and reading
                continue
            current[path] = cached
        self._cache[model] = current
        self._spans.save()
        return current

    def _docs(self, model: str, window: Window, version: str | None = None) -> pd.DataFrame:
        """The window's documents, one per (index, _id). Segments wholly before the window keep
        only their time span (their rows are dropped from memory and re-read if ever needed), so
        the cache holds what the current and later windows need, not the whole store."""
        start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
        segments = self._segments(model)
        selected: list[tuple[str, _Segment]] = []
        for path, seg in segments.items():
            if seg.first is None or seg.last is None or seg.first >= end:
                continue
            if seg.last < start:
                if seg.frame is not None:
                    segments[path] = replace(seg, frame=None)
                continue
            if seg.frame is None:
                seg = segments[path] = self._parse(path, seg.stamp)
            selected.append((path, seg))
        if not selected:
            return pd.DataFrame(columns=list(_META))
        key = tuple((path, seg.stamp) for path, seg in selected)
        if self._joined is not None and self._joined[0] == key:
            docs = self._joined[1]
        else:
            frames = [seg.frame for _, seg in selected if seg.frame is not None]
            docs = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
            # Only documents with an id are deduplicated: without one, Elasticsearch gives
            # each its own (and drop_duplicates would take every null id for the same one).
            docs = docs[~(docs.duplicated(subset=["_index", "_id"], keep="first") & docs["_id"].notna())]
            self._joined = (key, docs)
        mask = (docs["_model"] == model) & (docs["_ts"] >= start) & (docs["_ts"] < end)
        if version is not None:
            mask &= docs["_version"] == version
        return docs[mask].reset_index(drop=True)

    # --- tables --------------------------------------------------------------------------------

    def model_counts(self, model: str, window: Window) -> ModelCounts:
        docs = self._docs(model, window)
        versions = docs["_version"].dropna().value_counts() if len(docs) else pd.Series(dtype="int64")
        hours = hour_starts(pd.Timestamp(window.start), pd.Timestamp(window.end))
        per_hour = docs["_ts"].dt.floor("h").value_counts() if len(docs) else pd.Series(dtype="int64")
        volume = [(h, int(per_hour.get(h, 0))) for h in hours]
        return ModelCounts(
            model=model,
            window=window,
            versions=versions_table((str(v), int(n)) for v, n in versions.items()),
            volume=volume_table(volume),
        )

    def window_counts(
        self,
        model: str,
        version: str,
        window: Window,
        baseline: Baseline | None,
        kinds: Mapping[str, FeatureKind],
    ) -> WindowCounts:
        docs = self._docs(model, window, version)
        features = baseline.features if baseline is not None else {}
        presence: list[tuple[str, int, int]] = []
        cats: list[tuple[str, str, int, bool]] = []
        nums: list[tuple[str, int, float, float, int]] = []
        toks: list[tuple[str, str, int, bool]] = []
        texts: list[tuple[str, int, int]] = []
        for key in sorted(kinds):
            kind = kinds[key]
            fb = features.get(key)
            values = _values(docs, key)
            if kind == "numeric":
                values = _numbers(values)
                edges = fb.edges if fb is not None else ()
                bins = pd.Series(
                    np.searchsorted(np.asarray(edges, dtype="float64"), values.to_numpy(), side="right")
                )
                bins.index = values.index
                per_bin = _doc_counts(bins)
                nums += [(key, b, lo, up, per_bin.get(b, 0)) for b, (lo, up) in enumerate(bin_bounds(edges))]
            elif kind == "categorical":
                values = _category_values(values)
                known = fb.categories if fb is not None else {}
                cats += [(key, v, n, v in known) for v, n in _doc_counts(values).items()]
            elif kind == "text":
                vocab = fb.vocabulary if fb is not None else {}
                tokens = _values(docs, "tokens." + key.split(".", 1)[1])
                toks += [(key, t, n, t in vocab) for t, n in _doc_counts(tokens).items()]
                oov = ~tokens.isin(list(vocab)).astype(bool)
                texts.append((key, int(tokens.index.nunique()), int(oov.groupby(level=0).any().sum())))
            present = int(values.index.nunique())
            presence.append((key, present, len(docs) - present))
        return WindowCounts(
            model=model,
            version=version,
            window=window,
            docs=len(docs),
            presence=presence_table(presence),
            categories=categories_table(cats),
            numeric=numeric_table(nums),
            tokens=tokens_table(toks),
            text_docs=text_docs_table(texts),
        )

    def percentiles(
        self, model: str, version: str, window: Window, features: Sequence[str], percents: Sequence[float]
    ) -> pd.DataFrame:
        docs = self._docs(model, window, version)
        rows: list[tuple[str, float, float]] = []
        for key in sorted(features):
            values = _numbers(_values(docs, key))
            if values.empty:
                continue
            qs = np.percentile(values.to_numpy(), list(percents))
            rows += [(key, float(p), float(q)) for p, q in zip(percents, qs, strict=True)]
        df = pd.DataFrame(rows, columns=["feature", "percent", "value"])
        df = df.astype({"feature": "object", "percent": "float64", "value": "float64"})
        return df.sort_values(["feature", "percent"], kind="stable").reset_index(drop=True)
