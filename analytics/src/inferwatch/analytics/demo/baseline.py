"""The demo model's baseline: built from its training split with ``analytics.baseline``, the way
``inferwatch baseline build`` builds one from a training file.

The one demo-specific choice: the vocabulary is fitted on every training row and its
out-of-vocabulary rate is measured on the demo's held-out split (the rows the request stream is
drawn from) instead of on a slice of the small training set, so the reference the OOV detector
uses is the rate normal traffic really has."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pandas as pd

from inferwatch.analytics.baseline import build_baseline
from inferwatch.analytics.demo.data import FEATURES, MODEL, OUTPUTS, VERSION, Split
from inferwatch.analytics.model import Baseline, FeatureBaseline, FeatureKind
from inferwatch.core.tokenize import tokenize

SOURCE = "training:vega_datasets/cars.json"


def kinds() -> dict[str, FeatureKind]:
    out: dict[str, FeatureKind] = {f"inputs.{k}": v for k, v in FEATURES.items()}  # type: ignore[misc]
    out.update({f"outputs.{k}": v for k, v in OUTPUTS.items()})  # type: ignore[misc]
    return out


def training_frame(train: pd.DataFrame, outputs: list[dict[str, Any]]) -> pd.DataFrame:
    """Qualified columns: the inputs as the model received them, the outputs it gave."""
    frame = pd.DataFrame({f"inputs.{k}": train[k].to_numpy() for k in FEATURES})
    for name in OUTPUTS:
        frame[f"outputs.{name}"] = [o[name] for o in outputs]
    return frame


def heldout_oov(fb: FeatureBaseline, texts: pd.Series) -> FeatureBaseline:
    """``fb`` with its held-out OOV counts measured on ``texts`` against its vocabulary."""
    docs = oov = 0
    for text in texts.dropna():
        tokens = tokenize(str(text))
        if tokens:
            docs += 1
            oov += any(t not in fb.vocabulary for t in tokens)
    return replace(fb, heldout_docs=docs, heldout_oov_docs=oov)


def demo_baseline(
    parts: Split, train_outputs: list[dict[str, Any]], created: datetime | None = None
) -> Baseline:
    b = build_baseline(
        training_frame(parts.train, train_outputs),
        MODEL,
        VERSION,
        kinds(),
        SOURCE,
        created or datetime.now(UTC),
        heldout_fraction=0.0,
    )
    features = dict(b.features)
    for name, kind in FEATURES.items():
        if kind == "text":
            key = f"inputs.{name}"
            features[key] = heldout_oov(features[key], parts.heldout[name])
    return replace(b, features=MappingProxyType(features))
