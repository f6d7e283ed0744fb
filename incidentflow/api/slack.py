"""Slack's HTTP endpoints: slash commands, interactivity (buttons, modals) and the Events API.

Each request's signature is checked over the raw body before anything else (401 when missing, forged,
replayed or more than 5 minutes off). The replay guard of `SlackVerifier` is this process's memory; what
makes a replay harmless everywhere (after a restart, on another replica) is that the signature is the
request's idempotency key: every command it makes is applied once, durably in Temporal. Slack wants an answer within 3 seconds: the command runs for
up to `slack.reply.ACK_BUDGET` seconds and answers in the HTTP body; when slower, Slack gets "working on it" and
the result follows through the request's `response_url`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from domain.config import Settings
from incidentflow.api.errors import responses
from incidentflow.slack.gateway import SlackGateway
from incidentflow.slack.reply import WORKING, Reply, post_response, within_budget
from incidentflow.slack.verify import SignatureError, SlackVerifier

router = APIRouter(prefix="/slack", tags=["slack"], responses=responses(400, 401, 413, 503))


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


def _key(request: Request) -> str:
    """The request's idempotency key: its (verified) signature, the same however often it is replayed."""
    return f"slack-signature:{request.headers.get('x-slack-signature', '')}"


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


@router.post("/commands", summary="Slash command `/incident …` (signed by Slack)")
async def commands(request: Request) -> Response:
    body = await _verified_body(request)
    form = _form(body)
    reply = await within_budget(request.app.state, _gateway(request).command(form, key=_key(request)),
                                form.get("response_url", ""))
    if reply is None:
        return JSONResponse(dict(WORKING))
    if reply.opened_modal:
        return Response(status_code=200)  # the form is open: nothing to say in the channel
    return JSONResponse(reply.message())


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
        result["out"] = await _gateway(request).interaction(payload, key=_key(request))
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
