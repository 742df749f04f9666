"""The alerts and incidents a report marks, read back from where the worker wrote them: the
files of the local alert sink, or the ``inferwatch-alerts`` and ``inferwatch-incidents`` indices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from inferwatch.analytics.es import SearchClient, search
from inferwatch.analytics.model import Window
from inferwatch.analytics.report.collect import overlaps
from inferwatch.core.atomic import read_state_bytes
from inferwatch.core.contract import ALERTS_INDEX, INCIDENTS_INDEX

MAX_DOCUMENTS = 10_000  # alerts of one model over one report period (a search's default window)


def _documents(path: Path) -> list[dict[str, Any]]:
    data = read_state_bytes(path)
    if not data:
        return []
    loaded = orjson.loads(data)
    return [dict(d) for d in loaded.values() if isinstance(d, dict)] if isinstance(loaded, dict) else []


class LocalAlertReader:
    """``alerts.json`` and ``incidents.json`` under the local sink's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def alerts(self, model: str, period: Window) -> list[dict[str, Any]]:
        docs = _documents(self.directory / "alerts.json")
        return [d for d in docs if d.get("model") == model and overlaps(d, period)]

    def incidents(self, model: str, period: Window) -> list[dict[str, Any]]:
        docs = _documents(self.directory / "incidents.json")
        return [d for d in docs if d.get("model") == model and overlaps(d, period)]


class ElasticsearchAlertReader:
    def __init__(self, client: SearchClient) -> None:
        self.client = client

    def _search(self, index: str, model: str, period: Window) -> list[dict[str, Any]]:
        body = {
            "size": MAX_DOCUMENTS,
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"model": model}},
                        {"range": {"first_seen": {"lt": period.end.isoformat()}}},
                    ]
                }
            },
            "sort": [{"first_seen": "asc"}],
        }
        hits = (search(self.client, index, body).get("hits") or {}).get("hits") or []
        docs = [dict(h["_source"]) for h in hits if isinstance(h.get("_source"), dict)]
        return [d for d in docs if overlaps(d, period)]

    def alerts(self, model: str, period: Window) -> list[dict[str, Any]]:
        return self._search(ALERTS_INDEX, model, period)

    def incidents(self, model: str, period: Window) -> list[dict[str, Any]]:
        return self._search(INCIDENTS_INDEX, model, period)
