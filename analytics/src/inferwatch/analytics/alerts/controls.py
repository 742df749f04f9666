"""What people decided about alerts: acknowledged alerts, accepted values, mutes.

``inferwatch alerts ack|mute`` write them to ``<data_dir>/analytics-state/controls.json`` (one
atomic file beside the worker's state); the worker reads it at every evaluation:

- an acknowledged ``unseen_category`` alert adds its value to the model's accepted values: the
  detectors treat it as seen in training from then on (it never alerts again);
- a mute (model, and optionally a feature and a detector, until a time) turns the matching
  firing findings into SKIPPED ("muted until ..."): they open nothing, and an open alert is
  neither updated nor counted clean while muted;
- alert documents carry ``alert.acknowledged`` and ``alert.muted_until`` so a Kibana user can
  filter on them.

Pure except ``ControlStore``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inferwatch.analytics.alerts.lifecycle import AlertState
from inferwatch.analytics.model import Finding, Status
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes
from inferwatch.core.layout import DataDir

log = logging.getLogger(__name__)

FORMAT = 1
CONTROLS_FILE = "controls.json"  # in <data_dir>/analytics-state


def _feature_matches(wanted: str | None, feature: str | None) -> bool:
    if wanted is None:
        return True
    if feature is None:
        return False
    return wanted == feature or wanted == feature.split(".", 1)[-1]


@dataclass(frozen=True)
class Mute:
    model: str
    until: str  # ISO-8601 UTC
    feature: str | None = None  # qualified or bare; None: every feature
    detector: str | None = None  # None: every detector
    reason: str = ""

    def active(self, at: datetime) -> bool:
        return datetime.fromisoformat(self.until) > at

    def matches(self, model: str, feature: str | None, detector: str) -> bool:
        return (
            model == self.model
            and _feature_matches(self.feature, feature)
            and (self.detector is None or self.detector == detector)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "until": self.until,
            "feature": self.feature,
            "detector": self.detector,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Mute:
        return cls(
            model=str(d["model"]),
            until=str(d["until"]),
            feature=d.get("feature"),
            detector=d.get("detector"),
            reason=str(d.get("reason") or ""),
        )


@dataclass(frozen=True)
class Controls:
    acknowledged: Mapping[str, str] = field(default_factory=dict)  # alert id -> when (ISO)
    accepted: Mapping[str, Mapping[str, tuple[str, ...]]] = field(
        default_factory=dict
    )  # model -> feature -> values
    mutes: tuple[Mute, ...] = ()

    def accepted_for(self, model: str) -> dict[str, frozenset[str]]:
        return {feature: frozenset(values) for feature, values in self.accepted.get(model, {}).items()}

    def muted_until(self, model: str, feature: str | None, detector: str, at: datetime) -> str | None:
        """The latest end of the active mutes that cover this series, or None."""
        ends = [m.until for m in self.mutes if m.active(at) and m.matches(model, feature, detector)]
        return max(ends, key=datetime.fromisoformat) if ends else None

    def acknowledge(self, alert: AlertState, at: datetime) -> Controls:
        acknowledged = {**self.acknowledged, alert.id: at.astimezone(UTC).isoformat()}
        accepted = {m: dict(f) for m, f in self.accepted.items()}
        if alert.detector == "unseen_category" and alert.feature and alert.key is not None:
            values = accepted.setdefault(alert.model, {}).get(alert.feature, ())
            if alert.key not in values:
                accepted[alert.model][alert.feature] = (*values, alert.key)
        return replace(self, acknowledged=acknowledged, accepted=accepted)

    def mute(self, mute: Mute, at: datetime) -> Controls:
        """Add ``mute`` (replacing one for the same series); a mute that ends at or before ``at``
        only removes. Expired mutes are dropped."""
        same = (mute.model, mute.feature, mute.detector)
        kept = tuple(m for m in self.mutes if (m.model, m.feature, m.detector) != same and m.active(at))
        return replace(self, mutes=(*kept, mute) if mute.active(at) else kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "acknowledged": dict(sorted(self.acknowledged.items())),
            "accepted": {
                m: {f: list(v) for f, v in sorted(fs.items())} for m, fs in sorted(self.accepted.items())
            },
            "mutes": [m.to_dict() for m in self.mutes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Controls:
        return cls(
            acknowledged={str(k): str(v) for k, v in dict(d.get("acknowledged") or {}).items()},
            accepted={
                str(m): {str(f): tuple(str(v) for v in values) for f, values in dict(fs).items()}
                for m, fs in dict(d.get("accepted") or {}).items()
            },
            mutes=tuple(Mute.from_dict(m) for m in d.get("mutes") or ()),
        )


def apply_mutes(controls: Controls, findings: Iterable[Finding], at: datetime) -> list[Finding]:
    """Firing findings of a muted series become SKIPPED with the mute as their reason."""
    out = []
    for f in findings:
        until = (
            controls.muted_until(f.model, f.feature, f.detector, at) if f.status is Status.FIRING else None
        )
        if until is None:
            out.append(f)
            continue
        reason = f"muted until {until}"
        out.append(
            replace(
                f, status=Status.SKIPPED, severity="info", reason=reason, message=f"{f.message} [{reason}]"
            )
        )
    return out


def annotate(controls: Controls, alert: AlertState, at: datetime) -> AlertState:
    """The alert with what people decided about it, for its document."""
    return replace(
        alert,
        acknowledged=alert.id in controls.acknowledged,
        muted_until=controls.muted_until(alert.model, alert.feature, alert.detector, at),
    )


class ControlStore:
    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ControlStore:
        return cls(DataDir(data_dir).analytics_state / CONTROLS_FILE)

    def load(self) -> Controls:
        """Tolerant: a missing file is no controls; an unreadable one is logged and ignored (the
        worker keeps alerting rather than stop on a damaged file)."""
        raw = read_state_bytes(self.path)
        if raw is None:
            return Controls()
        try:
            return Controls.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("alert controls %s are unreadable (%s); ignored until fixed", self.path, exc)
            return Controls()

    def save(self, controls: Controls) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(controls.to_dict(), indent=1, sort_keys=True).encode()
        atomic_write_bytes(self.path, data, self.fsync)
