"""Mappings of the alert indices, and their installation by ``inferwatch setup``.

- ``inferwatch-alerts``: one document per alert (``alerts.lifecycle.alert_document``), updated
  in place; a concrete index created from an index template.
- ``inferwatch-incidents``: one document per incident (``alerts.incidents.incident_document``).
- ``logs-inferwatch_alerts.history-*``: the append-only history stream of incident events
  (``alerts.incidents.incident_history_document``) that Kibana rules match; a data stream.
- the dead-letter index (``agent.dead_letter_index``), when configured.

``observed`` and ``expected`` hold detector-specific values of any shape: they are ``flattened``
so that a value changing type between detectors can never make Elasticsearch refuse an alert.
``ml.model.name`` / ``ml.model.version`` are aliases of ``model`` / ``version`` so that one
dashboard filter on the prediction-log fields also narrows the alert panels.

The dict builders are pure; ``install`` is the one function that calls Elasticsearch.
"""

from __future__ import annotations

import logging
from typing import Any

from inferwatch.agent.templates import Capabilities
from inferwatch.core.config import Config
from inferwatch.core.contract import (
    ALERTS_INDEX,
    DEAD_LETTER_INDEX,
    HISTORY_PATTERN,
    HISTORY_STREAM,
    INCIDENTS_INDEX,
)

ALERTS_TEMPLATE = "inferwatch-alerts"
INCIDENTS_TEMPLATE = INCIDENTS_INDEX
HISTORY_TEMPLATE = "inferwatch-alerts-history"
DEAD_LETTER_TEMPLATE = DEAD_LETTER_INDEX
PRIORITY = 500  # above the built-in logs@template (100)

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_DATE = {"type": "date"}
_DOUBLE = {"type": "double"}
# flattened indexes every leaf as a keyword term and has no ignore_above by default: one leaf
# string over Lucene's 32,766-byte term limit ("immense term") would refuse the whole alert.
_FLATTENED = {"type": "flattened", "ignore_above": 1024}


def alert_properties() -> dict[str, Any]:
    """Every field of ``alert_document`` and ``incident_document`` (and the history's
    ``event``), by its type: one mapping for the three, so a filter works on each."""
    return {
        "@timestamp": _DATE,
        "alert": {
            "properties": {
                "id": {"type": "keyword"},
                "recurrences": {"type": "integer"},
                "acknowledged": {"type": "boolean"},
                "muted_until": _DATE,
            }
        },
        "incident": {
            "properties": {
                "id": {"type": "keyword"},
                "status": {"type": "keyword"},
                "opened": _DATE,
                "resolved": _DATE,
                "members": {"type": "keyword"},
                "alerts": {"type": "integer"},
                "recurrences": {"type": "integer"},
            }
        },
        "status": {"type": "keyword"},
        "detector": {"type": "keyword"},
        "severity": {"type": "keyword"},
        "model": {"type": "keyword"},
        "version": {"type": "keyword"},
        "feature": {"type": "keyword"},
        "key": _KEYWORD,
        "message": {"type": "keyword", "ignore_above": 4096},
        "first_seen": _DATE,
        "last_seen": _DATE,
        "windows": {"type": "integer"},
        "clean_windows": {"type": "integer"},
        "window": {"properties": {"start": _DATE, "end": _DATE}},
        "observed": _FLATTENED,
        "expected": _FLATTENED,
        "statistic": {"properties": {"name": {"type": "keyword"}, "value": _DOUBLE}},
        "p_value": _DOUBLE,
        "threshold": _DOUBLE,
        "effect": _DOUBLE,
        "effect_floor": _DOUBLE,
        "examples": _KEYWORD,
        # event.created: when a history event was written (the Kibana rule's time field).
        "event": {
            "properties": {"action": {"type": "keyword"}, "kind": {"type": "keyword"}, "created": _DATE}
        },
        "history_id": {"type": "keyword"},
        "ml": {
            "properties": {
                "model": {
                    "properties": {
                        "name": {"type": "alias", "path": "model"},
                        "version": {"type": "alias", "path": "version"},
                    }
                }
            }
        },
    }


def alert_mappings() -> dict[str, Any]:
    # Unknown fields are kept in _source but not indexed: a new document field never fails a write.
    return {"dynamic": False, "date_detection": False, "properties": alert_properties()}


_SETTINGS = {"index": {"auto_expand_replicas": "0-1"}}


def _current_template(index: str, description: str) -> dict[str, Any]:
    """An index of documents updated in place (alerts, incidents): one index, the alert mappings."""
    return {
        "index_patterns": [index],
        "priority": PRIORITY,
        "template": {"settings": _SETTINGS, "mappings": alert_mappings()},
        "_meta": {"managed_by": "inferwatch", "description": description},
    }


def alerts_template() -> dict[str, Any]:
    return _current_template(ALERTS_INDEX, "current alert documents")


def incidents_template() -> dict[str, Any]:
    return _current_template(INCIDENTS_INDEX, "current incident documents")


