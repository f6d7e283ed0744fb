"""Who is on call: read from the config's schedules (no Temporal needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from domain import oncall
from incidentflow.api.errors import responses
from incidentflow.api.security import need

router = APIRouter(prefix="/v1", tags=["on-call"], dependencies=[Depends(need("read"))],
                   responses=responses(401, 403, 404, 422))


@router.get("/oncall", summary="Who holds each schedule layer at a moment (default: now)")
async def who_is_on_call(request: Request, at: datetime | None = None,
                         schedule: Annotated[str | None, Query(max_length=128)] = None) -> dict[str, object]:
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise HTTPException(422, "at: give a timezone offset, e.g. 2026-03-29T01:30:00+01:00 or …Z")
    try:
        table = oncall.who_is_on_call(request.app.state.config.schedules, moment, schedule)
    except KeyError:
        raise HTTPException(404, f"no schedule named {schedule!r}") from None
    return {"at": moment.astimezone(UTC).isoformat(), "schedules": table}
