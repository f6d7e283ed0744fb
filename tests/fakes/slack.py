"""A fake Slack Web API: real HTTP on a loopback port, so the real `slack_sdk` clients run against it.

A stdlib `ThreadingHTTPServer` in a daemon thread serves `/api/<method>` like slack.com does, so
`AsyncWebClient`, the sync `WebClient`, Temporal workers and plain HTTP clients in the same process
all reach it. State is guarded by one lock; every inspection method returns a deep copy.

    with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
        alice = slack.add_user(name="alice", email="alice@example.com")
        await client.conversations_create(name="inc-42")
        slack.rate_limit_every(3, retry_after=1)      # every 3rd call: HTTP 429 + Retry-After
        ...
        assert slack.channel_by_name("inc-42").members == [slack.bot_user_id, alice]
        assert [m.text for m in slack.messages("inc-42")] == ["Incident declared"]

Wire protocol, as slack.com: requests come as GET with a query string or POST with a form-urlencoded,
multipart or JSON body (all merged, the body winning); `blocks`, `attachments`, `metadata` and `view`
sent as JSON strings in forms are decoded. The token comes as `Authorization: Bearer <token>` (or a
`token` parameter). Answers are `{"ok": true, ...}` or `{"ok": false, "error": "..."}` with HTTP 200
and `Content-Type: application/json; charset=utf-8`; only injected faults use other statuses (429
with `Retry-After`). A faulted call has no side effect.

The workspace: team T0001 "acme" (https://acme.slack.com/), a bot user `bot_user_id` (UBOT0001,
bot_id B0001, app A0001) and a public channel "incidents" the bot is not in (unless
`bot_in_incidents=True`). Methods served: auth.test, apps.connections.open (app-level `xapp-` token
only; bot methods refuse it with `not_allowed_token_type`), conversations.{create, list, info, join,
setTopic, setPurpose, invite, members, archive, history, replies}, chat.{postMessage, update,
postEphemeral, getPermalink}, pins.{add, remove, list}, users.{info, lookupByEmail} and views.open.
Anything else answers `unknown_method`.

Set-up helpers (no HTTP): add_user, add_channel, add_message, archive_channel, remove_channel,
revoke_token, new_trigger_id, new_response_url. Faults: rate_limit_every, fail_next, clear_faults.
Inspection: calls, calls_to, requests, users, channels, channel_by_name, members, messages, message,
edits, pins, ephemerals, views, responses, wait_for_response(_async).

Deliberate simplifications: the bot must be a member to read history/replies, post, pin, set the
topic/purpose, invite or archive (real Slack lets a bot with channels:history read public history);
`conversations.invite` invites the users not yet in the channel and answers `already_in_channel` only
when every listed user is already a member; trigger ids never expire by time (only by reuse); DMs,
mpims, files and `views.update/push` are not modelled; response_url use is not capped at five.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.threaded import ThreadedServer

API_PREFIX = "/api/"
RESPONSES_PREFIX = "/responses/"
TEAM_ID = "T0001"
TEAM_NAME = "Acme"
TEAM_DOMAIN = "acme"
TEAM_URL = f"https://{TEAM_DOMAIN}.slack.com/"
BOT_USER_ID = "UBOT0001"
BOT_ID = "B0001"
APP_ID = "A0001"
MAX_NAME_LENGTH = 80
MAX_TOPIC_LENGTH = 250
MAX_TEXT_LENGTH = 40_000
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
APP_LEVEL_METHODS = frozenset({"apps.connections.open"})

_JSON_FIELDS = ("blocks", "attachments", "metadata", "view")
_NAME_CHARS = re.compile(r"[a-z0-9_-]+")
_ID_CHARS = string.ascii_uppercase + string.digits
_Result = dict[str, Any]


class SlackError(Exception):
    """Raised by a method handler: the call answers `{"ok": false, "error": error, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class RecordedCall(NamedTuple):
    """One /api/ call: params merged from query and body (token removed), the HTTP status answered,
    and the Slack error (None when ok)."""

    method: str
    params: dict[str, Any]
    status: int
    error: str | None


@dataclass
class RecordedRequest:
    method: str  # HTTP verb
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class SlackUser:
    id: str
    name: str
    real_name: str
    email: str | None
    display_name: str = ""
    is_bot: bool = False
    deleted: bool = False

    def to_api(self) -> dict[str, Any]:
        profile: dict[str, Any] = {"real_name": self.real_name, "display_name": self.display_name,
                                   "real_name_normalized": self.real_name,
                                   "display_name_normalized": self.display_name, "team": TEAM_ID}
        if self.email:
            profile["email"] = self.email
        if self.is_bot:
            profile["bot_id"] = BOT_ID
        return {"id": self.id, "team_id": TEAM_ID, "name": self.name, "real_name": self.real_name,
                "deleted": self.deleted, "is_bot": self.is_bot, "is_app_user": False, "is_admin": False,
                "is_owner": False, "tz": "UTC", "tz_offset": 0, "profile": profile}


@dataclass
class SlackChannel:
    id: str
    name: str
    creator: str
    created: int
    is_private: bool = False
    is_archived: bool = False
    members: list[str] = field(default_factory=list)  # user ids, in join order
    topic: dict[str, Any] = field(default_factory=lambda: {"value": "", "creator": "", "last_set": 0})
    purpose: dict[str, Any] = field(default_factory=lambda: {"value": "", "creator": "", "last_set": 0})
    pins: list[str] = field(default_factory=list)  # message ts, in pin order

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "is_channel": True, "is_group": False, "is_im": False,
                "is_mpim": False, "is_private": self.is_private, "created": self.created,
                "creator": self.creator, "is_archived": self.is_archived, "is_general": False,
                "unlinked": 0, "name_normalized": self.name, "is_shared": False, "is_org_shared": False,
                "is_ext_shared": False, "is_pending_ext_shared": False, "context_team_id": TEAM_ID,
                "parent_conversation": None, "is_member": BOT_USER_ID in self.members,
                "topic": dict(self.topic), "purpose": dict(self.purpose), "previous_names": [],
                "num_members": len(self.members)}


@dataclass
class MessageVersion:
    text: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    at: float = field(default_factory=time.time)


@dataclass
class SlackMessage:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None  # {"event_type": ..., "event_payload": {...}}
    attachments: list[Any] | None = None
    bot_id: str | None = None  # set for messages the bot posted
    thread_ts: str | None = None  # parent ts, for replies (and for parents that have replies)
    reply_broadcast: bool = False
    params: dict[str, Any] = field(default_factory=dict)  # the chat.postMessage params as received
    versions: list[MessageVersion] = field(default_factory=list)  # original first, current last
    edited_ts: str | None = None
    replies: list[str] = field(default_factory=list)  # ts of the thread's replies
    pinned: bool = False

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self, include_metadata: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts,
                               "team": TEAM_ID}
        if self.bot_id:
            out.update(bot_id=self.bot_id, app_id=APP_ID)
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments:
            out["attachments"] = self.attachments
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.replies:
            out.update(reply_count=len(self.replies), latest_reply=self.replies[-1])
        if self.edited_ts:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        if self.pinned:
            out["pinned_to"] = [self.channel]
        return copy.deepcopy(out)


@dataclass
class EphemeralMessage:
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    ts: str
    params: dict[str, Any]


@dataclass
class OpenedView:
    trigger_id: str
    user: str | None  # as given to new_trigger_id
    view: dict[str, Any]  # as answered by views.open (with id, hash, ...)


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int | None
    method: str | None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs under concurrent clients: 1 s retransmits


class FakeSlack(ThreadedServer):
    """The Slack Web API on `base_url` ("http://127.0.0.1:PORT/api/"), plus response_url receivers."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, bot_tokens: Sequence[str] | None = None,
                 app_token: str | None = None, bot_in_incidents: bool = False,
                 bot_name: str = "incidentflow") -> None:
        self.bot_tokens: tuple[str, ...] = tuple(bot_tokens) if bot_tokens else (_token("xoxb"),)
        self.app_token = app_token or _token("xapp-1-" + APP_ID)
        self.bot_user_id = BOT_USER_ID
        self.bot_id = BOT_ID
        self.app_id = APP_ID
        self.team_id = TEAM_ID
        self.team_domain = TEAM_DOMAIN
        self.socket_url = "wss://invalid.example/"  # what apps.connections.open answers
        self.connections = 0  # TCP connections accepted (a kept-alive client makes many calls on one)
        self.requests: list[RecordedRequest] = []
        self._calls: list[RecordedCall] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._users: dict[str, SlackUser] = {}
        self._channels: dict[str, SlackChannel] = {}
        self._messages: dict[str, list[SlackMessage]] = {}  # by channel id, oldest first
        self._ephemerals: list[EphemeralMessage] = []
        self._views: list[OpenedView] = []
        self._triggers: dict[str, str | None] = {}  # unused trigger id -> user
        self._used_triggers: set[str] = set()
        self._responses: dict[str, list[Any]] = {}
        self._revoked: set[str] = set()
        self._fail_next: list[_Fault] = []
        self._every: tuple[int, _Fault] | None = None
        self._every_seen = 0
        self._last_ts_us = 0
        self._methods: dict[str, Callable[[dict[str, Any]], _Result]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "conversations.create": self._conversations_create,
            "conversations.open": self._conversations_open,
            "conversations.list": self._conversations_list,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.setPurpose": self._conversations_set_purpose,
            "conversations.invite": self._conversations_invite,
            "conversations.members": self._conversations_members,
            "conversations.archive": self._conversations_archive,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "pins.add": self._pins_add,
            "pins.remove": self._pins_remove,
            "pins.list": self._pins_list,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "views.open": self._views_open,
        }
        self._users[BOT_USER_ID] = SlackUser(BOT_USER_ID, bot_name, bot_name, None, bot_name, is_bot=True)
        self.incidents_channel_id = self.add_channel("incidents", bot_member=bot_in_incidents)
        self._httpd = _HTTPServer((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """For `WebClient(base_url=...)`: ends with "/" since slack_sdk appends the method name."""
        return self.root_url + API_PREFIX

    @property
    def bot_token(self) -> str:
        return self.bot_tokens[0]


    # -- set-up helpers (no HTTP, no faults) -----------------------------------------------------

    def add_user(self, id: str | None = None, name: str | None = None, email: str | None = None,
                 real_name: str | None = None, display_name: str | None = None) -> str:
        """A workspace member; the id is "U" + 8 characters unless given. Returns the id."""
        with self._lock:
            user_id = id or self._new_id("U", self._users)
            if user_id in self._users:
                raise ValueError(f"user {user_id} exists")
            name = name or user_id.lower()
            self._users[user_id] = SlackUser(user_id, name, real_name or name,
                                             email if email is not None else f"{name}@example.com",
                                             display_name if display_name is not None else name)
            return user_id

    def add_channel(self, name: str, members: Sequence[str] = (), bot_member: bool = False,
                    is_private: bool = False, creator: str | None = None) -> str:
        """A channel named by Slack's rules (ValueError otherwise); members must be known users."""
        with self._lock:
            error = self._name_error(name)
            if error:
                raise ValueError(f"{name!r}: {error}")
            unknown = [u for u in members if u not in self._users]
            if unknown:
                raise ValueError(f"unknown users {unknown}")
            ids = list(dict.fromkeys([*([BOT_USER_ID] if bot_member else []), *members]))
            return self._create_channel(name, creator or (members[0] if members else BOT_USER_ID),
                                        is_private, ids).id

    def add_message(self, channel: str, text: str, *, user: str, blocks: list[dict[str, Any]] | None = None,
                    metadata: dict[str, Any] | None = None, thread_ts: str | None = None) -> str:
        """A message posted by someone else (a human): no membership check. Returns its ts."""
        with self._lock:
            ch = self._lookup(channel)
            msg = self._store_message(ch, user=user, text=text, blocks=blocks, metadata=metadata,
                                      thread_ts=thread_ts, bot_id=None, params={})
            return msg.ts

    def archive_channel(self, channel: str) -> None:
        with self._lock:
            self._lookup(channel).is_archived = True

    def remove_channel(self, channel: str) -> None:
        """The channel is gone (deleted): every method answers `channel_not_found`."""
        with self._lock:
            ch = self._lookup(channel)
            del self._channels[ch.id]
            self._messages.pop(ch.id, None)

    def revoke_token(self, token: str | None = None) -> None:
        """Calls with the token (default: `bot_token`) answer `token_revoked`."""
        with self._lock:
            self._revoked.add(token or self.bot_token)

    def new_trigger_id(self, user: str | None = None) -> str:
        """A trigger id views.open accepts once (as if from an interaction by `user`)."""
        trigger = f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger] = user
        return trigger

    def new_response_url(self) -> str:
        """A response_url whose POSTed JSON bodies are recorded in `responses[<id>]`."""
        rid = secrets.token_hex(8)
        with self._lock:
            self._responses[rid] = []
        return f"{self.root_url}{RESPONSES_PREFIX}{rid}"

    # -- faults ----------------------------------------------------------------------------------

    def rate_limit_every(self, n: int, retry_after: int = 1, method: str | None = None) -> None:
        """From now on every n-th /api/ call (of `method`, or any) answers HTTP 429 `ratelimited`
        with `Retry-After`, unapplied. Counts from this call; n=0 turns it off."""
        with self._lock:
            self._every = (n, _Fault("ratelimited", 429, retry_after, method)) if n else None
            self._every_seen = 0

    def fail_next(self, count: int = 1, error: str = "ratelimited", status: int | None = None,
                  retry_after: int | None = None, method: str | None = None) -> None:
        """The next `count` /api/ calls (of `method`, or any) answer `{"ok": false, "error": error}`,
        unapplied. `status` defaults to 429 for "ratelimited", else 200; a 429 gets `Retry-After`
        (default 1), other statuses only when `retry_after` is given."""
        status = status if status is not None else (429 if error == "ratelimited" else 200)
        if retry_after is None and status == 429:
            retry_after = 1
        with self._lock:
            self._fail_next.extend(_Fault(error, status, retry_after, method) for _ in range(count))

    def clear_faults(self) -> None:
        with self._lock:
            self._fail_next.clear()
            self._every = None
            self._every_seen = 0

    # -- inspection (thread-safe copies) ---------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return copy.deepcopy(self._calls)

    @property
    def call_count(self) -> int:
        """How many /api/ calls were recorded (no copy: cheap enough to poll)."""
        with self._lock:
            return len(self._calls)

    def calls_to(self, method: str) -> list[RecordedCall]:
        with self._lock:
            return copy.deepcopy([c for c in self._calls if c.method == method])

    @property
    def users(self) -> dict[str, SlackUser]:
        with self._lock:
            return copy.deepcopy(self._users)

    @property
    def channels(self) -> dict[str, SlackChannel]:
        with self._lock:
            return copy.deepcopy(self._channels)

    def channel_by_name(self, name: str) -> SlackChannel | None:
        with self._lock:
            found = self._by_name(name)
            return copy.deepcopy(found)

    def members(self, channel: str) -> list[str]:
        with self._lock:
            return list(self._lookup(channel).members)

    def messages(self, channel: str) -> list[SlackMessage]:
        """Every message in the channel (id or name), thread replies included, oldest first."""
        with self._lock:
            return copy.deepcopy(self._messages[self._lookup(channel).id])

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        with self._lock:
            return copy.deepcopy(self._find_message(self._lookup(channel), ts))

    def edits(self, channel: str, ts: str) -> list[MessageVersion]:
        """The states chat.update set, in order (`versions` without the original)."""
        with self._lock:
            msg = self._find_message(self._lookup(channel), ts)
            if msg is None:
                raise KeyError(ts)
            return copy.deepcopy(msg.versions[1:])

    def pins(self, channel: str) -> list[str]:
        """ts of the pinned messages, in pin order."""
        with self._lock:
            return list(self._lookup(channel).pins)

    @property
    def ephemerals(self) -> list[EphemeralMessage]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def views(self) -> list[OpenedView]:
        with self._lock:
            return copy.deepcopy(self._views)

    @property
    def responses(self) -> dict[str, list[Any]]:
        with self._lock:
            return copy.deepcopy(self._responses)

    def wait_for_response(self, url_or_id: str, timeout: float = 10) -> list[Any]:
        """Blocks until the response_url got a POST; the bodies so far. TimeoutError otherwise.
        Blocking: from a coroutine whose loop does the posting use `wait_for_response_async`."""
        rid = url_or_id.rstrip("/").rsplit("/", 1)[-1]
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._responses.get(rid)), timeout):
                raise TimeoutError(f"no POST to response_url {rid} within {timeout}s")
            return copy.deepcopy(self._responses[rid])

    async def wait_for_response_async(self, url_or_id: str, timeout: float = 10) -> list[Any]:
        rid = url_or_id.rstrip("/").rsplit("/", 1)[-1]
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._responses.get(rid):
                    return copy.deepcopy(self._responses[rid])
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no POST to response_url {rid} within {timeout}s")
            await asyncio.sleep(0.01)

    # -- internals (called under the lock) -------------------------------------------------------

    def _new_id(self, prefix: str, taken: dict[str, Any]) -> str:
        while True:
            new = prefix + "".join(secrets.choice(_ID_CHARS) for _ in range(8))
            if new not in taken:
                return new

    def _next_ts(self) -> str:
        self._last_ts_us = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        return _format_ts(self._last_ts_us)

    def _by_name(self, name: str) -> SlackChannel | None:
        name = name.removeprefix("#").lower()
        return next((c for c in self._channels.values() if c.name.lower() == name), None)

    def _lookup(self, channel: str) -> SlackChannel:
        """By id or name, for the helpers: KeyError when unknown."""
        found = self._channels.get(channel) or self._by_name(channel)
        if found is None:
            raise KeyError(channel)
        return found

    def _name_error(self, name: str) -> str | None:
        if not name.strip():
            return "invalid_name_required"
        if len(name) > MAX_NAME_LENGTH:
            return "invalid_name_maxlength"
        if not _NAME_CHARS.fullmatch(name):
            return "invalid_name_specials"
        if not name.strip("-_"):
            return "invalid_name_punctuation"
        if self._by_name(name) is not None:  # archived channels keep their names
            return "name_taken"
        return None

    def _create_channel(self, name: str, creator: str, is_private: bool, members: list[str]) -> SlackChannel:
        ch = SlackChannel(self._new_id("C", self._channels), name, creator, int(time.time()),
                          is_private=is_private, members=members)
        self._channels[ch.id] = ch
        self._messages[ch.id] = []
        return ch

    def _find_message(self, ch: SlackChannel, ts: str | None) -> SlackMessage | None:
        return next((m for m in self._messages.get(ch.id, []) if m.ts == ts), None)

    def _store_message(self, ch: SlackChannel, *, user: str, text: str, blocks: list[dict[str, Any]] | None,
                       metadata: dict[str, Any] | None, thread_ts: str | None, bot_id: str | None,
                       params: dict[str, Any], attachments: list[Any] | None = None,
                       reply_broadcast: bool = False) -> SlackMessage:
        parent = self._find_message(ch, thread_ts) if thread_ts else None
        if parent is not None and parent.is_reply:
            parent = self._find_message(ch, parent.thread_ts)
        ts = self._next_ts()
        msg = SlackMessage(ch.id, ts, user, text, copy.deepcopy(blocks), copy.deepcopy(metadata),
                           copy.deepcopy(attachments), bot_id,
                           parent.ts if parent is not None else thread_ts, reply_broadcast,
                           copy.deepcopy(params),
                           [MessageVersion(text, copy.deepcopy(blocks), copy.deepcopy(metadata))])
        if parent is not None:
            parent.thread_ts = parent.ts
            parent.replies.append(ts)
        self._messages[ch.id].append(msg)
        return msg

    # -- HTTP ------------------------------------------------------------------------------------

    def _answer_api(self, verb: str, path: str, headers: dict[str, str], raw: bytes,
                    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = urlsplit(path)
        method = url.path[len(API_PREFIX):]
        extra_headers: dict[str, str] = {}
        with self._lock:
            params: dict[str, Any] = {}
            fault = self._take_fault(method)
            try:
                if fault is not None:
                    params = _parse_params(url.query, headers, raw, strict=False)
                    params.pop("token", None)
                    raise SlackError(fault.error)
                params = _parse_params(url.query, headers, raw)
                token = _bearer(headers) or params.get("token")
                params.pop("token", None)
                if method not in self._methods:
                    raise SlackError("unknown_method", req_method=method)
                self._authenticate(method, token)
                body = {"ok": True, **self._methods[method](params)}
                status = 200
            except SlackError as e:
                body = {"ok": False, "error": e.error, **e.extra}
                status = 200
                if fault is not None:
                    status = fault.status
                    if fault.retry_after is not None:
                        extra_headers["Retry-After"] = str(fault.retry_after)
            self._calls.append(RecordedCall(method, copy.deepcopy(params), status,
                                            None if body["ok"] else body["error"]))
            self.requests.append(RecordedRequest(verb, path, headers, raw, status))
            self._changed.notify_all()
        return status, body, extra_headers

    def _answer_response_url(self, verb: str, path: str, headers: dict[str, str], raw: bytes,
                             ) -> tuple[int, str]:
        rid = urlsplit(path).path[len(RESPONSES_PREFIX):].strip("/")
        with self._lock:
            if verb != "POST":
                status, text = 405, "method_not_allowed"
            elif rid not in self._responses:
                status, text = 404, "no_service"
            else:
                try:
                    self._responses[rid].append(json.loads(raw or b"null"))
                    status, text = 200, "ok"
                except ValueError:
                    status, text = 400, "invalid_payload"
            self.requests.append(RecordedRequest(verb, path, headers, raw, status))
            self._changed.notify_all()
        return status, text

    def _take_fault(self, method: str) -> _Fault | None:
        every: _Fault | None = None
        if self._every and self._every[1].method in (None, method):
            self._every_seen += 1
            if self._every_seen % self._every[0] == 0:
                every = self._every[1]
        for i, fault in enumerate(self._fail_next):
            if fault.method in (None, method):
                return self._fail_next.pop(i)
        return every

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        if token in self._revoked:
            raise SlackError("token_revoked")
        wanted, other = ((self.app_token,), self.bot_tokens) if method in APP_LEVEL_METHODS \
            else (self.bot_tokens, (self.app_token,))
        if token in wanted:
            return
        raise SlackError("not_allowed_token_type" if token in other else "invalid_auth")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:  # once per TCP connection (keep-alive serves several requests on one)
                super().setup()
                with server._lock:
                    server.connections += 1

            def _serve(self) -> None:
                raw = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = urlsplit(self.path).path
                extra: dict[str, str] = {}
                if path.startswith(API_PREFIX):
                    status, body, extra = server._answer_api(self.command, self.path, headers, raw)
                    data, ctype = json.dumps(body).encode(), JSON_CONTENT_TYPE
                elif path.startswith(RESPONSES_PREFIX):
                    status, text = server._answer_response_url(self.command, self.path, headers, raw)
                    data, ctype = text.encode(), "text/plain; charset=utf-8"
                else:
                    status, data, ctype = 404, b'{"ok": false, "error": "not_found"}', JSON_CONTENT_TYPE
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; `requests` and `calls` hold everything

        return Handler

    # -- argument helpers ------------------------------------------------------------------------

    def _channel(self, params: dict[str, Any], *, by_name: bool = False, member: bool = False,
                 active: bool = False) -> SlackChannel:
        """The `channel` param: an id (or, for chat.post*, a name); checks in Slack's order."""
        key = params.get("channel")
        ch = self._channels.get(key) if isinstance(key, str) else None
        if ch is None and by_name and isinstance(key, str) and key:
            ch = self._by_name(key)
        if ch is None:
            raise SlackError("channel_not_found")
        if active and ch.is_archived:
            raise SlackError("is_archived")
        if member and BOT_USER_ID not in ch.members:
            raise SlackError("not_in_channel")
        return ch

    def _user(self, user_id: Any) -> SlackUser:
        user = self._users.get(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise SlackError("user_not_found")
        return user

    def _content(self, params: dict[str, Any], max_blocks: int = MAX_MESSAGE_BLOCKS,
                 ) -> tuple[str | None, list[dict[str, Any]] | None]:
        text = params.get("text")
        blocks = params.get("blocks")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if blocks in ("", None):
            blocks = None
        elif not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        elif len(blocks) > max_blocks or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) and b["type"] for b in blocks):
            raise SlackError("invalid_blocks")
        if text is not None and len(text) > MAX_TEXT_LENGTH:
            raise SlackError("msg_too_long")
        return text, blocks

    # -- methods (called under the lock with the merged params; return the body without "ok") ----

    def _auth_test(self, params: dict[str, Any]) -> _Result:
        bot = self._users[BOT_USER_ID]
        return {"url": TEAM_URL, "team": TEAM_NAME, "user": bot.name, "team_id": TEAM_ID,
                "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _apps_connections_open(self, params: dict[str, Any]) -> _Result:
        return {"url": self.socket_url}

    def _conversations_create(self, params: dict[str, Any]) -> _Result:
        name = params.get("name")
        name = name if isinstance(name, str) else ""
        error = self._name_error(name)
        if error:
            raise SlackError(error)
        return {"channel": self._create_channel(name, BOT_USER_ID, _truthy(params.get("is_private")),
                                                [BOT_USER_ID]).to_api()}

    def _conversations_open(self, params: dict[str, Any]) -> _Result:
        """A direct message with one user (an IM `D…` the bot and the user share); the same one every time."""
        users = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("not_implemented")  # group DMs are not modelled
        self._user(users[0])
        if users[0] == BOT_USER_ID:
            raise SlackError("cannot_dm_bot")
        existing = next((c for c in self._channels.values() if c.id.startswith("D") and c.members == [
            BOT_USER_ID, users[0]]), None)
        if existing is None:
            existing = SlackChannel(self._new_id("D", self._channels), f"im-{users[0].lower()}", BOT_USER_ID,
                                    int(time.time()), is_private=True, members=[BOT_USER_ID, users[0]])
            self._channels[existing.id] = existing
            self._messages[existing.id] = []
        return {"channel": {"id": existing.id, "is_im": True, "user": users[0]}}

    def dm(self, user: str) -> list[SlackMessage]:
        """The messages the bot sent `user` directly (oldest first)."""
        with self._lock:
            ch = next((c for c in self._channels.values() if c.id.startswith("D") and user in c.members), None)
            return [] if ch is None else copy.deepcopy(self._messages.get(ch.id, []))

    def _conversations_list(self, params: dict[str, Any]) -> _Result:
        types = {t.strip() for t in str(params.get("types") or "public_channel").split(",")}
        if not types <= {"public_channel", "private_channel", "mpim", "im"}:
            raise SlackError("invalid_types")
        chans = [c for c in self._channels.values()
                 if (c.id.startswith("D") and "im" in types)
                 or (not c.id.startswith("D") and (
                     ("private_channel" in types and c.is_private and BOT_USER_ID in c.members)
                     or ("public_channel" in types and not c.is_private)))]
        if _truthy(params.get("exclude_archived")):
            chans = [c for c in chans if not c.is_archived]
        page, next_cursor = _page([c.id for c in chans], params, "channel", default=100, maximum=1000)
        return {"channels": [self._channels[i].to_api() for i in page],
                "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_info(self, params: dict[str, Any]) -> _Result:
        return {"channel": self._channel(params).to_api()}

    def _conversations_join(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params, active=True)
        if ch.is_private:
            raise SlackError("method_not_supported_for_channel_type")
        if BOT_USER_ID in ch.members:
            return {"channel": ch.to_api(), "warning": "already_in_channel",
                    "response_metadata": {"warnings": ["already_in_channel"]}}
        ch.members.append(BOT_USER_ID)
        return {"channel": ch.to_api()}

    def _set_text(self, params: dict[str, Any], attr: str) -> _Result:
        ch = self._channel(params, member=True, active=True)
        value = params.get(attr)
        value = "" if value is None else str(value)
        if len(value) > MAX_TOPIC_LENGTH:
            raise SlackError("too_long")
        setattr(ch, attr, {"value": value, "creator": BOT_USER_ID, "last_set": int(time.time())})
        return {"channel": ch.to_api()}

    def _conversations_set_topic(self, params: dict[str, Any]) -> _Result:
        return self._set_text(params, "topic")

    def _conversations_set_purpose(self, params: dict[str, Any]) -> _Result:
        return self._set_text(params, "purpose")

    def _conversations_invite(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params, active=True)
        if BOT_USER_ID not in ch.members:
            raise SlackError("not_in_channel")
        ids = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
        if not ids:
            raise SlackError("no_user")
        for user_id in ids:
            if user_id == BOT_USER_ID:
                raise SlackError("cant_invite_self")
            self._user(user_id)
        new = [u for u in dict.fromkeys(ids) if u not in ch.members]
        if not new:
            raise SlackError("already_in_channel")
        ch.members.extend(new)
        return {"channel": ch.to_api()}

    def _conversations_members(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params)
        page, next_cursor = _page(ch.members, params, "user", default=100, maximum=1000)
        return {"members": page, "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_archive(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params)
        if ch.is_archived:
            raise SlackError("already_archived")
        if BOT_USER_ID not in ch.members:
            raise SlackError("not_in_channel")
        ch.is_archived = True
        return {}

    def _conversations_history(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params, member=True)
        newest_first = [m for m in reversed(self._messages[ch.id]) if not m.is_reply or m.reply_broadcast]
        return self._message_page(newest_first, params, default=100)

    def _conversations_replies(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params, member=True)
        parent = self._find_message(ch, params.get("ts"))
        if parent is not None and parent.is_reply:
            parent = self._find_message(ch, parent.thread_ts)
        if parent is None:
            raise SlackError("thread_not_found")
        thread = [parent, *(m for r in parent.replies if (m := self._find_message(ch, r)) is not None)]
        return self._message_page(thread, params, default=1000, oldest_first=True)

    def _message_page(self, msgs: list[SlackMessage], params: dict[str, Any], default: int,
                      oldest_first: bool = False) -> _Result:
        inclusive = _truthy(params.get("inclusive"))
        try:
            oldest = _parse_ts(params["oldest"]) if params.get("oldest") else None
            latest = _parse_ts(params["latest"]) if params.get("latest") else None
        except ValueError:
            raise SlackError("invalid_ts_oldest" if params.get("oldest") else "invalid_ts_latest") from None
        if oldest is not None:
            msgs = [m for m in msgs if _parse_ts(m.ts) > oldest or inclusive and _parse_ts(m.ts) == oldest]
        if latest is not None:
            msgs = [m for m in msgs if _parse_ts(m.ts) < latest or inclusive and _parse_ts(m.ts) == latest]
        page, next_cursor = _page([m.ts for m in msgs], params, "next_ts", default=default, maximum=1000)
        by_ts = {m.ts: m for m in msgs}
        include_metadata = _truthy(params.get("include_all_metadata"))
        body: _Result = {"messages": [by_ts[ts].to_api(include_metadata) for ts in page],
                         "has_more": bool(next_cursor)}
        if not oldest_first:
            body["pin_count"] = sum(1 for m in msgs if m.pinned)
        body["response_metadata"] = {"next_cursor": next_cursor}
        return body

    def _chat_post_message(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params, by_name=True, active=True, member=True)
        text, blocks = self._content(params)
        attachments = params.get("attachments") or None
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        metadata = _metadata(params)
        thread_ts = params.get("thread_ts") or None
        if thread_ts is not None:
            try:
                _parse_ts(str(thread_ts))
            except ValueError:
                raise SlackError("invalid_thread_ts") from None
        msg = self._store_message(ch, user=BOT_USER_ID, text=text or "", blocks=blocks, metadata=metadata,
                                  thread_ts=thread_ts and str(thread_ts), bot_id=BOT_ID, params=params,
                                  attachments=attachments if isinstance(attachments, list) else None,
                                  reply_broadcast=_truthy(params.get("reply_broadcast")))
        return {"channel": ch.id, "ts": msg.ts, "message": msg.to_api()}

    def _chat_update(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params)
        msg = self._find_message(ch, params.get("ts"))
        if msg is None:
            raise SlackError("message_not_found")
        if msg.user != BOT_USER_ID:
            raise SlackError("cant_update_message")
        if ch.is_archived:
            raise SlackError("is_archived")
        text, blocks = self._content(params)
        if not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        metadata = _metadata(params)
        if text is not None:
            msg.text = text
        if blocks is not None:
            msg.blocks = copy.deepcopy(blocks)
        if metadata is not None:
            msg.metadata = copy.deepcopy(metadata)
        msg.versions.append(MessageVersion(msg.text, copy.deepcopy(msg.blocks), copy.deepcopy(msg.metadata)))
        msg.edited_ts = self._next_ts()
        return {"channel": ch.id, "ts": msg.ts, "text": msg.text, "message": msg.to_api()}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params, by_name=True, active=True, member=True)
        user = self._user(params.get("user"))
        if user.id not in ch.members:
            raise SlackError("user_not_in_channel")
        text, blocks = self._content(params)
        if not text and not blocks and not params.get("attachments"):
            raise SlackError("no_text")
        ts = self._next_ts()
        self._ephemerals.append(EphemeralMessage(ch.id, user.id, text or "", copy.deepcopy(blocks), ts,
                                                 copy.deepcopy(params)))
        return {"message_ts": ts}

    def _chat_get_permalink(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params)
        msg = self._find_message(ch, params.get("message_ts"))
        if msg is None:
            raise SlackError("message_not_found")
        link = f"{TEAM_URL}archives/{ch.id}/p{msg.ts.replace('.', '')}"
        if msg.is_reply:
            link += f"?thread_ts={msg.thread_ts}&cid={ch.id}"
        return {"channel": ch.id, "permalink": link}

    def _pinned_message(self, params: dict[str, Any]) -> tuple[SlackChannel, SlackMessage]:
        ch = self._channel(params, member=True, active=True)
        if not params.get("timestamp"):
            raise SlackError("no_item_specified")
        msg = self._find_message(ch, params["timestamp"])
        if msg is None:
            raise SlackError("message_not_found")
        return ch, msg

    def _pins_add(self, params: dict[str, Any]) -> _Result:
        ch, msg = self._pinned_message(params)
        if msg.pinned:
            raise SlackError("already_pinned")
        msg.pinned = True
        ch.pins.append(msg.ts)
        return {}

    def _pins_remove(self, params: dict[str, Any]) -> _Result:
        ch, msg = self._pinned_message(params)
        if not msg.pinned:
            raise SlackError("no_pin")
        msg.pinned = False
        ch.pins.remove(msg.ts)
        return {}

    def _pins_list(self, params: dict[str, Any]) -> _Result:
        ch = self._channel(params)
        items = []
        for ts in reversed(ch.pins):  # most recently pinned first
            msg = self._find_message(ch, ts)
            if msg is not None:
                items.append({"type": "message", "channel": ch.id, "created_by": BOT_USER_ID,
                              "message": {**msg.to_api(), "permalink":
                                          f"{TEAM_URL}archives/{ch.id}/p{ts.replace('.', '')}"}})
        return {"items": items}

    def _users_info(self, params: dict[str, Any]) -> _Result:
        return {"user": self._user(params.get("user")).to_api()}

    def _users_lookup_by_email(self, params: dict[str, Any]) -> _Result:
        email = str(params.get("email") or "").lower()
        user = next((u for u in self._users.values() if email and (u.email or "").lower() == email), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": user.to_api()}

    def _views_open(self, params: dict[str, Any]) -> _Result:
        trigger = params.get("trigger_id")
        if not isinstance(trigger, str) or not trigger:
            raise SlackError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("expired_trigger_id")
        if trigger not in self._triggers:
            raise SlackError("invalid_trigger_id")
        view = params.get("view")
        problem = _view_problem(view)
        if problem:
            raise SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {problem}"]})
        assert isinstance(view, dict)
        user = self._triggers.pop(trigger)
        self._used_triggers.add(trigger)
        view_id = self._new_id("V", {v.view["id"]: v for v in self._views})
        answered = {"type": "modal", "blocks": [], "private_metadata": "", "callback_id": "",
                    "external_id": "", "clear_on_close": False, "notify_on_close": False,
                    "close": None, "submit": None, "previous_view_id": None,
                    **copy.deepcopy(view),
                    "id": view_id, "team_id": TEAM_ID, "state": {"values": {}},
                    "hash": f"{int(time.time())}.{secrets.token_hex(4)}", "root_view_id": view_id,
                    "app_id": APP_ID, "app_installed_team_id": TEAM_ID, "bot_id": BOT_ID}
        self._views.append(OpenedView(trigger, user, answered))
        return {"view": copy.deepcopy(answered)}


# -- module helpers ------------------------------------------------------------------------------


def _token(prefix: str) -> str:
    return f"{prefix}-{secrets.randbelow(10**12)}-{secrets.token_hex(12)}"


def _format_ts(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _parse_ts(ts: str) -> int:
    """Slack ts ("1700000000.000100") to microseconds; ValueError when malformed."""
    seconds, _, fraction = str(ts).partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(ts)
    return int(seconds) * 1_000_000 + int(fraction[:6].ljust(6, "0") or 0)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def _parse_params(query: str, headers: dict[str, str], raw: bytes, strict: bool = True) -> dict[str, Any]:
    """Query string, then the body (form, multipart or JSON) on top; JSON-valued fields decoded.
    A body that is not a JSON object raises `invalid_json` (or is ignored when not `strict`)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    ctype = headers.get("content-type", "")
    mime = ctype.split(";")[0].strip().lower()
    if raw:
        if mime == "application/json":
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update(body)
            elif strict:
                raise SlackError("invalid_json")
        elif mime == "multipart/form-data":
            message = BytesParser(policy=policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    params[name] = payload if part.get_filename() else payload.decode("utf-8")
        else:
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                decoded = json.loads(value)
            except ValueError:
                continue
            if isinstance(decoded, list | dict):
                params[key] = decoded
    return params


def _page(items: Sequence[str], params: dict[str, Any], kind: str, default: int, maximum: int,
          ) -> tuple[list[str], str]:
    """Cursor pagination: the cursor names the first item of the next page (base64 "kind:item")."""
    try:
        limit = int(params.get("limit") or 0)
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None
    limit = min(limit if limit > 0 else default, maximum)
    start = 0
    cursor = params.get("cursor")
    if cursor:
        try:
            prefix, _, item = base64.b64decode(str(cursor), validate=True).decode().partition(":")
            start = list(items).index(item) if prefix == kind else -1
        except ValueError:
            start = -1
        if start < 0:
            raise SlackError("invalid_cursor")
    page = list(items[start:start + limit])
    more = start + limit < len(items)
    return page, base64.b64encode(f"{kind}:{items[start + limit]}".encode()).decode() if more else ""


def _metadata(params: dict[str, Any]) -> dict[str, Any] | None:
    metadata = params.get("metadata")
    if metadata in (None, ""):
        return None
    if not (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
            and metadata["event_type"] and isinstance(metadata.get("event_payload"), dict)):
        raise SlackError("invalid_metadata_format")
    return metadata


def _view_problem(view: Any) -> str | None:
    if not isinstance(view, dict):
        return "failed to match all allowed schemas [json-pointer:/view]"
    if view.get("type") != "modal":
        return "must be 'modal' [json-pointer:/view/type]"
    title = view.get("title")
    if not isinstance(title, dict) or not title.get("text"):
        return "missing required field: title [json-pointer:/view]"
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS or not all(
            isinstance(b, dict) and b.get("type") for b in blocks):
        return "invalid blocks [json-pointer:/view/blocks]"
    return None
