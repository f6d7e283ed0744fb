"""Request guards: body size (413), bearer tokens (401), Grafana HMAC (401), load shedding (503)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request
from pydantic import SecretStr

from domain.config import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
GRAFANA_SIGNATURE_HEADERS = ("x-grafana-alerting-signature", "x-grafana-alert-signature")
MAX_CLOCK_SKEW = 300


class BodyLimit:
    """ASGI middleware: 413 for bodies over the limit, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Callable[[Message], Awaitable[None]]) -> None:
        body = b'{"error":"request body is larger than %d bytes"}' % self.max_bytes
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _check_bearer(request: Request, token: SecretStr | None) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                             token.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer …)",
                            headers={"WWW-Authenticate": 'Bearer realm="incidentflow"'})


def require_token(source: str | None = None) -> Callable[[Request], None]:
    """Dependency: the source's own token when configured, else INCIDENTFLOW_API_TOKEN, else open."""
    def check(request: Request) -> None:
        settings: Settings = request.app.state.settings
        specific = getattr(settings, f"{source}_token", None) if source else None
        _check_bearer(request, specific or settings.api_token)
    return check


async def verify_grafana_signature(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.grafana_hmac_secret is None:
        return
    signature = next((request.headers[h] for h in GRAFANA_SIGNATURE_HEADERS if h in request.headers), None)
    if not signature:
        raise HTTPException(401, "missing X-Grafana-Alerting-Signature header (an HMAC secret is configured)")
    body = await request.body()
    message = body
    if settings.grafana_hmac_timestamp_header:
        stamp = request.headers.get(settings.grafana_hmac_timestamp_header, "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_CLOCK_SKEW:
            raise HTTPException(401, f"{settings.grafana_hmac_timestamp_header} is missing or more than "
                                     f"{MAX_CLOCK_SKEW} s off")
        message = stamp.encode() + b":" + body
    expected = hmac.new(settings.grafana_hmac_secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise HTTPException(401, "X-Grafana-Alerting-Signature does not match the body")


class LoadShedder:
    """Caps concurrent webhook work; past the cap the answer is 503 + Retry-After at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight = 0


async def shed_load(request: Request) -> AsyncIterator[None]:
    shedder: LoadShedder = request.app.state.shedder
    if shedder.inflight >= shedder.limit:
        raise HTTPException(503, f"overloaded ({shedder.inflight} requests in flight): retry shortly",
                            headers={"Retry-After": "1"})
    shedder.inflight += 1
    try:
        yield
    finally:
        shedder.inflight -= 1
