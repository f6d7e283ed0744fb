"""The incident's clock (a mixin of IncidentWorkflow): deadlines are state, not tasks.

The next deadline is computed from state (status update due, monitoring window end, postmortem
reminder, auto-close), so continue-as-new and worker restarts carry it over for free. One timer runs
at a time and is kept while the deadline stays the same.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.notify import IncidentActivities
    from domain import policy
    from domain.models.common import EventKind, Phase, Role
    from domain.models.incident import NotifyInput
    from workflows import options
    from workflows.incident_core import SYSTEM, IncidentCore, minutes


PUBLIC_OWED = (*policy.ACTIVE, Phase.resolved)  # the resolution update is owed once resolved


class IncidentTimers(IncidentCore):
    def _next_deadline(self) -> tuple[datetime | None, str | None]:
        s = self.s
        candidates: list[tuple[datetime, str]] = []
        if s.next_update_due and s.phase in policy.ACTIVE:
            candidates.append((s.next_update_due, "status update due"))
        if s.phase == Phase.monitoring and s.monitoring_since and not s.resolve_suggested:
            candidates.append((s.monitoring_since + s.policy.monitoring_window, "monitoring window ends"))
        reminder = policy.next_postmortem_reminder(s)
        if reminder:
            candidates.append((reminder, "postmortem reminder"))
        if s.auto_close_at and s.phase == Phase.resolved:
            candidates.append((s.auto_close_at, "auto-close"))
        if s.public and s.public.due and s.phase in PUBLIC_OWED:
            candidates.append((s.public.due, "public update due"))
        if not candidates:
            return None, None
        return min(candidates, key=lambda c: c[0])

    async def _wait_until(self, deadline: datetime | None, what: str | None) -> None:
        """Wait for a command or the deadline. The timer is kept while the deadline stays the same, so
        commands that don't move it (ack, roles, notes) add no timer events to history."""
        if deadline != self._armed:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._armed = None, deadline
            if deadline is not None:
                delay = deadline - workflow.now()
                if delay <= timedelta(0):
                    self._armed = None
                    return
                self._timer = asyncio.ensure_future(workflow.sleep(delay, summary=what))
        timer = self._timer
        await self._order.until(lambda: self._wake or (timer is not None and timer.done()))
        if timer is not None and timer.done():
            self._timer, self._armed = None, None

    async def _fire_due(self, now: datetime) -> None:
        """Whatever is due now: the status-update reminder, the resolve suggestion, the postmortem
        reminder, the auto-close."""
        s = self.s
        if s.phase in policy.ACTIVE and s.next_update_due and now >= s.next_update_due:
            await self._remind_status_update(now, s.next_update_due)
        if (s.phase == Phase.monitoring and s.monitoring_since and not s.resolve_suggested
                and now >= s.monitoring_since + s.policy.monitoring_window):
            s.resolve_suggested = True
            await self._notify("resolve_suggested", s.roles.get(Role.ic),
                               f"No alert re-fired during {minutes(s.policy.monitoring_window)} of monitoring: "
                               f"consider resolving (`incidentflow resolve {s.id}`).", kind=EventKind.suggestion)
        reminder = policy.next_postmortem_reminder(s)
        if reminder and s.postmortem_due and now >= reminder:
            await self._remind_postmortem(now, s.postmortem_due)
        if s.public and s.public.due and s.phase in PUBLIC_OWED and now >= s.public.due:
            await self._remind_public_update(now, s.public.due)
        if s.phase == Phase.resolved and s.auto_close_at and now >= s.auto_close_at:
            self._set_phase(Phase.closed, SYSTEM, "closed automatically: resolved with no postmortem required")

    async def _remind_status_update(self, now: datetime, due: datetime) -> None:
        s = self.s
        interval = policy.update_interval(s.policy, s.severity) or s.policy.first_update_after
        # After an outage, remind once now rather than once per missed interval.
        s.next_update_due = due + interval if due + interval > now else now + interval
        s.reminders_sent += 1
        overdue = f" (due {due:%H:%M} UTC)" if now - due >= timedelta(minutes=1) else ""
        await self._notify("status_update_due", policy.update_recipient(s),
                           f"A status update is due{overdue}: {s.severity.value} updates every "
                           f"{minutes(interval)}. Post one with `incidentflow update {s.id} \"…\"`.")

    async def _remind_public_update(self, now: datetime, due: datetime) -> None:
        s = self.s
        assert s.public is not None and s.policy.public is not None
        s.public.reminders += 1
        pp = s.policy.public
        more = pp.max_reminders is None or s.public.reminders < pp.max_reminders
        every = pp.remind_every if s.public.reminders < pp.fast_reminders else pp.remind_later
        s.public.due = now + every if more else None
        what = "the resolution" if s.phase == Phase.resolved else "an update"
        await self._notify("public_update_due", policy.update_recipient(s),
                           f"The status page owes the public {what} (due {due:%H:%M} UTC): "
                           f"`incidentflow statuspage draft {s.id}`, then `incidentflow statuspage publish {s.id}` "
                           f"(or `/incident publish`).")

    async def _remind_postmortem(self, now: datetime, due: datetime) -> None:
        self.s.postmortem_reminders += 1
        if now < due:
            text = f"The postmortem is due {due:%Y-%m-%d %H:%M} UTC."
        else:
            text = f"The postmortem is overdue (was due {due:%Y-%m-%d %H:%M} UTC)."
        await self._notify("postmortem_reminder", self.s.roles.get(Role.ic), text)

    async def _notify(self, key: str, recipient: str | None, text: str,
                      kind: EventKind = EventKind.reminder) -> None:
        """On the timeline first, then to the person; the dedup key is stable across retries and replays."""
        target = recipient or "unassigned (no comms lead or IC)"
        event = self._event(kind, SYSTEM, f"{text} → {target}", subject=recipient)
        message = NotifyInput(incident_id=self.s.id, dedup_key=f"{self.s.id}:{key}:{event.seq}",
                              kind=key, recipient=recipient, text=text)
        await self._order.settle(workflow.execute_activity_method(
            IncidentActivities.send_notification, message,
            summary=f"Notify {target}: {key.replace('_', ' ')}", **options.NOTIFY))

    def _refresh_details(self) -> None:
        """The Temporal UI's current details: severity, phase, roles and what comes next."""
        s = self.s
        roles = ", ".join(f"{r.label}: {p}" for r, p in s.roles.items()) or "no roles assigned"
        deadline, what = self._next_deadline()
        nxt = f"\n\nNext: {what} at {deadline:%Y-%m-%d %H:%M} UTC" if deadline else ""
        ack = f"acknowledged by {s.acknowledged_by}" if s.acknowledged_by else "not acknowledged"
        workflow.set_current_details(
            f"**{s.severity.value} · {s.phase.value}** — {s.title}\n\n{roles}; {ack}{nxt}")
