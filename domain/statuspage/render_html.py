"""The public page as HTML and an Atom feed, and the set of static files published on every change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment
from markupsafe import Markup

from domain.statuspage import render_json
from domain.statuspage.models import (
    ComponentStatus,
    Maintenance,
    MaintenanceStatus,
    PublicIncident,
    StatusPageConfig,
    StatusPageState,
)
from domain.statuspage.page_template import INCIDENT, PAGE, STYLE
from domain.statuspage.state import day_outages, uptime

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string(PAGE)
_INCIDENT = _ENV.from_string(INCIDENT)
PAST_ON_FRONT = 10


@dataclass(frozen=True)
class Links:
    """Where the page's own links point: the API serves /status/..., a static host serves files."""

    home: str
    history: str
    feed: str
    json: str

    @classmethod
    def served(cls, prefix: str = "/status") -> Links:
        return cls(home=f"{prefix}", history=f"{prefix}/history", feed=f"{prefix}/feed.atom",
                   json="/api/v2/summary.json")

    @classmethod
    def static(cls) -> Links:
        return cls(home="index.html", history="history.html", feed="feed.atom", json="api/v2/summary.json")


def when(t: datetime) -> str:
    return f"{t.astimezone(UTC):%b %d, %H:%M} UTC"


def _incident(config: StatusPageConfig, i: PublicIncident) -> Markup:
    names = {c.id: c.name for c in config.components}
    view = {"id": i.id, "name": i.name, "impact": i.impact.value,
            "components": ", ".join(names.get(c, c) for c in i.components),
            "updates": [{"status": u.status.value.capitalize(), "body": u.body, "when": when(u.created_at),
                         "iso": render_json.iso(u.created_at)} for u in i.updates]}
    return Markup(_INCIDENT.render(i=view))


def _bars(state: StatusPageState, component: str, days: int, now: datetime) -> tuple[list[dict[str, str]], float]:
    outages = day_outages(state, component, now)
    today = now.astimezone(UTC).date()
    bars, total = [], 0.0
    for back in range(days - 1, -1, -1):
        day = (today - timedelta(days=back)).isoformat()
        o = outages.get(day)
        pct = uptime(o)
        total += pct
        level = "none"
        if o and o.major:
            level = "critical"
        elif o and o.partial:
            level = "major"
        elif o and o.degraded:
            level = "minor"
        detail = f"{day}: {pct} % uptime" + (f", {round(o.major)} min major outage" if o and o.major else "") \
            + (f", {round(o.partial)} min partial outage" if o and o.partial else "")
        bars.append({"level": level, "title": detail})
    return bars, round(total / days, 2)


def _maintenance(config: StatusPageConfig, m: Maintenance) -> dict[str, Any]:
    names = {c.id: c.name for c in config.components}
    return {"title": m.title, "body": m.body, "status_label": m.status.value.replace("_", " ").capitalize(),
            "window": f"{when(m.scheduled_for)} to {when(m.scheduled_until)}",
            "components": ", ".join(names.get(c, c) for c in m.components)}


def render_page(config: StatusPageConfig, state: StatusPageState, now: datetime, links: Links,
                history: bool = False) -> str:
    days = config.history_days
    components = []
    for spec in config.components:
        current = state.components.get(spec.id)
        status = current.status if current else ComponentStatus.operational
        bars, up = _bars(state, spec.id, days, now)
        components.append({"name": spec.name, "group": spec.group, "description": spec.description,
                           "status": status.value, "status_label": status.label, "bars": bars, "uptime": up})
    ind = render_json.indicator(state)
    live = (MaintenanceStatus.scheduled, MaintenanceStatus.in_progress, MaintenanceStatus.verifying)
    resolved = [i for i in state.incidents if not i.open]
    return _PAGE.render(
        title=config.title, subtitle="History" if history else "", style=Markup(STYLE), links=links,
        history=history, indicator=ind, description=render_json.status(config, state)["status"]["description"],
        active=[i for i in state.incidents if i.open], incident=lambda i: _incident(config, i),
        past=resolved if history else resolved[:PAST_ON_FRONT], components=components, days=days,
        maintenances=[_maintenance(config, m) for m in state.maintenances if m.status in live],
        updated=when(state.updated_at or now),
    )


def render_feed(config: StatusPageConfig, state: StatusPageState, now: datetime) -> str:
    """Atom 1.0: one entry per public incident update, newest first."""
    base = (config.url or "").rstrip("/")
    entries = []
    for i in state.incidents[:render_json.INCIDENTS_LISTED]:
        for u in i.updates:
            entries.append((u.created_at, (
                f"<entry><id>tag:incidentflow,{u.created_at:%Y-%m-%d}:{escape(u.id)}</id>"
                f"<title>{escape(i.name)}: {escape(u.status.value.capitalize())}</title>"
                f"<updated>{render_json.iso(u.created_at)}</updated>"
                f"<link href=\"{escape(base)}/status\"/>"
                f"<content type=\"text\">{escape(u.body)}</content></entry>")))
    entries.sort(key=lambda e: e[0], reverse=True)
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<id>tag:incidentflow,2026:{escape(config.title)}</id><title>{escape(config.title)}</title>"
            f"<updated>{render_json.iso(state.updated_at or now)}</updated>"
            f"<link rel=\"alternate\" href=\"{escape(base)}/status\"/>"
            + "".join(e for _, e in entries[:100]) + "</feed>\n")


def static_files(config: StatusPageConfig, state: StatusPageState, now: datetime) -> dict[str, bytes]:
    """Everything a static host needs to serve the page while our own infrastructure is down."""
    links = Links.static()
    files = {
        "index.html": render_page(config, state, now, links).encode(),
        "history.html": render_page(config, state, now, links, history=True).encode(),
        "feed.atom": render_feed(config, state, now).encode(),
    }
    for path, doc in render_json.documents(config, state).items():
        files[f"api/v2/{path}"] = json.dumps(doc, separators=(",", ":")).encode()
    return files
