"""The worker's memory between windows, one JSON file per model: alert and incident states and the
detectors' own state (CUSUM sums, merged small windows, high-cardinality features).

A worker owns its shard of models, so this state lives beside it. Files are written atomically
and read back with a leftover temp file considered (``agent.atomic``); a file that cannot be
parsed is set aside (renamed ``.corrupt``) and the model starts fresh rather than crash the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferwatch.analytics.alerts import AlertState, IncidentState
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass
class ModelState:
    alerts: dict[str, AlertState] = field(default_factory=dict)
    incidents: dict[str, IncidentState] = field(default_factory=dict)
    detectors: dict[str, Any] = field(default_factory=dict)  # version -> DetectorState.to_dict()
    known_versions: list[str] = field(default_factory=list)
    last_window: str | None = None  # ISO end of the latest window whose detector state was kept


class StateStore:
    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.directory = directory
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, model: str) -> Path:
        """A safe name keeps its file name; another gets a hash of the exact name appended, so
        ``a b`` and ``a_b`` never share a file."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
        if safe != model:
            safe += "-" + hashlib.blake2b(model.encode("utf-8"), digest_size=4).hexdigest()
        return self.directory / (safe + ".state.json")

    def load(self, model: str) -> ModelState:
        path = self.path(model)
        data = read_state_bytes(path)
        if data is None:
            return ModelState()
        try:
            raw = json.loads(data)
            return ModelState(
                alerts={k: AlertState.from_dict(v) for k, v in raw.get("alerts", {}).items()},
                incidents={k: IncidentState.from_dict(v) for k, v in raw.get("incidents", {}).items()},
                detectors=dict(raw.get("detectors", {})),
                known_versions=list(raw.get("known_versions", [])),
                last_window=raw.get("last_window"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(path.name + ".corrupt")
            path.replace(aside)
            log.error("state of model %s was unreadable (%s); moved to %s, starting fresh", model, exc, aside)
            return ModelState()

    def save(self, model: str, state: ModelState) -> None:
        data = {
            "format": FORMAT,
            "alerts": {k: v.to_dict() for k, v in sorted(state.alerts.items())},
            "incidents": {k: v.to_dict() for k, v in sorted(state.incidents.items())},
            "detectors": state.detectors,
            "known_versions": sorted(state.known_versions),
            "last_window": state.last_window,
        }
        atomic_write_bytes(self.path(model), json.dumps(data, indent=1, sort_keys=True).encode(), self.fsync)
