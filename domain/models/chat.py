"""Chat (Slack) state kept in the incident, and the inputs of the chat activities.

No secret and no rendering here: the workflow says *what* to show; the worker's adapter renders it
(Block Kit, mentions resolved from the config) with its own token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.models.common import EventKind, Phase, Role, Severity


class ChatSummary(BaseModel):
    """What the pinned context, the summary message and the announcement show. Compared for changes."""

    incident_id: str
    title: str
    severity: Severity
    phase: Phase
    service: str | None = None
    declared_by: str
    declared_at: datetime
    roles: dict[Role, str] = Field(default_factory=dict)
    acknowledged_by: str | None = None
    url: str | None = None  # Temporal UI
    next_update_due: datetime | None = None
    last_update: str | None = None  # text of the last status update
    resolution_summary: str = ""


class ChannelLink(BaseModel):
    """Where responders talk: the incident channel, put in every page once it exists."""

    id: str
    name: str
    url: str | None = None  # https://<workspace>.slack.com/archives/<id>


class SentMessage(BaseModel):
    """A message with buttons we sent (a page's direct message): closed once it has been answered."""

    channel: str
    ts: str
    text: str = Field("", max_length=3000)  # what it said, shown again above the outcome


class ButtonMessage(SentMessage):
    """A message whose buttons must not outlive their question (an Acknowledge DM, Approve/Deny).

    When the question is answered (by any route: Slack, CLI, API, the timeout), the chat pump updates it
    in place: what it asked, who answered what and when, and no buttons."""

    kind: Literal["page", "approval"]
    ref: str  # the incident id (page) or the runbook run id (approval)
    seq: int = 0  # the timeline event it belongs to (the page, the approval request)
    outcome: str | None = None  # "Acknowledged by bob at 12:03 UTC"; None while the question is open
    ok: bool = True  # the outcome is a yes (acknowledged, approved), not a no (denied, timed out)
    closed: bool = False  # updated in Slack (or found gone)


class ChatRoom(BaseModel):
    """The incident's channel, kept in workflow state: retries and restarts never create a second one."""

    provider: str = "slack"
    channel_id: str
    channel_name: str
    channel_url: str | None = None
    context_ts: str | None = None  # the pinned context message
    summary_ts: str | None = None  # the summary message, kept current with chat.update (== context_ts: one
    # pinned message shows both; channels opened before that have two)
    announce_channel: str | None = None
    announce_ts: str | None = None
    posted_seq: int = 0  # timeline events up to this seq have been posted to the channel
    invited: list[str] = Field(default_factory=list)  # people invited (or reported as not invitable)
    broken: str | None = None  # why chat updates stopped (channel gone, token revoked), if they did
    opened_seq: int | None = None  # the "channel opened" event: posted before what happened while it opened
    warnings: list[str] = Field(default_factory=list)  # non-fatal problems of the last call (not persisted)


class ChatOpenInput(BaseModel):
    summary: ChatSummary
    invite: list[str] = Field(default_factory=list)  # people (config ids or names) to invite


class ChatPost(BaseModel):
    seq: int
    at: datetime
    kind: EventKind
    actor: str
    text: str
    mention: str | None = None  # person to @-mention (reminder recipient, paged person)
    mentions: list[str] = Field(default_factory=list)  # people asked to act (an approval's approvers)
    ref: str | None = None  # a runbook run id: approval requests get Approve/Deny buttons


class ChatSyncInput(BaseModel):
    incident_id: str
    room: ChatRoom
    summary: ChatSummary | None = None  # None: unchanged since the last sync
    shown: ChatSummary | None = None  # what the channel shows now (the last summary sent); None: unknown
    posts: list[ChatPost] = Field(default_factory=list)
    invite: list[str] = Field(default_factory=list)
    close: list[ButtonMessage] = Field(default_factory=list)  # answered: update in place, buttons removed


class ChatSyncResult(BaseModel):
    posted: list[str] = Field(default_factory=list)  # ts of each post, in order
    invited: list[str] = Field(default_factory=list)
    closed: list[str] = Field(default_factory=list)  # ts of the button messages closed (or gone)
    buttons: list[ButtonMessage] = Field(default_factory=list)  # posts with buttons (approval requests)
    warnings: list[str] = Field(default_factory=list)
