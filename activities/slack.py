"""Slack: the incident channel, its pinned context, the summary kept in place, timeline posts.

Idempotency (a retried activity or a restarted worker never posts twice):
- the channel name is derived from the incident; on `name_taken` the existing channel is reused when
  its purpose names this incident (or our bot created it and has not set a purpose yet);
- every message carries Slack message metadata `{"event_type": "incidentflow_post",
  "event_payload": {"dedup_key": …}}`. A retry attempt that cannot know whether the previous attempt
  posted (the worker died, or the request timed out) looks for that key in the channel history first;
- within one worker process each step remembers that it is done, so retries after a rate limit go on
  from where they stopped instead of starting over;
- `chat.update`, `pins.add` (already_pinned) and `conversations.invite` (already_in_channel) repeat safely.

Errors: HTTP 429 retries after Retry-After (as the activity's next retry delay, not a sleep here);
`channel_not_found`, `not_in_channel`, `invalid_auth` and other permanent errors are non-retryable and
the workflow reports them on the timeline. The bot token stays in this adapter.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import RATE_LIMITED, UNAVAILABLE, not_configured, parse_retry_after
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models.chat import ChatOpenInput, ChatRoom, ChatSummary, ChatSyncInput, ChatSyncResult
from domain.models.paging import PageRequest, PageResult

log = logging.getLogger("incidentflow.slack")

SLACK_REJECTED = "SlackRejected"  # Slack answered ok:false with a permanent error: not retried
# The channel or the token is unusable: stop chat updates for this incident (and say so on the timeline).
FATAL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "invalid_auth", "not_authed", "account_inactive",
                          "token_revoked", "token_expired", "is_archived", "missing_scope", "no_permission",
                          "org_login_required", "ekm_access_denied", "team_access_not_granted"})
# Slack-side trouble worth another attempt.
RETRYABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout", "team_added_to_org"})
METADATA_EVENT = "incidentflow_post"
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


def slack_error(method: str, exc: SlackApiError) -> ApplicationError:
    """Classify a Slack answer: 429 and transient errors retry; everything else is permanent."""
    response = exc.response
    status = getattr(response, "status_code", 200)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == 429 or code == "ratelimited":
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        return ApplicationError(f"Slack rate limited {method} (HTTP 429)", {"error": "ratelimited"},
                                type=RATE_LIMITED, next_retry_delay=parse_retry_after(retry_after))
    if status >= 500 or code in RETRYABLE_ERRORS:
        return ApplicationError(f"Slack {method} failed: {code} (HTTP {status})", {"error": code}, type=UNAVAILABLE)
    return ApplicationError(f"Slack {method} failed: {code}", {"error": code, "fatal": code in FATAL_ERRORS},
                            type=SLACK_REJECTED, non_retryable=True)


def _error_code(exc: BaseException) -> str | None:
    if isinstance(exc, SlackApiError) and isinstance(exc.response.data, dict):
        return str(exc.response.data.get("error"))
    return None


def _attempt() -> int:
    try:
        return activity.info().attempt
    except RuntimeError:  # called outside an activity (tests of the adapter)
        return 1


# True while an activity runs whose previous attempt ran in this process: then the adapter's memory
# says exactly what was posted, and only posts whose outcome was unknown need a history check.
_PREVIOUS_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("previous_attempt_here", default=False)


class _Memo(OrderedDict[str, Any]):
    """A bounded map: what this process already did (LRU)."""

    def __init__(self, limit: int = 5000) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
        return value


class SlackChat:
    """The Slack adapter used by the chat activities (one per worker)."""

    def __init__(self, client: AsyncWebClient, settings: Settings,
                 config: Callable[[], IncidentflowConfig] = IncidentflowConfig) -> None:
        self.client = client
        self.settings = settings
        self.config = config
        self.announce_channel = settings.slack_incidents_channel.lstrip("#")
        self._identity: dict[str, str] | None = None
        self._users = _Memo()  # person → Slack user id ("" when unknown)
        self._posted = _Memo()  # dedup key → ts
        self._not_posted = _Memo()  # dedup keys Slack definitely did not post (it answered with an error)
        self._uncertain = _Memo()  # dedup keys whose post got no answer (timeout): maybe posted
        self._attempts = _Memo()  # (workflow run, activity id) → last attempt seen here
        self._done = _Memo()  # step keys done in this process
        self._channels = _Memo()  # channel name → id

    @classmethod
    def from_settings(cls, settings: Settings, config: Callable[[], IncidentflowConfig]) -> SlackChat:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        client = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=10, retry_handlers=[])
        return cls(client, settings, config)

    # ------------------------------------------------------------------ plumbing
    def note_attempt(self) -> None:
        """Remember this activity attempt; say whether the previous one ran in this process."""
        info = activity.info()
        key = f"{info.workflow_run_id}:{info.activity_id}"
        previous = self._attempts.get(key)
        _PREVIOUS_HERE.set(previous is not None and previous == info.attempt - 1)
        self._attempts.remember(key, info.attempt)

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Web API call through the real client; errors classified for Temporal's retry policy."""
        fn = getattr(self.client, method.replace(".", "_"))
        try:
            response = await fn(**kwargs)
        except SlackApiError as exc:
            raise slack_error(method, exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApplicationError(f"Slack {method} could not be reached: {type(exc).__name__}",
                                   type=UNAVAILABLE) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def identity(self) -> dict[str, str]:
        if self._identity is None:
            data = await self.call("auth.test")
            self._identity = {"user_id": str(data.get("user_id", "")), "url": str(data.get("url", ""))}
        return self._identity

    async def channel_url(self, channel_id: str) -> str | None:
        base = (await self.identity()).get("url")
        return f"{base.rstrip('/')}/archives/{channel_id}" if base else None

    async def slack_user(self, person: str | None) -> str | None:
        """A person (config id/name, or a raw Slack user id) → Slack user id, when one is known."""
        if not person:
            return None
        if person in self._users:
            return self._users[person] or None
        found: str | None = None
        cfg = self.config().person(person)
        if cfg is not None and cfg.slack:
            found = cfg.slack
        elif cfg is not None and cfg.email:
            try:
                data = await self.call("users.lookupByEmail", email=cfg.email)
                found = str(data.get("user", {}).get("id") or "") or None
            except ApplicationError as exc:
                if exc.non_retryable and (exc.details and exc.details[0].get("error") == "users_not_found"):
                    found = None
                else:
                    raise
        elif _USER_ID.match(person):
            found = person
        self._users.remember(person, found or "")
        return found

    async def mentions(self, people: list[str | None]) -> render.Mention:
        ids = {p: await self.slack_user(p) for p in dict.fromkeys(p for p in people if p)}
        return lambda p: f"<@{ids[p]}>" if ids.get(p) else p

    async def channel_id(self, name_or_id: str) -> str:
        if _CHANNEL_ID.match(name_or_id):
            return name_or_id
        if name_or_id in self._channels:
            return str(self._channels[name_or_id])
        found = await self.find_channel(name_or_id)
        if found is None:
            raise ApplicationError(f"Slack channel #{name_or_id} not found", {"error": "channel_not_found",
                                                                             "fatal": True},
                                   type=SLACK_REJECTED, non_retryable=True)
        return str(self._channels.remember(name_or_id, found["id"]))

    async def find_channel(self, name: str) -> dict[str, Any] | None:
        cursor = None
        for _ in range(100):
            data = await self.call("conversations.list", types="public_channel,private_channel", limit=1000,
                                   exclude_archived=False, **({"cursor": cursor} if cursor else {}))
            for ch in data.get("channels", []):
                if ch.get("name") == name:
                    return dict(ch)
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def post_once(self, channel: str, dedup: str, text: str, blocks: list[dict[str, Any]] | None,
                        join: bool = False) -> str:
        """chat.postMessage exactly once per dedup key (see the module docstring)."""
        if dedup in self._posted:
            return str(self._posted[dedup])
        maybe_posted = not _PREVIOUS_HERE.get() or dedup in self._uncertain
        if _attempt() > 1 and maybe_posted and dedup not in self._not_posted:
            ts = await self.find_posted(channel, dedup)
            if ts:
                return str(self._posted.remember(dedup, ts))
        kwargs: dict[str, Any] = {"channel": channel, "text": text[:39000], "unfurl_links": False,
                                  "metadata": {"event_type": METADATA_EVENT, "event_payload": {"dedup_key": dedup}}}
        if blocks:
            kwargs["blocks"] = blocks
        try:
            data = await self._post(kwargs)
        except SlackApiError as exc:
            self._not_posted.remember(dedup, True)  # Slack answered: nothing was posted
            if join and _error_code(exc) == "not_in_channel":
                await self.call("conversations.join", channel=channel)
                try:
                    data = await self._post(kwargs)
                except SlackApiError as again:
                    raise slack_error("chat.postMessage", again) from None
            else:
                raise slack_error("chat.postMessage", exc) from None
        self._not_posted.pop(dedup, None)
        self._uncertain.pop(dedup, None)
        return str(self._posted.remember(dedup, str(data["ts"])))

    async def _post(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.chat_postMessage(**kwargs)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._uncertain.remember(kwargs["metadata"]["event_payload"]["dedup_key"], True)
            raise ApplicationError(f"Slack chat.postMessage could not be reached: {type(exc).__name__}",
                                   type=UNAVAILABLE) from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def find_posted(self, channel: str, dedup: str) -> str | None:
        """The ts of a message we posted with this dedup key (recent history, newest first)."""
        cursor = None
        for _ in range(5):
            try:
                data = await self.call("conversations.history", channel=channel, limit=200,
                                       include_all_metadata=True, **({"cursor": cursor} if cursor else {}))
            except ApplicationError as exc:
                if exc.details and exc.details[0].get("error") == "not_in_channel":
                    return None  # not a member: we cannot have posted there
                raise
            for message in data.get("messages", []):
                meta = message.get("metadata") or {}
                if (meta.get("event_type") == METADATA_EVENT
                        and (meta.get("event_payload") or {}).get("dedup_key") == dedup):
                    return str(message["ts"])
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor or not data.get("has_more"):
                return None
        return None

    async def once(self, key: str, step: Callable[[], Any]) -> Any:
        """Run a repeat-safe step once per process (retries after a rate limit skip it)."""
        if key in self._done:
            return self._done[key]
        result = await step()
        return self._done.remember(key, result if result is not None else True)

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
                return dict(response.data["channel"])  # type: ignore[index,call-overload]
            except SlackApiError as exc:
                if _error_code(exc) != "name_taken":
                    raise slack_error("conversations.create", exc) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApplicationError(f"Slack conversations.create could not be reached: {type(exc).__name__}",
                                       type=UNAVAILABLE) from None
            existing = await self.find_channel(name)
            if existing is not None and self._is_ours(existing, s.incident_id, bot_user):
                if not existing.get("is_member"):
                    await self.call("conversations.join", channel=existing["id"])
                log.info("reusing channel #%s for %s", name, s.incident_id)
                return existing
        raise ApplicationError(f"no free Slack channel name for {s.incident_id} (tried 20)",
                               {"error": "name_taken", "fatal": True}, type=SLACK_REJECTED, non_retryable=True)

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
            if _error_code(exc) != "already_pinned":
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
            code = (exc.details[0] if exc.details else {}).get("error")
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
            raise not_configured(f"{request.target} has no Slack user: set `slack:` (user id) or `email:` for "
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
