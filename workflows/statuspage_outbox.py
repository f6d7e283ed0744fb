"""What the StatusPageWorkflow tells the outside after a change (a mixin): subscriber mail and the Atlassian
Statuspage mirror. A coroutine beside the run loop sends it in order, so a slow or rate-limited vendor never
holds up the static files. Mail goes to one StatusMailWorkflow child per notification (its id is the
notification's: asked twice, sent once); the mirror runs in order, each call carrying the Statuspage id the
previous one returned, so only the first update of an incident creates one there."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.statuspage_mirror import StatuspageMirrorActivities
    from domain.statuspage import notices
    from domain.statuspage.mail import Notification
    from domain.statuspage.mirror import MirrorResult
    from domain.statuspage.models import ComponentChange, StatusPageConfig, StatusPageState
    from workflows import options
    from workflows.status_mail import StatusMailWorkflow, mail_workflow_id
    from workflows.wake_order import WakeOrder

LOOP, OUTBOX = range(2)  # the wake order of StatusPageWorkflow's coroutines (the `wake-order` patch)

# ("update", incident id, update id) | ("maintenance", maintenance id, step) | ("components", "", ids=statuses)
Notice = tuple[str, str, str]


class StatusPageOutbox:
    state: StatusPageState
    config: StatusPageConfig | None
    outbox: list[Notice]
    mirror: bool  # the worker mirrors to an Atlassian Statuspage
    _order: WakeOrder

    def _tell_update(self, incident_id: str, update_id: str) -> None:
        self.outbox.append(("update", incident_id, update_id))

    def _tell_maintenance(self, maintenance_id: str) -> None:
        m = self.state.maintenance(maintenance_id)
        self.outbox.append(("maintenance", maintenance_id, str(len(m.updates) if m else 0)))

    def _tell_components(self, changes: list[ComponentChange]) -> None:
        self.outbox.append(("components", "", ",".join(f"{c.component}={c.status.value}" for c in changes)))

    async def _outbox_pump(self) -> None:
        WakeOrder.enter(OUTBOX)
        while True:
            await self._order.until(lambda: bool(self.outbox))
            kind, ref, detail = self.outbox[0]
            try:
                await self._send(kind, ref, detail)
            except Exception as exc:  # the mirror gave up (hours of outage): our own page stays right
                workflow.logger.warning("status page notice %s %s not sent: %s", kind, ref, exc)
            self.outbox.pop(0)

    async def _send(self, kind: str, ref: str, detail: str) -> None:
        assert self.config is not None
        if kind == "update":
            incident = self.state.incident(ref)
            update = next((u for u in incident.updates if u.id == detail), None) if incident else None
            if incident is None or update is None:
                return  # pruned meanwhile
            await self._mail(notices.update_notice(self.config, incident, update))
            if self.mirror:
                result = await self._mirror(StatuspageMirrorActivities.mirror_update,
                                            notices.update_mirror(incident, update))
                incident.mirror_id = result.statuspage_id or incident.mirror_id
        elif kind == "maintenance":
            m = self.state.maintenance(ref)
            if m is None:
                return
            await self._mail(notices.maintenance_notice(self.config, m))
            if self.mirror:
                result = await self._mirror(StatuspageMirrorActivities.mirror_maintenance, notices.maintenance_mirror(m))
                m.mirror_id = result.statuspage_id or m.mirror_id
        elif self.mirror:
            changes = [ComponentChange.model_validate({"component": c, "status": s})
                       for c, _, s in (pair.partition("=") for pair in detail.split(",") if pair)]
            await self._mirror(StatuspageMirrorActivities.mirror_update, notices.components_mirror(changes))

    async def _mail(self, notice: Notification) -> None:
        try:
            await self._order.settle(workflow.start_child_workflow(
                StatusMailWorkflow.run, notice, id=mail_workflow_id(notice.notification_id),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, static_summary=notice.subject))
        except WorkflowAlreadyStartedError:
            pass  # asked before (a retried change): it was mailed, or is being

    async def _mirror(self, activity: object, arg: object) -> MirrorResult:
        result: MirrorResult = await self._order.settle(workflow.execute_activity_method(  # type: ignore[call-overload]
            activity, arg, summary="Mirror to Atlassian Statuspage", **options.STATUSPAGE_MIRROR))
        return result
