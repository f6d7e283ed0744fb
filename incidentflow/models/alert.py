"""Alerts as the incident workflow sees them (the ingestion edge maps vendor payloads to these)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field


class AlertStatus(str, Enum):
    firing = "firing"
    resolved = "resolved"


class AlertSignal(BaseModel):
    """One alert notification delivered to an incident (signal `alert`)."""

    source: str = Field("generic", max_length=64)
    fingerprint: str = Field(..., min_length=1, max_length=256, description="stable id of the alert")
    status: AlertStatus = AlertStatus.firing
    title: str = Field("", max_length=500)
    labels: dict[str, str] = Field(default_factory=dict)
    received_at: datetime | None = None  # set by the edge; the workflow falls back to workflow.now()


class AlertRecord(BaseModel):
    """Aggregate of every notification for one fingerprint: repeats only bump counters."""

    fingerprint: str
    source: str
    title: str
    status: AlertStatus
    first_seen: datetime
    last_seen: datetime
    count: int = 1
