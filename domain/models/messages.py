"""Signal inputs that once travelled as bare values: one model per message, sent by method reference.

The other messages have their models beside the state they change (`AlertSignal`, `NoteInput`,
`EventRecord`, `IncidentStatusSignal`, `RunbookProgress`, `Decision` …).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from domain.models.alert import AlertSignal
from domain.models.chat import ChannelLink


class AlertsInput(BaseModel):
    """Alert group → incident: one webhook notification's alerts, delivered together."""

    alerts: list[AlertSignal]


class StopPaging(BaseModel):
    """Incident → escalation: acknowledged, resolved or stood down; no more pages."""

    by: str = Field(..., min_length=1, max_length=128)


class EscalateTo(BaseModel):
    """Incident → escalation: jump to this level now."""

    level: int = Field(..., ge=1, le=20)


class EscalationEnded(BaseModel):
    """Escalation → incident: this escalation child has finished."""

    escalation_id: str


class CommanderChanged(BaseModel):
    """Incident → runbook run: the incident commander changed (runbooks wait for the IC's approval)."""

    person: str = Field(..., min_length=1, max_length=128)


class ChannelOpened(BaseModel):
    """Incident → escalation: the incident channel exists now; later pages link to it."""

    channel: ChannelLink
