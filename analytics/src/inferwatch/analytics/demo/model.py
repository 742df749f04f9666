"""A real model: scikit-learn logistic regression over one-hot categories, scaled numbers and
TF-IDF of the car name, predicting whether a car is fuel-efficient."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = ["origin", "cylinders"]
NUMERIC = ["horsepower", "weight", "acceleration"]
TEXT = "name"


def pipeline() -> Pipeline:
    """The unfitted model: one-hot categories, imputed and scaled numbers, TF-IDF of the name."""
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("txt", TfidfVectorizer(min_df=1), TEXT),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000, C=1.0))])


def train(frame: pd.DataFrame) -> Pipeline:
    model = pipeline()
    model.fit(frame[[*CATEGORICAL, *NUMERIC, TEXT]], frame["efficient"])
    return model


def _outputs(proba: np.ndarray) -> list[dict[str, Any]]:
    return [{"score": round(float(p), 4), "label": "efficient" if p >= 0.5 else "thirsty"} for p in proba]


def out_of_fold(frame: pd.DataFrame, folds: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Outputs for the training rows from models that did not see them (cross-validation): the
    outputs' baseline must look like serving, not like the model's memory of its training set."""
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(
        pipeline(), frame[[*CATEGORICAL, *NUMERIC, TEXT]], frame["efficient"], cv=cv, method="predict_proba"
    )
    return _outputs(np.asarray(proba)[:, 1])


def accuracy(model: Pipeline, frame: pd.DataFrame) -> float:
    predicted = [o["label"] == "efficient" for o in predict(model, frame)]
    return float(np.mean(np.asarray(predicted) == frame["efficient"].astype(bool).to_numpy()))


def predict(model: Pipeline, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Outputs per row: ``score`` (probability of efficient) and ``label``."""
    frame = rows.reindex(columns=[*CATEGORICAL, *NUMERIC, TEXT])  # a vanished field becomes NaN
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame[TEXT] = frame[TEXT].fillna("")
    for col in CATEGORICAL:
        frame[col] = frame[col].fillna("missing")
    return _outputs(np.asarray(model.predict_proba(frame))[:, 1])
