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

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.slack_api import (
    ScopedWebClient,
    ShortRateLimitRetry,
    SlackApi,
    activity_scope,
    data_of,
    error_code,
    slack_error,
)
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models.chat import (
    ButtonMessage,
    ChatOpenInput,
    ChatPost,
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
        client = ScopedWebClient(token=token, base_url=settings.slack_api_url, timeout=10,
                                 retry_handlers=[ShortRateLimitRetry()])
        return cls(client, settings, config)

    # ------------------------------------------------------------------ the incident channel
    async def open(self, inp: ChatOpenInput) -> ChatRoom:
        async with self.connection():  # its ~8 calls on one connection
            return await self._open(inp)

    async def _open(self, inp: ChatOpenInput) -> ChatRoom:
        s = self._linked(inp.summary)
        key = s.incident_id
        bot = await self.identity()
        channel = await self.once(f"{key}:channel", lambda: self._create_or_reuse(s, bot["user_id"]))
        cid = str(channel["id"])
        purpose = f"Incident {s.incident_id} · managed by incidentflow"
        topic = _topic(s)
        warnings: list[str] = []
        people = list(dict.fromkeys([*inp.invite, *self.config().slack.invite]))
        mention = await self.mentions([s.declared_by, *s.roles.values(), s.acknowledged_by])
        invited: list[str] = []
        pinned: list[str] = []
        announced: list[str | None] = [None, None]

        async def describe() -> None:
            if (channel.get("purpose") or {}).get("value") != purpose:
                await self.once(f"{key}:purpose", lambda: self.call("conversations.setPurpose", channel=cid,
                                                                    purpose=purpose))

        async def entitle() -> None:
            if (channel.get("topic") or {}).get("value") != topic:
                await self.once(f"topic:{cid}:{topic}", lambda: self.call("conversations.setTopic", channel=cid,
                                                                           topic=topic))

        async def invite() -> None:
            invited.extend(await self.invite(cid, people, warnings))

        async def pin() -> None:
            ts = await self.post_once(cid, f"{key}:context", *render.pinned_message(s, mention,
                                                                                    self._runbook(s.service)))
            await self.once(f"{key}:pin", lambda: self._pin(cid, ts))
            pinned.append(ts)

        async def announce() -> None:
            try:
                where = await self.channel_id(self.announce_channel)
                ts = await self.post_once(where, f"{key}:announce", *render.announcement(s, cid, mention), join=True)
                announced[:] = [where, ts]
            except ApplicationError as exc:
                if not exc.non_retryable:
                    raise
                warnings.append(f"not announced in #{self.announce_channel}: {exc.message}")

        # the channel's purpose, topic, members, pinned message and announcement: all at once
        await together(describe(), entitle(), invite(), pin(), announce())
        return ChatRoom(channel_id=cid, channel_name=str(channel["name"]), channel_url=await self.channel_url(cid),
                        context_ts=pinned[0], summary_ts=pinned[0], announce_channel=announced[0],
                        announce_ts=announced[1], invited=invited, warnings=warnings)

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
        reported as not invitable), so nobody is tried twice. Everyone in one call; when Slack refuses that batch
        (one of them cannot be invited, or is already there: then `already_in_channel` is no answer), one call
        per user says who."""
        bot = (await self.identity())["user_id"]
        users: dict[str, str] = {}
        for person in dict.fromkeys(people):
            uid = await self.slack_user(person)
            if not uid:
                warnings.append(f"{person} has no Slack user (set `slack:` or `email:` in the config): not invited")
            elif uid != bot and f"invite:{channel}:{uid}" not in self._done:
                users[person] = uid
        if len(users) > 1 and await self._invite_all(channel, list(users.values())):
            return list(dict.fromkeys(people))
        for person, uid in users.items():
            await self._invite_one(channel, person, uid, warnings)
        return list(dict.fromkeys(people))

    async def _invite_all(self, channel: str, uids: list[str]) -> bool:
        """Everyone in one call; False when Slack refuses the batch (one of them cannot be invited, or is
        already there): then one call each says who."""
        try:
            await self.call("conversations.invite", channel=channel, users=",".join(dict.fromkeys(uids)))
        except ApplicationError as exc:
            if not exc.non_retryable or errors.error_code(exc) in ("channel_not_found", "is_archived",
                                                                    "not_in_channel", "invalid_auth"):
                raise
            return False
        for uid in uids:
            self._done.remember(f"invite:{channel}:{uid}", True)
        return True

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
        async with self.connection():
            return await self._sync(inp)

    async def _sync(self, inp: ChatSyncInput) -> ChatSyncResult:
        room = inp.room
        result = ChatSyncResult()
        people: list[str | None] = [*(p.actor for p in inp.posts), *(p.mention for p in inp.posts),
                                    *(m for p in inp.posts for m in p.mentions)]
        if inp.summary is not None:
            people += [inp.summary.declared_by, inp.summary.acknowledged_by, *inp.summary.roles.values()]
        mention = await self.mentions(people)

        async def state() -> None:
            if inp.summary is not None:
                shown = self._linked(inp.shown) if inp.shown is not None else None
                await self._refresh(room, self._linked(inp.summary), shown, mention, result)
            if inp.invite:
                result.invited = await self.invite(room.channel_id, inp.invite, result.warnings)

        # what the channel shows and its new posts touch different messages: both at once (posts in order)
        await together(state(), self._post_events(inp, mention, result))
        for message in inp.close:
            await self._close(message)
            result.closed.append(message.ts)
        return result

    async def _post_events(self, inp: ChatSyncInput, mention: render.Mention, result: ChatSyncResult) -> None:
        """The new timeline events, in order: consecutive ones as one message, a line each; a message with
        buttons (an approval request, a public update draft) alone, its ts kept to close it. Each message
        once per dedup key: its first event's seq (and its last, for several)."""
        cid = inp.room.channel_id
        for group in _batches(inp.posts):
            first, last = group[0], group[-1]
            key = f"{inp.incident_id}:event:{first.seq}" + (f"-{last.seq}" if len(group) > 1 else "")
            ts = await self.post_once(cid, key, *render.posts_message(group, mention))
            result.posted += [ts] * len(group)
            if first.kind == EventKind.approval and first.ref:  # its buttons go once the run has its decision
                result.buttons.append(ButtonMessage(kind="approval", ref=first.ref, seq=first.seq, channel=cid,
                                                    ts=ts, text=render.approval_question(first, mention)[:3000]))

    async def _refresh(self, room: ChatRoom, s: ChatSummary, shown: ChatSummary | None, mention: render.Mention,
                       result: ChatSyncResult) -> None:
        """Everything that shows the incident's state, brought up to date: the pinned message (a channel
        opened before it has a summary and a pinned context), the topic and the announcement. A message is
        updated only when what it shows differs from what it showed (`shown`, the summary last sent)."""
        cid, runbook = room.channel_id, self._runbook(s.service)

        def changed(show: Callable[[ChatSummary], object]) -> bool:
            return shown is None or show(shown) != show(s)  # `str`: the same people, the same mentions

        steps: list[Awaitable[None]] = []  # each its own message (or the topic): all at once
        pinned = room.context_ts if room.context_ts == room.summary_ts else None
        if pinned and changed(lambda x: render.pinned_message(x, str, runbook)):
            steps.append(self._or_warn("pinned message not updated", result, lambda: self._update(
                cid, pinned, *render.pinned_message(s, mention, runbook))))
        if room.summary_ts and not pinned and changed(lambda x: render.summary_message(x, str)):
            steps.append(self._update(cid, room.summary_ts, *render.summary_message(s, mention)))
        if room.context_ts and not pinned and changed(lambda x: render.context_message(x, str, runbook)):
            context_ts = room.context_ts
            steps.append(self._or_warn("pinned context not updated", result, lambda: self._update(
                cid, context_ts, *render.context_message(s, mention, runbook))))
        steps.append(self._or_warn("topic not updated", result, lambda: self._keep_topic(cid, _topic(s), shown)))
        if room.announce_channel and room.announce_ts and changed(lambda x: render.announcement(x, cid, str)):
            announce, announce_ts = room.announce_channel, room.announce_ts
            steps.append(self._or_warn("announcement not updated", result, lambda: self._update(
                announce, announce_ts, *render.announcement(s, cid, mention)), elsewhere=True))
        await together(*steps)

    async def _keep_topic(self, cid: str, topic: str, shown: ChatSummary | None) -> None:
        """The topic, when it changes. Knowing what it was (`shown`), set it without asking; else ask first
        (once per topic and process): Slack posts a line in the channel for every setTopic."""
        if shown is None:
            await self.once(f"topic:{cid}:{topic}", lambda: self._set_topic(cid, topic))
        elif _topic(shown) != topic:
            await self.once(f"topic:{activity_scope()}{cid}:{topic}", lambda: self.call(
                "conversations.setTopic", channel=cid, topic=topic))

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
        key = f"update:{activity_scope()}{channel}:{ts}:{hash(repr(blocks))}"  # done: its retries skip it
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


