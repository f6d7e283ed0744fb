"""Atlassian Statuspage adapter: mirrors our public updates to a page a team already runs there.

Statuspage's REST API v1 (`https://api.statuspage.io/v1/pages/{page_id}/…`), field names as Atlassian
documents them: incidents are created with `POST …/incidents` (`name`, `status`, `impact_override`, `body`,
`component_ids`, the `components` map of component id → status, `metadata`) and moved on with
`PATCH …/incidents/{id}`; scheduled maintenances are incidents with `scheduled_for`/`scheduled_until` and the
maintenance statuses; a component's status alone is `PATCH …/components/{id}`.

The API key goes in one header, `Authorization: OAuth <key>`, and only to the configured host: every URL is
built from the configured base, path segments are quoted, the host is checked before each request, and
redirects are never followed (a 3xx is a refusal). The key never enters a log line, an error message or
workflow history (`errors.redact` on everything the vendor says).

Limits: Statuspage allows 1 request/s per key and answers 420 (older) or 429 beyond, with Retry-After. Requests
through one adapter are spaced 1 s apart (build one adapter per key per worker); a 420/429 raises a retryable
error carrying Retry-After as `next_retry_delay`, so Temporal, not this code, retries after it.

Idempotency: the workflow keeps the Statuspage id this adapter returns. Creating first looks for an incident
carrying our marker (`metadata.incidentflow.id`) and adopts it, so a retry after a lost answer never creates
a second one; an update retried (attempt > 1) is not sent again when the incident's newest update already
has its status and text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.errors import (
    RATE_LIMITED,
    UNAVAILABLE,
    classify_http,
    from_transport_error,
    parse_retry_after,
    redact,
    secret_refused,
)
from domain.statuspage.mirror import MaintenanceMirrorInput, MirrorIncident, MirrorInput, MirrorResult
from domain.statuspage.models import ComponentChange, MaintenanceStatus, PublicStatus

API_URL = "https://api.statuspage.io"
VENDOR = "Statuspage"
MIN_INTERVAL = 1.0  # seconds between requests with one key (Statuspage: 1 request/s per key)
MARKER = "incidentflow"  # metadata.incidentflow.id = our incident or maintenance id
_PER_PAGE = 100
SEARCH = ""  # a lookup in all incidents by name (`GET …/incidents?q=`), for ones created already ended
_MAX_PAGES = 5  # lookups read at most 500 open incidents
_VENDOR_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAINTENANCE = {MaintenanceStatus.scheduled: "scheduled", MaintenanceStatus.in_progress: "in_progress",
                MaintenanceStatus.verifying: "verifying", MaintenanceStatus.completed: "completed",
                MaintenanceStatus.cancelled: "completed"}  # Statuspage has no cancelled: the body says so

log = logging.getLogger("incidentflow.statuspage_io")

_Json = dict[str, Any]


class RequestSpacing:
    """Starts of requests at least `interval` apart, across every coroutine that shares this object."""

    def __init__(self, interval: float = MIN_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._next - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = self._clock() + self._interval


def _base_url(value: str) -> httpx.URL:
    """The configured API base: https, or http on loopback only (tests, a local proxy); nothing to smuggle."""
    url = httpx.URL(value.rstrip("/"))
    if not url.host or url.userinfo or url.query or url.fragment:
        raise ValueError(f"statuspage_io_url: {value!r} is not a plain https://host[/path] URL")
    if url.scheme != "https" and not (url.scheme == "http" and url.host in _LOOPBACK):
        raise ValueError(f"statuspage_io_url: {value!r} must use https (the API key travels with every request)")
    return url


class AtlassianStatuspage:
    """Mirrors incidents, maintenances and component statuses to one Statuspage page. Build once per worker."""

    name = "statuspage.io"

    def __init__(self, client: httpx.AsyncClient, *, page_id: str, api_key: SecretStr | str,
                 component_ids: Mapping[str, str] | None = None, base_url: str = API_URL,
                 min_interval: float = MIN_INTERVAL) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key.strip():
            raise ValueError("statuspage_io_api_key: empty")
        if not page_id.strip():
            raise ValueError("statuspage_io_page_id: empty")
        self._client = client
        self._key = key.strip()
        self._base = _base_url(base_url)
        self._page = page_id.strip()
        self._components = {ours: theirs for ours, theirs in (component_ids or {}).items() if theirs}
        self._spacing = RequestSpacing(min_interval)

    # ------------------------------------------------------------------------------- what activities call

    async def mirror(self, update: MirrorInput, *, retrying: bool) -> MirrorResult:
        """One incident update (its component statuses travel with it), or component statuses alone."""
        changes, unmapped = self._mapped(update.components)
        if update.incident is None:
            for theirs, status in changes.values():
                await self._request("PATCH", self._url("components", theirs), {"component": {"status": status}})
            return MirrorResult(components=list(changes), unmapped=unmapped)
        incident = update.incident
        fields = self._incident_fields(incident, changes)
        lookups = ["unresolved"]
        if incident.status == PublicStatus.resolved:
            lookups.append(SEARCH)  # created already resolved: not among the unresolved ones
        result = await self._upsert(incident.incident_id, incident.statuspage_id, fields, lookups,
                                    retrying=retrying, created_fields={"metadata": _marker(incident.incident_id)})
        return result.model_copy(update={"components": list(changes), "unmapped": unmapped})

    async def mirror_maintenance(self, step: MaintenanceMirrorInput, *, retrying: bool) -> MirrorResult:
        changes, unmapped = self._mapped(step.components)
        fields: _Json = {
            "name": step.title, "status": _MAINTENANCE[step.status], "body": step.body or step.title,
            "scheduled_for": _iso(step.scheduled_for), "scheduled_until": _iso(step.scheduled_until),
            "deliver_notifications": step.deliver_notifications,
            **self._component_fields(step.affected, changes)}
        lookups = ["upcoming", "active_maintenance"]
        if step.status in (MaintenanceStatus.completed, MaintenanceStatus.cancelled):
            lookups.append(SEARCH)
        # Our MaintenanceWorkflow moves the window on; Statuspage must not move it on by itself as well.
        created = {"metadata": _marker(step.maintenance_id), "scheduled_remind_prior": True,
                   "scheduled_auto_in_progress": False, "scheduled_auto_completed": False,
                   "auto_transition_to_maintenance_state": False, "auto_transition_to_operational_state": False}
        result = await self._upsert(step.maintenance_id, step.statuspage_id, fields, lookups,
                                    retrying=retrying, created_fields=created)
        return result.model_copy(update={"components": list(changes), "unmapped": unmapped})

    # ------------------------------------------------------------------------------- create once, update

    async def _upsert(self, ours: str, theirs: str | None, fields: _Json, lookups: list[str], *,
                      retrying: bool, created_fields: _Json) -> MirrorResult:
        recovered = False
        if theirs is None:
            found = await self._find(ours, lookups, fields["name"])
            if found is None:
                made = await self._request("POST", self._url("incidents"), {"incident": {**fields, **created_fields}})
                theirs = _vendor_id(made)
                log.info("Statuspage: created %s for %s", theirs, ours)
                return MirrorResult(statuspage_id=theirs, created=True)
            theirs, recovered = _vendor_id(found), True  # created before, its answer lost: adopt it
            log.info("Statuspage: found %s for %s by its marker", theirs, ours)
            if _newest_update_is(found, fields):
                return MirrorResult(statuspage_id=theirs, recovered=True, already_applied=True)
        elif retrying and _newest_update_is(await self._request("GET", self._url("incidents", theirs)), fields):
            return MirrorResult(statuspage_id=theirs, already_applied=True)
        await self._request("PATCH", self._url("incidents", theirs), {"incident": fields})
        return MirrorResult(statuspage_id=theirs, recovered=recovered)

    async def _find(self, ours: str, lookups: list[str], name: str) -> _Json | None:
        """The incident carrying our marker, from the lists where it can be (the open ones first)."""
        for which in lookups:
            path = ("incidents", which) if which else ("incidents",)
            params: dict[str, str | int] = {"per_page": _PER_PAGE} if which else {"q": name, "limit": _PER_PAGE}
            for page in range(1, _MAX_PAGES + 1):
                listed = await self._request("GET", self._url(*path), params={**params, "page": page})
                rows = listed if isinstance(listed, list) else []
                hit = next((i for i in rows if isinstance(i, dict) and _marked(i, ours)), None)
                if hit is not None:
                    return hit
                if len(rows) < _PER_PAGE:
                    break
        return None

    # ------------------------------------------------------------------------------- request bodies

    def _mapped(self, changes: list[ComponentChange]) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """Our component → (Statuspage component id, status); and ours that have no Statuspage id."""
        mapped = {c.component: (self._components[c.component], c.status.value)
                  for c in changes if c.component in self._components}
        unmapped = [c.component for c in changes if c.component not in self._components]
        if unmapped:
            log.info("Statuspage: no component id configured for %s: not mirrored", ", ".join(unmapped))
        return mapped, unmapped

    def _component_fields(self, affected: list[str], changes: dict[str, tuple[str, str]]) -> _Json:
        ids = [self._components[c] for c in affected if c in self._components]
        ids += [theirs for theirs, _ in changes.values() if theirs not in ids]
        fields: _Json = {"component_ids": ids} if ids else {}
        if changes:
            fields["components"] = {theirs: status for theirs, status in changes.values()}
        return fields

    def _incident_fields(self, incident: MirrorIncident, changes: dict[str, tuple[str, str]]) -> _Json:
        fields: _Json = {"name": incident.name, "status": incident.status.value, "body": incident.body,
                         "deliver_notifications": incident.deliver_notifications,
                         **self._component_fields(incident.affected, changes)}
        if incident.impact is not None:
            fields["impact_override"] = incident.impact.value
        return fields

    # ------------------------------------------------------------------------------- HTTP

    def _url(self, *segments: str) -> httpx.URL:
        path = "/".join(quote(s, safe="") for s in ("v1", "pages", self._page, *segments))
        url = httpx.URL(f"{self._base}/{path}")
        if (url.scheme, url.host, url.port) != (self._base.scheme, self._base.host, self._base.port):
            # unreachable with quoted segments; kept as the last word before the key leaves
            raise secret_refused(f"{VENDOR}: refused to send the API key to {url.host!r}")
        return url

    async def _request(self, method: str, url: httpx.URL, body: _Json | None = None,
                       params: Mapping[str, str | int] | None = None) -> Any:
        await self._spacing.wait()
        try:
            response = await self._client.request(
                method, url, json=body, params=params, follow_redirects=False,
                headers={"Authorization": f"OAuth {self._key}", "Accept": "application/json"})
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
        """420 is Statuspage's older rate-limit answer; 409 a concurrent change: both retry. The rest: errors.py."""
        status, retry_after = response.status_code, response.headers.get("Retry-After")
        detail = redact(_vendor_message(response), [self._key])
        said = f": {detail}" if detail else ""
        if status == 420:
            return ApplicationError(f"{VENDOR} rate limited the request (HTTP 420){said}", type=RATE_LIMITED,
                                    next_retry_delay=parse_retry_after(retry_after))
        if status == 409:
            return ApplicationError(f"{VENDOR} reported a conflict (HTTP 409){said}", type=UNAVAILABLE,
                                    next_retry_delay=parse_retry_after(retry_after))
        if response.is_redirect:
            detail = f"redirect to another location not followed (the API key goes to {self._base.host} only)"
        return classify_http(status, retry_after, VENDOR, detail)


