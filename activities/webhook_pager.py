"""Generic webhook adapter for the `Pager` port: POST the PageRequest as JSON to one URL.

The receiver dedups on `Idempotency-Key` (our dedup_key + action), since a Temporal retry after a
timeout may deliver the same page twice. With a secret set, `X-Incidentflow-Signature` is
`sha256=<hex HMAC-SHA256 of the raw body>`; `X-Incidentflow-Timestamp` (unix seconds) is informative
only — it is not covered by the signature, so do not rely on it against replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
from pydantic import SecretStr

from activities.errors import classify_http, from_transport_error, redact
from domain.models.paging import PageRequest, PageResult

SIGNATURE_HEADER = "X-Incidentflow-Signature"
TIMESTAMP_HEADER = "X-Incidentflow-Timestamp"
VENDOR = "paging webhook"


def sign(body: bytes, secret: str) -> str:
    """The signature header value for `body`: receivers recompute it and compare in constant time."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookPager:
    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, url: str, secret: SecretStr | None = None) -> None:
        self._client = client
        self._url = url
        self._secret = secret.get_secret_value() if secret else None

    async def send(self, request: PageRequest) -> PageResult:
        body = request.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            # A trigger and the later resolve share dedup_key but are different deliveries.
            "Idempotency-Key": f"{request.dedup_key}:{request.action}",
            TIMESTAMP_HEADER: str(int(time.time())),
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, VENDOR) from None
        if not response.is_success:
            detail = redact(response.text, [self._secret])
            raise classify_http(response.status_code, response.headers.get("Retry-After"), VENDOR, detail)
        return PageResult(channel=self.name, detail=f"HTTP {response.status_code}")
