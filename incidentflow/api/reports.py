"""The learning reports over HTTP: `GET /v1/reports` (JSON, or CSV with `?format=csv`) and `GET /reports` (the
HTML page with server-rendered SVG charts). Computed from the archive (the records store), so they answer while
Temporal is down; the same read scope as the other /v1 routes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from domain.archive.models import ArchiveQuery
from domain.archive.when import parse_when
from domain.models import Severity
from domain.models.common import SERVICE_NAME
from incidentflow.api.errors import responses
from incidentflow.api.security import Identity, caller, need
from incidentflow.client import Incidents, InvalidInput

router = APIRouter(tags=["reports"], dependencies=[Depends(caller)], responses=responses(400, 401, 403, 422))
Reader = Annotated[Identity, Depends(need("read"))]
SINCE = "how far back: a span back from now (30d, 12h, 2w) or an ISO date/time (UTC unless it says); default 30d"


def _query(since: str | None, until: str | None, service: str | None, severity: str | None) -> ArchiveQuery:
    problems: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for field, value in (("since", since or "30d"), ("until", until)):
        if value is None:
            continue
        try:
            parsed[field] = parse_when(value, datetime.now(UTC))
        except ValueError as exc:
            problems[field] = str(exc)
    if severity is not None:
        try:
            parsed["severity"] = Severity.parse(severity).value
        except ValueError:
            problems["severity"] = f"{severity[:40]!r}: use SEV1, SEV2, SEV3 or SEV4"
    if service is not None:
        import re

        if len(service) > 63 or not re.fullmatch(SERVICE_NAME, service):
            problems["service"] = f"{service[:80]!r} is not a service name (letters, digits, . _ -)"
        parsed["service"] = service
    if problems:
        raise InvalidInput([f"{k}: {v}" for k, v in problems.items()])
    return ArchiveQuery(**parsed)


async def _report(request: Request, query: ArchiveQuery) -> Any:
    incidents = Incidents(None, request.app.state.settings, request.app.state.config)  # type: ignore[arg-type]
    return await incidents.report(query, datetime.now(UTC))


@router.get("/v1/reports", summary="MTTD, MTTA, MTTM, MTTR, MTBF (p50, p90, mean), counts, alert quality, "
            "follow-through and targets, over the archive")
async def reports(request: Request, _: Reader,
                  since: Annotated[str | None, Query(description=SINCE, max_length=40)] = None,
                  until: Annotated[str | None, Query(description="up to (exclusive), like since", max_length=40)] = None,
                  service: Annotated[str | None, Query(max_length=63)] = None,
                  severity: Annotated[str | None, Query(description="SEV1..SEV4", max_length=8)] = None,
                  format: Annotated[Literal["json", "csv"], Query(description="json (durations in seconds) or csv "
                                                                  "(one metric per row)")] = "json") -> Any:
    report = await _report(request, _query(since, until, service, severity))
    if format == "csv":
        from domain.reports.compute import report_csv

        return PlainTextResponse(report_csv(report), media_type="text/csv; charset=utf-8")
    return JSONResponse(report.as_json())


@router.get("/reports", response_class=HTMLResponse, summary="The reports page: figures and SVG charts, no JavaScript")
async def reports_page(request: Request, _: Reader,
                       since: Annotated[str | None, Query(description=SINCE, max_length=40)] = None,
                       until: Annotated[str | None, Query(max_length=40)] = None,
                       service: Annotated[str | None, Query(max_length=63)] = None,
                       severity: Annotated[str | None, Query(max_length=8)] = None) -> HTMLResponse:
    from domain.reports.charts import render_charts
    from domain.reports.page import render_reports_page

    report = await _report(request, _query(since, until, service, severity))
    charts = await asyncio.to_thread(render_charts, report)  # pygal: CPU work off the event loop
    html = render_reports_page(report, charts, "Incident reports", datetime.now(UTC))
    return HTMLResponse(html, headers={"Cache-Control": "no-store",  # inline style and SVG only, nothing else
                                       "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
