"""What each change of the public page tells the outside: subscriber mail and the Statuspage mirror."""

from __future__ import annotations

from domain.statuspage.mail import Notification, NotificationKind
from domain.statuspage.mirror import MaintenanceMirrorInput, MirrorIncident, MirrorInput
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    Maintenance,
    MaintenanceStatus,
    PublicIncident,
    PublicStatus,
    PublicUpdate,
    StatusPageConfig,
    utc,
)


def incident_url(config: StatusPageConfig) -> str | None:
    return f"{config.url.rstrip('/')}/status" if config.url else None


def update_notice(config: StatusPageConfig, incident: PublicIncident, update: PublicUpdate) -> Notification:
    names = {c.id: c.name for c in config.components}
    first = len(incident.updates) == 1
    kind = (NotificationKind.resolution if update.status == PublicStatus.resolved
            else NotificationKind.incident if first else NotificationKind.update)
    affected = ", ".join(names.get(c, c) for c in incident.components) or "our service"
    text = (f"{incident.name}\n{update.status.value.capitalize()} - {update.body}\n\n"
            f"Affected: {affected}\nPosted {utc(update.created_at):%Y-%m-%d %H:%M} UTC.")
    return Notification(notification_id=f"{incident.incident_id}:public:{update.id}"[:200], kind=kind,
                        subject=f"[{config.title}] {incident.name}: {update.status.value.capitalize()}"[:200],
                        text=text, components=incident.components, url=incident_url(config))


def update_mirror(incident: PublicIncident, update: PublicUpdate) -> MirrorInput:
    return MirrorInput(
        incident=MirrorIncident(incident_id=incident.incident_id, statuspage_id=incident.mirror_id,
                                name=incident.name, status=update.status, body=update.body, impact=incident.impact,
                                affected=incident.components),
        components=[ComponentChange(component=a.code, status=a.new_status) for a in update.affected_components])


def components_mirror(changes: list[ComponentChange]) -> MirrorInput:
    return MirrorInput(incident=None, components=changes)


def maintenance_notice(config: StatusPageConfig, m: Maintenance) -> Notification:
    names = {c.id: c.name for c in config.components}
    step = m.updates[0] if m.updates else None
    label = {MaintenanceStatus.scheduled: "Scheduled", MaintenanceStatus.in_progress: "In progress",
             MaintenanceStatus.verifying: "Verifying", MaintenanceStatus.completed: "Completed",
             MaintenanceStatus.cancelled: "Cancelled"}[m.status]
    text = (f"{m.title}\n{label} - {step.body if step else m.body}\n\n"
            f"Window: {utc(m.scheduled_for):%Y-%m-%d %H:%M} to {utc(m.scheduled_until):%Y-%m-%d %H:%M} UTC\n"
            f"Affected: {', '.join(names.get(c, c) for c in m.components)}")
    seq = len(m.updates)
    return Notification(notification_id=f"{m.id}:step:{seq}", kind=NotificationKind.maintenance,
                        subject=f"[{config.title}] Maintenance: {m.title} ({label.lower()})"[:200], text=text,
                        components=m.components, url=incident_url(config))


def maintenance_mirror(m: Maintenance) -> MaintenanceMirrorInput:
    status = ComponentStatus.under_maintenance if m.active else ComponentStatus.operational
    moved = m.status != MaintenanceStatus.scheduled
    return MaintenanceMirrorInput(
        maintenance_id=m.id, statuspage_id=m.mirror_id, title=m.title,
        body=m.updates[0].body if m.updates else m.body, status=m.status, scheduled_for=m.scheduled_for,
        scheduled_until=m.scheduled_until, affected=m.components,
        components=[ComponentChange(component=c, status=status) for c in m.components] if moved else [])