def _vendor_message(response: httpx.Response) -> str:
    """Statuspage answers errors as {"error": "…"} or {"error": ["…"]} (some {"message": "…"})."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(data, dict):
        said = data.get("error") or data.get("message") or data.get("errors")
        if isinstance(said, list):
            return "; ".join(str(s) for s in said)
        if said:
            return str(said)
    return response.reason_phrase


def _marker(ours: str) -> _Json:
    return {MARKER: {"id": ours}}  # Statuspage wants every top-level metadata value to be an object


def _marked(incident: _Json, ours: str) -> bool:
    mine = (incident.get("metadata") or {}).get(MARKER)
    return isinstance(mine, dict) and mine.get("id") == ours


def _vendor_id(incident: Any) -> str:
    value = incident.get("id") if isinstance(incident, dict) else None
    if not isinstance(value, str) or not _VENDOR_ID.match(value):
        raise ApplicationError(f"{VENDOR} answered without a usable incident id", type=UNAVAILABLE)
    return value


def _newest_update_is(incident: Any, fields: _Json) -> bool:
    """Does the incident's newest update already say this (same status, same text)?"""
    updates = incident.get("incident_updates") if isinstance(incident, dict) else None
    if not isinstance(updates, list) or not updates or not isinstance(updates[0], dict):
        return False
    newest = updates[0]  # Statuspage lists updates newest first
    return newest.get("status") == fields["status"] and _words(newest.get("body")) == _words(fields["body"])


def _words(text: Any) -> str:
    return " ".join(str(text or "").split())


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
