"""Internal updates to stakeholders: the stakeholder Slack channel (the service's own, else
`slack.stakeholder_channel`) and the stakeholder mail list (`stakeholder_emails`, over INCIDENTFLOW_SMTP_URL).

A channel post carries its dedup key (Slack message metadata, looked up on a retry: posted once); the mail goes
as one message to the list with a Message-ID from the dedup key, so a repeat folds in mail clients.

The resolution message also goes to the incident channel, and lists the incident's action items: they are
ActionItemWorkflows, read from Temporal visibility through the worker's directory (none given, or visibility
failing: the message says when the postmortem that agrees them is due, as the workflow wrote it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

from temporalio import activity

from activities.ports import ActionDirectory
from domain.config import IncidentflowConfig
from domain.stakeholders import StakeholderUpdate, with_action_items

log = logging.getLogger(__name__)


class ChannelPoster(Protocol):
    async def channel_id(self, name_or_id: str) -> str: ...

    async def post_once(self, channel: str, dedup: str, text: str, blocks: list[dict[str, Any]] | None,
                        join: bool = False) -> str: ...


class MessageSender(Protocol):
    @property
    def sender(self) -> str: ...

    async def send(self, message: EmailMessage) -> None: ...


async def mail_the_list(mailer: MessageSender, recipients: list[str], subject: str, text: str, dedup_key: str) -> None:
    """One message to the stakeholder list, its Message-ID from the dedup key (a repeat folds in mail clients)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = mailer.sender, ", ".join(recipients), subject
    msg["Message-ID"] = make_msgid(idstring=dedup_key.replace(":", "."), domain="incidentflow")
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    await mailer.send(msg)


class StakeholderActivities:
    def __init__(self, config: Callable[[], IncidentflowConfig], chat: ChannelPoster | None,
                 mailer: MessageSender | None, directory: ActionDirectory | None = None) -> None:
        self._config, self._chat, self._mailer, self._directory = config, chat, mailer, directory

    @activity.defn
    async def send_stakeholder_update(self, update: StakeholderUpdate) -> list[str]:
        """Where it went (channel ids and `mail`); a destination not configured is skipped."""
        cfg = self._config()
        service = cfg.service(update.service)
        channel = (service.stakeholder_channel if service else None) or cfg.slack.stakeholder_channel
        text = await self._with_action_items(update)
        sent: list[str] = []
        if update.incident_channel and self._chat is not None:  # its own key: the poster remembers keys
            await self._chat.post_once(update.incident_channel, f"{update.dedup_key}:incident", text, None)
            sent.append(update.incident_channel)
        if not update.stakeholders:
            return sent
        if channel and self._chat is not None:
            cid = await self._chat.channel_id(channel.lstrip("#"))
            await self._chat.post_once(cid, update.dedup_key, f"*{update.subject}*\n{text}", None, join=True)
            sent.append(cid)
        if cfg.stakeholder_emails and self._mailer is not None:
            await mail_the_list(self._mailer, cfg.stakeholder_emails, update.subject, text, update.dedup_key)
            sent.append("mail")
        return sent

    async def _with_action_items(self, update: StakeholderUpdate) -> str:
        if not update.action_items_of or self._directory is None:
            return update.text
        try:
            items = await self._directory.action_items(open_only=False, incident=update.action_items_of)
        except Exception as exc:  # noqa: BLE001 - visibility down: the message still goes, saying the postmortem
            log.warning("action items of %s not listed: %s", update.action_items_of, exc)
            return update.text
        return with_action_items(update.text, items)
