"""Public status-page subscriptions: `POST /status/subscribe` (double opt-in; JSON, or the status page's
urlencoded form, which works without JavaScript and is answered with a small page), `/status/confirm` and
`/status/unsubscribe` (a GET only shows a page with a button: link scanners fetch links, and must not act; the
POST acts, including RFC 8058's one-click `List-Unsubscribe=One-Click`). Tokens are turned into digests here,
so a raw token never reaches Temporal. Subscribing is throttled per client address and per email address."""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError

from domain.statuspage.mail import (
    SubscriptionRequest,
    SubscriptionResult,
    TokenInput,
    normalize_email,
    token_digest,
)
from incidentflow.api.errors import Circuit, CircuitOpen, responses
from incidentflow.api.status import ComponentId, problems
from incidentflow.client import Incidents, TemporalUnavailable

router = APIRouter(tags=["status page"], responses=responses(400, 413, 422, 429, 503))
TOKEN = r"^[A-Za-z0-9_~.%-]{16,200}$"
PER_IP, PER_EMAIL, WINDOW = 10, 3, 3600.0  # subscribe requests per hour
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
STATUS_PAGE = "/status"


class SubscribeRequest(BaseModel):
    email: str = Field(..., max_length=254, description="where status mail goes (a confirmation link first)")
    components: list[ComponentId] = Field(default_factory=list, description="component ids to hear about (none: all)")


_SCHEMA = SubscribeRequest.model_json_schema()
BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _SCHEMA},
    "application/x-www-form-urlencoded": {"schema": _SCHEMA, "encoding": {"components": {"explode": True}}}}}}


class Throttle:
    def __init__(self) -> None:
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, limit: int, now: float) -> float | None:
        """None when allowed (and counted), else the seconds until it would be."""
        q = self.seen[key]
        while q and now - q[0] > WINDOW:
            q.popleft()
        if len(q) >= limit:
            return WINDOW - (now - q[0])
        q.append(now)
        return None


async def _incidents(request: Request) -> Incidents:
    incidents: Incidents = await request.app.state.incidents()
    return incidents


