"""The saved-object types of the bundle other than dashboards: the raw NDJSON envelope, data views
and saved searches, and the NDJSON encoding.

Every object is written in Kibana's import envelope: string-encoded attributes where Kibana stores
strings, ``coreMigrationVersion`` and a ``typeMigrationVersion`` per type. Ids are uuid5 of names
(``lens.stable_id``), so a rebuild gives the same ids and re-importing overwrites instead of
duplicating.

Which Kibana imports the bundle: Kibana refuses a document whose ``typeMigrationVersion`` is newer
than the last migration it knows for the type ("belongs to a more recent version of Kibana"), and
migrates older ones up. The newest version named anywhere in the bundle is therefore the oldest
Kibana that takes it: ``MINIMUM_KIBANA``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from inferwatch.core.contract import ALERTS_INDEX, HISTORY_PATTERN, INCIDENTS_INDEX, LOGS_PATTERN
from inferwatch.kibana.lens import PANEL_VERSION, stable_id

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {
    "index-pattern": "7.11.0",
    "search": "7.9.3",
    "dashboard": "8.9.0",
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"8.15.0-SNAPSHOT"`` -> ``(8, 15, 0)``."""
    return tuple(
        int("".join(ch for ch in part if ch.isdigit()) or 0) for part in version.split("-")[0].split(".")
    )


def older_than_minimum(kibana_version: str) -> bool:
    """Whether a Kibana of this version would refuse the bundle (see the module docstring)."""
    return version_tuple(kibana_version) < version_tuple(MINIMUM_KIBANA)


# The oldest Kibana that imports the bundle: the newest version any object or panel declares.
MINIMUM_KIBANA = max(
    [CORE_MIGRATION_VERSION, PANEL_VERSION, *TYPE_MIGRATION_VERSION.values()], key=version_tuple
)


def dumps(value: Any) -> str:
    """Compact JSON, as Kibana stores its string-encoded attributes."""
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


def to_ndjson(objects: Iterable[dict[str, Any]]) -> bytes:
    """One object per line, keys sorted: the same objects always give the same bytes."""
    lines = [json.dumps(o, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for o in objects]
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- data views ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataView:
    key: str
    title: str  # the index pattern
    name: str
    time_field: str | None  # None: not time-based (the dashboard's time range does not apply)

    @property
    def id(self) -> str:
        return stable_id("index-pattern", self.key)

    def saved_object(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {"title": self.title, "name": self.name}
        if self.time_field is not None:
            attributes["timeFieldName"] = self.time_field
        attributes |= {
            "fields": "[]",
            "fieldFormatMap": "{}",
            "fieldAttrs": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
            # The streams are created by the first document (the history by the first alert, the
            # dead-letter index by the first rejected line): without this, Kibana answers "no
            # matching indices" for the data view and its panels show "field not found".
            "allowNoIndex": True,
        }
        return envelope("index-pattern", self.id, attributes, [])


LOGS = DataView("logs", LOGS_PATTERN, "inferwatch prediction logs", "@timestamp")
ALERTS = DataView("alerts", ALERTS_INDEX, "inferwatch alerts", "@timestamp")
HISTORY = DataView("history", HISTORY_PATTERN, "inferwatch alert history", "@timestamp")
# The current incident documents. Not time-based: an incident's document changes only when the
# incident does, so an incident open for days would fall out of a "last 24 hours" range.
INCIDENTS = DataView("incidents", INCIDENTS_INDEX, "inferwatch incidents", None)


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
    sort_field: str | None = None  # the view's time field unless given

    @property
    def sort(self) -> list[list[str]]:
        field = self.sort_field or self.view.time_field
        return [[field, "desc"]] if field else []

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
            "sort": self.sort,
            "hits": 0,
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": dumps(source)},
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


OPEN_INCIDENTS = SavedSearch(
    "open-incidents",
    "inferwatch: open incidents",
    "Incidents not yet resolved (one per cause: its member alerts, its worst severity, a message "
    "naming the likely cause first), newest first; 'resolving' ones wait out analytics.cooldown.",
    INCIDENTS,
    (
        "severity",
        "model",
        "version",
        "message",
        "incident.opened",
        "incident.alerts",
        "incident.members",
        "status",
    ),
    query='status : ("open" or "resolving")',
    sort_field="incident.opened",
)


def dead_letter_search(view: DataView) -> SavedSearch:
    return SavedSearch(
        "dead-letter",
        "inferwatch: dead-lettered lines",
        "Log lines the agent could not index, with the reason (needs agent.dead_letter_index).",
        view,
        ("reason", "detail", "status", "index", "document"),
    )
