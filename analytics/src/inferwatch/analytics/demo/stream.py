"""The demo's request stream: held-out rows drawn at random, with failures injected on a
schedule of windows. Pure given its seed: the same schedule always produces the same lines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from inferwatch.analytics.demo.data import MODEL, VERSION

# Car names from makers the training data never saw: the "texts shift to a new vocabulary" failure.
FOREIGN_SHARE = 0.6  # of requests: enough to lift the OOV rate past its effect floor (half the baseline rate)
FOREIGN_NAMES = (
    "hyundai elantra gt",
    "kia sorento hybrid",
    "tesla model 3 long range",
    "byd seal performance",
    "polestar 2 dual motor",
    "rivian r1s adventure",
    "lucid air touring",
    "genesis gv70 sport",
    "skoda octavia estate",
    "seat leon cupra",
)


@dataclass(frozen=True)
class Injection:
    """A failure active from window ``start`` (inclusive) to ``end`` (exclusive)."""

    kind: str  # missing_feature | unseen_category | vocabulary_shift
    start: int
    end: int
    feature: str
    detectors: tuple[str, ...]  # what should fire
    describe: str


def default_schedule(normal_windows: int = 3, length: int = 2, gap: int = 4) -> list[Injection]:
    """Normal traffic first, then each failure for ``length`` windows, with recovery between."""
    out: list[Injection] = []
    start = normal_windows
    plan = [
        (
            "missing_feature",
            "inputs.horsepower",
            ("feature_vanished", "null_surge"),
            "the horsepower field disappears from every request",
        ),
        (
            "unseen_category",
            "inputs.origin",
            ("unseen_category", "unseen_rate"),
            "cars from a new origin, 'Korea', start to arrive (25% of requests)",
        ),
        (
            "vocabulary_shift",
            "inputs.name",
            ("oov_rate", "vocabulary_drift"),
            "60% of car names come from makers never seen in training",
        ),
    ]
    for kind, feature, detectors, describe in plan:
        out.append(Injection(kind, start, start + length, feature, detectors, describe))
        start += length + gap
    return out


INPUTS = ("origin", "cylinders", "horsepower", "weight", "acceleration", "name")


def _json_value(value: Any) -> Any:
    """NaN (a missing number in the source data) is written as null, which JSON can carry."""
    if isinstance(value, float) and value != value:
        return None
    return value


def active(schedule: list[Injection], window: int) -> list[Injection]:
    return [i for i in schedule if i.start <= window < i.end]


def window_rows(
    heldout: pd.DataFrame, n: int, window: int, schedule: list[Injection], seed: int
) -> pd.DataFrame:
    """The requests of one window, with this window's injections applied."""
    rng = np.random.default_rng([seed, window])
    rows = heldout.sample(n=n, replace=True, random_state=rng).reset_index(drop=True)
    for inj in active(schedule, window):
        if inj.kind == "missing_feature":
            rows = rows.drop(columns=["horsepower"])  # the field vanished, as a broken upstream does
        elif inj.kind == "unseen_category":
            hit = rng.random(n) < 0.25
            rows.loc[hit, "origin"] = "Korea"
        elif inj.kind == "vocabulary_shift":
            hit = rng.random(n) < FOREIGN_SHARE
            rows.loc[hit, "name"] = rng.choice(FOREIGN_NAMES, size=int(hit.sum()))
    return rows


def log_lines(
    rows: pd.DataFrame, outputs: list[dict[str, Any]], start: datetime, span: timedelta, seed: int
) -> list[dict[str, Any]]:
    """Prediction log lines in the documented shape, timestamps spread over the window."""
    rng = np.random.default_rng([seed, int(start.timestamp())])
    offsets = np.sort(rng.random(len(rows))) * span.total_seconds()
    latency = rng.gamma(4.0, 3.0, len(rows))
    ids = uuid.UUID(int=int(rng.integers(0, 2**63)) << 64)
    lines = []
    for i, (row, out) in enumerate(zip(rows.to_dict("records"), outputs, strict=True)):
        inputs = {k: _json_value(row[k]) for k in INPUTS if k in row}
        ts = start + timedelta(seconds=float(offsets[i]))
        lines.append(
            {
                "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "model": MODEL,
                "model_version": VERSION,
                "prediction_id": f"{ids.hex[:16]}{i:08x}",
                "inputs": inputs,
                "outputs": out,
                "latency_ms": round(float(latency[i]), 2),
            }
        )
    return lines
