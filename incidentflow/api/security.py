"""Request guards: body size (413), who calls and what they may do (401/403), Grafana HMAC (401), load
shedding (503).

Who calls is an `Identity`, from the bearer token: a named token of the config's `api_tokens` (compared by
its SHA-256, in constant time), the shared INCIDENTFLOW_API_TOKEN (admin), a webhook source's own token, or
anyone while no token is configured. Routes ask for a scope with `need(scope)`, and take the actor of a
write from `actor_for` / `bind_actor`: the token's person; a `by` naming someone else needs `act-as`; no `by`
and no person: the caller's own name. The door then checks that actor is a config person (`domain.known`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, SecretStr, create_model
from starlette.datastructures import Headers

from domain import known
from domain.config import ApiToken, IncidentflowConfig, Settings, hash_token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)
GRAFANA_SIGNATURE_HEADERS = ("x-grafana-alerting-signature", "x-grafana-alert-signature")
MAX_CLOCK_SKEW = 300
SCOPES = frozenset({"read", "write", "approve", "admin", "act-as"})
_DISCONNECT: Message = {"type": "http.disconnect"}


class BodyLimit:
    """ASGI middleware: 413 for a body over the limit, by Content-Length or while it streams in.

    Bytes are counted as the app reads them. Past the limit the 413 goes out at once and the app is told
    the client left (`http.disconnect`), so nothing reads on; what the app answers or raises after that is
    dropped (the body it saw was cut short)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(send)
        seen, started, answered = 0, False, False

        async def limited() -> Message:
            nonlocal seen, answered
            if answered:
                return _DISCONNECT
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if not started:
                        answered = True
                        await self._too_large(send)
                    return _DISCONNECT
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not answered:
                raise

    async def _too_large(self, send: Callable[[Message], Awaitable[None]]) -> None:
        body = b'{"error":"request body is larger than %d bytes (INCIDENTFLOW_MAX_BODY_BYTES)"}' % self.max_bytes
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Identity:
    """Who calls: `name` (the token's), the person a write is done as, and the scopes (admin: all)."""

    name: str
    person: str | None = None
    scopes: frozenset[str] = SCOPES

    def can(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


ANYONE = Identity("anyone")  # no token configured: the API is open (a `by` says who)
BEARER = HTTPBearer(auto_error=False, description="INCIDENTFLOW_API_TOKEN, a named token of `api_tokens`, "
                                                  "or a webhook source's own token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
_ACTION = {"read": "read", "write": "change incidents", "approve": "approve or deny runbook steps",
           "admin": "administer", "act-as": "act for someone else"}


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing or wrong bearer token (Authorization: Bearer …)",
                         headers={"WWW-Authenticate": 'Bearer realm="incidentflow"'})


def _same_secret(given: str, secret: SecretStr) -> bool:
    return hmac.compare_digest(hash_token(given), hash_token(secret.get_secret_value()))


def match_token(given: str, tokens: list[ApiToken]) -> ApiToken | None:
    """The named token whose hash is the given token's. Every hash is compared, in constant time, so the
    time taken says nothing about which token (or how much of a hash) matched."""
    digest, found = hash_token(given), None
    for token in tokens:
        if hmac.compare_digest(digest, token.hash):
            found = token
    return found


def identify(settings: Settings, tokens: list[ApiToken], given: str | None) -> Identity:
    """The caller behind a bearer token; 401 when tokens are configured and this is none of them."""
    if settings.api_token is None and not tokens:
        return ANYONE
    if given:
        named = match_token(given, tokens)
        if named is not None:
            return Identity(named.name, named.person, frozenset(named.scopes))
        if settings.api_token is not None and _same_secret(given, settings.api_token):
            return Identity("INCIDENTFLOW_API_TOKEN", None, frozenset({"admin"}))
    raise _unauthorized()


async def caller(request: Request, credentials: Credentials) -> Identity:
    """Dependency: who calls (401 for a missing or unknown token while tokens are configured)."""
    given = credentials.credentials.strip() if credentials else None
    return identify(request.app.state.settings, request.app.state.config.api_tokens, given)


def check_scope(identity: Identity, scope: str) -> None:
    if not identity.can(scope):
        raise HTTPException(403, f"token {identity.name!r} may not {_ACTION.get(scope, scope)}: it lacks the "
                                 f"{scope!r} scope (it has {', '.join(sorted(identity.scopes))})")


def need(scope: str) -> Callable[..., Awaitable[Identity]]:
    """Dependency: the caller, who must hold `scope` (403 otherwise)."""
    async def check(identity: Annotated[Identity, Depends(caller)]) -> Identity:
        check_scope(identity, scope)
        return identity
    return check


def actor_for(identity: Identity, by: str | None, scope: str = "write", field: str = "by",
              config: IncidentflowConfig | None = None) -> str:
    """Who a write or an approval is done as: the token's person. A `by` naming someone else needs the
    act-as scope (bots). A missing `by` is the token's person, else the caller's own name (a token without a
    person, or `anyone` while the API is open), which the door then checks like any actor: with `config`,
    a caller that is no config person gets a 422 asking for `by` here. 403 for a `by` the token may not give."""
    check_scope(identity, scope)
    if identity.can("act-as") and by:
        return by
    person = identity.person
    if person is None:
        if not identity.can("act-as"):
            raise HTTPException(403, f"token {identity.name!r} names no person to act as: give it a `person` in "
                                     "api_tokens, or the act-as scope")
        if config is not None and known.actor_problem(config, field, identity.name):
            raise HTTPException(422, f"{field}: Field required: {_caller(identity)} names no person to act as; "
                                     f"give `{field}` (one of {known.listing(known.people(config))})")
        return identity.name
    if by and by != person:
        raise HTTPException(403, f"{field}: token {identity.name!r} acts as {person!r}, not {by!r}: naming someone "
                                 f"else needs the act-as scope (leave `{field}` out to act as {person!r})")
    return person


def _caller(identity: Identity) -> str:
    return "the API (open: no token is configured)" if identity is ANYONE else f"token {identity.name!r}"


_BODIES: dict[tuple[type[BaseModel], str], type[BaseModel]] = {}


def http_body(model: type[M], field: str = "by") -> type[M]:
    """The command's input model as an HTTP body: `field` (the actor) may be left out; the caller's token
    fills it (`bind_actor`). Same name (and one class per model), so the OpenAPI schema keeps the name."""
    if (model, field) not in _BODIES:
        described = ("who does it (a config person's id): only with the act-as scope; default: the token's person "
                     "(a token without one: its name)")
        optional: Any = (str | None, Field(None, min_length=1, max_length=128, description=described))
        _BODIES[model, field] = create_model(model.__name__, __base__=model, __module__=model.__module__,
                                             **{field: optional})
    return cast(type[M], _BODIES[model, field])


def bind_actor(model: type[M], body: BaseModel, identity: Identity, scope: str = "write", field: str = "by",
               config: IncidentflowConfig | None = None) -> M:
    """`body` (an `http_body`) as `model`, its actor decided by `actor_for`."""
    actor = actor_for(identity, getattr(body, field, None), scope, field, config)
    return model.model_validate({**body.model_dump(), field: actor})


def require_token(source: str | None = None) -> Callable[..., Awaitable[Identity]]:
    """Dependency. With `source` (an alert webhook): that source's own token when one is configured, else
    a caller with `write`. Without: any caller, needing `read` for GET and HEAD and `write` otherwise
    (routes that need another scope take `caller` and say so with `need` or `actor_for`)."""
    async def check(request: Request, credentials: Credentials) -> Identity:
        settings: Settings = request.app.state.settings
        specific: SecretStr | None = getattr(settings, f"{source}_token", None) if source else None
        if specific is not None:
            if credentials is None or not _same_secret(credentials.credentials.strip(), specific):
                raise _unauthorized()
            return Identity(f"INCIDENTFLOW_{str(source).upper()}_TOKEN", None, frozenset({"write"}))
        identity = await caller(request, credentials)
        check_scope(identity, "read" if source is None and request.method in ("GET", "HEAD") else "write")
        return identity
    return check


# ------------------------------------------------------------------------------------ webhooks, load


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
