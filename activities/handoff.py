"""The on-call handoff note: who hands over to whom, what is burning, what just burnt, what to watch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import activity

from activities.ports import Notifier
from incidentflow.config import IncidentflowConfig
from incidentflow.models import NotifyInput, Phase


class HandoffInput(BaseModel):
    schedule: str
    at: datetime | None = None  # default: now (the schedule's fire time)


class HandoffNote(BaseModel):
    schedule: str
    at: datetime
    incoming: dict[str, str | None]
    text: str


class HandoffActivities:
    def __init__(self, config: Callable[[], IncidentflowConfig], incidents: Callable[[], object],
                 notifier: Notifier) -> None:
        self._config = config
        self._incidents = incidents  # returns an incidentflow.client.Incidents (visibility queries)
        self._notifier = notifier

    @activity.defn
    async def compose_handoff(self, request: HandoffInput) -> HandoffNote:
        from incidentflow import oncall

        cfg = self._config()
        at = request.at or activity.info().current_attempt_scheduled_time
        incoming = oncall.who_is_on_call(cfg.schedules, at, request.schedule).get(request.schedule, {})
        before = oncall.who_is_on_call(cfg.schedules, at - timedelta(minutes=1), request.schedule).get(
            request.schedule, {})
        rows = await self._incidents().list(limit=200)  # type: ignore[attr-defined]
        active = [r for r in rows if r.running and r.phase in (Phase.triage, Phase.investigating, Phase.identified,
                                                              Phase.mitigating, Phase.monitoring)]
        week_ago = at - timedelta(days=7)
        recent = [r for r in rows if r.phase in (Phase.resolved, Phase.postmortem, Phase.closed)
                  and r.declared_at and r.declared_at >= week_ago]
        lines = [f"On-call handoff for {request.schedule} at {at:%Y-%m-%d %H:%M} UTC"]
        for layer, person in incoming.items():
            lines.append(f"- {layer}: {before.get(layer) or 'nobody'} → {person or 'nobody'}")
        lines += ["", "Active incidents:"] + ([f"- {r.id} [{r.severity.value if r.severity else '?'}] "
                                              f"{r.title} ({r.phase.value if r.phase else '?'}, IC "
                                              f"{r.commander or 'unassigned'})" for r in active] or ["- none"])
        lines += ["", "Recently resolved (7 days):"] + ([f"- {r.id} {r.title} ({r.phase.value if r.phase else '?'})"
                                                         for r in recent] or ["- none"])
        handoff = cfg.handoff
        lines += ["", "Watch items:"] + ([f"- {w}" for w in handoff.watch_items] or ["- none"])
        lines += ["", "Notes:"] + ([f"- {n}" for n in handoff.notes] or ["- none"])
        return HandoffNote(schedule=request.schedule, at=at, incoming=incoming, text="\n".join(lines))

    @activity.defn
    async def send_handoff(self, note: HandoffNote) -> None:
        await self._notifier.notify(NotifyInput(
            incident_id=f"handoff-{note.schedule}", dedup_key=f"handoff:{note.schedule}:{note.at.isoformat()}",
            kind="handoff", recipient=", ".join(p for p in note.incoming.values() if p) or None, text=note.text))
