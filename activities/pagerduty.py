"""PagerDuty adapter for the `Pager` port: PagerDuty Events API v2 (`POST /v2/enqueue`).

Idempotency comes from PagerDuty itself: every event carries `dedup_key = request.incident_key` (else `request.dedup_key`), and a
trigger for a key whose alert is still open only adds a log entry to it. A Temporal retry, a worker
restart or a replayed activity therefore never opens a second PagerDuty incident. (Once resolved, a
new trigger with the same key does open a new one — which is what a re-page after resolve means.)
Acknowledge and resolve must use the routing key of the trigger, so keys are chosen per service.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from activities.errors import classify_http, from_transport_error, not_configured, redact
from domain.models import Severity
from domain.models.paging import PageRequest, PageResult

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
VENDOR = "PagerDuty"

SEVERITY = {Severity.SEV1: "critical", Severity.SEV2: "error", Severity.SEV3: "warning",
            Severity.SEV4: "info"}
MAX_SUMMARY = 1024  # PagerDuty's limit for payload.summary
MAX_DEDUP_KEY = 255  # … and for dedup_key


def _reveal(key: SecretStr | str | None) -> str | None:
    value = key.get_secret_value() if isinstance(key, SecretStr) else key
    return value or None


def pd_dedup_key(dedup_key: str) -> str:
    """Our dedup key, or a stable digest of it when longer than PagerDuty accepts."""
    if len(dedup_key) <= MAX_DEDUP_KEY:
        return dedup_key
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()
    return f"{dedup_key[: MAX_DEDUP_KEY - len(digest) - 1]}~{digest}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PagerDutyPager:
    """Sends PageRequests as Events API v2 events. Build once per worker; the client is shared."""

    name = "pagerduty"

    def __init__(
        self,
        client: httpx.AsyncClient,
        events_url: str = EVENTS_URL,
        routing_keys: Mapping[str, SecretStr | str] | None = None,
        default_routing_key: SecretStr | str | None = None,
        *,
        source: str = "incidentflow",
        client_name: str = "incidentflow",
        client_url: str | None = None,
    ) -> None:
        self._client = client
        self._url = events_url
        self._keys = {service: k for service, key in (routing_keys or {}).items() if (k := _reveal(key))}
        self._default = _reveal(default_routing_key)
        self._source = source
        self._client_name = client_name
        self._client_url = client_url

    def routing_key(self, service: str | None) -> str:
        key = self._keys.get(service) if service else None
        key = key or self._default
        if not key:
            raise not_configured(
                f"no PagerDuty routing key for service {service or '(none)'} (set "
                "INCIDENTFLOW_PAGERDUTY_ROUTING_KEYS for it, or INCIDENTFLOW_PAGERDUTY_DEFAULT_ROUTING_KEY)")
        return key

    def event(self, request: PageRequest, routing_key: str) -> dict[str, Any]:
        """The Events API v2 body. Acknowledge and resolve need only the key and dedup_key."""
        body: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": request.action,
            "dedup_key": pd_dedup_key(request.incident_key or request.dedup_key),  # one PD incident per ours
        }
        if request.action != "trigger":
            return body
        details: dict[str, Any] = {"incident_id": request.incident_id, "target": request.target,
                                   "level": request.level}
        if request.reason:
            details["reason"] = request.reason
        if request.service:
            details["service"] = request.service
        payload: dict[str, Any] = {
            "summary": _truncate(request.summary, MAX_SUMMARY),
            "source": self._source,
            "severity": SEVERITY[request.severity],
            "class": "incident",
            "custom_details": details,
        }
        if request.service:
            payload["component"] = request.service
            payload["group"] = request.service
        body["payload"] = payload
        body["client"] = self._client_name
        links = self.links(request)
        if links:
            body["links"] = links
        if request.incident_url or self._client_url:
            body["client_url"] = request.incident_url or self._client_url
        return body

    @staticmethod
    def links(request: PageRequest) -> list[dict[str, str]]:
        """Where the responder goes from the PagerDuty incident: the incident channel and the Temporal UI."""
        links = []
        if request.channel is not None and request.channel.url:
            links.append({"href": request.channel.url, "text": f"Slack #{request.channel.name}"})
        if request.incident_url:
            links.append({"href": request.incident_url, "text": f"Incident {request.incident_id} (Temporal UI)"})
        return links

    async def send(self, request: PageRequest) -> PageResult:
        routing_key = self.routing_key(request.service)
        try:
            response = await self._client.post(self._url, json=self.event(request, routing_key))
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, VENDOR) from None
        status, message = _status_message(response)
        if not response.is_success:
            detail = redact(f"{status}: {message}", [routing_key])
            raise classify_http(response.status_code, response.headers.get("Retry-After"), VENDOR, detail)
        return PageResult(channel=self.name, detail=redact(f"{status}: {message}", [routing_key]))


def _status_message(response: httpx.Response) -> tuple[str, str]:
    """PagerDuty answers `{"status", "message", "errors"?}`; proxies in between may answer anything."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return str(response.status_code), response.text.strip() or response.reason_phrase
    status = str(data.get("status") or response.status_code)
    message = str(data.get("message") or response.reason_phrase)
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        message += " (" + "; ".join(str(e) for e in errors) + ")"
    return status, message
