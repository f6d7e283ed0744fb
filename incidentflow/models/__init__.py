"""Pydantic models: every workflow input, signal, update, query result and state."""

from incidentflow.models.alert import AlertRecord, AlertSignal, AlertStatus
from incidentflow.models.incident import (
    AckInput,
    CommandResult,
    DeclareInput,
    EventKind,
    IncidentPolicy,
    IncidentStart,
    IncidentState,
    IncidentSummary,
    NoteInput,
    NotifyInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    Role,
    RoleInput,
    Severity,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
    TimelineEvent,
)

__all__ = [
    "AckInput", "AlertRecord", "CommandResult", "AlertSignal", "AlertStatus", "DeclareInput", "EventKind",
    "IncidentPolicy", "IncidentStart", "IncidentState", "IncidentSummary", "NoteInput", "NotifyInput",
    "Phase", "PhaseInput", "ReopenInput", "ResolveInput", "Role", "RoleInput", "Severity",
    "SeverityInput", "StandDownInput", "StatusUpdateInput", "TimelineEvent",
]
