"""Statuspage-compatible public JSON (`/api/v2/*.json`): the shapes widgets and monitors already read.

Field names and value sets follow Atlassian Statuspage's public API; ids are ours. Times are ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.statuspage.models import (
    ComponentStatus,
    Impact,
    Maintenance,
    MaintenanceStatus,
    PublicIncident,
    StatusPageConfig,
    StatusPageState,
)
from domain.statuspage.state import impact_of

INCIDENTS_LISTED = 50
_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
    "maintenance": "Service Under Maintenance",
}
_RANK = {Impact.none: 0, Impact.minor: 1, Impact.major: 2, Impact.critical: 3}


def iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None


def page(config: StatusPageConfig, state: StatusPageState) -> dict[str, Any]:
    return {"id": "incidentflow", "name": config.title, "url": config.url or "", "time_zone": "Etc/UTC",
            "updated_at": iso(state.updated_at)}


def indicator(state: StatusPageState) -> str:
    """none | minor | major | critical (worst of open incidents and components), or maintenance when the only
    thing going on is a maintenance."""
    statuses = [c.status for c in state.components.values()]
    worst = max([impact_of(statuses)] + [i.impact for i in state.incidents if i.open],
                key=_RANK.__getitem__)
    if worst == Impact.none and ComponentStatus.under_maintenance in statuses:
        return "maintenance"
    return worst.value


def status(config: StatusPageConfig, state: StatusPageState) -> dict[str, Any]:
    ind = indicator(state)
    return {"page": page(config, state), "status": {"indicator": ind, "description": _DESCRIPTIONS[ind]}}


def components(config: StatusPageConfig, state: StatusPageState) -> list[dict[str, Any]]:
    groups = {c.group for c in config.components if c.group}
    rows: list[dict[str, Any]] = []
    for position, group in enumerate(sorted(groups), start=1):
        members = [c.id for c in config.components if c.group == group]
        worst = max((state.components[m].status for m in members if m in state.components),
                    key=lambda s: _RANK[impact_of([s])], default=ComponentStatus.operational)
        rows.append({"id": f"group-{group}", "name": group, "status": worst.value, "position": position,
                     "description": None, "group": True, "group_id": None, "components": members,
                     "created_at": None, "updated_at": iso(state.updated_at), "page_id": "incidentflow",
                     "showcase": False, "only_show_if_degraded": False})
    for position, spec in enumerate(config.components, start=len(rows) + 1):
        current = state.components.get(spec.id)
        rows.append({"id": spec.id, "name": spec.name,
                     "status": (current.status if current else ComponentStatus.operational).value,
                     "position": position, "description": spec.description or None, "group": False,
                     "group_id": f"group-{spec.group}" if spec.group else None, "created_at": None,
                     "updated_at": iso(current.updated_at if current else None), "page_id": "incidentflow",
                     "showcase": True, "only_show_if_degraded": False})
    return rows


def incident(config: StatusPageConfig, i: PublicIncident) -> dict[str, Any]:
    names = {c.id: c.name for c in config.components}
    shortlink = f"{config.url.rstrip('/')}/status/incidents/{i.id}" if config.url else ""
    return {
        "id": i.id, "name": i.name, "status": i.status.value, "impact": i.impact.value, "page_id": "incidentflow",
        "created_at": iso(i.created_at), "updated_at": iso(i.updated_at), "started_at": iso(i.created_at),
        "monitoring_at": iso(i.monitoring_at), "resolved_at": iso(i.resolved_at), "shortlink": shortlink,
        "components": [{"id": c, "name": names.get(c, c)} for c in i.components],
        "incident_updates": [{
            "id": u.id, "status": u.status.value, "body": u.body, "incident_id": i.id,
            "created_at": iso(u.created_at), "updated_at": iso(u.created_at), "display_at": iso(u.created_at),
            "affected_components": [a.model_dump(mode="json") for a in u.affected_components],
            "deliver_notifications": True,
        } for u in i.updates],
    }


def maintenance(config: StatusPageConfig, m: Maintenance) -> dict[str, Any]:
    names = {c.id: c.name for c in config.components}
    return {
        "id": m.id, "name": m.title, "status": m.status.value, "impact": "maintenance",
        "created_at": iso(m.created_at), "updated_at": iso(m.updates[0].created_at if m.updates else m.created_at),
        "scheduled_for": iso(m.scheduled_for), "scheduled_until": iso(m.scheduled_until), "page_id": "incidentflow",
        "components": [{"id": c, "name": names.get(c, c)} for c in m.components],
        "incident_updates": [{"status": u.status.value, "body": u.body, "created_at": iso(u.created_at),
                              "display_at": iso(u.created_at)} for u in m.updates],
    }


def documents(config: StatusPageConfig, state: StatusPageState) -> dict[str, dict[str, Any]]:
    """Every public JSON document by its path under /api/v2/."""
    head = page(config, state)
    comps = components(config, state)
    listed = [incident(config, i) for i in state.incidents[:INCIDENTS_LISTED]]
    unresolved = [incident(config, i) for i in state.incidents if i.open]
    live = (MaintenanceStatus.scheduled, MaintenanceStatus.in_progress, MaintenanceStatus.verifying)
    upcoming = [maintenance(config, m) for m in state.maintenances if m.status == MaintenanceStatus.scheduled]
    active = [maintenance(config, m) for m in state.maintenances if m.status in live]
    st = status(config, state)["status"]
    return {
        "summary.json": {"page": head, "components": comps, "incidents": unresolved,
                         "scheduled_maintenances": active, "status": st},
        "status.json": {"page": head, "status": st},
        "components.json": {"page": head, "components": comps},
        "incidents.json": {"page": head, "incidents": listed},
        "incidents/unresolved.json": {"page": head, "incidents": unresolved},
        "scheduled-maintenances.json": {"page": head, "scheduled_maintenances":
                                        [maintenance(config, m) for m in state.maintenances[:INCIDENTS_LISTED]]},
        "scheduled-maintenances/upcoming.json": {"page": head, "scheduled_maintenances": upcoming},
        "scheduled-maintenances/active.json": {"page": head, "scheduled_maintenances": active},
    }
