"""The archive's records: one per incident (summary columns for reports and lists, plus the whole state) and
one per action item. `IncidentRow`/`ActionItemRow` are the light rows reports compute from (slotted dataclasses,
not frozen: 8x cheaper to build from SQL rows by the hundred thousand); `ArchivedIncident` carries the full record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, Field

from domain.models.incident import IncidentState

SOURCES = ("alert", "cli", "slack", "api", "demo", "other")


@dataclass(slots=True)
class IncidentRow:
    """What reports need of one incident (times are UTC; None: it never got there)."""

    id: str
    service: str | None
    severity: str  # SEV1..SEV4
    source: str  # one of SOURCES
    declared_at: datetime
    detected_at: datetime | None = None  # the first alert's start (startsAt), else None (declared by a person)
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None  # first move to monitoring
    resolved_at: datetime | None = None
    ended_at: datetime | None = None
    stood_down: bool = False
    alert_rule: str | None = None  # the first alert's rule (alertname), for alert quality
    alert_notifications: int = 0  # notifications received (repeats included): noisiest rules
    pages: int = 0
    max_level: int | None = None
    phase: str = "triage"


@dataclass(slots=True)
class ActionItemRow:
    aid: str
    incident_id: str
    owner: str
    team: str | None
    status: str  # open | done | dropped
    due: date
    created_at: datetime
    closed_at: datetime | None = None
    priority: str = "P2"


class ArchivedIncident(BaseModel):
    """The whole record of an incident, as the archive keeps it."""

    id: str
    title: str
    service: str | None = None
    severity: str
    phase: str
    source: str = "other"
    declared_at: datetime
    declared_by: str
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    ended_at: datetime | None = None
    stood_down: bool = False
    alert_rule: str | None = None
    alert_rules: list[str] = Field(default_factory=list)
    alerts: int = 0
    alert_notifications: int = 0
    pages: int = 0
    max_level: int | None = None
    runbook_runs: int = 0
    internal_updates: int = 0
    public_updates: int = 0
    group_id: str | None = None
    postmortem_link: str | None = None
    postmortem_status: str | None = None  # draft | in_review | published
    postmortem_text: str = ""  # as published (read back from the sink)
    version: int = 0  # the state's event sequence: an older write never replaces a newer one
    archived_at: datetime
    state: IncidentState | None = None  # the whole incident (timeline, roles, runs); None in listings

    def row(self) -> IncidentRow:
        return IncidentRow(
            id=self.id, service=self.service, severity=self.severity, source=self.source,
            declared_at=self.declared_at, detected_at=self.detected_at, acknowledged_at=self.acknowledged_at,
            mitigated_at=self.mitigated_at, resolved_at=self.resolved_at, ended_at=self.ended_at,
            stood_down=self.stood_down, alert_rule=self.alert_rule, alert_notifications=self.alert_notifications,
            pages=self.pages, max_level=self.max_level, phase=self.phase)


class ArchiveQuery(BaseModel):
    """Filters of `archive list|export`, `report` and `GET /v1/reports` (declared_at within [since, until))."""

    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    severity: str | None = None
    limit: int | None = Field(None, ge=1)


class PostmortemArchive(BaseModel):
    incident_id: str
    link: str | None = None
    status: str
    text: str = ""
    published_at: datetime | None = None
    items: list[str] = Field(default_factory=list)
