"""The on-call handoff note: who hands over to whom, what is burning, what just burnt, what to watch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import activity

from activities.errors import not_configured
from activities.ports import IncidentDirectory, Notifier
from domain.config import IncidentflowConfig
from domain.models import NotifyInput, Phase
from domain.models.handoff import HandoffInput, HandoffNote


class HandoffActivities:
    def __init__(self, config: Callable[[], IncidentflowConfig], directory: IncidentDirectory | None,
                 notifier: Notifier) -> None:
        self._config = config
        self._directory = directory  # lists incidents (Temporal visibility, through the client's door)
        self._notifier = notifier

    @activity.defn
    async def compose_handoff(self, request: HandoffInput) -> HandoffNote:
        from domain import oncall

        cfg = self._config()
        at = request.at or activity.info().current_attempt_scheduled_time
        incoming = oncall.who_is_on_call(cfg.schedules, at, request.schedule).get(request.schedule, {})
        before = oncall.who_is_on_call(cfg.schedules, at - timedelta(minutes=1), request.schedule).get(
            request.schedule, {})
        if self._directory is None:
            raise not_configured("this worker has no incident directory")
        rows = await self._directory.list(limit=200)
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
