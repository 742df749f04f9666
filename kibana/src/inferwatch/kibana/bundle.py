"""The whole saved-object bundle: ``bundle(models, dead_letter_index)`` returns every object (data
views, saved searches, dashboards) in import order, referenced objects before the objects that
reference them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferwatch.core.config import ModelConfig
from inferwatch.core.contract import DEAD_LETTER_INDEX
from inferwatch.kibana.dashboards import dashboards
from inferwatch.kibana.saved_objects import (
    ALERT_EVIDENCE,
    ALERT_LIST,
    ALERTS,
    HISTORY,
    INCIDENTS,
    LOGS,
    OPEN_INCIDENTS,
    RAW_LOGS,
    DataView,
    SavedSearch,
    dead_letter_search,
    dead_letter_view,
)


def data_views(dead_letter_index: str) -> list[DataView]:
    return [LOGS, ALERTS, INCIDENTS, HISTORY, dead_letter_view(dead_letter_index)]


def searches(dead_letter_index: str) -> list[SavedSearch]:
    return [
        RAW_LOGS,
        ALERT_LIST,
        ALERT_EVIDENCE,
        OPEN_INCIDENTS,
        dead_letter_search(dead_letter_view(dead_letter_index)),
    ]


def bundle(models: Mapping[str, ModelConfig], dead_letter_index: str | None = None) -> list[dict[str, Any]]:
    """Every saved object, referenced objects before the objects that reference them."""
    dl = dead_letter_index or DEAD_LETTER_INDEX
    objects: list[dict[str, Any]] = [v.saved_object() for v in data_views(dl)]
    objects += [s.saved_object() for s in searches(dl)]
    objects += [d.saved_object() for d in dashboards(models)]
    return objects
