"""EscalationWorkflow: page level 1, wait, escalate; repeat; then the fallback. A child of the incident.

Who is on call is resolved by an activity at the moment each level starts (so overrides added
mid-incident count, and the answer is recorded in history: replay never depends on tzdata or config).
Acknowledgement (a signal from the incident) stops every pending level at once. Every page links the
incident channel once it exists (`channel_opened`), and reports the messages with buttons it sent, so
the incident can close them once answered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.paging import EscalationActivities
    from domain.models.chat import ChannelLink, SentMessage
    from domain.models.common import EventKind
    from domain.models.incident import EventRecord
    from domain.models.messages import ChannelOpened, EscalateTo, EscalationEnded, StopPaging
    from domain.models.paging import (
        EscalationPlan,
        EscalationStart,
        EscalationState,
        LevelPlan,
        PageRequest,
        ResolveRequest,
    )
    from workflows import options
    from workflows.incident_core import IncidentCore


@workflow.defn(name="EscalationWorkflow")
class EscalationWorkflow:
    @workflow.init
    def __init__(self, start: EscalationStart) -> None:
        self.start = start
        self.s = EscalationState(incident_id=start.incident_id)
        self._jump: int | None = None
        self._channel: ChannelLink | None = start.channel

    @workflow.signal
    def stop(self, cmd: StopPaging) -> None:
        """The incident was acknowledged (or resolved): no more pages."""
        if self.s.acknowledged_by is None:
            self.s.acknowledged_by = cmd.by

    @workflow.signal
    def escalate_to(self, cmd: EscalateTo) -> None:
        self._jump = max(1, cmd.level)

    @workflow.signal
    def channel_opened(self, opened: ChannelOpened) -> None:
        """The incident channel exists now (it opened after this escalation started): later pages link it."""
        self._channel = opened.channel

    @workflow.query
    def get_state(self) -> EscalationState:
        return self.s

    @workflow.run
    async def run(self, start: EscalationStart) -> EscalationState:
        await self._escalate(start)
        await workflow.wait_condition(workflow.all_handlers_finished)
        ended = EscalationEnded(escalation_id=workflow.info().workflow_id)
        try:
            await workflow.get_external_workflow_handle(start.incident_id).signal(IncidentCore.escalation_ended, ended)
        except Exception:
            pass  # the incident has ended
        return self.s

    async def _escalate(self, start: EscalationStart) -> None:
        plan: EscalationPlan = await self._config_read(
            EscalationActivities.plan_escalation, start, f"Escalation policy for {start.service or 'incident'}")
        self.s.policy = plan.policy
        if plan.warning:  # only set for incidents whose routing rule named a policy (none before they could)
            await self._record(EventKind.warning, plan.warning)
        if not plan.policy:  # no escalation policies configured at all: paging is off
            self.s.finished = "paging not configured"
            return
        if not plan.levels:
            await self._record(EventKind.warning, f"No escalation policy has levels for {start.service or 'this incident'}:"
                                                  " nobody was paged")
            self.s.finished = "no policy"
            return
        index = min(start.start_level, len(plan.levels)) - 1
        for round_no in range(plan.repeat + 1):
            self.s.round = round_no + 1
            while index < len(plan.levels) and not self.s.acknowledged_by:
                level = plan.levels[index]
                self.s.level = index + 1
                level_started = workflow.now()  # the wait counts from here, not from when paging finished
                await self._page_level(level, index + 1)
                nxt = f"L{index + 2}" if index + 1 < len(plan.levels) else "next round"
                remaining = timedelta(seconds=level.wait) - (workflow.now() - level_started)
                try:
                    await workflow.wait_condition(lambda: self.s.acknowledged_by is not None or self._jump is not None,
                                                  timeout=max(remaining, timedelta(milliseconds=1)),
                                                  timeout_summary=f"escalate to {nxt} unless acknowledged")
                except TimeoutError:
                    pass
                if self._jump is not None:
                    index, self._jump = min(self._jump, len(plan.levels)) - 1, None
                    continue
                index += 1
            if self.s.acknowledged_by:
                break
            index = 0
        if self.s.acknowledged_by:
            self.s.finished = "acknowledged"
        else:
            self.s.finished = "exhausted"
            await self._record(EventKind.warning, f"Escalation {plan.policy} exhausted after {plan.repeat + 1} "
                                                  "round(s) without acknowledgement: notifying the fallback")
            if plan.fallback:
                await self._page_level(LevelPlan(targets=plan.fallback, wait=0, name="fallback"), 0)

    async def _page_level(self, level: LevelPlan, number: int) -> None:
        start = self.start
        label = f"L{number}" if number else "fallback"
        responders = await self._config_read(
            EscalationActivities.resolve_targets, ResolveRequest(targets=level.targets, at=workflow.now()),
            f"Who is on call for {label}")
        if not responders:
            await self._record(EventKind.warning, f"{label}: nobody to page (no one on call for its targets)")
            return
        for r in responders:
            if self.s.acknowledged_by:
                return
            request = PageRequest(
                incident_id=start.incident_id, dedup_key=f"{start.incident_id}:r{self.s.round}:{label}:{r.id}",
                incident_key=f"incidentflow-{start.incident_id}", target=r.id, level=number,
                reason=f"{label}, {r.via}" if r.via else label, summary=start.summary, severity=start.severity,
                service=start.service, incident_url=start.incident_url, channel=self._channel)
            result = await workflow.execute_activity_method(
                EscalationActivities.page, request, summary=f"Page {r.id} ({label}, {r.via or r.kind})", **options.PAGE)
            if result.channel == "none":  # every channel refused (e.g. no Slack user): say so, go on
                await self._record(EventKind.warning, f"Could not page {r.id} ({label}): {result.detail}", subject=r.id)
                continue
            self.s.pages += 1
            failed = "" if result.delivered else f" (partly: {result.detail})"
            await self._record(EventKind.page, f"Paged {r.id} ({label}, {r.via or r.kind}) via {result.channel}"
                               + failed, subject=r.id, messages=result.messages)

    async def _config_read(self, activity: Any, arg: Any, summary: str) -> Any:
        """Reading the worker's config (the policy, who is on call): a local activity for escalations of incidents
        at code level 1 (no activity task, no extra workflow task: the first page goes out sooner)."""
        if self.start.code_level >= 1:
            return await workflow.execute_local_activity_method(activity, arg, summary=summary, **options.LOCAL_CONFIG)
        return await workflow.execute_activity_method(activity, arg, summary=summary, **options.CONFIG)

    async def _record(self, kind: EventKind, text: str, subject: str | None = None,
                      messages: list[SentMessage] | None = None) -> None:
        record = EventRecord(kind=kind, actor="escalation", text=text[:4000], subject=subject,
                             messages=(messages or [])[:10])
        try:
            await workflow.get_external_workflow_handle(self.start.incident_id).signal(IncidentCore.record_event,
                                                                                       record)
        except Exception as exc:  # the incident ended: the page itself went out, only the note is lost
            workflow.logger.info("could not record %r on %s: %s", text, self.start.incident_id, exc)
