"""Action items: follow-ups with an owner, a due date and a priority, tracked to completion by one
ActionItemWorkflow each (pure models: the contract between the workflow, the trackers and the doors)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from enum import Enum

from pydantic import BaseModel, Field

from domain.postmortem.models import ItemKind, Priority
from domain.text import SingleLine

AID_PATTERN = r"^ai-[a-z2-7]{8}$"


class ItemStatus(str, Enum):
    """DOMAIN.md's follow-up states: outstanding, completed, not doing (with a reason)."""

    open = "open"
    done = "done"
    dropped = "dropped"  # not doing, with a reason


class TicketRef(BaseModel):
    """The item's ticket in a tracker."""

    tracker: str  # github | jira
    key: str  # "42" (GitHub issue number) or "OPS-17" (Jira key)
    url: str


class ActionItemInput(BaseModel):
    """`action add ID "text" --owner alice --due 2026-12-10 --priority P1 --kind fix`."""

    text: SingleLine = Field(..., min_length=1, max_length=500)
    owner: SingleLine = Field(..., min_length=1, max_length=128)
    due: date
    priority: Priority = Priority.P2
    kind: ItemKind = ItemKind.fix
    by: SingleLine = Field(..., min_length=1, max_length=128)


class ActionItem(BaseModel):
    aid: str
    incident_id: str
    text: str
    owner: str
    due: date
    priority: Priority
    kind: ItemKind
    status: ItemStatus = ItemStatus.open
    created_at: datetime
    created_by: str
    source: str = "manual"  # manual | postmortem
    closed_at: datetime | None = None
    closed_by: str | None = None
    reason: str = ""  # why it was dropped
    ticket: TicketRef | None = None
    reminders: int = 0  # reminders sent (index into the reminder schedule)
    last_reminder_at: datetime | None = None
    history: list[str] = Field(default_factory=list)  # bounded: what happened to it, with who and when


class ActionItemStart(BaseModel):
    item: ActionItem
    tracker: bool = True  # create a ticket when a tracker is configured
    remind_at: time = time(9, 0)  # UTC time of day of the reminders (config action_items.remind_at)


class DoneInput(BaseModel):
    by: SingleLine = Field(..., min_length=1, max_length=128)
    note: SingleLine = Field("", max_length=1000)


class DropInput(BaseModel):
    by: SingleLine = Field(..., min_length=1, max_length=128)
    reason: SingleLine = Field(..., min_length=1, max_length=1000)


class DueInput(BaseModel):
    by: SingleLine = Field(..., min_length=1, max_length=128)
    due: date


class TicketClosed(BaseModel):
    """A tracker's signed webhook says the ticket was closed (or reopened)."""

    tracker: str
    key: str
    closed: bool = True
    by: str = Field(..., max_length=200)  # "github:octocat", "jira:Alice Example"
    event_id: str = Field("", max_length=200)  # the delivery id: a redelivery changes nothing


class ItemResult(BaseModel):
    aid: str
    status: ItemStatus
    text: str
    due: date
    ticket: TicketRef | None = None


class TicketInput(BaseModel):
    """What a tracker needs to create (or find again) the item's ticket: the aid is the dedup key."""

    aid: str
    incident_id: str
    title: str
    body: str
    owner: str
    owner_handle: str | None = None  # the owner's tracker login/account, when the config knows it
    due: date
    priority: Priority
    kind: ItemKind
    labels: list[str] = Field(default_factory=list)


class TicketChange(BaseModel):
    ticket: TicketRef
    close: bool = True  # False: reopen
    comment: str = ""


def action_id(*parts: str) -> str:
    """A short id people type (`ai-` + 8 base32 letters), derived from what makes the item unique (the
    incident and the idempotency key, or the postmortem row): the same request always names the same item."""
    import base64

    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return "ai-" + base64.b32encode(digest[:5]).decode().lower()
