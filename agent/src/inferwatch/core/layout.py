"""The data directory (``agent.data_dir``): every file and folder inferwatch keeps there, named once.

::

    <data_dir>/
      agent.lock            the running agent's flock (one agent per data_dir)
      registry.json         read offsets of every tailed file (atomic rewrite)
      spool/                checksummed segments of sealed bulk bodies + ack.json
      dead-letter.ndjson    lines and documents that can never be delivered (rotated)
      store/                the local store (no Elasticsearch): one folder per data stream
      alerts/               the local alert sink: alerts.json and history.ndjson
      analytics-state/      detector state per model and window phase
      baselines/            baseline JSON files (unless analytics.baselines_dir is set)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path

    # Every entry's name, for whoever must list or clear them (the demo resets its data_dir).
    NAMES = (
        "agent.lock",
        "registry.json",
        "spool",
        "dead-letter.ndjson",
        "store",
        "alerts",
        "analytics-state",
        "baselines",
    )

    @property
    def lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def registry(self) -> Path:
        return self.root / "registry.json"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def dead_letter(self) -> Path:
        return self.root / "dead-letter.ndjson"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts"

    @property
    def analytics_state(self) -> Path:
        return self.root / "analytics-state"

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"
