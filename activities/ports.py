"""Capability ports. Adapters (log, Slack, PagerDuty, …) implement these; activities hold one each."""

from __future__ import annotations

from typing import Protocol

from domain.models import IncidentSummary, NotifyInput
from domain.models.chat import ChatOpenInput, ChatRoom, ChatSyncInput, ChatSyncResult
from domain.models.paging import PageRequest, PageResult


class Notifier(Protocol):
    async def notify(self, message: NotifyInput) -> None:
        """Deliver a reminder/notice. Must be idempotent on `message.dedup_key`."""


class Pager(Protocol):
    """Delivers pages. Must be idempotent on `request.dedup_key` (the vendor dedups, or the adapter does)."""

    name: str

    async def send(self, request: PageRequest) -> PageResult:
        """Trigger, acknowledge or resolve. Raise ApplicationError (activities/errors.py) on vendor failure."""


class IncidentDirectory(Protocol):
    """Lists incidents (newest first) from Temporal visibility; `incidentflow.client.Incidents` is one."""

    async def list(self, *, limit: int = 100) -> list[IncidentSummary]:
        """The most recent incidents, open and ended."""


class Chat(Protocol):
    """The incident channel (Slack is one adapter). Every post is idempotent on its dedup key."""

    def note_attempt(self) -> None:
        """Called at the start of each activity attempt (retries look for posts an earlier attempt made)."""

    async def open(self, inp: ChatOpenInput) -> ChatRoom:
        """Create or reuse the incident's channel, pin its context, post the summary, announce it."""

    async def sync(self, inp: ChatSyncInput) -> ChatSyncResult:
        """Bring the channel up to date: summary, invites, new timeline events."""
