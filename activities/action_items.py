"""Action items' side effects: their tickets in a tracker (GitHub Issues, Jira Cloud) and the weekly review
digest (the stakeholder Slack channel and the stakeholder mail list).

The tracker is built once by the worker from config and the environment's secrets (`activities.
postmortem_sinks.build_tracker`); an item's ticket is created idempotently on the item's id, so a retried
activity (the worker died after the tracker created the ticket) finds it instead of creating another."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from pydantic import BaseModel, Field
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.ports import ActionDirectory, Tracker
from activities.stakeholders import ChannelPoster, MessageSender, mail_the_list
from domain.actions.digest import digest
from domain.actions.models import TicketChange, TicketInput, TicketRef
from domain.config import IncidentflowConfig


class DigestRequest(BaseModel):
    today: date
    dedup_key: str  # the schedule's run: a retry posts once


class DigestSent(BaseModel):
    open: int
    overdue: int
    sent: list[str] = Field(default_factory=list)  # channel ids and `mail`


class ActionActivities:
    def __init__(self, config: Callable[[], IncidentflowConfig], tracker: Tracker | None = None,
                 directory: ActionDirectory | None = None, chat: ChannelPoster | None = None,
                 mailer: MessageSender | None = None) -> None:
        self._config, self._tracker, self._directory = config, tracker, directory
        self._chat, self._mailer = chat, mailer

    @activity.defn
    async def open_ticket(self, ticket: TicketInput) -> TicketRef | None:
        """The item's ticket (None: no tracker configured)."""
        if self._tracker is None:
            return None
        cfg = self._config()
        person = next((p for p in cfg.people if p.id == ticket.owner), None)
        handle = getattr(person, self._tracker.kind, None) if person else None
        labels = [f"{ticket.priority.value}", f"{ticket.kind.value}"]
        async with heartbeating():
            return await self._tracker.create(ticket.model_copy(update={"owner_handle": handle, "labels": labels}))

    @activity.defn
    async def change_ticket(self, change: TicketChange) -> None:
        if self._tracker is None or self._tracker.kind != change.ticket.tracker:
            return  # the tracker was switched off or changed since: nothing of ours to close there
        async with heartbeating():
            await self._tracker.change(change)

    @activity.defn
    async def send_digest(self, request: DigestRequest) -> DigestSent:
        """The weekly review: open and overdue items by owner, to the channel and the stakeholder list."""
        if self._directory is None:
            return DigestSent(open=0, overdue=0)
        cfg = self._config()
        review = digest(await self._directory.action_items(open_only=True), request.today)
        sent: list[str] = []
        channel = cfg.action_items.digest.channel or cfg.slack.stakeholder_channel
        if channel and self._chat is not None:
            cid = await self._chat.channel_id(channel.lstrip("#"))
            await self._chat.post_once(cid, request.dedup_key, review.slack, None, join=True)
            sent.append(cid)
        if cfg.action_items.digest.email and cfg.stakeholder_emails and self._mailer is not None:
            await mail_the_list(self._mailer, cfg.stakeholder_emails, review.subject, review.mail, request.dedup_key)
            sent.append("mail")
        return DigestSent(open=review.open, overdue=review.overdue, sent=sent)
