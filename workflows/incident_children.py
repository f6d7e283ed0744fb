"""Who the incident works with (a mixin of IncidentWorkflow): its escalation child, the pagers, and the
alert group that opened it (runbook children: `workflows.incident_runbooks`).

Handlers only queue what to tell; the run loop sends it (`_tell_others`), so a handler never waits on
another workflow. Children are started with `ParentClosePolicy.ABANDON` and reached by id, which is
kept in state across continue-as-new.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.paging import EscalationActivities
    from domain.models.common import EventKind
    from domain.models.incident import CommandResult, EscalateInput, PageInput
    from domain.models.messages import ChannelOpened, EscalateTo, StopPaging
    from domain.models.paging import EscalationStart, PageRequest
    from workflows import options
    from workflows.alert_group_core import AlertGroupCore
    from workflows.escalation import EscalationWorkflow
    from workflows.incident_core import MESSENGER
    from workflows.incident_escalation import IncidentEscalation
    from workflows.incident_runbooks import IncidentRunbooks
    from workflows.wake_order import WakeOrder


class IncidentChildren(IncidentRunbooks, IncidentEscalation):
    async def _tell_others(self) -> None:
        """Send what the handlers queued: the group, the escalation and pagers, the runbook runs."""
        await self._flush_outbox()
        await self._flush_escalation()
        await self._flush_runbooks()
        await self._flush_public()

    # ---------------------------------------------------------------- escalation and pages
    async def _start_escalation(self, level: int) -> None:
        if self._inline_escalation():  # code level 3: inside the incident (workflows/incident_escalation.py)
            self._start_inline(level)
            return
        s = self.s
        s.escalations += 1
        child_id = f"{s.id}-escalation-{s.escalations}"
        handle = await self._order.settle(workflow.start_child_workflow(
            EscalationWorkflow.run,
            EscalationStart(code_level=s.code_level, incident_id=s.id, summary=self._page_summary(),
                            severity=s.severity, service=s.service, escalation_policy=s.policy.escalation_policy,
                            incident_url=s.url, channel=self._channel_link(), start_level=level),
            id=child_id, parent_close_policy=workflow.ParentClosePolicy.ABANDON, priority=options.URGENT,
            static_summary=f"Escalation {s.escalations} for {s.id}"))
        s.escalation_id, s.escalation_active = child_id, True
        self._children.add(child_id)

        async def forget_when_done() -> None:
            try:
                await handle
            except Exception:  # terminated or failed: it is not running either way
                pass
            self._children.discard(child_id)
        asyncio.ensure_future(forget_when_done())

    async def _escalate(self, cmd: EscalateInput) -> CommandResult:
        """Jump the running escalation to a level, or start a new one there."""
        inline = self.s.escalation
        if self._inline_running() and inline is not None and inline.stopped_by is None:
            self._event(EventKind.action, cmd.by, f"Escalated to L{cmd.level}")
            inline.jump = max(1, cmd.level)
        elif self.s.escalation_active and self.s.escalation_id:
            self._event(EventKind.action, cmd.by, f"Escalated to L{cmd.level}")
            self._escalation_signals.append(EscalateTo(level=cmd.level))
        else:
            self._event(EventKind.action, cmd.by, f"Escalation restarted at L{cmd.level}")
            await self._start_escalation(cmd.level)
        return self._result(f"escalating at L{cmd.level}")

    async def _page(self, cmd: PageInput) -> CommandResult:
        """Page one person now, outside the escalation policy."""
        s = self.s
        note = f": {cmd.note}" if cmd.note else ""
        request = PageRequest(incident_id=s.id, dedup_key=f"{s.id}:manual:{s.seq + 1}:{cmd.person}",
                              incident_key=f"incidentflow-{s.id}", target=cmd.person, level=0,
                              reason=f"paged by {cmd.by}{note}", summary=self._page_summary(),
                              severity=s.severity, service=s.service, incident_url=s.url,
                              channel=self._channel_link())
        self._event(EventKind.action, cmd.by, f"Paging {cmd.person}{note}")
        result = await self._order.settle(workflow.execute_activity_method(
            EscalationActivities.page, request, summary=f"Page {cmd.person} (manual, by {cmd.by})", **options.PAGE))
        if result.channel == "none":
            self._event(EventKind.warning, "escalation", f"Could not page {cmd.person}: {result.detail}",
                        subject=cmd.person)
            return self._result(f"could not page {cmd.person}", [result.detail])
        s.pages += 1
        event = self._event(EventKind.page, "escalation",
                            f"Paged {cmd.person} (manual, by {cmd.by}) via {result.channel}", subject=cmd.person)
        self._keep_page_messages(result.messages, event.seq)
        return self._result(f"paged {cmd.person} via {result.channel}", [] if result.delivered else [result.detail])

    async def _escalation_messenger(self) -> None:
        """Tells the escalation child at once, beside the run loop, so an acknowledgement stops the paging
        even while the loop waits on an activity (a notification stranded on a killed worker, runbook
        matching). Started behind the `prompt-stop` patch (workflows/incident.py)."""
        WakeOrder.enter(MESSENGER)
        while not self._messenger_stop:
            await self._order.until(lambda: bool(self._escalation_signals) or self._messenger_stop)
            await self._signal_escalation()

    async def _flush_escalation(self) -> None:
        await self._signal_escalation()
        await self._sync_vendor_pagers()

    async def _signal_escalation(self) -> None:
        while self._escalation_signals:
            message = self._escalation_signals.pop(0)
            if not (self.s.escalation_active and self.s.escalation_id):
                continue
            child = workflow.get_external_workflow_handle_for(EscalationWorkflow.run, self.s.escalation_id)
            try:
                if isinstance(message, StopPaging):
                    await self._order.settle(child.signal(EscalationWorkflow.stop, message))
                elif isinstance(message, ChannelOpened):
                    await self._order.settle(child.signal(EscalationWorkflow.channel_opened, message))
                else:
                    await self._order.settle(child.signal(EscalationWorkflow.escalate_to, message))
            except Exception:  # it already finished
                self.s.escalation_active = False

    async def _sync_vendor_pagers(self) -> None:
        while self._vendor_sync:
            action = self._vendor_sync.pop(0)
            s = self.s
            request = PageRequest(incident_id=s.id, dedup_key=f"{s.id}:{action}:{s.seq}",
                                  incident_key=f"incidentflow-{s.id}", target="*", action=action,
                                  summary=self._page_summary(), severity=s.severity, service=s.service)
            await self._order.settle(workflow.execute_activity_method(EscalationActivities.sync_pagers, request,
                                                   summary=f"{action.capitalize()} on the pager", **options.PAGE))

    async def _await_escalations(self) -> None:
        """Let a stopped escalation finish before the incident closes (bounded)."""
        if not (self.s.escalation_active or self._children):
            return
        try:
            await self._order.until(lambda: not self.s.escalation_active and not self._children,
                                    timeout=timedelta(minutes=1), timeout_summary="escalation stops")
        except TimeoutError:
            pass

    # ---------------------------------------------------------------- the alert group
    async def _flush_outbox(self) -> None:
        while self._outbox and self.s.group_id:
            status = self._outbox.pop(0)
            group = workflow.get_external_workflow_handle(self.s.group_id)
            try:
                await self._order.settle(group.signal(AlertGroupCore.incident_changed, status))
            except Exception as exc:  # the group has ended: nobody left to tell, the incident goes on
                workflow.logger.info("alert group %s not told about %s: %s", self.s.group_id, status.phase, exc)
