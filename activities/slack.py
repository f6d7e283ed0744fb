"""Slack: the incident channel, its pinned context, the summary kept in place, timeline posts.

Idempotency (a retried activity or a restarted worker never posts twice):
- the channel name is derived from the incident; on `name_taken` the existing channel is reused when
  its purpose names this incident (or our bot created it and has not set a purpose yet);
- every post is made once per dedup key (activities/slack_api.py: message metadata, history lookups);
- `chat.update`, `pins.add` (already_pinned) and `conversations.invite` (already_in_channel) repeat safely.

Kept current: the summary, the pinned context, the topic and the announcement follow every change; the
Temporal UI link comes from this worker's Settings; messages with buttons (a page's DM, an approval
request) are updated once answered, their buttons removed.

Errors: permanent ones (`channel_not_found`, `not_in_channel`, `invalid_auth`, …) are non-retryable and
the workflow reports them on the timeline (activities/errors.py classifies them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.slack_api import SlackApi, data_of, error_code, slack_error
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models.chat import (
    ButtonMessage,
    ChatOpenInput,
    ChatRoom,
    ChatSummary,
    ChatSyncInput,
    ChatSyncResult,
    SentMessage,
)
from domain.models.common import EventKind
from domain.models.paging import PageRequest, PageResult

log = logging.getLogger("incidentflow.slack")


class SlackChat(SlackApi):
    """The `Chat` port on Slack, used by the chat activities (one per worker)."""

    def __init__(self, client: AsyncWebClient, settings: Settings,
                 config: Callable[[], IncidentflowConfig] = IncidentflowConfig) -> None:
        super().__init__(client, settings, config)
        self.announce_channel = settings.slack_incidents_channel.lstrip("#")

    @classmethod
    def from_settings(cls, settings: Settings, config: Callable[[], IncidentflowConfig]) -> SlackChat:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        client = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=10, retry_handlers=[])
        return cls(client, settings, config)

    # ------------------------------------------------------------------ the incident channel
    async def open(self, inp: ChatOpenInput) -> ChatRoom:
        s = self._linked(inp.summary)
        key = s.incident_id
        bot = await self.identity()
        channel = await self.once(f"{key}:channel", lambda: self._create_or_reuse(s, bot["user_id"]))
        cid = str(channel["id"])
        purpose = f"Incident {s.incident_id} · managed by incidentflow"
        if (channel.get("purpose") or {}).get("value") != purpose:
            await self.once(f"{key}:purpose", lambda: self.call("conversations.setPurpose", channel=cid,
                                                                purpose=purpose))
        topic = _topic(s)
        if (channel.get("topic") or {}).get("value") != topic:
            await self.once(f"topic:{cid}:{topic}", lambda: self.call("conversations.setTopic", channel=cid,
                                                                       topic=topic))
        warnings: list[str] = []
        people = list(dict.fromkeys([*inp.invite, *self.config().slack.invite]))
        invited = await self.invite(cid, people, warnings)
        mention = await self.mentions([s.declared_by, *s.roles.values(), s.acknowledged_by])
        context_ts = await self.post_once(cid, f"{key}:context",
                                          *render.context_message(s, mention, self._runbook(s.service)))
        await self.once(f"{key}:pin", lambda: self._pin(cid, context_ts))
        summary_ts = await self.post_once(cid, f"{key}:summary", *render.summary_message(s, mention))
        announce_id = announce_ts = None
        try:
            announce_id = await self.channel_id(self.announce_channel)
            announce_ts = await self.post_once(announce_id, f"{key}:announce", *render.announcement(s, cid, mention),
                                               join=True)
        except ApplicationError as exc:
            if not exc.non_retryable:
                raise
            warnings.append(f"not announced in #{self.announce_channel}: {exc.message}")
        return ChatRoom(channel_id=cid, channel_name=str(channel["name"]), channel_url=await self.channel_url(cid),
                        context_ts=context_ts, summary_ts=summary_ts, announce_channel=announce_id,
                        announce_ts=announce_ts, invited=invited, warnings=warnings)

    def _linked(self, s: ChatSummary) -> ChatSummary:
        """The summary with the incident's Temporal UI link from this worker's Settings: every incident
        gets it, however it started (the state's `url` is only set for some)."""
        return s.model_copy(update={"url": self.settings.workflow_url(s.incident_id)})

    def _runbook(self, service: str | None) -> str | None:
        found = self.config().service(service)
        return found.runbook if found is not None else None

    async def _create_or_reuse(self, s: ChatSummary, bot_user: str) -> dict[str, Any]:
        for n in range(1, 21):
            name = render.channel_name(s.incident_id, s.severity.value, n)
            try:
                response = await self.client.conversations_create(name=name, is_private=False)
                return dict(data_of(response)["channel"])
            except SlackApiError as exc:
                if error_code(exc) != "name_taken":
                    raise slack_error("conversations.create", exc) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise errors.slack_unreachable("conversations.create", exc) from None
            existing = await self.find_channel(name)
            if existing is not None and self._is_ours(existing, s.incident_id, bot_user):
                if not existing.get("is_member"):
                    await self.call("conversations.join", channel=existing["id"])
                log.info("reusing channel #%s for %s", name, s.incident_id)
                return existing
        raise errors.slack_rejected(f"no free Slack channel name for {s.incident_id} (tried 20)", "name_taken",
                                    fatal=True)

    @staticmethod
    def _is_ours(channel: dict[str, Any], incident_id: str, bot_user: str) -> bool:
        if channel.get("is_archived"):
            return False
        purpose = str((channel.get("purpose") or {}).get("value") or "")
        if purpose:
            return f"Incident {incident_id} " in purpose + " "
        return channel.get("creator") == bot_user  # created by us, crashed before the purpose was set

    async def _pin(self, channel: str, ts: str) -> None:
        try:
            await self.client.pins_add(channel=channel, timestamp=ts)
        except SlackApiError as exc:
            if error_code(exc) != "already_pinned":
                raise slack_error("pins.add", exc) from None

    async def invite(self, channel: str, people: list[str], warnings: list[str]) -> list[str]:
        """Invite each person with a Slack user; returns everyone handled (invited, already there, or
        reported as not invitable), so nobody is tried twice. One call per user: Slack refuses a whole
        batch when one of its users cannot be invited, and `already_in_channel` is then no answer."""
        bot = (await self.identity())["user_id"]
        for person in dict.fromkeys(people):
            uid = await self.slack_user(person)
            if not uid:
                warnings.append(f"{person} has no Slack user (set `slack:` or `email:` in the config): not invited")
            elif uid != bot:
                await self._invite_one(channel, person, uid, warnings)
        return list(dict.fromkeys(people))

    async def _invite_one(self, channel: str, person: str, uid: str, warnings: list[str]) -> None:
        try:
            await self.once(f"invite:{channel}:{uid}", lambda: self.call("conversations.invite", channel=channel,
                                                                         users=uid))
        except ApplicationError as exc:
            code = errors.error_code(exc)
            if code == "already_in_channel":  # a retry, a replay, or they joined themselves: done
                return
            if code in ("user_not_found", "cant_invite", "user_is_restricted", "user_is_ultra_restricted"):
                warnings.append(f"could not invite {person}: {code}")
                return
            raise

    async def sync(self, inp: ChatSyncInput) -> ChatSyncResult:
        room = inp.room
        result = ChatSyncResult()
        people: list[str | None] = [*(p.actor for p in inp.posts), *(p.mention for p in inp.posts),
                                    *(m for p in inp.posts for m in p.mentions)]
        if inp.summary is not None:
            people += [inp.summary.declared_by, inp.summary.acknowledged_by, *inp.summary.roles.values()]
        mention = await self.mentions(people)
        if inp.summary is not None:
            await self._refresh(room, self._linked(inp.summary), mention, result)
        if inp.invite:
            result.invited = await self.invite(room.channel_id, inp.invite, result.warnings)
        for post in inp.posts:
            ptext, pblocks = render.post_message(post, mention)
            ts = await self.post_once(room.channel_id, f"{inp.incident_id}:event:{post.seq}", ptext, pblocks)
            result.posted.append(ts)
            if post.kind == EventKind.approval and post.ref:  # its buttons go once the run has its decision
                result.buttons.append(ButtonMessage(kind="approval", ref=post.ref, seq=post.seq, channel=room.channel_id,
                                                    ts=ts, text=render.approval_question(post, mention)[:3000]))
        for message in inp.close:
            await self._close(message)
            result.closed.append(message.ts)
        return result

    async def _refresh(self, room: ChatRoom, s: ChatSummary, mention: render.Mention, result: ChatSyncResult) -> None:
        """Everything that shows the incident's state, brought up to date: the summary, the pinned context,
        the topic and the announcement. Each update is skipped when this process already made it."""
        cid = room.channel_id
        if room.summary_ts:
            await self._update(cid, room.summary_ts, *render.summary_message(s, mention))
        if room.context_ts:
            context_ts = room.context_ts
            await self._or_warn("pinned context not updated", result, lambda: self._update(
                cid, context_ts, *render.context_message(s, mention, self._runbook(s.service))))
        topic = _topic(s)
        await self._or_warn("topic not updated", result,
                            lambda: self.once(f"topic:{cid}:{topic}", lambda: self._set_topic(cid, topic)))
        if room.announce_channel and room.announce_ts:
            announce, announce_ts = room.announce_channel, room.announce_ts
            await self._or_warn("announcement not updated", result, lambda: self._update(
                announce, announce_ts, *render.announcement(s, cid, mention)), elsewhere=True)

    @staticmethod
    async def _or_warn(what: str, result: ChatSyncResult, step: Callable[[], Awaitable[object]],
                       elsewhere: bool = False) -> None:
        """A refused side update (its message deleted, …) is a warning: the posts still go out. A fatal
        refusal in the incident channel itself (it is gone) still stops chat, unless `elsewhere`."""
        try:
            await step()
        except ApplicationError as exc:
            fatal = bool(exc.details) and isinstance(exc.details[0], dict) and bool(exc.details[0].get("fatal"))
            if not exc.non_retryable or (fatal and not elsewhere):
                raise
            result.warnings.append(f"{what}: {exc.message}")

    async def _update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        key = f"update:{channel}:{ts}:{hash(repr(blocks))}"
        await self.once(key, lambda: self.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks))

    async def _set_topic(self, channel: str, topic: str) -> None:
        """Set the topic when it differs (Slack posts a line in the channel for every setTopic)."""
        info = await self.call("conversations.info", channel=channel)
        if ((info.get("channel") or {}).get("topic") or {}).get("value") != topic:
            await self.call("conversations.setTopic", channel=channel, topic=topic)

    async def _close(self, message: ButtonMessage) -> None:
        """An answered question: the message says what it asked and who did what, without buttons. A
        message that is gone (deleted, its channel archived) counts as closed."""
        text, blocks = render.closed_message(message.text, message.outcome or "answered", message.ok)
        try:
            await self._update(message.channel, message.ts, text, blocks)
        except ApplicationError as exc:
            if not exc.non_retryable:
                raise
            log.info("button message %s in %s not closed: %s", message.ts, message.channel, exc.message)


