"""Slack's HTTP endpoints: slash commands, interactivity (buttons, modals) and the Events API.

Each request's signature is checked over the raw body before anything else (401 when missing, forged,
replayed or more than 5 minutes off). Slack wants an answer within 3 seconds: the command runs for
up to `ACK_BUDGET` seconds and answers in the HTTP body; when slower, Slack gets "working on it" and
the result follows through the request's `response_url`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from domain.config import Settings
from incidentflow.api.errors import responses
from incidentflow.slack.gateway import Reply, SlackGateway
from incidentflow.slack.verify import SignatureError, SlackVerifier

log = logging.getLogger("incidentflow.slack")
router = APIRouter(prefix="/slack", tags=["slack"], responses=responses(400, 401, 413, 503))
ACK_BUDGET = 2.5  # seconds; Slack gives up at 3


def _verifier(request: Request) -> SlackVerifier:
    settings: Settings = request.app.state.settings
    verifier: SlackVerifier | None = getattr(request.app.state, "slack_verifier", None)
    if verifier is None:
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        if not secret:
            raise HTTPException(401, "Slack signature check failed: no signing secret is configured here "
                                     "(set INCIDENTFLOW_SLACK_SIGNING_SECRET)")
        verifier = request.app.state.slack_verifier = SlackVerifier(secret)
    return verifier


async def _verified_body(request: Request) -> bytes:
    verifier = _verifier(request)
    body = await request.body()
    try:
        verifier.verify(request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature"),
                        body)
    except SignatureError as exc:
        raise HTTPException(401, f"Slack signature check failed: {exc}") from None
    return body


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise HTTPException(400, "body: not UTF-8 form data") from None


def _gateway(request: Request) -> SlackGateway:
    gateway: SlackGateway = request.app.state.slack_gateway
    return gateway


async def post_response(url: str, reply: Reply, http: httpx.AsyncClient | None = None) -> None:
    """Deliver a reply through Slack's `response_url` (valid 30 minutes, up to 5 times)."""
    if not url or not reply.text:
        return
    body = {**reply.body(), "replace_original": False}
    body.pop("incident_id", None)
    body.pop("modal", None)
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


async def within_budget(app_state: Any, work: Awaitable[Reply], response_url: str,
                        budget: float | None = None) -> Reply | None:
    """The reply if ready within the budget; else None, and the reply follows via response_url."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=budget if budget is not None else
                                 getattr(app_state, "slack_ack_budget", ACK_BUDGET))
    if task in done:
        return task.result()
    pending: set[asyncio.Task[None]] = app_state.slack_pending

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


def _clean(reply: Reply) -> dict[str, Any]:
    body = reply.body()
    body.pop("incident_id", None)
    body.pop("modal", None)
    return body


@router.post("/commands", summary="Slash command `/incident …` (signed by Slack)")
async def commands(request: Request) -> Response:
    body = await _verified_body(request)
    form = _form(body)
    reply = await within_budget(request.app.state, _gateway(request).command(form), form.get("response_url", ""))
    if reply is None:
        return JSONResponse({"response_type": "ephemeral", "text": "Working on it…"})
    if reply.extra.get("modal") and not reply.text:
        return Response(status_code=200)  # the form is open: nothing to say in the channel
    return JSONResponse(_clean(reply))


@router.post("/interactions", summary="Buttons and modal submissions (signed by Slack)")
async def interactions(request: Request) -> Response:
    body = await _verified_body(request)
    raw = _form(body).get("payload")
    if not raw:
        raise HTTPException(400, "payload: missing (Slack sends interactions as a form field `payload`)")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "payload: not JSON") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "payload: must be a JSON object")
    response_url = str(payload.get("response_url") or "")
    result: dict[str, tuple[Reply | None, dict[str, Any] | None]] = {}

    async def work() -> Reply:
        result["out"] = await _gateway(request).interaction(payload)
        return result["out"][0] or Reply("")
    reply = await within_budget(request.app.state, work(), response_url)
    http_body = result.get("out", (None, None))[1]
    if reply is not None and reply.text and response_url:
        await post_response(response_url, reply)
    if http_body:
        return JSONResponse(http_body)
    return Response(status_code=200)


@router.post("/events", summary="Events API (url_verification, app_mention), signed by Slack")
async def events(request: Request) -> Response:
    body = await _verified_body(request)
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "body: not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body: must be a JSON object")
    if request.headers.get("x-slack-retry-num") and data.get("type") != "url_verification":
        return Response(status_code=200)  # a redelivery of an event we already took
    return JSONResponse(await _gateway(request).event(data))
