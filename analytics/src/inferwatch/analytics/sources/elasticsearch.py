"""Count tables from Elasticsearch aggregations: ``1 + V`` searches per evaluation of a model
(V versions in the window), plus composite pages only for fields whose unseen values outnumber
``UNSEEN_TERMS_SIZE`` and extra parts only for baselines too large for one request's bucket
budget (see ``analytics.queries``). Never pulls documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from inferwatch.analytics import queries
from inferwatch.analytics.es import SearchClient, search
from inferwatch.analytics.model import Baseline, FeatureKind, ModelCounts, Window, WindowCounts
from inferwatch.analytics.sources.exact_quantiles import exact_percentiles


class ElasticsearchSource:
    """``namespaces``: every namespace the agent ships into (one name, a pattern, or several);
    each search covers the model's data stream in all of them."""

    def __init__(self, client: SearchClient, namespaces: str | Sequence[str] = "*") -> None:
        self.client = client
        self.namespaces = (namespaces,) if isinstance(namespaces, str) else tuple(namespaces)

    def _index(self, model: str) -> str:
        return queries.search_target(model, self.namespaces)

    def model_counts(self, model: str, window: Window) -> ModelCounts:
        response = search(self.client, self._index(model), queries.model_body(model, window))
        return queries.parse_model(response, model, window)

    def window_counts(
        self,
        model: str,
        version: str,
        window: Window,
        baseline: Baseline | None,
        kinds: Mapping[str, FeatureKind],
    ) -> WindowCounts:
        index = self._index(model)
        bodies = queries.window_bodies(model, version, window, baseline, kinds)
        response = queries.merge_responses([search(self.client, index, body) for body in bodies])
        complete = {
            field: self._all_values(index, model, version, window, field)
            for field in queries.incomplete_fields(response, kinds)
        }
        return queries.parse_window(response, model, version, window, baseline, kinds, complete)

    def _all_values(self, index: str, model: str, version: str, window: Window, field: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        after: dict[str, Any] | None = None
        while True:
            body = queries.composite_body(model, version, window, field, after)
            page, after = queries.parse_composite(search(self.client, index, body))
            counts.update(page)
            if after is None:
                return counts

    def percentiles(
        self, model: str, version: str, window: Window, features: Sequence[str], percents: Sequence[float]
    ) -> pd.DataFrame:
        """Exact (``sources.exact_quantiles``): Elasticsearch's own percentiles are t-digest
        estimates, and a baseline taken from logs must not depend on the backend."""
        index = self._index(model)
        keys = sorted(features)
        return exact_percentiles(
            lambda body: search(self.client, index, body),
            queries.base_query(model, window, version),
            [queries.field_of(k) for k in keys],
            keys,
            percents,
        )
