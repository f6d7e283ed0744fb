"""Pydantic models: every workflow input, signal, update, query result and state."""

from domain.models.alert import (
    AlertmanagerAlert,
    AlertmanagerPayload,
    AlertRecord,
    AlertSignal,
    GenericAlert,
    GrafanaAlert,
    GrafanaPayload,
)
from domain.models.common import AlertStatus, EventKind, Phase, Role, Severity
from domain.models.group import (
    AlertBatch,
    AlertGroupStart,
    AlertGroupState,
    IncidentStatusSignal,
    RouteDecision,
)
from domain.models.incident import (
    AckInput,
    CommandResult,
    DeclareInput,
    EscalateInput,
    EventRecord,
    IncidentPolicy,
    IncidentStart,
    IncidentState,
    IncidentSummary,
    NoteInput,
    NotifyInput,
    PageInput,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    RoleInput,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
    TimelineEvent,
)
from domain.models.messages import AlertsInput, CommanderChanged, EscalateTo, EscalationEnded, StopPaging

__all__ = [
    "AckInput", "AlertBatch", "AlertGroupStart", "AlertGroupState", "AlertRecord", "AlertSignal", "AlertStatus",
    "AlertmanagerAlert", "AlertmanagerPayload", "CommandResult", "DeclareInput", "EventKind", "GenericAlert",
    "GrafanaAlert", "GrafanaPayload", "IncidentPolicy", "IncidentStart", "IncidentState", "IncidentStatusSignal",
    "IncidentSummary", "NoteInput", "NotifyInput", "Phase", "PhaseInput", "ReopenInput", "ResolveInput", "Role",
    "RoleInput", "RouteDecision", "Severity", "SeverityInput", "StandDownInput", "StatusUpdateInput",
    "TimelineEvent", "EscalateInput", "EventRecord", "PageInput",
    "AlertsInput", "CommanderChanged", "EscalateTo", "EscalationEnded", "StopPaging",
]
