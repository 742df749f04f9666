"""The interface every count source implements (tables documented in ``analytics.model``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import pandas as pd

from inferwatch.analytics.model import Baseline, FeatureKind, ModelCounts, Window, WindowCounts


class CountSource(Protocol):
    def model_counts(self, model: str, window: Window) -> ModelCounts:
        """Documents per version and hourly volume of one model over ``window``."""
        ...

    def window_counts(
        self,
        model: str,
        version: str,
        window: Window,
        baseline: Baseline | None,
        kinds: Mapping[str, FeatureKind],
    ) -> WindowCounts:
        """Every count table of one model version over ``window``, for the features in ``kinds``
        (qualified keys). Without a baseline every category and token counts as unseen and each
        numeric feature has the single bin (-inf, inf)."""
        ...


class BaselineCountSource(CountSource, Protocol):
    """A source that can also answer what a baseline taken from logs needs."""

    def percentiles(
        self, model: str, version: str, window: Window, features: Sequence[str], percents: Sequence[float]
    ) -> pd.DataFrame:
        """DataFrame(feature:str, percent:float, value:float); no rows for a feature without
        values. Exact on every source (``numpy.percentile``'s linear interpolation; the
        Elasticsearch source refines exact range counts, ``sources.exact_quantiles``), so a
        baseline taken from logs has the same edges whichever backend holds them."""
        ...
