"""The dashboard saved object: panels placed row by row on Kibana's 48-column grid, the references
they hoist, and the options-list controls of the control group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inferwatch.kibana.lens import Grid, LensPanel, lens_panel, search_panel, stable_id
from inferwatch.kibana.saved_objects import LOGS, SavedSearch, dumps, envelope

GRID_COLUMNS = 48
MODEL_CONTROLS = (("ml.model.name", "Model"), ("ml.model.version", "Version"))
VERSION_CONTROL = (("ml.model.version", "Version"),)


def model_query(model: str) -> str:
    """The KQL that narrows a panel to one model's prediction logs."""
    return f'ml.model.name : "{model}"'


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
        self.add_lens_at(spec, self._place(w, h))

    def add_lens_at(self, spec: LensPanel, grid: Grid) -> None:
        """A panel at a fixed place (beside the row flow: the caller keeps it clear of others)."""
        index = stable_id(self.key, "panel", spec.title)
        panel, refs = lens_panel(index, grid, spec)
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
            "panelsJSON": dumps(self.panels),
            "optionsJSON": dumps(
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
                "searchSourceJSON": dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
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
                "panelsJSON": dumps(panels),
                "ignoreParentSettingsJSON": dumps(
                    {
                        "ignoreFilters": False,
                        "ignoreQuery": False,
                        "ignoreTimerange": False,
                        "ignoreValidations": False,
                    }
                ),
            }
        return envelope("dashboard", self.id, attributes, references)
