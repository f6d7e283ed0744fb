"""Jira Cloud adapter for the `Tracker` port: one issue per action item, over REST API v3 with httpx.

Calls, as Atlassian documents them: `POST /rest/api/3/issue` (`fields`: project, issuetype, summary, the
description in Atlassian Document Format, labels, duedate, assignee by accountId), `POST
/rest/api/3/search/jql` (JQL), `GET /rest/api/3/issue/{key}?fields=status`, `GET|POST
/rest/api/3/issue/{key}/transitions`, `GET|POST /rest/api/3/issue/{key}/comment`. Priority and kind travel
as labels (`priority-P1`, `kind-fix`): the priority field is often not on a project's create screen, and
Jira refuses the whole issue when a field is not.

Idempotency: every issue carries the label `incidentflow-<aid>`. `create` first looks for it by JQL and
adopts what it finds, so a retried activity (the answer lost, the worker killed after Jira created the
issue) never makes a second issue. Jira's JQL search is eventually consistent (an issue is usually
searchable within seconds of its creation), so a retry attempt that finds nothing looks once more after
`settle` seconds before creating. `change` reads the status first: closing a done issue (or reopening an
open one) sends no transition, and a comment already the newest on the issue is not posted again.

Auth: basic `email:api_token`, sent only to the configured `jira.url` (https; http on loopback only for
tests): every URL is built from it with quoted segments, the host is checked before each request, and
redirects are never followed. Neither the token nor the header enters a log line or an error message.
Errors: 429, 5xx and transport failures retry (Retry-After honoured); other 4xx fail at once with Jira's
`errorMessages` and field `errors` in the message.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import (
    REJECTED,
    UNAVAILABLE,
    classify_http,
    from_transport_error,
    redact,
    secret_refused,
)
from domain.actions.models import AID_PATTERN, TicketChange, TicketInput, TicketRef
from domain.jira_webhook import aid_label
from domain.postmortem.config import JiraConfig

VENDOR = "Jira"
API = ("rest", "api", "3")
SETTLE = 5.0  # seconds a retry attempt waits for JQL search to see an issue created just before
MAX_SUMMARY = 255  # Jira's limit for summary
_KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,19}-[0-9]{1,10}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_URL = re.compile(r"https?://[^\s<>\"']+")
_CREDENTIALS_HINT = " (check INCIDENTFLOW_JIRA_EMAIL and INCIDENTFLOW_JIRA_API_TOKEN)"

log = logging.getLogger("incidentflow.jira")

_Json = dict[str, Any]


def base_url(value: str) -> httpx.URL:
    """The configured site: https (http on loopback only), no credentials, query or fragment in it."""
    url = httpx.URL(value.rstrip("/"))
    if not url.host or url.userinfo or url.query or url.fragment:
        raise ValueError(f"action_items.tracker.jira.url: {value!r} is not a plain https://host URL")
    if url.scheme != "https" and not (url.scheme == "http" and url.host in _LOOPBACK):
        raise ValueError(f"action_items.tracker.jira.url: {value!r} must use https (the API token goes with "
                         "every request)")
    return url


class JiraTracker:
    """Action items as Jira Cloud issues. Build once per worker; the httpx client is shared."""

    kind = "jira"

    def __init__(self, config: JiraConfig, email: str, api_token: SecretStr | str, http: httpx.AsyncClient, *,
                 settle: float = SETTLE) -> None:
        token = api_token.get_secret_value() if isinstance(api_token, SecretStr) else api_token
        if not email.strip():
            raise ValueError("Jira: INCIDENTFLOW_JIRA_EMAIL is empty")
        if not token.strip():
            raise ValueError("Jira: INCIDENTFLOW_JIRA_API_TOKEN is empty")
        self._config = config
        self._base = base_url(config.url)
        self._token = token.strip()
        self._auth = base64.b64encode(f"{email.strip()}:{self._token}".encode()).decode()
        self._http = http
        self._settle = settle

    # ------------------------------------------------------------------------------- the port

    async def create(self, ticket: TicketInput) -> TicketRef:
        if not re.match(AID_PATTERN, ticket.aid):  # it goes into JQL
            raise ApplicationError(f"Jira: {ticket.aid!r} is not an action item id", type=REJECTED,
                                   non_retryable=True)
        found = await self._find(ticket.aid)
        if found is None and _retrying() and self._settle > 0:
            await asyncio.sleep(self._settle)  # an earlier attempt's issue may not be searchable yet
            found = await self._find(ticket.aid)
        if found is not None:
            log.info("Jira: %s already has %s", ticket.aid, found)
            return self._ref(found)
        made = await self._request("POST", self._url("issue"), {"fields": self._fields(ticket)})
        key = _key(made)
        log.info("Jira: created %s for %s", key, ticket.aid)
        return self._ref(key)

    async def change(self, change: TicketChange) -> None:
        key = change.ticket.key
        if not _KEY.match(key):
            raise ApplicationError(f"Jira: {key!r} is not an issue key", type=REJECTED, non_retryable=True)
        issue = await self._request("GET", self._url("issue", key), params={"fields": "status"})
        if (_status_category(issue) == "done") != change.close:  # else: already where we want it
            await self._transition(key, change.close)
        if change.comment.strip():
            await self._comment(key, change.comment)

    # ------------------------------------------------------------------------------- steps

    async def _find(self, aid: str) -> str | None:
        """The oldest issue carrying the item's label (Jira sorts; we check the label ourselves too)."""
        label = aid_label(aid)
        found = await self._request("POST", self._url("search", "jql"), {
            "jql": f'labels = "{label}" ORDER BY created ASC', "fields": ["labels"], "maxResults": 10})
        issues = found.get("issues") if isinstance(found, dict) else None
        for issue in issues if isinstance(issues, list) else []:
            labels = _dict(_dict(issue).get("fields")).get("labels")
            if isinstance(labels, list) and label in labels:
                return _key(issue)
        return None

    async def _transition(self, key: str, close: bool) -> None:
        listed = await self._request("GET", self._url("issue", key, "transitions"))
        transitions = [t for t in _dict(listed).get("transitions") or [] if isinstance(t, dict)]
        wanted = self._config.done_transition if close else self._config.reopen_transition
        chosen = _by_name(transitions, wanted) or _by_category(transitions, close)
        if chosen is None:
            names = ", ".join(repr(t.get("name")) for t in transitions) or "none"
            raise ApplicationError(f"Jira: {key} has no transition {wanted!r} (available: {names}); set "
                                   f"action_items.tracker.jira.{'done' if close else 'reopen'}_transition",
                                   type=REJECTED, non_retryable=True)
        await self._request("POST", self._url("issue", key, "transitions"), {"transition": {"id": str(chosen["id"])}})
        log.info("Jira: %s %s (transition %r)", key, "closed" if close else "reopened", chosen.get("name"))

    async def _comment(self, key: str, text: str) -> None:
        newest = await self._request("GET", self._url("issue", key, "comment"),
                                     params={"orderBy": "-created", "maxResults": 1})
        comments = _dict(newest).get("comments")
        if isinstance(comments, list) and comments and _same(adf_text(_dict(comments[0]).get("body")), text):
            return  # an earlier attempt posted it and lost the answer
        await self._request("POST", self._url("issue", key, "comment"), {"body": adf(text)})

    # ------------------------------------------------------------------------------- request bodies

    def _fields(self, ticket: TicketInput) -> _Json:
        footer = (f"incidentflow action item {ticket.aid} · incident {ticket.incident_id} · owner {ticket.owner}"
                  f" · due {ticket.due.isoformat()} · {ticket.priority.value} · {ticket.kind.value}")
        fields: _Json = {
            "project": {"key": self._config.project}, "issuetype": {"name": self._config.issue_type},
            "summary": _summary(ticket.title), "description": adf(f"{ticket.body.strip()}\n\n{footer}".strip()),
            "labels": labels(ticket), "duedate": ticket.due.isoformat()}
        if ticket.owner_handle:
            fields["assignee"] = {"accountId": ticket.owner_handle}
        return fields

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(tracker="jira", key=key, url=f"{self._base}/browse/{quote(key, safe='')}")

    # ------------------------------------------------------------------------------- HTTP

    def _url(self, *segments: str) -> httpx.URL:
        path = "/".join(quote(s, safe="") for s in (*API, *segments))
        url = httpx.URL(f"{self._base}/{path}")
        if (url.scheme, url.host, url.port) != (self._base.scheme, self._base.host, self._base.port):
            raise secret_refused(f"{VENDOR}: refused to send the API token to {url.host!r}")
        return url

    async def _request(self, method: str, url: httpx.URL, body: _Json | None = None,
                       params: dict[str, str | int] | None = None) -> Any:
        try:
            response = await self._http.request(
                method, url, json=body, params=params, follow_redirects=False,
                headers={"Authorization": f"Basic {self._auth}", "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, VENDOR) from None
        if not response.is_success:
            raise self._failure(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApplicationError(f"{VENDOR} answered HTTP {response.status_code} with a body that is not JSON",
                                   type=UNAVAILABLE) from None

    def _failure(self, response: httpx.Response) -> ApplicationError:
        detail = redact(jira_message(response), [self._token, self._auth])
        if response.is_redirect:
            detail = f"redirect not followed (the API token goes to {self._base.host} only)"
        elif response.status_code in (401, 403):
            detail += _CREDENTIALS_HINT
        return classify_http(response.status_code, response.headers.get("Retry-After"), VENDOR, detail)


# ------------------------------------------------------------------------------- helpers


def jira_message(response: httpx.Response) -> str:
    """Jira answers errors as {"errorMessages": [...], "errors": {field: message}}."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if not isinstance(data, dict):
        return response.reason_phrase
    said = [str(m) for m in data.get("errorMessages") or [] if m]
    said += [f"{field}: {message}" for field, message in _dict(data.get("errors")).items()]
    return "; ".join(said) or str(data.get("message") or response.reason_phrase)


def labels(ticket: TicketInput) -> list[str]:
    """Jira labels take no spaces; ours mark the item (dedup), its priority, kind and incident."""
    wanted = ["incidentflow", aid_label(ticket.aid), f"priority-{ticket.priority.value}",
              f"kind-{ticket.kind.value}", ticket.incident_id, *ticket.labels]
    cleaned = ("-".join(label.split())[:255] for label in wanted)
    return list(dict.fromkeys(label for label in cleaned if label))


def adf(text: str) -> _Json:
    """Plain text as an Atlassian Document: blank lines split paragraphs, URLs become links."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()] or ["-"]
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": _inline(p)} for p in paragraphs]}


def _inline(paragraph: str) -> list[_Json]:
    nodes: list[_Json] = []
    for n, line in enumerate(paragraph.strip().splitlines()):
        if n:
            nodes.append({"type": "hardBreak"})
        at = 0
        for match in _URL.finditer(line):
            if match.start() > at:
                nodes.append({"type": "text", "text": line[at:match.start()]})
            nodes.append({"type": "text", "text": match.group(), "marks": [
                {"type": "link", "attrs": {"href": match.group()}}]})
            at = match.end()
        if line[at:]:
            nodes.append({"type": "text", "text": line[at:]})
    return nodes


def adf_text(doc: Any) -> str:
    """The plain text of an Atlassian Document (paragraphs on their own lines)."""
    node = _dict(doc)
    if node.get("type") == "text":
        return str(node.get("text") or "")
    if node.get("type") == "hardBreak":
        return "\n"
    inner = "".join(adf_text(child) for child in node.get("content") or [])
    return inner + "\n\n" if node.get("type") == "paragraph" else inner


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _summary(title: str) -> str:
    line = " ".join(title.split())
    return line if len(line) <= MAX_SUMMARY else line[: MAX_SUMMARY - 1] + "…"


def _key(issue: Any) -> str:
    key = _dict(issue).get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise ApplicationError(f"{VENDOR} answered without a usable issue key", type=UNAVAILABLE)
    return key


def _status_category(issue: Any) -> str | None:
    status = _dict(_dict(_dict(issue).get("fields")).get("status"))
    key = _dict(status.get("statusCategory")).get("key")
    return key if isinstance(key, str) else None


def _by_name(transitions: list[_Json], name: str) -> _Json | None:
    return next((t for t in transitions if str(t.get("name", "")).casefold() == name.casefold()), None)


def _by_category(transitions: list[_Json], close: bool) -> _Json | None:
    """No transition by the configured name: one into the done category (closing) or To Do's (reopening)."""
    want = "done" if close else "new"
    return next((t for t in transitions
                 if _dict(_dict(t.get("to")).get("statusCategory")).get("key") == want), None)


def _retrying() -> bool:
    return activity.in_activity() and activity.info().attempt > 1


def _dict(value: Any) -> _Json:
    return value if isinstance(value, dict) else {}