def _page(title: str, body: str, status_code: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
                        f"content='width=device-width, initial-scale=1'><title>{escape(title)}</title></head><body>"
                        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>", status_code, headers)


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in FORMS


async def _json_body(request: Request) -> SubscribeRequest:
    """The JSON body, with the answers FastAPI's own parsing gives (400 naming line and column, 422 naming
    the field): the route reads its body itself because it also takes the page's form."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        data = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8: the handler says where
        raise RequestValidationError([{"type": "value_error", "loc": ("body",), "msg": "not JSON"}],
                                     body=raw) from None
    try:
        return SubscribeRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False), body=data) from None


async def _request(request: Request, body: SubscribeRequest) -> SubscriptionResult:
    """Checked and throttled, then the confirmation mail: HTTPException naming the field otherwise."""
    try:
        email = normalize_email(body.email)
        req = SubscriptionRequest(email=email, components=body.components)
    except ValidationError as exc:
        raise HTTPException(422, problems(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, f"email: {exc}" if not str(exc).startswith("email") else str(exc)) from None
    inc = await _incidents(request)
    known = {c.id for c in inc.config.statuspage.components}
    unknown = [c for c in req.components if c not in known]
    if unknown:
        raise HTTPException(422, f"components: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    throttle: Throttle = request.app.state.subscribe_throttle
    now = time.monotonic()
    client = request.client.host if request.client else "?"
    for key, limit in ((f"ip:{client}", PER_IP), (f"email:{email.lower()}", PER_EMAIL)):
        wait = throttle.allow(key, limit, now)
        if wait is not None:
            raise HTTPException(429, "too many subscribe requests: try again later",
                                headers={"Retry-After": str(int(wait) + 1)})
    return await inc.subscription("subscribe", request=req)


async def _from_the_page(request: Request) -> HTMLResponse:
    """The page's form (no JavaScript): the same checks and outcome as JSON, answered as a small page."""
    form = await request.form()
    email = str(form.get("email") or "")
    data = {"email": email, "components": [v for v in form.getlist("components") if isinstance(v, str)]}
    back = f"<p><a href='{STATUS_PAGE}'>Back to the status page</a></p>"
    try:
        await _request(request, SubscribeRequest.model_validate(data))
    except ValidationError as exc:
        return _page("Not subscribed", f"<p role=alert>{escape(problems(exc))}</p>{back}", 422)
    except HTTPException as exc:
        return _page("Not subscribed", f"<p role=alert>{escape(str(exc.detail))}</p>{back}", exc.status_code,
                     exc.headers)
    except TemporalUnavailable as exc:
        circuit: Circuit = request.app.state.circuit
        wait = exc.retry_after if isinstance(exc, CircuitOpen) else circuit.retry_after()
        return _page("Not subscribed", f"<p role=alert>Subscriptions cannot be taken right now: try again in {wait} "
                                       f"seconds.</p>{back}", 503, {"Retry-After": str(wait)})
    return _page("Check your mail", f"<p>We sent a link to {escape(email.strip())}. Open it to confirm: "
                                    "only confirmed addresses get status mail, and nothing else is sent until then."
                                    f"</p>{back}", 202)


@router.post("/status/subscribe", status_code=202, response_model=SubscriptionResult, openapi_extra=BODY,
             responses={202: {"description": "A confirmation link was mailed (a form post gets a page saying so)",
                              "content": {"text/html": {"schema": {"type": "string"}}}}},
             summary="Subscribe to status mail: a confirmation link is mailed; only confirmed addresses get mail")
async def subscribe(request: Request) -> SubscriptionResult | HTMLResponse:
    """JSON (`{"email", "components": []}`) or the status page's form (`email=…&components=…`, urlencoded)."""
    if _is_form(request):
        raw = await request.body()
        if raw.lstrip().startswith(b"{"):  # `curl -d '{…}'` labels JSON a form: the answer says so, as before
            raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "msg": "a form"}],
                                         body=raw)
        return await _from_the_page(request)
    return await _request(request, await _json_body(request))


def _confirm_form(action: str, token: str, title: str, button: str) -> HTMLResponse:
    return _page(title, f"<form method=post action='{escape(action)}'><input type=hidden name=token "
                        f"value='{escape(token)}'><button type=submit>{escape(button)}</button></form>")


@router.get("/status/confirm", response_class=HTMLResponse, summary="The confirm page (a button; GET never acts)")
async def confirm_page(token: Annotated[str, Query(pattern=TOKEN)]) -> HTMLResponse:
    return _confirm_form("/status/confirm", token, "Confirm your subscription", "Confirm")


@router.post("/status/confirm", response_class=HTMLResponse, summary="Confirm a subscription")
async def confirm(token: Annotated[str, Form(pattern=TOKEN)], request: Request) -> HTMLResponse:
    result = await (await _incidents(request)).subscription("confirm", token=TokenInput(digest=token_digest(token)))
    if result.outcome.value != "confirmed":
        return _page("Link not valid", "<p>This link has expired or was already used. Subscribe again.</p>")
    return _page("Subscribed", "<p>You will get status mail. Every mail has an unsubscribe link.</p>")


@router.get("/status/unsubscribe", response_class=HTMLResponse, summary="The unsubscribe page (GET never acts)")
async def unsubscribe_page(token: Annotated[str, Query(pattern=TOKEN)]) -> HTMLResponse:
    return _confirm_form("/status/unsubscribe", token, "Unsubscribe from status mail", "Unsubscribe")


@router.post("/status/unsubscribe", summary="Unsubscribe (also RFC 8058 one-click: token in the query)")
async def unsubscribe(request: Request, token: Annotated[str | None, Query(pattern=TOKEN)] = None) -> Response:
    form = await request.form()
    given = token or str(form.get("token") or "")
    if not given:
        raise HTTPException(422, "token: missing (use the link from your mail)")
    await (await _incidents(request)).subscription("unsubscribe", token=TokenInput(digest=token_digest(given)))
    return _page("Unsubscribed", "<p>You will get no more status mail.</p>")
