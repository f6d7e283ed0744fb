"""The public status page: its config and the state the StatusPageWorkflow owns (pure models).

Statuspage's vocabulary, because the widgets and monitors our users already run read it: five component
statuses, four incident impacts, four public incident statuses, four maintenance statuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.models.base import Duration, SeverityKey
from domain.models.common import Severity
from domain.text import MultiLine, SingleLine

COMPONENT_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def utc(at: datetime) -> datetime:
    """The moment in UTC (a time given as 03:00+01:00 is 02:00 UTC); a naive time is left as it is (the
    inputs refuse one). Everything the page prints says "UTC", so what it keeps is UTC."""
    return at.astimezone(UTC) if at.utcoffset() is not None else at


UtcTime = Annotated[datetime, AfterValidator(utc)]  # kept in UTC, whatever offset it came with


class ComponentStatus(str, Enum):
    operational = "operational"
    degraded_performance = "degraded_performance"
    partial_outage = "partial_outage"
    major_outage = "major_outage"
    under_maintenance = "under_maintenance"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class Impact(str, Enum):
    none = "none"
    minor = "minor"
    major = "major"
    critical = "critical"


class PublicStatus(str, Enum):
    investigating = "investigating"
    identified = "identified"
    monitoring = "monitoring"
    resolved = "resolved"


class MaintenanceStatus(str, Enum):
    scheduled = "scheduled"
    in_progress = "in_progress"
    verifying = "verifying"
    completed = "completed"
    cancelled = "cancelled"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_TEMPLATES = SandboxedEnvironment(autoescape=False)


def check_template(text: str) -> str:
    """Config validation: the template must compile (its error names the line)."""
    try:
        _TEMPLATES.from_string(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template line {exc.lineno}: {exc.message}") from None
    return text


# ---------------------------------------------------------------------------- config (statuspage: in the YAML)
class ComponentConfig(_Strict):
    id: str = Field(..., pattern=COMPONENT_ID)
    name: SingleLine = Field(..., min_length=1, max_length=100)
    group: SingleLine | None = Field(None, max_length=100)
    description: SingleLine = Field("", max_length=300)
    services: list[str] = Field(default_factory=list)  # incidents on these services affect this component


class StatusPageConfig(_Strict):
    title: SingleLine = Field("Status", max_length=100)
    url: str | None = None  # where the public page is served (links in mails and the feed)
    publish_dir: str | None = None  # static files written here on every change (default .incidentflow/statuspage)
    components: list[ComponentConfig] = Field(default_factory=list)
    auto_publish: list[SeverityKey] = Field(default_factory=list)  # severities whose drafts publish themselves
    first_update: Duration = timedelta(minutes=10)  # the first public update is due this long after declaring
    cadence: dict[SeverityKey, Duration] = Field(default_factory=lambda: {
        Severity.SEV1: timedelta(minutes=30), Severity.SEV2: timedelta(hours=1), Severity.SEV3: timedelta(hours=2)})
    templates: dict[PublicStatus, str] = Field(default_factory=dict)  # Jinja2: overrides the built-in drafts
    maintenance_pages_sev1: bool = True  # a SEV1 alert on a component under maintenance still pages
    history_days: int = Field(90, ge=7, le=366)
    mirror: bool = False  # set by the worker, not in YAML: it has Atlassian Statuspage credentials

    @field_validator("templates")
    @classmethod
    def _templates_compile(cls, v: dict[PublicStatus, str]) -> dict[PublicStatus, str]:
        for status, text in v.items():
            try:
                check_template(text)
            except ValueError as exc:
                raise ValueError(f"{status.value}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> StatusPageConfig:
        ids = [c.id for c in self.components]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"statuspage.components: duplicate id {', '.join(dupes)}")
        return self

    def component(self, component_id: str) -> ComponentConfig | None:
        return next((c for c in self.components if c.id == component_id), None)

    def components_for(self, service: str | None) -> list[str]:
        """The components an incident on this service affects."""
        return [c.id for c in self.components if service and service in c.services]


# ---------------------------------------------------------------------------- state (the workflow's)
class AffectedComponent(BaseModel):
    code: str
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


class PublicUpdate(BaseModel):
    id: str
    status: PublicStatus
    body: MultiLine
    created_at: datetime
    by: str  # who published it (never shown publicly)
    affected_components: list[AffectedComponent] = Field(default_factory=list)


class PublicIncident(BaseModel):
    id: str  # public id (stable, derived from the incident id)
    incident_id: str
    name: SingleLine
    status: PublicStatus
    impact: Impact
    created_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None = None
    resolved_at: datetime | None = None
    components: list[str] = Field(default_factory=list)
    updates: list[PublicUpdate] = Field(default_factory=list)  # newest first
    mirror_id: str | None = None  # its Atlassian Statuspage incident, once mirrored

    @property
    def open(self) -> bool:
        return self.status != PublicStatus.resolved


class MaintenanceUpdate(BaseModel):
    status: MaintenanceStatus
    body: str
    created_at: datetime


class Maintenance(BaseModel):
    id: str
    title: SingleLine
    body: MultiLine = ""
    components: list[str]
    scheduled_for: UtcTime
    scheduled_until: UtcTime
    status: MaintenanceStatus = MaintenanceStatus.scheduled
    created_at: datetime
    by: str = ""
    updates: list[MaintenanceUpdate] = Field(default_factory=list)  # newest first
    mirror_id: str | None = None  # its Atlassian Statuspage maintenance, once mirrored

    @property
    def active(self) -> bool:
        return self.status in (MaintenanceStatus.in_progress, MaintenanceStatus.verifying)

    @property
    def upcoming(self) -> bool:
        return self.status == MaintenanceStatus.scheduled


class ComponentState(BaseModel):
    status: ComponentStatus = ComponentStatus.operational
    since: datetime | None = None  # when it entered this status (outage minutes are counted from here)
    updated_at: datetime | None = None


class DayOutage(BaseModel):
    """Minutes of one UTC day spent in each bad status (Statuspage's uptime weights them)."""

    major: float = 0
    partial: float = 0
    degraded: float = 0


class StatusPageState(BaseModel):
    version: int = 0  # bumped on every change: static files carry it
    updated_at: datetime | None = None
    components: dict[str, ComponentState] = Field(default_factory=dict)
    incidents: list[PublicIncident] = Field(default_factory=list)  # newest first
    maintenances: list[Maintenance] = Field(default_factory=list)
    outages: dict[str, dict[str, DayOutage]] = Field(default_factory=dict)  # component -> YYYY-MM-DD -> minutes

    def incident(self, incident_id: str) -> PublicIncident | None:
        return next((i for i in self.incidents if i.incident_id == incident_id), None)

    def maintenance(self, maintenance_id: str) -> Maintenance | None:
        return next((m for m in self.maintenances if m.id == maintenance_id), None)


# ---------------------------------------------------------------------------- inputs
class ComponentChange(BaseModel):
    component: str = Field(..., pattern=COMPONENT_ID)
    status: ComponentStatus


class PublishInput(BaseModel):
    """One public update of an incident (the draft, edited or not, as a person or auto-publish sends it)."""

    incident_id: str
    name: SingleLine = Field(..., min_length=1, max_length=200)
    status: PublicStatus
    body: MultiLine = Field(..., min_length=1, max_length=5000)
    impact: Impact | None = None  # None: keep (new incidents: from the components)
    components: list[ComponentChange] = Field(default_factory=list)
    by: str
    request_id: str | None = None  # a retried publish with the same id is applied once

    @field_validator("components")
    @classmethod
    def _one_each(cls, v: list[ComponentChange]) -> list[ComponentChange]:
        seen = [c.component for c in v]
        if len(set(seen)) != len(seen):
            raise ValueError("each component once")
        return v


_MAINT_ID = re.compile(r"^mnt-[a-z0-9-]{1,60}$")


class MaintenanceInput(BaseModel):
    title: SingleLine = Field(..., min_length=1, max_length=200)
    body: MultiLine = Field("", max_length=5000)
    components: list[str] = Field(..., min_length=1)
    start: UtcTime  # any offset is taken and kept as UTC; a time without one is refused (which zone?)
    end: UtcTime
    by: str

    @model_validator(mode="after")
    def _order(self) -> MaintenanceInput:
        naive = [name for name in ("start", "end") if getattr(self, name).utcoffset() is None]
        if naive:
            raise ValueError(f"{'/'.join(naive)}: give a timezone (e.g. 2026-12-07T02:00Z or "
                             "2026-12-07T03:00+01:00)")
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        return self
