"""The escalation inside the incident (a mixin of IncidentWorkflow, code level 3): page level 1, wait, escalate;
repeat the rounds; then the fallback.

Incidents from before level 3 run it as an EscalationWorkflow child (`workflows/escalation.py`, still used by them
and by `incidentflow drill`); this is the same process without the child: no child to start, no signals to stop it
or to tell it the channel, no signals back for each page. Each level is one activity (`escalate_level`: the policy
with the first level, who is on call at the level's start, their pages) and one durable timer (`escalate to L2
unless acknowledged`). An acknowledgement stops it in the workflow task that records it. Where it stands lives in
`IncidentState.escalation`, so a continue-as-new (which waits for a level's pages to finish) resumes the wait
where it was.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.paging import EscalationActivities
    from domain.models.chat import SentMessage
    from domain.models.common import EventKind
    from domain.models.incident import EventRecord
    from domain.models.paging import EscalationStart, EscalationStep, EscalationStepResult, InlineEscalation
    from workflows import options
    from workflows.incident_core import ESCALATION, IncidentCore, why
    from workflows.wake_order import WakeOrder

INLINE_LEVEL = 3  # incidents started at this code level (or later) escalate inline


class IncidentEscalation(IncidentCore):
    _escalation_task: asyncio.Future[None] | None
    _escalation_paging: bool  # a step's activity is in flight (a continue-as-new waits for it)

    def _inline_escalation(self) -> bool:
        return self.s.code_level >= INLINE_LEVEL

    def _start_inline(self, level: int) -> None:
        s = self.s
        s.escalations += 1
        s.escalation = InlineEscalation(number=s.escalations, start_level=level)
        s.escalation_active = True
        self._resume_inline()

    def _resume_inline(self) -> None:
        """Run the escalation in `s.escalation` (started now, or carried over a continue-as-new)."""
        self._escalation_paging = False
        self._escalation_task = asyncio.ensure_future(self._run_inline())

    def _inline_running(self) -> bool:
        e = self.s.escalation
        return e is not None and not e.finished and self._inline_escalation()

    def _stop_inline(self, by: str) -> None:
        e = self.s.escalation
        if e is not None and not e.finished and e.stopped_by is None:
            e.stopped_by = by

    async def _run_inline(self) -> None:
        WakeOrder.enter(ESCALATION)
        s = self.s
        e = s.escalation
        assert e is not None
        try:
            await self._escalate_inline(e)
        finally:
            if not e.finished:
                e.finished = "acknowledged" if e.stopped_by else "cancelled"
            s.escalation_active = False
            self._wake = True

    async def _escalate_inline(self, e: InlineEscalation) -> None:
        while True:
            if e.stopped_by is not None:
                e.finished = "acknowledged"
                return
            if e.plan is None or not e.paged:
                if not await self._page_inline(e):
                    return
            plan = e.plan
            assert plan is not None and e.level_started is not None
            level = plan.levels[e.index]
            nxt = f"L{e.index + 2}" if e.index + 1 < len(plan.levels) else "next round"
            remaining = timedelta(seconds=level.wait) - (workflow.now() - e.level_started)
            try:
                await self._order.until(lambda: e.stopped_by is not None or e.jump is not None,
                                        timeout=max(remaining, timedelta(milliseconds=1)),
                                        timeout_summary=f"escalate to {nxt} unless acknowledged")
            except TimeoutError:
                pass
            if e.stopped_by is not None:
                continue
            e.paged = False
            if e.jump is not None:
                e.index, e.jump = min(e.jump, len(plan.levels)) - 1, None
                continue
            e.index += 1
            if e.index < len(plan.levels):
                continue
            if e.round > plan.repeat:  # every round done, nobody acknowledged
                e.finished = "exhausted"
                self._record_inline(EventKind.warning, f"Escalation {plan.policy} exhausted after {plan.repeat + 1} "
                                                       "round(s) without acknowledgement: notifying the fallback")
                if plan.fallback:
                    await self._step(e, fallback=True)
                return
            e.round, e.index = e.round + 1, 0

    async def _page_inline(self, e: InlineEscalation) -> bool:
        """Page the current level (the first step reads the policy too); False when the escalation ends here."""
        first = e.plan is None
        e.level_started = workflow.now()  # the wait counts from here, not from when paging finished
        done = await self._step(e, fallback=False)
        if done is None:
            e.finished = "failed"
            return False
        plan = done.plan
        if first:
            e.plan = plan
            if plan.warning:  # only set for incidents whose routing rule named a policy
                self._record_inline(EventKind.warning, plan.warning)
            if not plan.policy:  # no escalation policies configured at all: paging is off
                e.finished = "paging not configured"
                return False
            if not plan.levels:
                self._record_inline(EventKind.warning, f"No escalation policy has levels for "
                                                       f"{self.s.service or 'this incident'}: nobody was paged")
                e.finished = "no policy"
                return False
            e.index = done.level - 1
        e.paged = True
        return True

    async def _step(self, e: InlineEscalation, fallback: bool) -> EscalationStepResult | None:
        """One level's activity; its pages go on the timeline. None when it failed for good (a warning says so)."""
        s = self.s
        level = 0 if fallback else (e.start_level if e.plan is None else e.index + 1)
        label = "fallback" if fallback else f"L{level}"
        start = EscalationStart(code_level=s.code_level, incident_id=s.id, summary=self._page_summary(),
                                severity=s.severity, service=s.service, escalation_policy=s.policy.escalation_policy,
                                incident_url=s.url, channel=self._channel_link(), start_level=e.start_level)
        step = EscalationStep(start=start, plan=e.plan, level=level, fallback=fallback, round=e.round,
                              number=e.number, at=workflow.now())
        self._escalation_paging = True
        try:
            done: EscalationStepResult = await self._order.settle(workflow.execute_activity_method(
                EscalationActivities.escalate_level, step, summary=f"Page {label}",
                **options.ESCALATE))
        except ActivityError as exc:
            self._record_inline(EventKind.warning, f"Could not page {label}: {why(exc)}")
            return None
        finally:
            self._escalation_paging = False
        if not done.pages and (fallback or done.plan.levels):
            self._record_inline(EventKind.warning, f"{done.label or label}: nobody to page (no one on call for its "
                                                   "targets)")
        for paged in done.pages:
            r, result = paged.responder, paged.result
            if result.channel == "none":  # every channel refused (e.g. no Slack user): say so, go on
                self._record_inline(EventKind.warning, f"Could not page {r.id} ({done.label}): {result.detail}",
                                    subject=r.id)
                continue
            failed = "" if result.delivered else f" (partly: {result.detail})"
            self._record_inline(EventKind.page, f"Paged {r.id} ({done.label}, {r.via or r.kind}) via {result.channel}"
                                + failed, subject=r.id, messages=result.messages)
        return done

    def _record_inline(self, kind: EventKind, text: str, subject: str | None = None,
                       messages: list[SentMessage] | None = None) -> None:
        self._apply_record(EventRecord(kind=kind, actor="escalation", text=text[:4000], subject=subject,
                                       messages=(messages or [])[:10]))

    def _page_summary(self) -> str:
        return f"[{self.s.severity.value}] {self.s.title}"[:1024]
