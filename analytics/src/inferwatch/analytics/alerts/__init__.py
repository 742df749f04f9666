"""Alerts, one home: the lifecycle of one alert (``lifecycle``), incidents that group the alerts
of one cause (``incidents``), where their documents go (``sink``) and the indices they live in
(``index``)."""

from inferwatch.analytics.alerts.incidents import (
    IncidentChange,
    IncidentState,
    apply_incidents,
    incident_document,
    incident_history_document,
)
from inferwatch.analytics.alerts.lifecycle import (
    OPEN_AFTER,
    RESOLVE_AFTER,
    AlertChange,
    AlertState,
    alert_document,
    alert_id,
    apply_window,
    history_document,
)

__all__ = [
    "OPEN_AFTER",
    "RESOLVE_AFTER",
    "AlertChange",
    "AlertState",
    "IncidentChange",
    "IncidentState",
    "alert_document",
    "alert_id",
    "apply_incidents",
    "apply_window",
    "history_document",
    "incident_document",
    "incident_history_document",
]
