"""Baselines as stable, versioned JSON, and as a table a person reads."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from inferwatch.analytics.model import Baseline, FeatureBaseline

FORMAT = 1


def _feature_to_dict(fb: FeatureBaseline) -> dict[str, Any]:
    return {
        "kind": fb.kind,
        "rows": fb.rows,
        "nulls": fb.nulls,
        "categories": dict(fb.categories),
        "unseen_rate": fb.unseen_rate,
        "edges": list(fb.edges),
        "bin_counts": list(fb.bin_counts),
        "quantiles": dict(fb.quantiles),
        "vocabulary": dict(fb.vocabulary),
        "text_docs": fb.text_docs,
        "heldout_docs": fb.heldout_docs,
        "heldout_oov_docs": fb.heldout_oov_docs,
    }


def baseline_to_dict(b: Baseline) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": b.model,
        "version": b.version,
        "created": b.created.isoformat(),
        "source": b.source,
        "rows": b.rows,
        "hourly_volume": {str(h): v for h, v in sorted(b.hourly_volume.items())},
        "features": {k: _feature_to_dict(fb) for k, fb in sorted(b.features.items())},
    }


def baseline_to_json(b: Baseline) -> bytes:
    """Stable (sorted keys), versioned (``format``) UTF-8 JSON."""
    return json.dumps(baseline_to_dict(b), sort_keys=True, ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def baseline_from_dict(raw: Mapping[str, Any]) -> Baseline:
    if raw.get("format") != FORMAT:
        raise ValueError(f"unsupported baseline format {raw.get('format')!r} (this version reads {FORMAT})")
    features = {}
    for key, f in raw["features"].items():
        features[key] = FeatureBaseline(
            key=key,
            kind=f["kind"],
            rows=int(f["rows"]),
            nulls=int(f["nulls"]),
            categories=MappingProxyType({str(k): int(v) for k, v in f.get("categories", {}).items()}),
            unseen_rate=float(f.get("unseen_rate", 0.0)),
            edges=tuple(float(e) for e in f.get("edges", ())),
            bin_counts=tuple(int(c) for c in f.get("bin_counts", ())),
            quantiles=MappingProxyType({str(k): float(v) for k, v in f.get("quantiles", {}).items()}),
            vocabulary=MappingProxyType({str(k): int(v) for k, v in f.get("vocabulary", {}).items()}),
            text_docs=int(f.get("text_docs", 0)),
            heldout_docs=int(f.get("heldout_docs", 0)),
            heldout_oov_docs=int(f.get("heldout_oov_docs", 0)),
        )
    return Baseline(
        model=str(raw["model"]),
        version=str(raw["version"]),
        created=datetime.fromisoformat(raw["created"]),
        source=str(raw["source"]),
        rows=int(raw["rows"]),
        features=MappingProxyType(features),
        hourly_volume=MappingProxyType({int(h): float(v) for h, v in raw.get("hourly_volume", {}).items()}),
    )


def baseline_from_json(data: bytes) -> Baseline:
    return baseline_from_dict(json.loads(data))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def summary_table(b: Baseline) -> str:
    """A printable table: one row per feature with its kind, rows, null rate, what the baseline
    holds (categories / quantiles / vocabulary) and the expected unseen or OOV rate."""
    header = ("feature", "kind", "rows", "nulls", "reference", "unseen/oov")
    rows: list[tuple[str, ...]] = []
    for key, fb in sorted(b.features.items()):
        if fb.kind == "categorical":
            top = sorted(fb.categories.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            ref = f"{len(fb.categories)} categories (top: {', '.join(v for v, _ in top)})"
            rate = _pct(fb.unseen_rate)
        elif fb.kind == "numeric":
            q = fb.quantiles
            ref = " ".join(f"{name}={_num(q[name])}" for name in ("p5", "p50", "p95") if name in q)
            ref = f"{ref} ({len(fb.bin_counts)} bins)".strip()
            rate = ""
        else:
            ref = f"vocabulary {len(fb.vocabulary)} tokens over {fb.text_docs} docs"
            rate = f"{_pct(fb.oov_rate)} of {fb.heldout_docs}" if fb.heldout_docs else "n/a"
        rows.append((key, fb.kind, str(fb.rows), _pct(fb.null_rate), ref, rate))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3}
    lines = [f"baseline {b.model}@{b.version}  ({b.source}, {b.rows} rows, created {b.created.isoformat()})"]
    for r in [header, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
