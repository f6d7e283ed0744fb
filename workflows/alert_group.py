"""AlertGroupWorkflow: one per alert group (Alertmanager receiver+groupKey, Grafana group, generic
dedup key), reached by signal-with-start with USE_EXISTING. It maps the group to exactly one open
incident: the first firing notification opens it (a child IncidentWorkflow that outlives the group),
later ones are forwarded, a firing within the reopen window after resolution reopens it, and after
that window (or once the incident ends) the group run finishes, so the next firing opens a new one.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from domain import policy
    from domain.models.common import EventKind, Phase
    from domain.models.group import AlertBatch, AlertGroupStart, AlertGroupState, RouteDecision
    from domain.models.incident import CODE_LEVEL, DeclareInput, EventRecord, IncidentPolicy, IncidentStart
    from domain.models.messages import AlertsInput
    from workflows.alert_group_core import AlertGroupCore
    from workflows.incident import IncidentWorkflow

MAX_FORWARD = 500  # alerts per forwarded signal (queued batches are merged: one signal, one incident task)
MAX_FORWARD_BYTES = 256 * 1024  # … and roughly this much payload (Temporal refuses payloads over ~2 MB)
MAX_CARRIED = 20  # batches carried over continue-as-new; with more queued, drain first
# unknown-service (0.1.2): an alert naming a service the config does not list opens its incident as before
# (on the default escalation policy), and the group tells the incident so with a timeline warning.
PATCH_UNKNOWN_SERVICE = "unknown-service"


@workflow.defn(name="AlertGroupWorkflow")
class AlertGroupWorkflow(AlertGroupCore):
    @workflow.init
    def __init__(self, start: AlertGroupStart) -> None:
        self.s = start.carried or AlertGroupState(group_key=start.group_key)
        self.policy = start.policy
        self._inbox = []
        self._incident_moved = False

    @workflow.run
    async def run(self, start: AlertGroupStart) -> AlertGroupState:
        self._inbox[:0] = start.pending
        while True:
            while self._inbox and not (self._history_full() and len(self._inbox) <= MAX_CARRIED):
                await self._handle_next()
            if self._history_full():  # checked inside the drain too: a flood must not outgrow history
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(AlertGroupStart(group_key=self.s.group_key, policy=self.policy,
                                                         carried=self.s, pending=list(self._inbox)))
            if self._finished():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._inbox:
                    return self.s
                continue
            self._incident_moved = False  # a resolve starts the reopen window: wait again with its end
            try:
                await workflow.wait_condition(lambda: bool(self._inbox) or self._finished() or self._incident_moved,
                                              timeout=self._until_window_closes(),
                                              timeout_summary="reopen window closes")
            except TimeoutError:
                pass

    async def _handle_next(self) -> None:
        """Forward every queued batch in one signal while the incident is current; else open or ignore."""
        batch = self._inbox.pop(0)
        if self._incident_is_current():
            assert self.s.incident_id is not None
            alerts = list(batch.alerts)
            size = _size(batch)
            while self._inbox and len(alerts) < MAX_FORWARD and size + _size(self._inbox[0]) < MAX_FORWARD_BYTES:
                size += _size(self._inbox[0])
                alerts += self._inbox.pop(0).alerts
            try:
                incident = workflow.get_external_workflow_handle_for(IncidentWorkflow.run, self.s.incident_id)
                await incident.signal(IncidentWorkflow.alerts, AlertsInput(alerts=alerts))
                return
            except Exception as exc:  # the incident was terminated by hand: treat the group as fresh
                workflow.logger.warning("incident %s unreachable (%s); opening a new one", self.s.incident_id, exc)
                self.s.incident_phase = Phase.closed
                batch = batch.model_copy(update={"alerts": alerts})
        if not batch.firing:
            self.s.ignored += 1  # a resolved notification never opens an incident
            return
        await self._open(batch)

    async def _open(self, batch: AlertBatch) -> None:
        route = batch.route
        now = workflow.now()
        candidates = [policy.incident_id(now, route.service, batch.title, attempt) for attempt in range(50)]
        # past 50 incidents of one service in one minute, the group's hash keeps the id unique
        candidates.append(f"{policy.incident_id(now, route.service, batch.title)}-{workflow.info().workflow_id[-8:]}")
        for incident_id in candidates:
            if await self._start_incident(incident_id, batch):
                self.s.incident_id, self.s.incident_phase, self.s.resolved_at = incident_id, Phase.triage, None
                self.s.incidents_opened += 1
                await self._warn_unknown_service(incident_id, batch)
                return
        raise RuntimeError(f"no free incident id for {batch.title!r}")  # retried as a workflow task

    async def _start_incident(self, incident_id: str, batch: AlertBatch) -> bool:
        """Start the incident under this id (a child that outlives the group); False when the id is taken."""
        route = batch.route
        declare = DeclareInput(title=batch.title, severity=route.severity, service=route.service,
                               description=batch.description, declared_by=batch.source)
        try:
            await workflow.start_child_workflow(
                IncidentWorkflow.run,
                IncidentStart(declare=declare, incident_id=incident_id, policy=self._policy_for(route),
                              group_id=workflow.info().workflow_id, initial_alerts=batch.alerts,
                              code_level=CODE_LEVEL),
                id=incident_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={"title": batch.title, "source": batch.source},
                static_summary=f"{route.severity.value} {batch.title}"[:200],
                static_details=f"Opened by {batch.source} (rule {route.rule})\n\n{batch.description}"[:2000],
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    def _policy_for(self, route: RouteDecision) -> IncidentPolicy:
        """The group's process policy, with the escalation policy the routing rule named (paging uses it over
        the service's). A payload change only: histories from before it replay."""
        if not route.escalation_policy:
            return self.policy
        return self.policy.model_copy(update={"escalation_policy": route.escalation_policy})

    async def _warn_unknown_service(self, incident_id: str, batch: AlertBatch) -> None:
        """An alert is never lost for naming a service nobody configured: its incident says so instead."""
        unknown = batch.route.unknown_service
        if not unknown or not self._warns_of_unknown_services():
            return
        kept = "" if unknown == batch.route.service else " (not a valid service name, so none is set)"
        named = batch.route.escalation_policy
        follows = f"escalation policy {named!r} (its routing rule's)" if named else "the default escalation policy"
        text = (f"The alert names service {unknown!r}{kept}, which is not in the config's services: this incident "
                f"follows {follows}. Add the service to the config (services:) or map the "
                "alert to one with a routing rule.")
        try:
            await workflow.get_external_workflow_handle_for(IncidentWorkflow.run, incident_id).signal(
                IncidentWorkflow.record_event, EventRecord(kind=EventKind.warning, actor="incidentflow", text=text))
        except Exception as exc:  # terminated at once by hand: nothing to warn
            workflow.logger.warning("could not warn %s about service %r: %s", incident_id, unknown, exc)


    def _warns_of_unknown_services(self) -> bool:
        return workflow.patched(PATCH_UNKNOWN_SERVICE)  # a worker from before it opened the incident silently


def _size(batch: AlertBatch) -> int:
    """A cheap upper-bound estimate of a batch's serialized size (labels and titles dominate)."""
    return 200 + sum(300 + len(a.title) + len(a.fingerprint) + sum(len(k) + len(v) + 6 for k, v in a.labels.items())
                     for a in batch.alerts)
