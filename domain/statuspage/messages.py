"""What the StatusPageWorkflow and MaintenanceWorkflow take and answer (one model per message)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from domain.statuspage.models import (
    ComponentChange,
    Maintenance,
    MaintenanceStatus,
    PublicUpdate,
    StatusPageConfig,
    StatusPageState,
    UtcTime,
)

STATUSPAGE_ID = "incidentflow-statuspage"  # the page of the default task queue


def statuspage_id(task_queue: str) -> str:
    """One page per deployment (task queue): several incidentflows may share a Temporal namespace."""
    return STATUSPAGE_ID if task_queue == "incidentflow" else f"{task_queue}-statuspage"[:200]
MAINTENANCE_DUE = "maintenance_due"  # the signal a MaintenanceWorkflow sends the StatusPageWorkflow
PUBLISH_REQUESTED = "publish_requested"  # an incident auto-publishes its draft (a signal: workflows send no updates)
PUBLIC_UPDATE_PUBLISHED = "public_update_published"  # the StatusPageWorkflow tells the incident


class StatusPageStart(BaseModel):
    state: StatusPageState | None = None  # carried across continue-as-new
    requests: dict[str, str] = Field(default_factory=dict)  # request id -> what it did (retries applied once)
    outbox: list[tuple[str, str, str]] = Field(default_factory=list)  # notices not yet sent (mail, mirror)
    changes_per_run: int = Field(1000, ge=5)  # continue as new after this many changes, if Temporal did not ask


class PublishResult(BaseModel):
    incident_id: str
    update: PublicUpdate
    version: int
    duplicate: bool = False  # a retry of a request already applied


class ComponentsInput(BaseModel):
    components: list[ComponentChange] = Field(..., min_length=1)
    by: str
    request_id: str | None = None


class MaintenanceStepInput(BaseModel):
    maintenance_id: str
    status: MaintenanceStatus
    body: str = ""
    by: str = "incidentflow"


class MaintenanceExtend(BaseModel):
    maintenance_id: str
    until: UtcTime  # kept in UTC; a time without an offset is refused by the page (`state.extend_maintenance`)
    by: str


class MaintenanceStart(BaseModel):
    """The MaintenanceWorkflow's input: the window, and when to remind before it."""

    maintenance: Maintenance
    page_id: str = STATUSPAGE_ID  # the StatusPageWorkflow to report to
    remind_before: list[int] = Field(default_factory=lambda: [24 * 60, 60])  # minutes before the start


class MaintenanceChange(BaseModel):
    """A signal to a running MaintenanceWorkflow: a new end, or cancelled."""

    until: UtcTime | None = None
    cancel: bool = False
    by: str = ""


class PublicPublished(BaseModel):
    """Status page → incident: a public update went out (the cadence restarts from it)."""

    update_id: str
    status: str
    by: str
    at: datetime
    body: str = ""


class PublishFiles(BaseModel):
    """The publisher activity's input: the page as it is now (rendered and written by the activity)."""

    state: StatusPageState
    config: StatusPageConfig
    at: datetime
