"""By-value Lens panels for dashboards (Kibana >= 8.9 ``formBased`` state), as plain dicts.

A panel is built from layers; a layer is a data view plus ordered columns (buckets first, then
metrics). ``lens_panel`` returns the dashboard panel and the references the dashboard must hold:
each layer's data view, hoisted as ``<panelIndex>:indexpattern-datasource-layer-<layerId>``
(Kibana's ``prefixReferencesFromPanel``), and also kept inside the panel's attributes as Elastic's
own exported dashboards do.

Column shapes follow Lens's ``buildColumn`` of each operation (x-pack/plugins/lens, operations/
definitions): ``count`` on ``___records___``, ``date_histogram`` with ``interval: auto``,
``terms`` ordered by a metric column, ``range`` in histogram mode, ``percentile``, ``average``,
``max``, ``unique_count`` and ``filters``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PANEL_VERSION = "8.9.0"
RECORDS = "___records___"
_NS = uuid.UUID("6f0c5a52-2d86-4a3c-9a8e-1f7f3b6a9c11")  # inferwatch's uuid5 namespace


def stable_id(*parts: str) -> str:
    """A UUID derived from names: the same definition always gets the same id."""
    return str(uuid.uuid5(_NS, "\x1f".join(parts)))


@dataclass(frozen=True)
class Column:
    id: str
    body: dict[str, Any]

    @property
    def bucketed(self) -> bool:
        return bool(self.body["isBucketed"])

    @property
    def operation(self) -> str:
        return str(self.body["operationType"])


def _kql(query: str) -> dict[str, str]:
    return {"query": query, "language": "kuery"}


def date_histogram(cid: str, time_field: str = "@timestamp", interval: str = "auto") -> Column:
    return Column(
        cid,
        {
            "label": time_field,
            "dataType": "date",
            "operationType": "date_histogram",
            "sourceField": time_field,
            "isBucketed": True,
            "scale": "interval",
            "params": {"interval": interval, "includeEmptyRows": True, "dropPartials": False},
        },
    )


def count(
    cid: str,
    label: str = "Count of records",
    per: str | None = None,
    kql: str | None = None,
    shift: str | None = None,
) -> Column:
    body: dict[str, Any] = {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "count",
        "sourceField": RECORDS,
        "isBucketed": False,
        "scale": "ratio",
        "params": {"emptyAsNull": False},
    }
    if per is not None:
        body["timeScale"] = per  # normalized by unit: "m" = per minute
    if kql is not None:
        body["filter"] = _kql(kql)
    if shift is not None:
        body["timeShift"] = shift  # e.g. "1w": the same count a week earlier
    return Column(cid, body)


def metric(cid: str, operation: str, source_field: str, label: str, **params: Any) -> Column:
    """``average``, ``max``, ``min``, ``sum``, ``unique_count``, ``percentile`` (params percentile=)."""
    return Column(
        cid,
        {
            "label": label,
            "customLabel": True,
            "dataType": "number",
            "operationType": operation,
            "sourceField": source_field,
            "isBucketed": False,
            "scale": "ratio",
            "params": {"emptyAsNull": True, **params},
        },
    )


def percentile(cid: str, source_field: str, pct: int) -> Column:
    return metric(cid, "percentile", source_field, f"p{pct} of {source_field}", percentile=pct)


def terms(
    cid: str,
    source_field: str,
    order_by: str | None,
    size: int = 5,
    label: str | None = None,
    secondary: Sequence[str] = (),
    other: bool = True,
) -> Column:
    order = (
        {"type": "column", "columnId": order_by} if order_by else {"type": "alphabetical", "fallback": True}
    )
    params: dict[str, Any] = {
        "size": size,
        "orderBy": order,
        "orderDirection": "desc" if order_by else "asc",
        "otherBucket": other,
        "missingBucket": False,
        "parentFormat": {"id": "multi_terms" if secondary else "terms"},
    }
    if secondary:
        params["secondaryFields"] = list(secondary)
    return Column(
        cid,
        {
            "label": label or f"Top {size} values of {source_field}",
            "customLabel": label is not None,
            "dataType": "string",
            "operationType": "terms",
            "sourceField": source_field,
            "isBucketed": True,
            "scale": "ordinal",
            "params": params,
        },
    )


def filters(cid: str, named_queries: Sequence[tuple[str, str]], label: str = "Filters") -> Column:
    return Column(
        cid,
        {
            "label": label,
            "customLabel": True,
            "dataType": "string",
            "operationType": "filters",
            "isBucketed": True,
            "scale": "ordinal",
            "params": {"filters": [{"input": _kql(q), "label": name} for name, q in named_queries]},
        },
    )


def histogram(cid: str, source_field: str) -> Column:
    return Column(
        cid,
        {
            "label": source_field,
            "dataType": "number",
            "operationType": "range",
            "sourceField": source_field,
            "isBucketed": True,
            "scale": "interval",
            "params": {
                "type": "histogram",
                "ranges": [{"from": 0, "to": 1000, "label": ""}],
                "maxBars": "auto",
                "includeEmptyRows": True,
            },
        },
    )


@dataclass(frozen=True)
class Layer:
    id: str
    data_view_id: str
    columns: tuple[Column, ...]

    def column_order(self) -> list[str]:
        """The order Lens's editor gives these columns when added one by one (``addBucket`` and
        ``addMetric`` in x-pack/plugins/lens/public/datasources/form_based/operations/
        layer_helpers.ts): buckets before metrics, and a terms column goes above the first date
        histogram, so its top values are taken over the whole time range instead of per interval
        (each interval with its own top N and its own "Other")."""
        buckets: list[Column] = []
        for c in self.columns:
            if not c.bucketed:
                continue
            first_date = next((i for i, b in enumerate(buckets) if b.operation == "date_histogram"), None)
            if c.operation == "terms" and first_date is not None:
                buckets.insert(first_date, c)
            else:
                buckets.append(c)
        return [c.id for c in buckets] + [c.id for c in self.columns if not c.bucketed]

    def state(self) -> dict[str, Any]:
        return {
            "columns": {c.id: c.body for c in self.columns},
            "columnOrder": self.column_order(),
            "incompleteColumns": {},
        }

    def reference(self) -> dict[str, str]:
        return {
            "type": "index-pattern",
            "id": self.data_view_id,
            "name": f"indexpattern-datasource-layer-{self.id}",
        }


@dataclass(frozen=True)
class Grid:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class LensPanel:
    """One visualization: its Lens ``visualizationType`` and ``visualization`` state."""

    title: str
    visualization_type: str  # lnsXY | lnsMetric | lnsDatatable
    layers: tuple[Layer, ...]
    visualization: dict[str, Any]
    query: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def lens_panel(panel_index: str, grid: Grid, spec: LensPanel) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The dashboard panel and the references to hoist into the dashboard."""
    inner_refs = [layer.reference() for layer in spec.layers]
    attributes = {
        "title": spec.title,
        "description": spec.description,
        "visualizationType": spec.visualization_type,
        "type": "lens",
        "references": inner_refs,
        "state": {
            "visualization": spec.visualization,
            "query": _kql(spec.query),
            "filters": [],
            "datasourceStates": {"formBased": {"layers": {layer.id: layer.state() for layer in spec.layers}}},
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }
    panel = {
        "version": PANEL_VERSION,
        "type": "lens",
        "gridData": {"x": grid.x, "y": grid.y, "w": grid.w, "h": grid.h, "i": panel_index},
        "panelIndex": panel_index,
        "embeddableConfig": {"attributes": attributes, "enhancements": {}},
        "title": spec.title,
    }
    hoisted = [{**ref, "name": f"{panel_index}:{ref['name']}"} for ref in inner_refs]
    return panel, hoisted


def search_panel(
    panel_index: str, grid: Grid, title: str, search_id: str
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A saved search embedded by reference (``panelRefName`` -> ``<panelIndex>:panel_<panelIndex>``)."""
    panel = {
        "version": PANEL_VERSION,
        "type": "search",
        "gridData": {"x": grid.x, "y": grid.y, "w": grid.w, "h": grid.h, "i": panel_index},
        "panelIndex": panel_index,
        "embeddableConfig": {"enhancements": {}},
        "panelRefName": f"panel_{panel_index}",
        "title": title,
    }
    return panel, [{"type": "search", "id": search_id, "name": f"{panel_index}:panel_{panel_index}"}]


# --- visualization states ------------------------------------------------------------------


def xy_layer(
    layer: Layer, series: str, x: str | None, accessors: Sequence[str], split: str | None = None
) -> dict[str, Any]:
    """One data layer of an XY chart: ``x`` and ``split`` name bucket columns of ``layer``."""
    data_layer: dict[str, Any] = {
        "layerId": layer.id,
        "layerType": "data",
        "seriesType": series,
        "accessors": list(accessors),
    }
    if x is not None:
        data_layer["xAccessor"] = x
    if split is not None:
        data_layer["splitAccessor"] = split
    return data_layer


def xy_state(data_layers: Sequence[dict[str, Any]], legend: str = "right") -> dict[str, Any]:
    """An XY chart of one or more data layers (``xy_layer``), on one shared x axis."""
    return {
        "legend": {"isVisible": True, "position": legend},
        "valueLabels": "hide",
        "fittingFunction": "None",
        "preferredSeriesType": data_layers[0]["seriesType"],
        "layers": list(data_layers),
    }


def xy(
    layer: Layer,
    series: str,
    x: str | None,
    accessors: Sequence[str],
    split: str | None = None,
    legend: str = "right",
) -> dict[str, Any]:
    """``series``: line | bar | bar_stacked | bar_horizontal | area | bar_percentage_stacked |
    area_percentage_stacked."""
    return xy_state([xy_layer(layer, series, x, accessors, split)], legend)


def metric_vis(layer: Layer, metric_id: str, breakdown: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"layerId": layer.id, "layerType": "data", "metricAccessor": metric_id}
    if breakdown is not None:
        state["breakdownByAccessor"] = breakdown
    return state


def datatable(layer: Layer) -> dict[str, Any]:
    return {
        "layerId": layer.id,
        "layerType": "data",
        "columns": [{"columnId": c, "isTransposed": False} for c in layer.state()["columnOrder"]],
    }
