"""One place that turns failures into HTTP answers with a message naming what was wrong."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from incidentflow.client import (
    CommandRejected,
    IncidentflowError,
    IncidentNotFound,
    TemporalUnavailable,
)

RETRY_AFTER = "5"


class ErrorBody(BaseModel):
    error: str
    fields: list[str] | None = None


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route can give."""
    text = {400: "The body is not JSON (or not UTF-8)", 401: "Missing or wrong bearer token / signature", 404: "No such incident",
            409: "The incident's state does not allow the command (the message says why)",
            413: "Request body too large", 422: "Invalid input (the message names the field)",
            503: "Temporal unreachable or overloaded: retry after Retry-After seconds"}
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


def field_errors(errors: list[Any]) -> list[str]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        out.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = field_errors(list(exc.errors()))
        return JSONResponse({"error": "; ".join(problems), "fields": problems}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the request body is not valid JSON (it must be UTF-8 encoded JSON)"
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(request: Request, exc: TemporalUnavailable) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": RETRY_AFTER})

    @app.exception_handler(IncidentNotFound)
    async def _not_found(request: Request, exc: IncidentNotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(CommandRejected)
    async def _rejected(request: Request, exc: CommandRejected) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    @app.exception_handler(IncidentflowError)
    async def _other(request: Request, exc: IncidentflowError) -> JSONResponse:
        # Temporal answered something unexpected: tell the sender to retry rather than lose the request
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": RETRY_AFTER})
