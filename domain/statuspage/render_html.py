"""The public page as HTML and an Atom feed, and the set of static files published on every change."""

from __future__ import annotations

import json
import math
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
SUBSCRIBE_PATH = "/status/subscribe"


@dataclass(frozen=True)
class Links:
    """Where the page's own links point: the API serves /status/..., a static host serves files."""

    home: str
    history: str
    feed: str
    json: str
    subscribe: str  # where the subscribe form posts: always the API (a static host cannot take a POST)

    @classmethod
    def served(cls, prefix: str = "/status") -> Links:
        return cls(home=f"{prefix}", history=f"{prefix}/history", feed=f"{prefix}/feed.atom",
                   json="/api/v2/summary.json", subscribe=SUBSCRIBE_PATH)

    @classmethod
    def static(cls, api_url: str | None = None) -> Links:
        """Relative links between the files; the form posts to the API at `statuspage.url` (the base the mailed
        confirm and unsubscribe links use too), or to this host's /status/subscribe when no URL is set."""
        return cls(home="index.html", history="history.html", feed="feed.atom", json="api/v2/summary.json",
                   subscribe=f"{api_url.rstrip('/')}{SUBSCRIBE_PATH}" if api_url else SUBSCRIBE_PATH)


def when(t: datetime) -> str:
    return f"{t.astimezone(UTC):%b %d, %H:%M} UTC"


def _incident(config: StatusPageConfig, i: PublicIncident) -> Markup:
    names = {c.id: c.name for c in config.components}
    view = {"id": i.id, "name": i.name, "impact": i.impact.value,
            "components": ", ".join(names.get(c, c) for c in i.components),
            "updates": [{"status": u.status.value.capitalize(), "body": u.body, "when": when(u.created_at),
                         "iso": render_json.iso(u.created_at)} for u in i.updates]}
    return Markup(_INCIDENT.render(i=view))


_LEVELS = (("major", "critical", "major outage"), ("partial", "major", "partial outage"),
           ("degraded", "minor", "degraded performance"))


def _minutes(value: float) -> str:
    return f"{round(value)} min" if value >= 1 else "under 1 min"


def _uptime(state: StatusPageState, component: str, days: int, now: datetime) -> dict[str, Any]:
    """The 90 bars as classes only (a plain bar is an operational day), one summary for screen readers, and
    the text of the disrupted days alone: 90 titled bars per component would not fit 100 KB for 30 of them."""
    outages = day_outages(state, component, now)
    today = now.astimezone(UTC).date()
    bars: list[dict[str, str] | None] = []
    disrupted: list[dict[str, str]] = []
    total = 0.0
    for back in range(days - 1, -1, -1):
        date = today - timedelta(days=back)
        o = outages.get(date.isoformat())
        pct = uptime(o)
        total += pct
        worst = next((level for field, level, _ in _LEVELS if o and getattr(o, field) > 0), None)
        if o is None or worst is None:
            bars.append(None)
            continue
        minutes = ", ".join(f"{_minutes(getattr(o, field))} {label}" for field, _, label in _LEVELS
                            if getattr(o, field) > 0)
        text = f"{pct} % uptime, {minutes}"
        bars.append({"level": worst, "title": f"{date:%b %d}"})  # the day's text is in the list below
        disrupted.append({"iso": date.isoformat(), "date": f"{date:%b %d}", "text": text})
    up = math.floor(total / days * 100) / 100  # rounded down: a short outage never shows as 100 %
    n = len(disrupted)
    summary = f"{up} % uptime over the last {days} days; " + (
        f"disrupted on {n} day{'' if n == 1 else 's'}" if n else "no disruptions")
    return {"bars": bars, "uptime": up, "summary": summary, "disrupted": disrupted[::-1]}


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
        components.append({"id": spec.id, "name": spec.name, "group": spec.group, "description": spec.description,
                           "status": status.value, "status_label": status.label,
                           **_uptime(state, spec.id, days, now)})
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
    links = Links.static(config.url)
    files = {
        "index.html": render_page(config, state, now, links).encode(),
        "history.html": render_page(config, state, now, links, history=True).encode(),
        "feed.atom": render_feed(config, state, now).encode(),
    }
    for path, doc in render_json.documents(config, state).items():
        files[f"api/v2/{path}"] = json.dumps(doc, separators=(",", ":")).encode()
    return files