def _topic(s: ChatSummary) -> str:
    return f"{s.severity.value} · {s.title}"[:250]


class SlackPager:
    """The `slack` paging channel (`notify: [slack]`): a direct message from the bot, with an Acknowledge
    button, once per page (the message carries the page's dedup key, like every post)."""

    name = "slack"

    def __init__(self, chat: SlackChat) -> None:
        self.chat = chat

    async def send(self, request: PageRequest) -> PageResult:
        if request.action != "trigger":  # ack/resolve close the DM in place (the incident's chat pump)
            return PageResult(channel=self.name, detail="not mirrored")
        user = await self.chat.slack_user(request.target)
        if not user:
            raise errors.not_configured(f"{request.target} has no Slack user: set `slack:` (user id) or `email:` for "
                                 "them in the config, or another `notify:` channel")
        data = await self.chat.call("conversations.open", users=user)
        channel = str((data.get("channel") or {}).get("id") or "")
        said, text, blocks = render.page_message(request.incident_id, request.summary, request.reason,
                                                 request.incident_url, request.channel)
        ts = await self.chat.post_once(channel, f"page:{request.dedup_key}", text, blocks)
        return PageResult(channel=self.name, detail=f"direct message {ts}",
                          messages=[SentMessage(channel=channel, ts=ts, text=said[:3000])])
