"""How the public status page changes (pure: the StatusPageWorkflow calls these with `workflow.now()`).

Every change bumps `version`, keeps the state bounded (resolved incidents and ended maintenances beyond the
history window are dropped, outage days older than the window too, and the whole stays under
MAX_STATE_BYTES of JSON, since it crosses Temporal as one payload), and counts outage minutes per UTC day
from when a component entered its status, so uptime bars need no sampling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic_core import to_json

from domain.statuspage.models import (
    AffectedComponent,
    ComponentState,
    ComponentStatus,
    DayOutage,
    Impact,
    Maintenance,
    MaintenanceInput,
    MaintenanceStatus,
    MaintenanceUpdate,
    PublicIncident,
    PublicStatus,
    PublicUpdate,
    PublishInput,
    StatusPageConfig,
    StatusPageState,
    utc,
)

MAX_INCIDENTS = 200  # resolved ones kept for the history page (newest first)
MAX_UPDATES = 50  # per incident
MAX_MAINTENANCES = 100
MAX_STATE_BYTES = 512 * 1024  # the whole state as JSON: a quarter of Temporal's 2 MB payload limit
KEPT_WHEN_PRUNED = 3  # updates an incident keeps when the state is over MAX_STATE_BYTES
_ENDED = (MaintenanceStatus.completed, MaintenanceStatus.cancelled)

_IMPACT_OF = {
    ComponentStatus.operational: Impact.none,
    ComponentStatus.under_maintenance: Impact.none,
    ComponentStatus.degraded_performance: Impact.minor,
    ComponentStatus.partial_outage: Impact.major,
    ComponentStatus.major_outage: Impact.critical,
}
_IMPACT_RANK = {Impact.none: 0, Impact.minor: 1, Impact.major: 2, Impact.critical: 3}


class StatusPageError(ValueError):
    """A change the page cannot take (unknown component, update of an unknown maintenance): shown as is."""


def public_id(incident_id: str) -> str:
    return f"pi-{incident_id}"[:80]


def impact_of(statuses: list[ComponentStatus]) -> Impact:
    return max((_IMPACT_OF[s] for s in statuses), key=_IMPACT_RANK.__getitem__, default=Impact.none)


def check_components(config: StatusPageConfig, components: list[str]) -> None:
    unknown = [c for c in components if config.component(c) is None]
    if unknown:
        known = ", ".join(c.id for c in config.components) or "none configured"
        raise StatusPageError(f"components: unknown {', '.join(unknown)} (known: {known})")


def ensure_components(state: StatusPageState, config: StatusPageConfig, now: datetime) -> None:
    """Components added to the config appear operational; removed ones disappear."""
    wanted = [c.id for c in config.components]
    for cid in wanted:
        state.components.setdefault(cid, ComponentState(since=now, updated_at=now))
    for cid in [c for c in state.components if c not in wanted]:
        del state.components[cid]


def set_component(state: StatusPageState, config: StatusPageConfig, component: str, status: ComponentStatus,
                  now: datetime) -> AffectedComponent | None:
    """Change one component's status; None when it already had it."""
    check_components(config, [component])
    spec = config.component(component)
    assert spec is not None
    current = state.components.setdefault(component, ComponentState(since=now, updated_at=now))
    if current.status == status:
        return None
    _accrue(state, component, current, now)
    old = current.status
    current.status, current.since, current.updated_at = status, now, now
    return AffectedComponent(code=component, name=spec.name, old_status=old, new_status=status)


def publish(state: StatusPageState, config: StatusPageConfig, cmd: PublishInput, now: datetime) -> PublicUpdate:
    """Apply one public update: the incident (created on its first update), its components, its status."""
    check_components(config, [c.component for c in cmd.components])  # all before any: nothing half-applied
    affected = [a for c in cmd.components
                if (a := set_component(state, config, c.component, c.status, now)) is not None]
    incident = state.incident(cmd.incident_id)
    if incident is None:
        incident = PublicIncident(
            id=public_id(cmd.incident_id), incident_id=cmd.incident_id, name=cmd.name, status=cmd.status,
            impact=cmd.impact or impact_of([c.status for c in cmd.components]), created_at=now, updated_at=now)
        state.incidents.insert(0, incident)
    incident.name, incident.status, incident.updated_at = cmd.name, cmd.status, now
    if cmd.impact is not None:
        incident.impact = cmd.impact
    for c in cmd.components:
        if c.component not in incident.components:
            incident.components.append(c.component)
    if cmd.status == PublicStatus.monitoring and incident.monitoring_at is None:
        incident.monitoring_at = now
    incident.resolved_at = now if cmd.status == PublicStatus.resolved else None
    update = PublicUpdate(id=f"{incident.id}-u{_next_update(incident)}", status=cmd.status, body=cmd.body,
                          created_at=now, by=cmd.by, affected_components=affected)
    incident.updates.insert(0, update)
    del incident.updates[MAX_UPDATES:]
    _changed(state, config, now)
    return update