async def together(*steps: Awaitable[None]) -> None:
    """Run the steps at once, each to its end (what one did is remembered, so a retry skips it), then raise
    the first failure, as raised (for the activity's retry policy)."""
    if len(steps) == 1:
        await steps[0]
        return
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


BATCH_CHARS = 3000  # event text per message at most (Slack shows up to 4,000 characters of a message whole)


def _batches(posts: list[ChatPost]) -> list[list[ChatPost]]:
    """The posts in order, consecutive ones together; a post with buttons alone. Decided from the input
    alone, so a retry in another process makes the same messages (and finds them by their dedup keys)."""
    batches: list[list[ChatPost]] = []
    size = 0
    for post in posts:
        last = batches[-1] if batches else None
        if (last is not None and not render.has_buttons(post) and not render.has_buttons(last[-1])
                and size + len(post.text) <= BATCH_CHARS):
            last.append(post)
            size += len(post.text)
        else:
            batches.append([post])
            size = len(post.text)
    return batches


class SlackPager:
    """The `slack` paging channel (`notify: [slack]`): a direct message from the bot, with an Acknowledge
    button, once per page (the message carries the page's dedup key, like every post)."""

    name = "slack"

    def __init__(self, chat: SlackChat) -> None:
        self.chat = chat

    async def send(self, request: PageRequest) -> PageResult:
        if request.action != "trigger":  # ack/resolve close the DM in place (the incident's chat pump)
            return PageResult(channel=self.name, detail="not mirrored")
        async with self.chat.connection():
            return await self._send(request)

    async def _send(self, request: PageRequest) -> PageResult:
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
