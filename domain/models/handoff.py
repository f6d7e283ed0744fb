"""On-call handoff notes: the schedule's input and the composed note."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class HandoffInput(BaseModel):
    schedule: str
    at: datetime | None = None  # default: now (the schedule's fire time)


class HandoffNote(BaseModel):
    schedule: str
    at: datetime
    incoming: dict[str, str | None]
    text: str