def _next_update(incident: PublicIncident) -> int:
    """The number of the incident's next update: one past its newest, even when older ones were pruned (an id
    names the update's mail and mirror call: reusing one would leave that update unsent)."""
    newest = incident.updates[0].id.rpartition("-u")[2] if incident.updates else ""
    return max(len(incident.updates), int(newest) if newest.isdigit() else 0) + 1


def schedule_maintenance(state: StatusPageState, config: StatusPageConfig, cmd: MaintenanceInput,
                         maintenance_id: str, now: datetime) -> Maintenance:
    check_components(config, cmd.components)
    m = Maintenance(id=maintenance_id, title=cmd.title, body=cmd.body, components=cmd.components,
                    scheduled_for=cmd.start, scheduled_until=cmd.end, created_at=now, by=cmd.by,
                    updates=[MaintenanceUpdate(status=MaintenanceStatus.scheduled, body=cmd.body or cmd.title,
                                               created_at=now)])
    state.maintenances.insert(0, m)
    _changed(state, config, now)
    return m


def maintenance_step(state: StatusPageState, config: StatusPageConfig, maintenance_id: str,
                     status: MaintenanceStatus, body: str, now: datetime) -> Maintenance:
    """Move a maintenance on: in progress puts its components under maintenance; completed or cancelled
    puts back those still under maintenance (an incident meanwhile keeps its own status)."""
    m = state.maintenance(maintenance_id)
    if m is None:
        raise StatusPageError(f"maintenance: no maintenance {maintenance_id!r}")
    if m.status in (MaintenanceStatus.completed, MaintenanceStatus.cancelled):
        raise StatusPageError(f"maintenance {maintenance_id} has already ended ({m.status.value})")
    m.status = status
    m.updates.insert(0, MaintenanceUpdate(status=status, body=body, created_at=now))
    for cid in m.components:
        current = state.components.get(cid)
        if status == MaintenanceStatus.in_progress and current and current.status == ComponentStatus.operational:
            set_component(state, config, cid, ComponentStatus.under_maintenance, now)
        elif status in (MaintenanceStatus.completed, MaintenanceStatus.cancelled) and current \
                and current.status == ComponentStatus.under_maintenance:
            set_component(state, config, cid, ComponentStatus.operational, now)
    _changed(state, config, now)
    return m


def extend_maintenance(state: StatusPageState, config: StatusPageConfig, maintenance_id: str, until: datetime,
                       now: datetime) -> Maintenance:
    m = state.maintenance(maintenance_id)
    if m is None:
        raise StatusPageError(f"maintenance: no maintenance {maintenance_id!r}")
    if until.utcoffset() is None:  # which zone? (refused here: compared with aware times it would not compare)
        raise StatusPageError("until: give a timezone (e.g. 2026-12-07T04:00Z or 2026-12-07T05:00+01:00)")
    until = utc(until)
    if until <= max(m.scheduled_for, now):
        raise StatusPageError("until: must be after the start and after now")
    m.scheduled_until = until
    m.updates.insert(0, MaintenanceUpdate(status=m.status, body=f"Extended until {until:%Y-%m-%d %H:%M} UTC",
                                          created_at=now))
    _changed(state, config, now)
    return m


def under_maintenance(state: StatusPageState, components: list[str]) -> bool:
    """Are any of these components in an active maintenance window (alerts for them annotate)?"""
    return any(m.active and set(m.components) & set(components) for m in state.maintenances)


# ---------------------------------------------------------------------------- outage minutes
def day_outages(state: StatusPageState, component: str, now: datetime) -> dict[str, DayOutage]:
    """The component's outage minutes per UTC day, including the status it is in now."""
    days = {d: o.model_copy() for d, o in state.outages.get(component, {}).items()}
    current = state.components.get(component)
    if current is not None and current.since is not None:
        _spread(days, current.status, current.since, now)
    return days


