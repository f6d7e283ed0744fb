"""One place that turns failures into HTTP answers with a message naming what was wrong, and the circuit
that makes them fast while Temporal is down."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from incidentflow.api.security import ASGIApp, Message
from incidentflow.api.security import Scope as ASGIScope
from incidentflow.client import (
    CommandRejected,
    IncidentflowError,
    IncidentNotFound,
    InvalidInput,
    KeyReused,
    TemporalUnavailable,
)

RETRY_AFTER = "5"
log = logging.getLogger("incidentflow.api")


class ErrorBody(BaseModel):
    error: str
    fields: list[str] | None = None


_TEXT = {400: "The body is not JSON (the message gives the line and column), or not UTF-8",
         401: "Missing or wrong bearer token / signature",
         403: "The token lacks the scope the route needs, or `by` names someone other than the token's person "
              "without the act-as scope",
         404: "No such incident, run, schedule, postmortem or action item (or a webhook receiver not configured)",
         409: "The incident's state does not allow the command (the message says why)",
         413: "Request body larger than INCIDENTFLOW_MAX_BODY_BYTES (checked while it streams in)",
         422: "Invalid input (the message names the field; for a person, service or escalation level the config "
              "does not know, it lists the known ones)",
         429: "Too many requests from this client or for this address: retry after Retry-After seconds",
         503: "Temporal unreachable or overloaded: retry after Retry-After seconds"}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route can give."""
    return {code: {"model": ErrorBody, "description": _TEXT[code]} for code in codes}


def field_errors(errors: list[Any]) -> list[str]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # our validators' words, as written
        out.append(f"{'.'.join(loc) or 'body'}: {msg}")
    return out


def json_problem(exc: RequestValidationError) -> str | None:
    """The body is not JSON: what is wrong and where (line, column), as the JSON parser saw it. A body sent
    as another content type (curl's `-d` sends a form) is read as JSON here too, so its answer says the same."""
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            doc = exc.body if isinstance(exc.body, str) else ""
            pos = err["loc"][-1] if isinstance(err["loc"][-1], int) else 0
            return _where(doc, pos, str((err.get("ctx") or {}).get("error", "invalid JSON")))
        if tuple(err.get("loc", ())) == ("body",) and isinstance(exc.body, bytes) and exc.body:
            return _not_json(exc.body)
    return None


def _where(doc: str, pos: int, reason: str) -> str:
    line, column = doc.count("\n", 0, pos) + 1, pos - doc.rfind("\n", 0, pos)
    return f"body: not valid JSON: {reason} at line {line}, column {column} (character {pos + 1})"


def _not_json(raw: bytes) -> str:
    try:
        json.loads(raw)
    except UnicodeDecodeError as exc:
        return f"body: not valid JSON: not UTF-8 (byte {exc.start + 1})"
    except json.JSONDecodeError as exc:
        return _where(exc.doc, exc.pos, exc.msg)
    return "body: send it as JSON, with Content-Type: application/json"


# --------------------------------------------------------------------------------------- the circuit

