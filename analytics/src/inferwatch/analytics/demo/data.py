"""The demo's data: the classic auto-mpg cars table that ships inside the vega_datasets wheel
(read from the installed package, never downloaded). It has categorical (origin, cylinders),
numeric (horsepower, weight, acceleration) and free-text (the car's name) inputs."""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

MODEL = "cars_mpg"
VERSION = "1.0"
FEATURES: dict[str, str] = {
    "origin": "categorical",
    "cylinders": "categorical",
    "horsepower": "numeric",
    "weight": "numeric",
    "acceleration": "numeric",
    "name": "text",
}
OUTPUTS: dict[str, str] = {"score": "numeric", "label": "categorical"}
EFFICIENT_MPG = 25.0  # the label: does this car do at least 25 miles per gallon?


def load_cars() -> pd.DataFrame:
    raw = (importlib.resources.files("vega_datasets") / "_data" / "cars.json").read_text(encoding="utf-8")
    df = pd.DataFrame(json.loads(raw))
    df = df.dropna(subset=["Miles_per_Gallon"]).reset_index(drop=True)
    return pd.DataFrame(
        {
            "origin": df["Origin"].astype(str),
            "cylinders": df["Cylinders"].astype(int).astype(str),
            "horsepower": df["Horsepower"].astype(float),
            "weight": df["Weight_in_lbs"].astype(float),
            "acceleration": df["Acceleration"].astype(float),
            "name": df["Name"].astype(str),
            "efficient": (df["Miles_per_Gallon"] >= EFFICIENT_MPG).astype(int),
        }
    )


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    heldout: pd.DataFrame


CATEGORICAL = tuple(k for k, v in FEATURES.items() if v == "categorical")
NUMERIC = tuple(k for k, v in FEATURES.items() if v == "numeric")


def split(df: pd.DataFrame, heldout_fraction: float = 0.3, seed: int = 7) -> Split:
    """A systematic stratified split: rows ordered by (missing numbers, maker, origin, cylinders,
    weight, random) and every row whose rank falls on the held-out fraction of each block of ten is held
    out; a held-out row whose category training lacks goes back to training.

    The request stream is drawn from the held-out rows and compared with a baseline of the
    training rows, so on normal traffic the two must agree: the same share of missing values (a
    random split of 398 rows easily puts 4 of the 6 missing horsepowers in the held-out third),
    the same makers (the most frequent name tokens), similar weights and no category training never saw."""
    rng = np.random.default_rng(seed)
    order = pd.DataFrame(
        {
            "missing": df[list(NUMERIC)].isna().sum(axis=1),
            "maker": df["name"].str.split().str[0].fillna(""),
            "origin": df["origin"],
            "cylinders": df["cylinders"],
            "weight": df["weight"],
            "tiebreak": rng.random(len(df)),
        }
    ).sort_values(["missing", "maker", "origin", "cylinders", "weight", "tiebreak"])
    per_ten = round(10 * heldout_fraction)
    slots = set(np.linspace(0, 9, per_ten).round().astype(int).tolist()) if per_ten else set()
    rank = np.empty(len(df), dtype=int)
    rank[order.index.to_numpy()] = np.arange(len(df))
    heldout = np.isin(rank % 10, sorted(slots))
    for col in CATEGORICAL:
        heldout &= df[col].isin(set(df.loc[~heldout, col])).to_numpy()
    return Split(df[~heldout].reset_index(drop=True), df[heldout].reset_index(drop=True))
