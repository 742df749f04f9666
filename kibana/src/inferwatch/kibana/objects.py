"""The Kibana saved objects of inferwatch, as Python definitions.

``bundle(models, dead_letter_index)`` returns every object (data views, saved searches,
dashboards) in import order, each in the raw NDJSON envelope (string-encoded attributes where
Kibana stores strings). Ids are uuid5 of names, so a rebuild gives the same ids and re-importing
overwrites instead of duplicating.

Dashboards:
- Overview and Alerts serve every model (an options-list control on ``ml.model.name`` and
  ``ml.model.version``; the alert index aliases those names, so the same filter narrows the alert
  panels).
- Inputs, Outputs and Text exist per configured model (``models:`` in the config), one panel per
  feature, because Lens panels name their fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inferwatch.core.config import ModelConfig
from inferwatch.kibana.lens import (
    Grid,
    Layer,
    LensPanel,
    count,
    datatable,
    date_histogram,
    filters,
    histogram,
    lens_panel,
    metric,
    metric_vis,
    percentile,
    search_panel,
    stable_id,
    terms,
    xy,
)

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {
    "index-pattern": "7.11.0",
    "search": "7.9.3",
    "dashboard": "8.9.0",
}
DEFAULT_DEAD_LETTER_INDEX = "inferwatch-dead-letter"
LOGS_PATTERN = "logs-inferwatch.*-*"
ALERTS_INDEX = "inferwatch-alerts"
HISTORY_PATTERN = "logs-inferwatch_alerts.history-*"

GRID_COLUMNS = 48


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def envelope(
    obj_type: str, obj_id: str, attributes: dict[str, Any], references: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "type": obj_type,
        "id": obj_id,
        "attributes": attributes,
        "references": references,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSION[obj_type],
        "managed": False,
    }


# --- data views ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataView:
    key: str
    title: str  # the index pattern
    name: str
    time_field: str

    @property
    def id(self) -> str:
        return stable_id("index-pattern", self.key)

    def saved_object(self) -> dict[str, Any]:
        attributes = {
            "title": self.title,
            "name": self.name,
            "timeFieldName": self.time_field,
            "fields": "[]",
            "fieldFormatMap": "{}",
            "fieldAttrs": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
        }
        return envelope("index-pattern", self.id, attributes, [])


LOGS = DataView("logs", LOGS_PATTERN, "inferwatch prediction logs", "@timestamp")
ALERTS = DataView("alerts", ALERTS_INDEX, "inferwatch alerts", "@timestamp")
HISTORY = DataView("history", HISTORY_PATTERN, "inferwatch alert history", "@timestamp")


def dead_letter_view(index: str) -> DataView:
    return DataView("dead-letter", index, "inferwatch dead-lettered lines", "@timestamp")


# --- saved searches ------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedSearch:
    key: str
    title: str
    description: str
    view: DataView
    columns: tuple[str, ...]
    query: str = ""

    @property
    def id(self) -> str:
        return stable_id("search", self.key)

    def saved_object(self) -> dict[str, Any]:
        source = {
            "query": {"query": self.query, "language": "kuery"},
            "filter": [],
            "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
        }
        attributes = {
            "title": self.title,
            "description": self.description,
            "columns": list(self.columns),
            "sort": [[self.view.time_field, "desc"]],
            "hits": 0,
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _dumps(source)},
        }
        ref = {
            "name": "kibanaSavedObjectMeta.searchSourceJSON.index",
            "type": "index-pattern",
            "id": self.view.id,
        }
        return envelope("search", self.id, attributes, [ref])


RAW_LOGS = SavedSearch(
    "raw-logs",
    "inferwatch: prediction logs",
    "Every prediction as shipped by the agent, newest first.",
    LOGS,
    (
        "ml.model.name",
        "ml.model.version",
        "ml.prediction.id",
        "ml.prediction.latency_ms",
        "ml.invalid",
        "log.file.path",
    ),
)
ALERT_LIST = SavedSearch(
    "alerts",
    "inferwatch: alerts",
    "Current alert documents, most recently changed first.",
    ALERTS,
    ("severity", "status", "model", "version", "detector", "feature", "message"),
)
ALERT_EVIDENCE = SavedSearch(
    "alert-evidence",
    "inferwatch: alert evidence",
    "Each alert with its message and the evidence: statistic, p-value, threshold, effect, observed "
    "and expected values, examples.",
    ALERTS,
    (
        "message",
        "statistic.name",
        "statistic.value",
        "p_value",
        "threshold",
        "effect",
        "observed",
        "expected",
        "examples",
        "windows",
    ),
)


def dead_letter_search(view: DataView) -> SavedSearch:
    return SavedSearch(
        "dead-letter",
        "inferwatch: dead-lettered lines",
        "Log lines the agent could not index, with the reason (needs agent.dead_letter_index).",
        view,
        ("reason", "detail", "status", "index", "document"),
    )


# --- dashboards ----------------------------------------------------------------------------


@dataclass
class DashboardBuilder:
    """Collects panels row by row on the 48-column grid, with their hoisted references."""

    key: str
    title: str
    description: str
    panels: list[dict[str, Any]] = field(default_factory=list)
    references: list[dict[str, str]] = field(default_factory=list)
    controls: list[tuple[str, str]] = field(default_factory=list)  # (field, title) on LOGS
    _x: int = 0
    _y: int = 0
    _row_h: int = 0

    @property
    def id(self) -> str:
        return stable_id("dashboard", self.key)

    def _place(self, w: int, h: int) -> Grid:
        if self._x + w > GRID_COLUMNS:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        grid = Grid(self._x, self._y, w, h)
        self._x += w
        self._row_h = max(self._row_h, h)
        return grid

    def newline(self) -> None:
        if self._x:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0

    def layer(self, name: str) -> str:
        return stable_id(self.key, name, "layer")

    def col(self, panel: str, name: str) -> str:
        return stable_id(self.key, panel, name)

    def add_lens(self, spec: LensPanel, w: int = 24, h: int = 12) -> None:
        index = stable_id(self.key, "panel", spec.title)
        panel, refs = lens_panel(index, self._place(w, h), spec)
        self.panels.append(panel)
        self.references.extend(refs)

    def add_search(self, search: SavedSearch, w: int = 48, h: int = 14) -> None:
        index = stable_id(self.key, "panel", search.key)
        panel, refs = search_panel(index, self._place(w, h), search.title, search.id)
        self.panels.append(panel)
        self.references.extend(refs)

    def saved_object(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "title": self.title,
            "description": self.description,
            "panelsJSON": _dumps(self.panels),
            "optionsJSON": _dumps(
                {
                    "useMargins": True,
                    "syncColors": False,
                    "syncCursor": True,
                    "syncTooltips": False,
                    "hidePanelTitles": False,
                }
            ),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": False, "value": 60000},
            "version": 1,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
            },
        }
        references = list(self.references)
        if self.controls:
            panels: dict[str, Any] = {}
            for order, (field_name, title) in enumerate(self.controls):
                cid = stable_id(self.key, "control", field_name)
                panels[cid] = {
                    "order": order,
                    "width": "medium",
                    "grow": True,
                    "type": "optionsListControl",
                    "explicitInput": {
                        "id": cid,
                        "fieldName": field_name,
                        "title": title,
                        "selectedOptions": [],
                        "enhancements": {},
                    },
                }
                references.append(
                    {
                        "name": f"controlGroup_{cid}:optionsListDataView",
                        "type": "index-pattern",
                        "id": LOGS.id,
                    }
                )
            attributes["controlGroupInput"] = {
                "controlStyle": "oneLine",
                "chainingSystem": "HIERARCHICAL",
                "panelsJSON": _dumps(panels),
                "ignoreParentSettingsJSON": _dumps(
                    {
                        "ignoreFilters": False,
                        "ignoreQuery": False,
                        "ignoreTimerange": False,
                        "ignoreValidations": False,
                    }
                ),
            }
        return envelope("dashboard", self.id, attributes, references)


_MODEL_CONTROLS = [("ml.model.name", "Model"), ("ml.model.version", "Version")]


def _model_query(model: str) -> str:
    return f'ml.model.name : "{model}"'


def overview() -> DashboardBuilder:
    d = DashboardBuilder(
        "overview",
        "inferwatch: Overview",
        "Prediction volume and latency per model and version, open alerts, the newest alerts.",
        controls=list(_MODEL_CONTROLS),
    )
    title = "Predictions per minute by model and version"
    t, c, m = d.col(title, "time"), d.col(title, "count"), d.col(title, "model")
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (
            date_histogram(t),
            terms(m, "ml.model.name", c, size=10, secondary=["ml.model.version"], label="Model / version"),
            count(c, "Predictions per minute", per="m"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsXY", (lay,), xy(lay, "bar_stacked", t, [c], split=m)), w=32, h=14)

    title = "Open alerts"
    c = d.col(title, "count")
    lay = Layer(d.layer(title), ALERTS.id, (count(c, "Open alerts"),))
    d.add_lens(LensPanel(title, "lnsMetric", (lay,), metric_vis(lay, c), query='status : "open"'), w=16, h=5)

    title = "Open alerts by severity"
    s, c = d.col(title, "severity"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (terms(s, "severity", c, size=3, label="Severity", other=False), count(c, "Open alerts")),
    )
    spec = LensPanel(title, "lnsXY", (lay,), xy(lay, "bar_horizontal", s, [c]), query='status : "open"')
    # Placed under the metric, beside the volume chart.
    index = stable_id(d.key, "panel", spec.title)
    panel, refs = lens_panel(index, Grid(32, 5, 16, 9), spec)
    d.panels.append(panel)
    d.references.extend(refs)

    d.newline()
    title = "Latency percentiles (ms)"
    t = d.col(title, "time")
    pcts = [(p, d.col(title, f"p{p}")) for p in (50, 95, 99)]
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (date_histogram(t), *(percentile(cid, "ml.prediction.latency_ms", p) for p, cid in pcts)),
    )
    d.add_lens(LensPanel(title, "lnsXY", (lay,), xy(lay, "line", t, [cid for _, cid in pcts])), w=24, h=12)

    title = "Models and versions"
    m, v, c, lat = (d.col(title, n) for n in ("model", "version", "count", "latency"))
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (
            terms(m, "ml.model.name", c, size=20, label="Model", other=False),
            terms(v, "ml.model.version", c, size=10, label="Version", other=False),
            count(c, "Predictions"),
            metric(lat, "average", "ml.prediction.latency_ms", "Mean latency (ms)"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay)), w=24, h=12)
    d.newline()
    d.add_search(ALERT_LIST, w=48, h=14)
    return d


def alerts_dashboard() -> DashboardBuilder:
    d = DashboardBuilder(
        "alerts",
        "inferwatch: Alerts",
        "Alerts opened and resolved over time, by detector and feature, with the message and the evidence.",
        controls=list(_MODEL_CONTROLS),
    )
    title = "Alert events over time (opened, escalated, updated, resolved)"
    t, a, c = d.col(title, "time"), d.col(title, "action"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        HISTORY.id,
        (
            date_histogram(t),
            terms(a, "event.action", c, size=4, label="Event", other=False),
            count(c, "Events"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsXY", (lay,), xy(lay, "bar_stacked", t, [c], split=a)), w=24, h=12)

    title = "Open alerts by detector and severity"
    det, sev, c = d.col(title, "detector"), d.col(title, "severity"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (
            terms(det, "detector", c, size=15, label="Detector", other=False),
            terms(sev, "severity", c, size=3, label="Severity", other=False),
            count(c, "Alerts"),
        ),
    )
    d.add_lens(
        LensPanel(
            title, "lnsXY", (lay,), xy(lay, "bar_stacked", det, [c], split=sev), query='status : "open"'
        ),
        w=24,
        h=12,
    )

    title = "Alerts by detector and feature"
    det, feat, c, op, w = (d.col(title, n) for n in ("detector", "feature", "count", "open", "windows"))
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (
            terms(det, "detector", c, size=20, label="Detector", other=False),
            terms(feat, "feature", c, size=50, label="Feature", other=False),
            count(c, "Alerts"),
            count(op, "Open", kql='status : "open"'),
            metric(w, "max", "windows", "Most firing windows"),
        ),
    )
    d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay)), w=48, h=12)
    d.add_search(ALERT_EVIDENCE, w=48, h=16)
    return d


def _presence(d: DashboardBuilder, model: str, key: str) -> None:
    title = f"{key}: present vs missing"
    t, f, c = d.col(title, "time"), d.col(title, "filters"), d.col(title, "count")
    fld = f"ml.{key}"
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (
            date_histogram(t),
            filters(f, [("present", f"{fld} : *"), ("missing", f"not {fld} : *")], label="Value"),
            count(c, "Predictions"),
        ),
    )
    d.add_lens(
        LensPanel(
            title,
            "lnsXY",
            (lay,),
            xy(lay, "area_percentage_stacked", t, [c], split=f),
            query=_model_query(model),
            description="The share of predictions where the field is missing or null, over time.",
        ),
        w=24,
        h=10,
    )


def _categories(d: DashboardBuilder, model: str, key: str) -> None:
    title = f"{key}: top categories over time"
    t, v, c = d.col(title, "time"), d.col(title, "value"), d.col(title, "count")
    lay = Layer(
        d.layer(title),
        LOGS.id,
        (date_histogram(t), terms(v, f"ml.{key}", c, size=10, label=key), count(c, "Predictions")),
    )
    d.add_lens(
        LensPanel(
            title,
            "lnsXY",
            (lay,),
            xy(lay, "bar_percentage_stacked", t, [c], split=v),
            query=_model_query(model),
        ),
        w=24,
        h=10,
    )


def _percentiles(d: DashboardBuilder, model: str, key: str, split_version: bool = False) -> None:
    title = f"{key}: percentiles over time" + (" by version" if split_version else "")
    t = d.col(title, "time")
    fld = f"ml.{key}"
    if split_version:
        v, p50 = d.col(title, "version"), d.col(title, "p50")
        cols = (
            date_histogram(t),
            terms(v, "ml.model.version", p50, size=5, label="Version"),
            percentile(p50, fld, 50),
        )
        lay = Layer(d.layer(title), LOGS.id, cols)
        vis = xy(lay, "line", t, [p50], split=v)
    else:
        pcts = [(p, d.col(title, f"p{p}")) for p in (5, 50, 95)]
        lay = Layer(
            d.layer(title), LOGS.id, (date_histogram(t), *(percentile(cid, fld, p) for p, cid in pcts))
        )
        vis = xy(lay, "line", t, [cid for _, cid in pcts])
    d.add_lens(LensPanel(title, "lnsXY", (lay,), vis, query=_model_query(model)), w=24, h=10)


def _unseen_table(d: DashboardBuilder, model: str) -> None:
    title = "Unseen categories (values never seen in training)"
    feat, key, n, w = (d.col(title, n) for n in ("feature", "key", "count", "windows"))
    lay = Layer(
        d.layer(title),
        ALERTS.id,
        (
            terms(feat, "feature", w, size=20, label="Feature", other=False),
            terms(key, "key", w, size=50, label="Unseen value", other=False),
            metric(w, "max", "windows", "Windows seen"),
            metric(n, "max", "statistic.value", "Count in the latest firing window"),
        ),
    )
    query = f'model : "{model}" and detector : "unseen_category"'
    d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay), query=query), w=48, h=10)


def inputs_dashboard(model: str, cfg: ModelConfig) -> DashboardBuilder | None:
    feats = [(f, k) for f, k in cfg.features.items() if k != "text"]
    if not feats:
        return None
    d = DashboardBuilder(
        f"inputs:{model}",
        f"inferwatch: Inputs ({model})",
        f"Per-feature missing share, categories and numeric percentiles of model {model}.",
        controls=[("ml.model.version", "Version")],
    )
    for f, kind in sorted(feats):
        key = f"inputs.{f}"
        _presence(d, model, key)
        if kind == "categorical":
            _categories(d, model, key)
        else:
            _percentiles(d, model, key)
    d.newline()
    _unseen_table(d, model)
    return d


def outputs_dashboard(model: str, cfg: ModelConfig) -> DashboardBuilder | None:
    if not cfg.outputs:
        return None
    d = DashboardBuilder(
        f"outputs:{model}",
        f"inferwatch: Outputs ({model})",
        f"Prediction score distribution and percentiles, label frequencies, by version, of model {model}.",
        controls=[("ml.model.version", "Version")],
    )
    for name, kind in sorted(cfg.outputs.items()):
        key = f"outputs.{name}"
        fld = f"ml.{key}"
        if kind == "numeric":
            title = f"{key}: distribution by version"
            b, v, c = d.col(title, "bins"), d.col(title, "version"), d.col(title, "count")
            lay = Layer(
                d.layer(title),
                LOGS.id,
                (
                    histogram(b, fld),
                    terms(v, "ml.model.version", c, size=5, label="Version"),
                    count(c, "Predictions"),
                ),
            )
            d.add_lens(
                LensPanel(title, "lnsXY", (lay,), xy(lay, "bar", b, [c], split=v), query=_model_query(model)),
                w=24,
                h=10,
            )
            _percentiles(d, model, key, split_version=True)
            _percentiles(d, model, key)
        else:
            title = f"{key}: label frequencies by version"
            v, lab, c = d.col(title, "version"), d.col(title, "label"), d.col(title, "count")
            lay = Layer(
                d.layer(title),
                LOGS.id,
                (
                    terms(v, "ml.model.version", c, size=10, label="Version"),
                    terms(lab, fld, c, size=10, label=key),
                    count(c, "Predictions"),
                ),
            )
            d.add_lens(
                LensPanel(
                    title,
                    "lnsXY",
                    (lay,),
                    xy(lay, "bar_percentage_stacked", v, [c], split=lab),
                    query=_model_query(model),
                ),
                w=24,
                h=10,
            )
            _categories(d, model, key)
        _presence(d, model, key)
        d.newline()
    return d


def text_dashboard(model: str, cfg: ModelConfig) -> DashboardBuilder | None:
    texts = sorted(f for f, k in cfg.features.items() if k == "text")
    if not texts:
        return None
    d = DashboardBuilder(
        f"text:{model}",
        f"inferwatch: Text ({model})",
        f"Vocabulary of the text inputs of model {model}: OOV rate against the training vocabulary "
        "(computed by the worker), top tokens now vs a week earlier, and the new tokens.",
        controls=[("ml.model.version", "Version")],
    )
    for f in texts:
        key = f"inputs.{f}"
        title = f"{key}: OOV rate while alerting"
        t, val, eff = d.col(title, "time"), d.col(title, "value"), d.col(title, "effect")
        lay = Layer(
            d.layer(title),
            HISTORY.id,
            (
                date_histogram(t),
                metric(val, "max", "statistic.value", "OOV rate (share of documents)"),
                metric(eff, "max", "effect", "Above the training OOV rate by"),
            ),
        )
        d.add_lens(
            LensPanel(
                title,
                "lnsXY",
                (lay,),
                xy(lay, "line", t, [val, eff]),
                query=f'model : "{model}" and feature : "{key}" and detector : "oov_rate"',
                description="The oov_rate detector's window rate (documents with a token outside the "
                "training vocabulary) and its excess over the held-out training rate, from the alert "
                "history: one point per window in which the alert opened, held or resolved.",
            ),
            w=24,
            h=10,
        )

        title = f"{key}: top tokens, now vs a week earlier"
        tok, now, before = d.col(title, "token"), d.col(title, "now"), d.col(title, "before")
        before_col = count(before, "Documents, a week earlier", shift="1w")
        lay = Layer(
            d.layer(title),
            LOGS.id,
            (
                terms(tok, f"ml.tokens.{f}", now, size=20, label="Token", other=False),
                count(now, "Documents"),
                before_col,
            ),
        )
        d.add_lens(
            LensPanel(
                title,
                "lnsXY",
                (lay,),
                xy(lay, "bar_horizontal", tok, [now, before]),
                query=_model_query(model),
            ),
            w=24,
            h=14,
        )

        title = f"{key}: new tokens (not in the training vocabulary)"
        tok, w, c = d.col(title, "token"), d.col(title, "windows"), d.col(title, "count")
        lay = Layer(
            d.layer(title),
            ALERTS.id,
            (
                terms(tok, "examples", c, size=50, label="New token", other=False),
                count(c, "Alerts naming it"),
                metric(w, "max", "windows", "Windows"),
            ),
        )
        query = f'model : "{model}" and feature : "{key}" and detector : ("vocabulary_drift" or "oov_rate")'
        d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay), query=query), w=24, h=14)
        _presence(d, model, key)
        d.newline()
    return d


# --- the bundle ----------------------------------------------------------------------------


def data_views(dead_letter_index: str) -> list[DataView]:
    return [LOGS, ALERTS, HISTORY, dead_letter_view(dead_letter_index)]


def dashboards(models: Mapping[str, ModelConfig]) -> list[DashboardBuilder]:
    out = [overview(), alerts_dashboard()]
    for name in sorted(models):
        for build in (inputs_dashboard, outputs_dashboard, text_dashboard):
            d = build(name, models[name])
            if d is not None:
                out.append(d)
    return out


def searches(dead_letter_index: str) -> list[SavedSearch]:
    return [RAW_LOGS, ALERT_LIST, ALERT_EVIDENCE, dead_letter_search(dead_letter_view(dead_letter_index))]


def bundle(models: Mapping[str, ModelConfig], dead_letter_index: str | None = None) -> list[dict[str, Any]]:
    """Every saved object, referenced objects before the objects that reference them."""
    dl = dead_letter_index or DEFAULT_DEAD_LETTER_INDEX
    objects: list[dict[str, Any]] = [v.saved_object() for v in data_views(dl)]
    objects += [s.saved_object() for s in searches(dl)]
    objects += [d.saved_object() for d in dashboards(models)]
    return objects


def to_ndjson(objects: Iterable[dict[str, Any]]) -> bytes:
    """One object per line, keys sorted: the same objects always give the same bytes."""
    lines = [json.dumps(o, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for o in objects]
    return ("\n".join(lines) + "\n").encode("utf-8")