class CircuitOpen(TemporalUnavailable):
    """Temporal failed a moment ago: answered at once, without trying."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Usage:
    temporal = False


_USAGE: ContextVar[_Usage | None] = ContextVar("incidentflow_temporal_usage", default=None)


def touch_temporal() -> None:
    """Marks the current request as waiting on Temporal (the `TemporalGuard` watches those)."""
    usage = _USAGE.get()
    if usage is not None:
        usage.temporal = True


class Circuit:
    """Fail fast while Temporal is down, so a storm of requests does not wait 5–10 s each.

    Closed: requests go through. A failure (a `TemporalUnavailable`, or a request waiting on Temporal
    longer than `suspect_after`) is checked with one fast probe (`probe_timeout`, no retries), shared by
    everyone asking. The probe failing opens the circuit: requests that need Temporal get 503 with
    Retry-After at once. After `open_for` seconds it is half-open: the next request lets one probe through,
    which closes the circuit or opens it again; meanwhile the others still get 503."""

    def __init__(self, probe: Callable[[], Awaitable[object]], target: str = "Temporal", open_for: float = 5.0,
                 suspect_after: float = 1.0, probe_timeout: float = 1.0) -> None:
        self._probe, self.target = probe, target
        self.open_for, self.suspect_after, self.probe_timeout = open_for, suspect_after, probe_timeout
        self.opened_at: float | None = None
        self.reason = ""
        self._probing: asyncio.Future[bool] | None = None
        self._answered_at = -math.inf

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def retry_after(self) -> int:
        if self.opened_at is None:
            return int(RETRY_AFTER)
        return max(1, math.ceil(self.opened_at + self.open_for - time.monotonic()))

    def trip(self, reason: str) -> None:
        if self.opened_at is None:
            log.warning("Temporal unavailable, answering 503 at once for %s s: %s", self.open_for, reason)
        self.opened_at, self.reason = time.monotonic(), reason

    def unavailable(self) -> CircuitOpen:
        wait = self.retry_after()
        return CircuitOpen(f"{self.reason} (not trying again for {wait} s)", wait)

    async def admit(self) -> None:
        """Before a request uses Temporal: CircuitOpen while open; past the cool-down, one probe goes first."""
        if self.opened_at is None:
            return
        if time.monotonic() - self.opened_at < self.open_for or self._probing is not None:
            raise self.unavailable()
        if not await self._check():
            raise self.unavailable()

    async def suspect(self) -> bool:
        """Something looked like Temporal failing: does it still answer? (A recent answer counts.)"""
        if self.opened_at is not None:
            return False
        if time.monotonic() - self._answered_at < self.suspect_after:
            return True
        return await self._check()

    async def _check(self) -> bool:
        if self._probing is None:
            self._probing = asyncio.ensure_future(self._run_probe())
        return await asyncio.shield(self._probing)

    async def _run_probe(self) -> bool:
        try:
            await asyncio.wait_for(self._probe(), self.probe_timeout)
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means: not answering
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            self.trip(detail if isinstance(exc, TemporalUnavailable) else
                      f"{self.target} did not answer within {self.probe_timeout:g} s: {detail}")
            return False
        finally:
            self._probing = None
        if self.opened_at is not None:
            log.warning("Temporal answers again: circuit closed")
        self.opened_at, self._answered_at = None, time.monotonic()
        return True


class TemporalGuard:
    """ASGI middleware: a request that has waited on Temporal for `suspect_after` seconds asks the circuit;
    if Temporal does not answer its probe, the request gets 503 + Retry-After now, rather than after the
    client's own retries. Slack routes are left alone: they answer within Slack's budget and say why in chat."""

    def __init__(self, app: ASGIApp, circuit: Circuit, exempt: tuple[str, ...] = ("/slack/",)) -> None:
        self.app, self.circuit, self.exempt = app, circuit, exempt

    async def __call__(self, scope: ASGIScope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt):
            return await self.app(scope, receive, send)
        usage, started, answered = _Usage(), False, False

        async def guarded(message: Message) -> None:
            nonlocal started
            if not answered:
                started = started or message["type"] == "http.response.start"
                await send(message)

        token = _USAGE.set(usage)
        try:
            task = asyncio.ensure_future(self.app(scope, receive, guarded))
        finally:
            _USAGE.reset(token)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.circuit.suspect_after)
                if task.done() or started or not usage.temporal:
                    continue
                if await self.circuit.suspect() or task.done() or started:
                    continue
                answered = True
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return await _unavailable(self.circuit.unavailable(), send)
        except asyncio.CancelledError:
            task.cancel()
            raise
        return task.result()


async def _unavailable(exc: CircuitOpen, send: Callable[[Message], Awaitable[None]]) -> None:
    body = JSONResponse({"error": str(exc)}).body
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(exc.retry_after).encode())]})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------ handlers

def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        not_json = json_problem(exc)
        if not_json:
            return JSONResponse({"error": not_json}, status_code=400)
        problems = field_errors(list(exc.errors()))
        return JSONResponse({"error": "; ".join(problems), "fields": problems}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "body: not valid JSON (it must be UTF-8 encoded JSON)"
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(request: Request, exc: TemporalUnavailable) -> JSONResponse:
        circuit: Circuit = request.app.state.circuit
        if not isinstance(exc, CircuitOpen):
            await circuit.suspect()  # a timeout of a slow command is not Temporal being down: ask it
        wait = exc.retry_after if isinstance(exc, CircuitOpen) else circuit.retry_after()
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(wait)})

    @app.exception_handler(IncidentNotFound)
    async def _not_found(request: Request, exc: IncidentNotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(InvalidInput)
    async def _invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"error": str(exc), "fields": exc.problems}, status_code=422)

    @app.exception_handler(KeyReused)
    async def _key_reused(request: Request, exc: KeyReused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(CommandRejected)
    async def _rejected(request: Request, exc: CommandRejected) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    @app.exception_handler(IncidentflowError)
    async def _other(request: Request, exc: IncidentflowError) -> JSONResponse:
        # Temporal answered something unexpected: tell the sender to retry rather than lose the request
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": RETRY_AFTER})
