"""Who and where: Slack users → config people, and incident channels → incidents."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from domain.config import IncidentflowConfig
from incidentflow.client import IncidentflowError, Incidents
from incidentflow.slack.reply import SLACK_ERRORS, Caller, Usage, slack_error

log = logging.getLogger("incidentflow.slack")

_CHANNEL_ID = re.compile(r"^[A-Z0-9]{2,32}$")  # Slack conversation ids (C…, G…, D…): safe to put in a query
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|([^>]*))?>$")
_PURPOSE_ID = re.compile(r"Incident (incident-[a-z0-9-]+) ")
_NOT_OURS = {"channel_not_found", "not_in_channel", "missing_scope", "method_not_supported_for_channel_type"}
LOOKUP_RETRIES = 2  # a rate-limited users.info is asked again this many times, after Slack's Retry-After
LOOKUP_WAIT_CAP = 3.0  # seconds: a longer Retry-After is not waited for (the user is told to try again)


class SlackDirectory:
    def __init__(self, incidents: Callable[[], Awaitable[Incidents]], config: Callable[[], IncidentflowConfig],
                 web: AsyncWebClient | None) -> None:
        self._incidents = incidents
        self._config = config
        self.web = web
        self._emails: dict[str, str] = {}  # Slack user id → email, as Slack answered (lookups that worked)
        self._channels: dict[str, str] = {}  # channel id → incident id

    async def caller(self, user_id: str, user_name: str = "") -> Caller:
        person, unchecked = await self._lookup(user_id)
        return Caller(user_id=user_id, user_name=user_name, person=person, unchecked=unchecked)

    async def person_for(self, user_id: str) -> str | None:
        """The config person for a Slack user: by `slack:` id, else by the email Slack has for them.

        The config is read on every call (it may be reloaded); only Slack's answers are cached, and a
        failed lookup is not, so a Slack hiccup never leaves a responder read-only until a restart.
        """
        return (await self._lookup(user_id))[0]

    async def _lookup(self, user_id: str) -> tuple[str | None, str]:
        """→ (config person or None, why Slack could not say: "" when it could)."""
        if not user_id:
            return None, ""
        cfg = self._config()
        found = next((p.id for p in cfg.people if p.slack == user_id), None)
        if found is None and any(p.email for p in cfg.people):
            email, unchecked = await self._email_of(user_id)
            if unchecked:
                return None, unchecked
            if email:
                found = next((p.id for p in cfg.people if p.email and p.email.lower() == email.lower()), None)
        return found, ""

    async def _email_of(self, user_id: str) -> tuple[str, str]:
        """→ (the email Slack has for the user, "" if none; why the lookup failed, "" if it worked).

        A rate-limited lookup is asked again after Slack's Retry-After (when short): the reply to a
        button or command may take seconds (it follows through response_url), a wrong refusal may not."""
        if user_id in self._emails:
            return self._emails[user_id], ""
        if self.web is None:
            return "", ""
        web = self.web
        info, failed = await _patiently(lambda: web.users_info(user=user_id))
        if info is None:
            log.warning("Slack users.info for %s failed: %s", user_id, failed)
            return "", f"users.info: {failed}"
        user = (info.data or {}).get("user") if isinstance(info.data, dict) else None
        profile = (user or {}).get("profile") or {}
        email = str(profile.get("email") or "")
        self._emails[user_id] = email
        return email, ""

    async def person_arg(self, text: str, caller: Caller) -> str:
        """`@user` (Slack escapes it as `<@U…|name>`), `me`, or a config person id/name."""
        if text.lower() in ("me", "myself"):
            return caller.actor
        m = _MENTION.match(text)
        if m:
            person = await self.person_for(m.group(1))
            return person or (m.group(2) or m.group(1))
        name = text.lstrip("@")
        known = self._config().person(name)
        return known.id if known else name

    async def incident_for_channel(self, channel_id: str) -> str | None:
        if not channel_id or not _CHANNEL_ID.match(channel_id):
            return None
        if channel_id in self._channels:
            return self._channels[channel_id]
        found: str | None = None
        incidents = await self._incidents()
        try:
            found = await incidents.find_by_channel(channel_id)
        except IncidentflowError as exc:  # visibility trouble: Slack may still know (the channel's purpose)
            log.warning("finding the incident of channel %s in visibility failed: %s", channel_id, exc)
        if found is None and self.web is not None:  # visibility lags a second behind: ask Slack
            found = await self._from_purpose(channel_id)
        if found:
            self._channels[channel_id] = found
        return found

    async def _from_purpose(self, channel_id: str) -> str | None:
        web = self.web
        assert web is not None
        info, failed = await _patiently(lambda: web.conversations_info(channel=channel_id))
        if info is None:
            log.warning("Slack conversations.info for %s failed: %s", channel_id, failed)
            if failed in _NOT_OURS:  # the bot cannot see the channel: it is none of ours
                return None
            raise Usage(f"Could not check with Slack which incident this channel belongs to (conversations.info: "
                        f"{failed}), so nothing was done: try again in a moment, or add the incident id.")
        data = info.data if isinstance(info.data, dict) else {}
        purpose = str(((data.get("channel") or {}).get("purpose") or {}).get("value") or "")
        m = _PURPOSE_ID.search(purpose + " ")
        return m.group(1) if m else None


async def _patiently(call: Callable[[], Awaitable[AsyncSlackResponse]]) -> tuple[AsyncSlackResponse | None, str]:
    """→ (Slack's answer, "") or (None, why not). A rate-limited call is made again after Slack's Retry-After,
    `LOOKUP_RETRIES` times, when that is at most `LOOKUP_WAIT_CAP` seconds."""
    for attempt in range(LOOKUP_RETRIES + 1):
        try:
            return await call(), ""
        except SLACK_ERRORS as exc:
            wait = _retry_after(exc)
            if wait is None or wait > LOOKUP_WAIT_CAP or attempt == LOOKUP_RETRIES:
                return None, slack_error(exc)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _retry_after(exc: BaseException) -> float | None:
    """Seconds Slack asks us to wait before asking again (HTTP 429), or None if not rate limited."""
    if not isinstance(exc, SlackApiError) or exc.response.status_code != 429:
        return None
    headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0