def history_template(retention: str | None, standard_mode: bool = True) -> dict[str, Any]:
    """``retention`` needs the data stream lifecycle (Elasticsearch >= 8.14); ``standard_mode``
    keeps 9.x from turning a ``logs-*-*`` stream into logsdb (``index.mode`` exists from 8.15 on
    for this purpose)."""
    settings: dict[str, Any] = {"auto_expand_replicas": "0-1"}
    if standard_mode:
        settings["mode"] = "standard"
    template: dict[str, Any] = {"settings": {"index": settings}, "mappings": alert_mappings()}
    if retention is not None:
        template["lifecycle"] = {"data_retention": retention}
    return {
        "index_patterns": [HISTORY_PATTERN],
        "data_stream": {},
        "priority": PRIORITY,
        "template": template,
        "_meta": {"managed_by": "inferwatch", "description": "alert history events for Kibana rules"},
    }


def dead_letter_properties() -> dict[str, Any]:
    """Documents the agent could not index, as the shipper forwards them to
    ``agent.dead_letter_index`` (``inferwatch.agent.shipper``), plus the fields of the local
    dead-letter file's lines (``inferwatch.agent.deadletter``) for anyone who bulk-loads that file."""
    return {
        "@timestamp": _DATE,
        "reason": {"type": "keyword"},
        "detail": {"type": "keyword", "ignore_above": 4096},
        "status": {"type": "integer"},
        "index": {"type": "keyword"},
        "document_id": {"type": "keyword"},
        "document": {"type": "match_only_text"},  # the refused document's JSON text
        "log": {
            "properties": {"file": {"properties": {"path": {"type": "keyword"}}}, "offset": {"type": "long"}}
        },
        "raw": {"type": "match_only_text"},
        "raw_bytes": {"type": "long"},
        "raw_truncated": {"type": "boolean"},
    }


def dead_letter_template(index: str) -> dict[str, Any]:
    return {
        "index_patterns": [index, f"{index}-*"],
        "priority": PRIORITY,
        "template": {
            "settings": _SETTINGS,
            "mappings": {"dynamic": False, "date_detection": False, "properties": dead_letter_properties()},
        },
        "_meta": {"managed_by": "inferwatch", "description": "log lines the agent could not index"},
    }


def _install_current(client: Any, template: str, body: dict[str, Any], index: str) -> list[str]:
    """The template of an index of documents updated in place, and the index itself (created, or
    its mappings updated so a field added since is indexed at once)."""
    client.indices.put_index_template(name=template, **body)
    done = [f"index template {template} (index {index})"]
    if client.indices.exists(index=index):
        client.indices.put_mapping(index=index, **alert_mappings())
        done.append(f"index {index}: exists, mappings updated")
    else:
        client.indices.create(index=index)
        done.append(f"index {index}: created")
    return done


def install(client: Any, cfg: Config, log: logging.Logger) -> list[str]:
    """Create or update the alert templates, the alerts index and (if configured) the dead-letter
    template. Idempotent. Returns one line per action for the setup command to print."""
    es = cfg.elasticsearch
    info = client.info()
    caps = Capabilities.from_version(str(info["version"]["number"]))
    retention = (es.alerts_retention if es is not None else "365d") if caps.lifecycle else None
    done: list[str] = []
    done += _install_current(client, ALERTS_TEMPLATE, alerts_template(), ALERTS_INDEX)
    done += _install_current(client, INCIDENTS_TEMPLATE, incidents_template(), INCIDENTS_INDEX)
    body = history_template(retention, standard_mode=caps.version >= (8, 15, 0))
    client.indices.put_index_template(name=HISTORY_TEMPLATE, **body)
    keep = f"retention {retention}" if retention else "no retention: data stream lifecycle needs 8.14"
    done.append(f"index template {HISTORY_TEMPLATE} ({HISTORY_PATTERN}, {keep})")
    if client.indices.exists(index=HISTORY_STREAM):
        # A template applies at the next backing index: the stream's existing indices get new
        # fields (event.created, the Kibana rule's time field) now, or the rule would find nothing
        # there until a rollover (dynamic: false leaves an unmapped field unsearchable).
        client.indices.put_mapping(index=HISTORY_STREAM, **alert_mappings())
        done.append(f"data stream {HISTORY_STREAM}: exists, mappings updated")
    if cfg.agent.dead_letter_index:
        name = cfg.agent.dead_letter_index
        client.indices.put_index_template(name=DEAD_LETTER_TEMPLATE, **dead_letter_template(name))
        done.append(f"index template {DEAD_LETTER_TEMPLATE} ({name})")
    for line in done:
        log.debug("alert indices: %s", line)
    return done


__all__ = [
    "ALERTS_INDEX",
    "HISTORY_PATTERN",
    "HISTORY_STREAM",
    "INCIDENTS_INDEX",
    "alert_mappings",
    "alert_properties",
    "alerts_template",
    "dead_letter_properties",
    "dead_letter_template",
    "history_template",
    "incidents_template",
    "install",
]
