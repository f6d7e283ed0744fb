"""The plumbing under the Slack adapter: Web API calls, people and channels, and posting exactly once.

Idempotency (a retried activity or a restarted worker never posts twice):
- every message carries Slack message metadata `{"event_type": "incidentflow_post",
  "event_payload": {"dedup_key": …}}`. A retry attempt that cannot know whether the previous attempt
  posted (the worker died, or the request timed out) looks for that key in the channel history first;
- within one worker process each step remembers that it is done, so retries after a rate limit go on
  from where they stopped instead of starting over.

Errors are classified by activities/errors.py (`slack_error`): HTTP 429 retries after Retry-After (as
the activity's next retry delay, not a sleep here); `channel_not_found`, `invalid_auth` and other
permanent errors are non-retryable. The bot token stays in this adapter.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import errors
from activities.metrics import recorder
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings

METADATA_EVENT = "incidentflow_post"
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_V = TypeVar("_V")
_R = TypeVar("_R")


def slack_error(method: str, exc: SlackApiError) -> ApplicationError:
    """Slack's answer (status, error code, Retry-After) classified by activities/errors.py."""
    response = exc.response
    status = int(getattr(response, "status_code", 200))
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    code = str(data.get("error") or f"http_{status}")
    retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
    return errors.slack_error(method, status, code, retry_after)


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, SlackApiError) and isinstance(exc.response.data, dict):
        return str(exc.response.data.get("error"))
    return None


def failure_outcome(exc: SlackApiError) -> str:
    """A failed call's metric outcome: Slack's error code (`ratelimited`, `channel_not_found` …), else http_<status>."""
    data = exc.response.data if isinstance(getattr(exc.response, "data", None), dict) else {}
    return str(data.get("error") or f"http_{getattr(exc.response, 'status_code', 200)}")[:40]


def data_of(response: AsyncSlackResponse) -> dict[str, Any]:
    return dict(response.data) if isinstance(response.data, dict) else {}


def _attempt() -> int:
    try:
        return activity.info().attempt
    except RuntimeError:  # called outside an activity (tests of the adapter)
        return 1


def activity_scope() -> str:
    """This activity's id (the same for all its attempts), to scope what `once` remembers to its retries;
    "" outside an activity."""
    try:
        info = activity.info()
    except RuntimeError:
        return ""
    return f"{info.workflow_run_id}:{info.activity_id}:"


# True while an activity runs whose earlier attempts ALL ran in this process: then the adapter's memory
# says exactly what was posted, and only posts whose outcome was unknown need a history check.
_EARLIER_ALL_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("earlier_attempts_all_here", default=False)


_SESSION: contextvars.ContextVar[aiohttp.ClientSession | None] = contextvars.ContextVar("slack_session", default=None)


RATE_LIMIT_RETRIES = 2  # a call answered 429 is made again this many times, after Slack's Retry-After …
RATE_LIMIT_WAIT_CAP = 5.0  # … when that is at most this many seconds; else Temporal's retry waits (VendorRateLimited)


class ShortRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """Slack's advice for HTTP 429: wait `Retry-After`, then make the same call again (a 429 was not applied).
    Done per call, not per activity: an activity of several calls (a sync: updates, posts, an invite) otherwise
    starts over on every 429, and under a steady limit can fail the same way for ever. Longer waits are left to
    Temporal's retry, so an activity never sleeps past its timeout."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=RATE_LIMIT_RETRIES)

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        value = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        if isinstance(value, list):
            value = value[0] if value else None
        try:
            again = float(value) <= RATE_LIMIT_WAIT_CAP if value is not None else True
        except (TypeError, ValueError):
            again = False
        if again:  # the answer the metrics would not see otherwise (the call's outcome is its last answer's)
            recorder().slack_call(request.url.rstrip("/").rsplit("/", 1)[-1], "ratelimited")
        return again


class ScopedWebClient(AsyncWebClient):
    """The Slack Web API client whose HTTP session (its connection pool) belongs to the operation in progress:
    `SlackApi.connection()` opens one for an activity's calls and closes it at its end, so an activity's
    several calls share one TLS connection to slack.com (keep-alive) instead of opening one each, as the SDK
    does without a session. Concurrent activities each have their own (a context variable); outside a scope
    the SDK opens one per call, as before."""

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return _SESSION.get()

    @session.setter
    def session(self, value: aiohttp.ClientSession | None) -> None:
        if value is not None:
            raise ValueError("ScopedWebClient takes its session from SlackApi.connection(), not from its caller")


class Memo(OrderedDict[str, _V]):
    """A bounded map: what this process already did (LRU)."""

    def __init__(self, limit: int = 5000) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: str, value: _V) -> _V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
        return value


class SlackApi:
    """One bot token's view of Slack, with the memory that makes retries safe (one per worker)."""

    def __init__(self, client: AsyncWebClient, settings: Settings,
                 config: Callable[[], IncidentflowConfig] = IncidentflowConfig) -> None:
        self.client = client
        self.settings = settings
        self.config = config
        self._identity: dict[str, str] | None = None
        self._users: Memo[str] = Memo()  # person → Slack user id ("" when unknown)
        self._posted: Memo[str] = Memo()  # dedup key → ts
        self._not_posted: Memo[bool] = Memo()  # dedup keys Slack definitely did not post (it answered an error)
        self._uncertain: Memo[bool] = Memo()  # dedup keys whose post got no answer (timeout): maybe posted
        self._attempts: Memo[tuple[int, int]] = Memo()  # (run, activity id) → (first, last) attempt here
        self._done: Memo[object] = Memo()  # step key → its result, for steps done in this process
        self._channels: Memo[str] = Memo()  # channel name → id

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[None]:
        """One HTTP session (kept-alive connections) for the calls made inside, closed at its end. Nested scopes
        share the outer one; a client other than ScopedWebClient (tests pass the SDK's own) is left as it is."""
        if not isinstance(self.client, ScopedWebClient) or _SESSION.get() is not None:
            yield
            return
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.client.timeout))
        token = _SESSION.set(session)
        try:
            yield
        finally:
            _SESSION.reset(token)
            await session.close()

    def note_attempt(self) -> None:
        """Remember this activity attempt; say whether EVERY earlier one ran in this process. Only then are
        this process's records of what was posted complete: an attempt that ran in a killed worker may have
        posted before it died, even when the last attempt (say a 429 on chat.update) ran here."""
        info = activity.info()
        key = f"{info.workflow_run_id}:{info.activity_id}"
        first, last = self._attempts.get(key) or (info.attempt, info.attempt - 1)
        _EARLIER_ALL_HERE.set(first == 1 and last == info.attempt - 1)
        self._attempts.remember(key, (first, info.attempt))

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Web API call through the real client; errors classified for Temporal's retry policy."""
        fn: Callable[..., Awaitable[AsyncSlackResponse]] = getattr(self.client, method.replace(".", "_"))
        try:
            response = await fn(**kwargs)
        except SlackApiError as exc:
            recorder().slack_call(method, failure_outcome(exc))
            raise slack_error(method, exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            recorder().slack_call(method, "unreachable")
            raise errors.slack_unreachable(method, exc) from None
        recorder().slack_call(method, "ok")
        return data_of(response)

    async def identity(self) -> dict[str, str]:
        if self._identity is None:
            data = await self.call("auth.test")
            self._identity = {"user_id": str(data.get("user_id", "")), "url": str(data.get("url", ""))}
        return self._identity

    async def channel_url(self, channel_id: str) -> str | None:
        base = (await self.identity()).get("url")
        return f"{base.rstrip('/')}/archives/{channel_id}" if base else None

    async def _lookup_email(self, email: str) -> str | None:
        try:
            data = await self.call("users.lookupByEmail", email=email)
        except ApplicationError as exc:
            if exc.non_retryable and errors.error_code(exc) == "users_not_found":
                return None
            raise
        return str(data.get("user", {}).get("id") or "") or None

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
            found = await self._lookup_email(cfg.email)
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
            return self._channels[name_or_id]
        found = await self.find_channel(name_or_id)
        if found is None:
            raise errors.slack_rejected(f"Slack channel #{name_or_id} not found", "channel_not_found", fatal=True)
        return self._channels.remember(name_or_id, str(found["id"]))

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
            return self._posted[dedup]
        maybe_posted = not _EARLIER_ALL_HERE.get() or dedup in self._uncertain
        if _attempt() > 1 and maybe_posted and dedup not in self._not_posted:
            ts = await self.find_posted(channel, dedup)
            if ts:
                return self._posted.remember(dedup, ts)
        kwargs: dict[str, Any] = {"channel": channel, "text": text[:39000], "unfurl_links": False,
                                  "metadata": {"event_type": METADATA_EVENT, "event_payload": {"dedup_key": dedup}}}
        if blocks:
            kwargs["blocks"] = blocks
        try:
            data = await self._post(kwargs)
        except SlackApiError as exc:
            self._not_posted.remember(dedup, True)  # Slack answered: nothing was posted
            if not (join and error_code(exc) == "not_in_channel"):
                raise slack_error("chat.postMessage", exc) from None
            await self.call("conversations.join", channel=channel)
            try:
                data = await self._post(kwargs)
            except SlackApiError as again:
                raise slack_error("chat.postMessage", again) from None
        self._not_posted.pop(dedup, None)
        self._uncertain.pop(dedup, None)
        return self._posted.remember(dedup, str(data["ts"]))

    async def _post(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            recorder().slack_call("chat.postMessage", failure_outcome(exc))
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            recorder().slack_call("chat.postMessage", "unreachable")
            self._uncertain.remember(kwargs["metadata"]["event_payload"]["dedup_key"], True)
            raise errors.slack_unreachable("chat.postMessage", exc) from None
        except asyncio.CancelledError:  # cut off (a step beside it failed, or the activity): maybe posted
            self._uncertain.remember(kwargs["metadata"]["event_payload"]["dedup_key"], True)
            raise
        recorder().slack_call("chat.postMessage", "ok")
        return data_of(response)

    async def find_posted(self, channel: str, dedup: str) -> str | None:
        """The ts of a message we posted with this dedup key (recent history, newest first)."""
        cursor = None
        for _ in range(5):
            try:
                data = await self.call("conversations.history", channel=channel, limit=200,
                                       include_all_metadata=True, **({"cursor": cursor} if cursor else {}))
            except ApplicationError as exc:
                if errors.error_code(exc) == "not_in_channel":
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

    async def once(self, key: str, step: Callable[[], Awaitable[_R]]) -> _R:
        """Run a repeat-safe step once per process (retries after a rate limit skip it)."""
        if key in self._done:
            return cast(_R, self._done[key])
        result = await step()
        self._done.remember(key, result)
        return result
