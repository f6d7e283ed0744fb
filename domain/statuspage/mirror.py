"""What the Atlassian Statuspage mirror is asked to do, and what it answers (pure models).

Teams that already run an Atlassian Statuspage get our public updates mirrored there. The workflow that owns
the public state sends one `MirrorInput` per published update (or component change) and one
`MaintenanceMirrorInput` per maintenance step; the answer carries the Statuspage incident id, which the
workflow keeps in its state and sends back with every later update, so only the first one creates.

Ids here are ours (component ids from `statuspage.components`); the adapter maps them to Statuspage's through
its configured mapping. No secret ever travels in these models: they are recorded in workflow history."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from domain.statuspage.models import (
    COMPONENT_ID,
    ComponentChange,
    Impact,
    MaintenanceStatus,
    PublicStatus,
    PublishInput,
)
from domain.text import MultiLine, SingleLine

MAX_NAME = 255  # Statuspage's limit for an incident name
MAX_BODY = 25_000  # … and for an update's body
_VENDOR_ID = r"^[A-Za-z0-9_-]{1,64}$"  # a Statuspage id as it may appear in a URL path


def _one_each(changes: list[ComponentChange]) -> list[ComponentChange]:
    seen = [c.component for c in changes]
    if len(set(seen)) != len(seen):
        raise ValueError("each component once")
    return changes


class MirrorIncident(BaseModel):
    """One public update of one of our incidents, as Statuspage should show it."""

    incident_id: str = Field(..., min_length=1, max_length=200)  # ours: the marker a retry finds it by
    statuspage_id: str | None = Field(None, pattern=_VENDOR_ID)  # from the workflow's state; None: create
    name: SingleLine = Field(..., min_length=1, max_length=MAX_NAME)
    status: PublicStatus
    body: MultiLine = Field(..., min_length=1, max_length=MAX_BODY)
    impact: Impact | None = None  # None: Statuspage computes it from the components
    affected: list[str] = Field(default_factory=list)  # every component of ours the incident affects so far
    deliver_notifications: bool = True  # Statuspage notifies its subscribers of this update

    @field_validator("affected")
    @classmethod
    def _component_ids(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not re.match(COMPONENT_ID, c)]
        if bad:
            raise ValueError(f"not a component id: {', '.join(bad)}")
        return list(dict.fromkeys(v))


class MirrorInput(BaseModel):
    """An incident update (with the component statuses it sets), or component statuses alone."""

    incident: MirrorIncident | None = None
    components: list[ComponentChange] = Field(default_factory=list)

    _unique = field_validator("components")(_one_each)

    @model_validator(mode="after")
    def _something(self) -> MirrorInput:
        if self.incident is None and not self.components:
            raise ValueError("incident/components: give an incident update or at least one component change")
        return self

    @classmethod
    def from_publish(cls, cmd: PublishInput, statuspage_id: str | None = None,
                     affected: list[str] | None = None) -> MirrorInput:
        """The mirror of a published update. `affected`: all the incident's components (default: this update's)."""
        incident = MirrorIncident(
            incident_id=cmd.incident_id, statuspage_id=statuspage_id, name=cmd.name, status=cmd.status,
            body=cmd.body, impact=cmd.impact,
            affected=list(dict.fromkeys([*(affected or []), *(c.component for c in cmd.components)])))
        return cls(incident=incident, components=list(cmd.components))


class MaintenanceMirrorInput(BaseModel):
    """One step of one of our maintenances (announced, started, verifying, completed, cancelled, extended)."""

    maintenance_id: str = Field(..., min_length=1, max_length=200)
    statuspage_id: str | None = Field(None, pattern=_VENDOR_ID)
    title: SingleLine = Field(..., min_length=1, max_length=MAX_NAME)
    body: MultiLine = Field("", max_length=MAX_BODY)
    status: MaintenanceStatus
    scheduled_for: datetime
    scheduled_until: datetime
    affected: list[str] = Field(..., min_length=1)
    components: list[ComponentChange] = Field(default_factory=list)  # statuses this step sets
    deliver_notifications: bool = True

    _unique = field_validator("components")(_one_each)

    @model_validator(mode="after")
    def _window(self) -> MaintenanceMirrorInput:
        if self.scheduled_for.tzinfo is None or self.scheduled_until.tzinfo is None:
            raise ValueError("scheduled_for/scheduled_until: give a timezone")
        if self.scheduled_until <= self.scheduled_for:
            raise ValueError("scheduled_until: must be after scheduled_for")
        return self


class MirrorResult(BaseModel):
    """What the mirror did. `statuspage_id` goes into the workflow's state for the next update."""

    mirrored: bool = True  # False: no Statuspage configured on this worker; nothing was sent
    statuspage_id: str | None = None
    created: bool = False  # this call created the Statuspage incident or maintenance
    recovered: bool = False  # an earlier attempt had created it (its answer was lost): found, not created again
    already_applied: bool = False  # an earlier attempt had applied this update: not sent twice
    components: list[str] = Field(default_factory=list)  # our components whose status was mirrored
    unmapped: list[str] = Field(default_factory=list)  # our components with no Statuspage id configured
