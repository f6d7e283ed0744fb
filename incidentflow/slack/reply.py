"""What the gateway answers, and how an answer reaches Slack in time, for HTTP and Socket Mode alike.

Slack wants an answer within 3 seconds: `within_budget` waits up to `ACK_BUDGET` for the reply; when
slower, the caller acks "Working on it…" and the reply follows through the request's `response_url`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from slack_sdk.errors import SlackApiError, SlackClientError

log = logging.getLogger("incidentflow.slack")
ACK_BUDGET = 2.5  # seconds; Slack gives up at 3
WORKING = {"response_type": "ephemeral", "text": "Working on it…"}
# What a Slack Web API call may raise: Slack's answer (SlackApiError), or no answer at all.
SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError, OSError)
_INTERNAL = ("incident_id", "modal")  # extras for our own callers, never sent to Slack


class Usage(Exception):
    """Bad arguments: the message says what was wrong; the usage line is added for the reply."""


@dataclass
class Reply:
    text: str
    public: bool = False
    blocks: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"response_type": "in_channel" if self.public else "ephemeral", "text": self.text}
        if self.blocks:
            out["blocks"] = self.blocks
        out.update(self.extra)
        return out

    def message(self) -> dict[str, Any]:
        """The body as Slack gets it (without our own extras)."""
        return {k: v for k, v in self.body().items() if k not in _INTERNAL}

    @property
    def opened_modal(self) -> bool:
        return bool(self.extra.get("modal")) and not self.text


@dataclass
class Caller:
    user_id: str
    user_name: str
    person: str | None  # config person id, when the Slack user maps to one
    request_key: str | None = None  # the Slack request's idempotency key: a replay of it is applied once
    unchecked: str = ""  # why Slack could not tell who this is (e.g. "users.info: ratelimited"); "" if it could

    def refusal(self, then: str) -> str:
        """Why a write is refused: the user is not a responder, or Slack could not say whether they are."""
        if self.unchecked:
            return (f"Could not check with Slack who <@{self.user_id}> is ({self.unchecked}), so nothing was "
                    "done: try again in a moment.")
        return f"<@{self.user_id}> is not in incidentflow's people{then}"

    @property
    def actor(self) -> str:
        return self.person or self.user_name or self.user_id


def first_word(text: str) -> tuple[str, str]:
    """The first word and the rest, both stripped; any whitespace (a newline, a tab) separates."""
    parts = text.strip().split(None, 1)
    return (parts[0], parts[1].strip()) if len(parts) == 2 else (parts[0] if parts else "", "")


def first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
    return str(exc)


def slack_error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return type(exc).__name__


async def post_response(url: str, reply: Reply, http: httpx.AsyncClient | None = None) -> None:
    """Deliver a reply through Slack's `response_url` (valid 30 minutes, up to 5 times)."""
    if not url or not reply.text:
        return
    body = {**reply.message(), "replace_original": False}
    try:
        if http is None:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(url, json=body)
        else:
            response = await http.post(url, json=body)
        if response.status_code >= 400:  # expired (30 min) or used up (5 replies): the user sees nothing
            log.warning("Slack refused a reply through response_url: HTTP %s", response.status_code)
    except httpx.HTTPError as exc:
        log.warning("could not deliver a Slack reply through response_url: %s", type(exc).__name__)


async def within_budget(state: Any, work: Awaitable[Reply], response_url: str,
                        budget: float | None = None) -> Reply | None:
    """The reply if ready within the budget; else None, and the reply follows via response_url.

    `state` keeps the follow-ups alive (`slack_pending`, a set) and may set `slack_ack_budget`."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=budget if budget is not None else
                                 getattr(state, "slack_ack_budget", ACK_BUDGET))
    if task in done:
        return task.result()
    pending: set[asyncio.Task[None]] = state.slack_pending

    async def follow() -> None:
        try:
            reply = await task
        except Exception as exc:  # noqa: BLE001 - tell the user rather than lose it
            log.exception("Slack command failed")
            reply = Reply(f"Failed: {type(exc).__name__}")
        await post_response(response_url, reply)
    later = asyncio.ensure_future(follow())
    pending.add(later)
    later.add_done_callback(pending.discard)
    return None
