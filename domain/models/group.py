"""Alert groups: routed webhook notifications and the workflow that maps a group to its incident."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.models.alert import AlertSignal
from domain.models.common import AlertStatus, Phase, Severity
from domain.models.incident import IncidentPolicy
from domain.text import MultiLine, SingleLine

Action = Literal["open", "annotate", "drop"]


class RouteDecision(BaseModel):
    action: Action
    rule: str = "default"
    service: str | None = None
    severity: Severity = Severity.SEV3
    escalation_policy: str | None = None
    unknown_service: str | None = None  # the alert names a service the config does not list (warned about)


class AlertBatch(BaseModel):
    """One webhook notification, parsed and routed: the unit the group workflow receives."""

    source: str
    group_key: str
    title: SingleLine
    description: MultiLine = ""
    route: RouteDecision
    alerts: list[AlertSignal]
    truncated: int = 0  # alerts left out of this notification (by the sender, or past our per-batch cap)

    @property
    def firing(self) -> bool:
        return any(a.status == AlertStatus.firing for a in self.alerts)


class AlertGroupState(BaseModel):
    group_key: str
    incident_id: str | None = None
    incident_phase: Phase | None = None
    resolved_at: datetime | None = None
    incidents_opened: int = 0
    batches: int = 0
    alerts: int = 0
    ignored: int = 0  # resolved notifications with no incident to tell


class AlertGroupStart(BaseModel):
    group_key: str
    policy: IncidentPolicy = Field(default_factory=IncidentPolicy)
    carried: AlertGroupState | None = None
    pending: list[AlertBatch] = Field(default_factory=list)  # batches not yet handled at continue-as-new


class IncidentStatusSignal(BaseModel):
    """Sent by an alert-born incident to its group when its phase changes."""

    incident_id: str
    phase: Phase
    resolved_at: datetime | None = None
