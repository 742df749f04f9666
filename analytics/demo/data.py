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


def split(df: pd.DataFrame, heldout_fraction: float = 0.3, seed: int = 7) -> Split:
    """A random split in which every category of the held-out rows also occurs in training
    (a held-out row with a category training lacks moves to training): the request stream is
    drawn from held-out rows, and a normal demo window must not look like an unseen category."""
    rng = np.random.default_rng(seed)
    mask = rng.random(len(df)) < heldout_fraction
    for col in CATEGORICAL:
        in_train = set(df.loc[~mask, col])
        mask &= df[col].isin(in_train).to_numpy()
    return Split(df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True))
