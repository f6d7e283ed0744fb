"""The public status page over HTTP, and the routes that change it.

Public (no token): `GET /status`, `/status/history`, `/status/feed.atom` and Statuspage-compatible JSON under
`/api/v2/`. They are served from the static files the worker publishes when this process can read them (so
they answer while Temporal is down), else rendered from the StatusPageWorkflow's state. The files link to each
other; served here, their links (and the subscribe form) point at these routes.
With a token: drafts and publishing (`/v1/incidents/{id}/public-updates`), component statuses, maintenances."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StringConstraints, ValidationError, field_validator

from activities.statuspage import VERSION_FILE
from domain.statuspage import render_json
from domain.statuspage.drafts import Draft
from domain.statuspage.messages import PublishResult
from domain.statuspage.models import (
    COMPONENT_ID,
    ComponentStatus,
    Maintenance,
    MaintenanceInput,
    PublicStatus,
    StatusPageConfig,
    StatusPageState,
)
from domain.statuspage.render_html import Links, render_feed, render_page
from domain.text import MultiLine, SingleLine
from incidentflow.api.errors import responses
from incidentflow.api.incidents import IdempotencyKey
from incidentflow.api.security import Identity, actor_for, caller, need
from incidentflow.client import Incidents

public = APIRouter(tags=["status page"], responses=responses(400, 404, 413, 422, 503))
router = APIRouter(prefix="/v1", tags=["status page"], dependencies=[Depends(caller)],
                   responses=responses(400, 401, 403, 404, 409, 413, 422, 503))
Reader = Annotated[Identity, Depends(need("read"))]
Caller = Annotated[Identity, Depends(caller)]
ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"
JSON_DOCS = ("summary", "status", "components", "incidents", "incidents/unresolved", "scheduled-maintenances",
             "scheduled-maintenances/upcoming", "scheduled-maintenances/active")
ComponentId = Annotated[str, StringConstraints(pattern=COMPONENT_ID)]
BY = Field(None, min_length=1, max_length=128,
           description="who does it (a person id): only with the act-as scope; default: the token's person")


class PublishRequest(BaseModel):
    text: MultiLine | None = Field(None, max_length=5000, description="the update's text (default: the draft)")
    status: PublicStatus | None = Field(None, description="investigating, identified, monitoring or resolved "
                                                          "(default: from the incident's phase)")
    components: dict[ComponentId, ComponentStatus] = Field(
        default_factory=dict, description="component id → status, over the draft's (operational, "
                                          "degraded_performance, partial_outage, major_outage, under_maintenance)")
    by: str | None = BY


class ComponentsRequest(BaseModel):
    components: dict[ComponentId, ComponentStatus] = Field(..., min_length=1)
    by: str | None = BY


class MaintenanceRequest(BaseModel):
    title: SingleLine = Field(..., min_length=1, max_length=200)
    body: MultiLine = Field("", max_length=5000)
    components: list[ComponentId] = Field(..., min_length=1)
    start: datetime
    end: datetime
    by: str | None = BY


class CancelRequest(BaseModel):
    reason: SingleLine = Field("", max_length=500)
    by: str | None = BY


class ExtendRequest(BaseModel):
    until: datetime
    by: str | None = BY

    @field_validator("until")
    @classmethod
    def _zoned(cls, v: datetime) -> datetime:
        if v.utcoffset() is None:
            raise ValueError("give a timezone (e.g. 2026-12-07T04:00Z or 2026-12-07T05:00+01:00)")
        return v


def problems(exc: ValidationError) -> str:
    """One line naming each bad field (a model validator's message names its own)."""
    return "; ".join((f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
                     for e in exc.errors())


async def _incidents(request: Request) -> Incidents:
    incidents: Incidents = await request.app.state.incidents()
    return incidents


def _directory(request: Request, cfg: StatusPageConfig) -> FilePath:
    return FilePath(cfg.publish_dir) if cfg.publish_dir else request.app.state.settings.data_dir / "statuspage"


async def _served(request: Request, name: str) -> bytes | None:
    """The published file, when this process can read the worker's directory."""
    cfg: StatusPageConfig = request.app.state.config.statuspage
    path = _directory(request, cfg) / name
    if (_directory(request, cfg) / VERSION_FILE).exists() and path.is_file():
        return path.read_bytes()
    return None


async def _state(request: Request) -> tuple[StatusPageConfig, StatusPageState]:
    inc = await _incidents(request)
    return inc.config.statuspage, await inc.statuspage_state()


def _relinked(page: bytes, cfg: StatusPageConfig) -> bytes:
    """A published page's links, pointed at this API's routes (the files link to each other)."""
    static, served = Links.static(cfg.url), Links.served()
    for attr, name in (("href", "home"), ("href", "history"), ("href", "feed"), ("href", "json"),
                       ("action", "subscribe")):
        page = page.replace(f'{attr}="{getattr(static, name)}"'.encode(), f'{attr}="{getattr(served, name)}"'.encode())
    return page


async def _page(request: Request, history: bool) -> Response:
    """The published file while it can be read (so the page answers while Temporal is down), else rendered."""
    cached = await _served(request, "history.html" if history else "index.html")
    if cached is not None:
        return HTMLResponse(_relinked(cached, request.app.state.config.statuspage))
    cfg, state = await _state(request)
    return HTMLResponse(render_page(cfg, state, datetime.now(UTC), Links.served(), history=history))


@public.get("/status", response_class=HTMLResponse, summary="The public status page (HTML, no JavaScript)")
async def status_page(request: Request) -> Response:
    return await _page(request, history=False)


@public.get("/status/history", response_class=HTMLResponse, summary="Past incidents of the status page")
async def status_history(request: Request) -> Response:
    return await _page(request, history=True)


@public.get("/status/feed.atom", summary="Atom feed of public incident updates")
async def status_feed(request: Request) -> Response:
    cached = await _served(request, "feed.atom")
    if cached is None:
        cfg, state = await _state(request)
        cached = render_feed(cfg, state, datetime.now(UTC)).encode()
    return Response(cached, media_type="application/atom+xml")


@public.get("/api/v2/{document:path}", summary="Statuspage-compatible public JSON (summary.json, status.json, …)")
async def statuspage_json(document: str, request: Request) -> Response:
    name = document.removesuffix(".json")
    if name not in JSON_DOCS or not document.endswith(".json"):
        raise HTTPException(404, f"no document {document!r} (known: {', '.join(d + '.json' for d in JSON_DOCS)})")
    cached = await _served(request, f"api/v2/{document}")
    if cached is None:
        cfg, state = await _state(request)
        cached = json.dumps(render_json.documents(cfg, state)[document]).encode()
    return Response(cached, media_type="application/json", headers={"Access-Control-Allow-Origin": "*"})


# ---------------------------------------------------------------------------- changes (token needed)
@router.get("/incidents/{incident_id}/public-updates/draft", response_model=Draft,
            summary="The public update the incident asks for now (edit it, then publish)")
async def public_draft(incident_id: Annotated[str, Path(pattern=ID)], request: Request, _: Reader) -> Draft:
    return await (await _incidents(request)).public_draft(incident_id)


@router.post("/incidents/{incident_id}/public-updates", response_model=PublishResult,
             summary="Publish a public update (the draft, or your text); needs the comms lead or the IC")
async def publish(incident_id: Annotated[str, Path(pattern=ID)], body: PublishRequest, request: Request,
                  who: Caller, key: IdempotencyKey = None) -> PublishResult:
    inc = await _incidents(request)
    by = actor_for(who, body.by, "write", config=inc.config)
    return await inc.publish_public_update(incident_id, by, body.text, body.status, body.components or None, key=key)


@router.post("/statuspage/components", summary="Set component statuses (outside an incident)")
async def set_components(body: ComponentsRequest, request: Request, who: Caller,
                         key: IdempotencyKey = None) -> dict[str, Any]:
    inc = await _incidents(request)
    by = actor_for(who, body.by, "write", config=inc.config)
    version = await inc.set_component_statuses(body.components, by, key=key)
    return {"version": version}


@router.get("/maintenances", response_model=list[Maintenance], summary="Scheduled, running and past maintenances")
async def list_maintenances(request: Request, _: Reader) -> list[Maintenance]:
    return await (await _incidents(request)).maintenances()


@router.post("/maintenances", response_model=Maintenance, status_code=201, summary="Schedule a maintenance window")
async def schedule(body: MaintenanceRequest, request: Request, who: Caller,
                   key: IdempotencyKey = None) -> Maintenance:
    inc = await _incidents(request)
    by = actor_for(who, body.by, "write", config=inc.config)
    try:
        cmd = MaintenanceInput(title=body.title, body=body.body, components=body.components, start=body.start,
                               end=body.end, by=by)
    except ValidationError as exc:
        raise HTTPException(422, problems(exc)) from None
    return await inc.schedule_maintenance(cmd, key=key)


@router.post("/maintenances/{maintenance_id}/cancel", response_model=Maintenance, summary="Cancel a maintenance")
async def cancel(maintenance_id: Annotated[str, Path(pattern=ID)], body: CancelRequest, request: Request,
                 who: Caller, key: IdempotencyKey = None) -> Maintenance:
    inc = await _incidents(request)
    by = actor_for(who, body.by, "write", config=inc.config)
    return await inc.cancel_maintenance(maintenance_id, by, body.reason, key=key)


@router.post("/maintenances/{maintenance_id}/extend", response_model=Maintenance, summary="Move a maintenance's end")
async def extend(maintenance_id: Annotated[str, Path(pattern=ID)], body: ExtendRequest, request: Request,
                 who: Caller, key: IdempotencyKey = None) -> Maintenance:
    inc = await _incidents(request)
    by = actor_for(who, body.by, "write", config=inc.config)
    return await inc.extend_maintenance(maintenance_id, body.until, by, key=key)