def uptime(day: DayOutage | None) -> float:
    """Statuspage's weighting: a major outage counts fully, a partial outage 30 %, degraded not at all."""
    if day is None:
        return 100.0
    down = day.major + 0.3 * day.partial
    return max(0.0, round(100.0 * (1 - down / 1440.0), 2))


def _accrue(state: StatusPageState, component: str, current: ComponentState, now: datetime) -> None:
    if current.since is not None:
        _spread(state.outages.setdefault(component, {}), current.status, current.since, now)


def _spread(days: dict[str, DayOutage], status: ComponentStatus, since: datetime, until: datetime) -> None:
    field = {ComponentStatus.major_outage: "major", ComponentStatus.partial_outage: "partial",
             ComponentStatus.degraded_performance: "degraded"}.get(status)
    if field is None:
        return
    start, end = since.astimezone(UTC), until.astimezone(UTC)
    while start < end:
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
        piece = min(end, midnight) - start
        day = days.setdefault(start.strftime("%Y-%m-%d"), DayOutage())
        setattr(day, field, round(getattr(day, field) + piece.total_seconds() / 60, 3))
        start = min(end, midnight)


def _changed(state: StatusPageState, config: StatusPageConfig, now: datetime) -> None:
    state.version += 1
    state.updated_at = now
    _prune(state, config, now)


def _prune(state: StatusPageState, config: StatusPageConfig, now: datetime) -> None:
    horizon = now - timedelta(days=config.history_days)
    first_day = horizon.astimezone(UTC).strftime("%Y-%m-%d")
    for days in state.outages.values():
        for day in [d for d in days if d < first_day]:
            del days[day]
    state.incidents = [i for i in state.incidents if i.open or (i.resolved_at or now) >= horizon][:MAX_INCIDENTS]
    state.maintenances = [m for m in state.maintenances
                          if m.status not in _ENDED or m.scheduled_until >= horizon][:MAX_MAINTENANCES]
    _fit(state)


def state_bytes(state: StatusPageState) -> int:
    """The state's size as JSON, as it crosses Temporal (the publish activity's input, continue-as-new's)."""
    return len(to_json(state))


def _fit(state: StatusPageState, limit: int = MAX_STATE_BYTES) -> None:
    """Keep the state under `limit` bytes however long the updates are (the counts alone allow ~50 MB):
    resolved incidents keep only their newest updates (oldest incident first); open incidents too, but only
    while they take more than half the limit; then the oldest resolved incidents and ended maintenances go.
    Every incident keeps its newest update; scheduled and running maintenances are never touched."""
    size = state_bytes(state)
    if size <= limit:
        return
    resolved = sorted((i for i in state.incidents if not i.open), key=lambda i: i.updated_at)  # oldest first
    for incident in resolved:
        size -= _trim(incident, KEPT_WHEN_PRUNED)
        if size <= limit:
            return
    size -= _trim_open(state, limit // 2)
    if size <= limit:
        return
    ended: list[PublicIncident | Maintenance] = [m for m in state.maintenances if m.status in _ENDED]
    gone: set[int] = set()
    for old in sorted([*resolved, *ended], key=_ended_at):
        gone.add(id(old))
        size -= len(to_json(old)) + 1
        if size <= limit:
            break
    state.incidents = [i for i in state.incidents if id(i) not in gone]
    state.maintenances = [m for m in state.maintenances if id(m) not in gone]
    if size > limit:
        _trim_open(state, 0, keep=1)


def _trim_open(state: StatusPageState, share: int, keep: int = KEPT_WHEN_PRUNED) -> int:
    """Trim open incidents (oldest first) while together they take more than `share` bytes; returns the saving."""
    opened = sorted((i for i in state.incidents if i.open), key=lambda i: i.updated_at)
    size = sum(len(to_json(i)) + 1 for i in opened)
    saved = 0
    for incident in opened:
        if size - saved <= share:
            break
        saved += _trim(incident, keep)
    return saved


def _trim(incident: PublicIncident, keep: int) -> int:
    """Drop all but the newest `keep` updates; returns about how many bytes that saved."""
    dropped = incident.updates[keep:]
    del incident.updates[keep:]
    return sum(len(to_json(u)) + 1 for u in dropped)


def _ended_at(item: PublicIncident | Maintenance) -> datetime:
    return item.updated_at if isinstance(item, PublicIncident) else item.scheduled_until
