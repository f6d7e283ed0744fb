"""Slack: the incident channel, its pinned context, the summary kept in place, timeline posts.

Idempotency (a retried activity or a restarted worker never posts twice):
- the channel name is derived from the incident; on `name_taken` the existing channel is reused when
  its purpose names this incident (or our bot created it and has not set a purpose yet);
- every post is made once per dedup key (activities/slack_api.py: message metadata, history lookups);
- `chat.update`, `pins.add` (already_pinned) and `conversations.invite` (already_in_channel) repeat safely.

Errors: permanent ones (`channel_not_found`, `not_in_channel`, `invalid_auth`, …) are non-retryable and
the workflow reports them on the timeline (activities/errors.py classifies them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.slack_api import SlackApi, data_of, error_code, slack_error
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models.chat import ChatOpenInput, ChatRoom, ChatSummary, ChatSyncInput, ChatSyncResult
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
        s = inp.summary
        key = s.incident_id
        bot = await self.identity()
        channel = await self.once(f"{key}:channel", lambda: self._create_or_reuse(s, bot["user_id"]))
        cid = str(channel["id"])
        purpose = f"Incident {s.incident_id} · managed by incidentflow"
        if (channel.get("purpose") or {}).get("value") != purpose:
            await self.once(f"{key}:purpose", lambda: self.call("conversations.setPurpose", channel=cid,
                                                                purpose=purpose))
        topic = f"{s.severity.value} · {s.title}"[:250]
        if (channel.get("topic") or {}).get("value") != topic:
            await self.once(f"{key}:topic", lambda: self.call("conversations.setTopic", channel=cid, topic=topic))
        warnings: list[str] = []
        people = list(dict.fromkeys([*inp.invite, *self.config().slack.invite]))
        invited = await self.invite(cid, people, warnings)
        runbook = None
        service = self.config().service(s.service)
        if service is not None:
            runbook = service.runbook
        mention = await self.mentions([s.declared_by, *s.roles.values(), s.acknowledged_by])
        context_ts = await self.post_once(cid, f"{key}:context", *render.context_message(s, mention, runbook))
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
        bot = (await self.identity())["user_id"]
        ids: dict[str, str] = {}
        for person in people:
            uid = await self.slack_user(person)
            if uid and uid != bot:
                ids[person] = uid
            elif not uid:
                warnings.append(f"{person} has no Slack user (set `slack:` or `email:` in the config): not invited")
        if not ids:
            return []
        key = f"invite:{channel}:{','.join(sorted(ids.values()))}"
        try:
            await self.once(key, lambda: self.call("conversations.invite", channel=channel,
                                                   users=",".join(sorted(set(ids.values())))))
        except ApplicationError as exc:
            code = errors.error_code(exc)
            if code == "already_in_channel":
                pass
            elif code in ("user_not_found", "cant_invite", "user_is_restricted", "user_is_ultra_restricted"):
                warnings.append(f"could not invite {', '.join(ids)}: {code}")
            else:
                raise
        return list(ids)

    async def sync(self, inp: ChatSyncInput) -> ChatSyncResult:
        room = inp.room
        result = ChatSyncResult()
        people: list[str | None] = [*(p.actor for p in inp.posts), *(p.mention for p in inp.posts)]
        if inp.summary is not None:
            people += [inp.summary.declared_by, inp.summary.acknowledged_by, *inp.summary.roles.values()]
        mention = await self.mentions(people)
        if inp.summary is not None and room.summary_ts:
            text, blocks = render.summary_message(inp.summary, mention)
            key = f"update:{room.channel_id}:{room.summary_ts}:{hash(repr(blocks))}"
            await self.once(key, lambda: self.call("chat.update", channel=room.channel_id, ts=room.summary_ts,
                                                   text=text, blocks=blocks))
            if room.announce_channel and room.announce_ts:
                atext, ablocks = render.announcement(inp.summary, room.channel_id, mention)
                akey = f"update:{room.announce_channel}:{room.announce_ts}:{hash(repr(ablocks))}"
                try:
                    await self.once(akey, lambda: self.call("chat.update", channel=room.announce_channel,
                                                            ts=room.announce_ts, text=atext, blocks=ablocks))
                except ApplicationError as exc:
                    if not exc.non_retryable:
                        raise
                    result.warnings.append(f"announcement not updated: {exc.message}")
        if inp.invite:
            result.invited = await self.invite(room.channel_id, inp.invite, result.warnings)
        for post in inp.posts:
            ptext, pblocks = render.post_message(post, mention)
            result.posted.append(await self.post_once(room.channel_id, f"{inp.incident_id}:event:{post.seq}",
                                                      ptext, pblocks))
        return result


class SlackPager:
    """The `slack` paging channel (`notify: [slack]`): a direct message from the bot, with an Acknowledge
    button, once per page (the message carries the page's dedup key, like every post)."""

    name = "slack"

    def __init__(self, chat: SlackChat) -> None:
        self.chat = chat

    async def send(self, request: PageRequest) -> PageResult:
        if request.action != "trigger":  # ack/resolve show in the incident channel; a DM per change is noise
            return PageResult(channel=self.name, detail="not mirrored")
        user = await self.chat.slack_user(request.target)
        if not user:
            raise errors.not_configured(f"{request.target} has no Slack user: set `slack:` (user id) or `email:` for "
                                 "them in the config, or another `notify:` channel")
        data = await self.chat.call("conversations.open", users=user)
        channel = str((data.get("channel") or {}).get("id") or "")
        link = f" <{request.incident_url}|Temporal UI>" if request.incident_url else ""
        text = (f"📟 You are paged for *{request.summary}* (`{request.incident_id}`, {request.reason or 'manual'})."
                f"{link} Acknowledge to stop the escalation.")
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
                  {"type": "actions", "block_id": "incidentflow.page", "elements": [
                      {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"},
                       "action_id": render.ACK, "value": request.incident_id, "style": "primary"}]}]
        ts = await self.chat.post_once(channel, f"page:{request.dedup_key}", text, blocks)
        return PageResult(channel=self.name, detail=f"direct message {ts}")
