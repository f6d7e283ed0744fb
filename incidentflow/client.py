"""The one place outside workflows that builds workflow ids and talks to Temporal.

CLI, HTTP API and demo all go through `Incidents`; errors come out as three typed exceptions
whose messages are fit to show a user as they are. Split by concern: `client_base` (plumbing, errors,
idempotent updates), `client_declare` (declare, once per key), `client_runbooks`, `client_health`
(is a worker polling?).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import known, policy
from domain.config import IncidentflowConfig, Settings
from domain.ingest import group_workflow_id, resolved_only
from domain.models import (
    AckInput,
    AlertBatch,
    AlertGroupStart,
    AlertGroupState,
    AlertSignal,
    CommandResult,
    EscalateInput,
    IncidentSummary,
    NoteInput,
    PageInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    RoleInput,
    Severity,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
)
from domain.models.common import SERVICE_NAME
from domain.models.handoff import HandoffInput, HandoffNote
from domain.models.messages import AlertsInput
from incidentflow.client_archive import Archives
from incidentflow.client_base import (
    CommandRejected,
    IncidentflowError,
    IncidentNotFound,
    InvalidInput,
    NoWorker,
    TemporalUnavailable,
    connect,
    quote,
    request_id,
    signal_name,
    vet_person,
)
from incidentflow.client_declare import Declarations, Declared, KeyReused
from incidentflow.client_health import worker_polling
from incidentflow.client_learning import ActionItems, Postmortems
from incidentflow.client_runbooks import RunbookRuns
from incidentflow.client_statuspage import StatusPages, Subscriptions
from incidentflow.handoff import handoff_schedules
from workflows import search_attributes as sa
from workflows.alert_group import AlertGroupWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.incident import IncidentWorkflow

__all__ = ["CommandRejected", "Declared", "IncidentNotFound", "IncidentflowError", "Incidents", "IngestResult",
           "InvalidInput", "KeyReused", "NoWorker", "TemporalUnavailable", "connect", "ensure_handoff_schedules",
           "ensure_search_attributes", "vet_person", "worker_polling"]

WORKFLOW_TYPE = "IncidentWorkflow"
GROUP_TYPE = "AlertGroupWorkflow"


class IngestResult(BaseModel):
    outcome: str  # accepted | annotated | dropped | ignored
    rule: str
    group_id: str | None = None
    incident_id: str | None = None
    reason: str | None = None


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register our search attributes where missing; returns the names added. Idempotent."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    wanted = {k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in sa.ALL}
    missing: dict[str, IndexedValueType.ValueType] = {}
    for name, kind in wanted.items():
        have = existing.custom_attributes.get(name)
        if have is None:
            missing[name] = kind
        elif have != kind:
            raise IncidentflowError(
                f"search attribute {name} exists as {IndexedValueType.Name(have)}, "
                f"incidentflow needs {IndexedValueType.Name(kind)}")
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
    return sorted(missing)


class Incidents(Archives, Declarations, RunbookRuns, StatusPages, Subscriptions, Postmortems, ActionItems):
    """Every incident command, read and alert, as the CLI, the HTTP API, Slack and the demo make them
    (declare: `Declarations`; runbook runs: `RunbookRuns`; plumbing and errors: `incidentflow.client_base.Door`).

    Every command takes an optional idempotency `key`: the same request sent again with it is applied once,
    and answered with the first result (see `incidentflow.client_base`)."""

    async def raise_alert(self, incident_id: str, alert: AlertSignal) -> None:
        await self._signal(incident_id, IncidentWorkflow.alert, alert)

    async def ingest(self, batch: AlertBatch) -> IngestResult:
        """Hand one routed notification to Temporal; returns only once it is durably there."""
        route = batch.route
        if route.action == "drop":
            return IngestResult(outcome="dropped", rule=route.rule)
        maintenance = await self.maintenance_for(route.service, route.severity) if route.action == "open" else None
        if route.action == "annotate" or maintenance:
            open_ones = await self.list(open_only=True, service=route.service, limit=20) if route.service else []
            if not open_ones:
                why = (f"component under scheduled maintenance {maintenance}: annotates, does not page"
                       if maintenance else f"no open incident for service {route.service or '(none)'} to annotate")
                return IngestResult(outcome="ignored", rule=route.rule, reason=why)
            target = open_ones[0].id
            await self._signal(target, IncidentWorkflow.alerts, AlertsInput(alerts=batch.alerts), check=False)
            return IngestResult(outcome="annotated", rule=route.rule, incident_id=target)
        group_id = group_workflow_id(batch.group_key)
        try:
            if resolved_only(batch):  # never opens anything: only a running group hears it
                await self.client.get_workflow_handle_for(AlertGroupWorkflow.run, group_id).signal(
                    AlertGroupWorkflow.alerts, batch, rpc_timeout=timedelta(seconds=5))
            else:
                await self._signal_with_start(group_id, batch)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND and resolved_only(batch):
                return IngestResult(outcome="ignored", rule=route.rule, group_id=group_id,
                                    reason="resolved, and no open incident for this alert group")
            raise self._rpc_error(exc, group_id) from None
        return IngestResult(outcome="accepted", rule=route.rule, group_id=group_id)

    async def _signal_with_start(self, group_id: str, batch: AlertBatch, start: AlertGroupStart | None = None) -> None:
        start = start or AlertGroupStart(group_key=batch.group_key, policy=self.config.incident_policy().model_copy(
            update={"chat": self.settings.slack_enabled}))
        for attempt in range(5):
            try:
                await self.client.start_workflow(
                    AlertGroupWorkflow.run, start, id=group_id, task_queue=self.settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    start_signal=signal_name(AlertGroupWorkflow.alerts), start_signal_args=[batch],
                    rpc_timeout=timedelta(seconds=5),
                    static_summary=f"Alert group: {batch.title}"[:200])
                return
            except WorkflowAlreadyStartedError:
                # the group is between runs (continue-as-new): a moment later the new run takes it
                await asyncio.sleep(0.05 * (attempt + 1))
        await self.client.get_workflow_handle_for(AlertGroupWorkflow.run, group_id).signal(
            AlertGroupWorkflow.alerts, batch, rpc_timeout=timedelta(seconds=5))

    async def alert_group(self, group_id: str) -> AlertGroupState | None:
        """The group's state (its current incident), or None when no alert group has this id."""
        handle = self.client.get_workflow_handle_for(AlertGroupWorkflow.run, group_id)
        try:
            desc = await handle.describe()
            if desc.workflow_type != GROUP_TYPE:
                return None
            if desc.status == WorkflowExecutionStatus.RUNNING:
                return await handle.query(AlertGroupWorkflow.get_state, rpc_timeout=timedelta(seconds=10))
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                return await handle.result(rpc_timeout=timedelta(seconds=10))
            return None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self._rpc_error(exc, group_id) from None

    async def group_incident(self, group_id: str, within: float) -> str | None:
        """The incident an alert group has opened, waiting up to `within` seconds for the group to open it
        (its worker starts the incident moments after the alert); None if it names none in that time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.05)):
                    state = await self.alert_group(group_id)
            except TimeoutError:  # no worker answers the query: the group's answer keeps
                return None
            except (IncidentflowError, WorkflowQueryFailedError):  # e.g. not ready for queries yet: the alert is
                state = None  # in Temporal all the same, so this never fails the webhook
            if state is not None and state.incident_id:
                return state.incident_id
            if loop.time() + 0.1 >= deadline:
                return None
            await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ commands (updates)
    async def acknowledge(self, incident_id: str, cmd: AckInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.acknowledge, cmd, key=key)

    async def assign_role(self, incident_id: str, cmd: RoleInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.assign_role, cmd, key=key)

    async def set_severity(self, incident_id: str, cmd: SeverityInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.set_severity, cmd, key=key)

    async def set_phase(self, incident_id: str, cmd: PhaseInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.set_phase, cmd, key=key)

    async def post_status_update(self, incident_id: str, cmd: StatusUpdateInput,
                                 key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.post_status_update, cmd, key=key)

    async def resolve(self, incident_id: str, cmd: ResolveInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.resolve, cmd, key=key)

    async def reopen(self, incident_id: str, cmd: ReopenInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.reopen, cmd, key=key)

    async def stand_down(self, incident_id: str, cmd: StandDownInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.stand_down, cmd, key=key)

    async def escalate(self, incident_id: str, cmd: EscalateInput, key: str | None = None) -> CommandResult:
        """Jump to a level of the incident's escalation policy: one its policy (its routing rule's, else its
        service's) has at its current severity (InvalidInput otherwise, while the config defines escalation
        policies)."""
        if self.config.escalation_policies:
            state = await self.get(incident_id)
            problem = known.level_problem(self.config, state.service, state.severity, cmd.level,
                                          named=state.policy.escalation_policy)
            if problem:
                raise InvalidInput([problem])
        else:
            await self.require_incident(incident_id)
        return await self._update(incident_id, IncidentWorkflow.escalate, cmd, key=key)

    async def page(self, incident_id: str, cmd: PageInput, key: str | None = None) -> CommandResult:
        return await self._update(incident_id, IncidentWorkflow.page_responder, cmd, timeout=60, key=key)

    async def add_note(self, incident_id: str, cmd: NoteInput, key: str | None = None) -> None:
        """A signal: durable once Temporal has it, no worker needed. With a key the workflow notes a
        retry of the same request once (the note carries the request id; the body's own is ignored)."""
        request = request_id("note", key, cmd.text, cmd.by) if key else None
        await self._signal(incident_id, IncidentWorkflow.add_note, cmd.model_copy(update={"request_id": request}))

    # ------------------------------------------------------------------ handoff notes
    async def setup_handoffs(self) -> list[str]:
        """Create or update one Temporal Schedule per schedule layer; returns their ids. Idempotent."""
        ids = []
        for schedule_id, wanted in handoff_schedules(self.settings, self.config).items():
            try:
                await self.client.create_schedule(schedule_id, wanted)
            except ScheduleAlreadyRunningError:
                async def replace(_: ScheduleUpdateInput, new: Schedule = wanted) -> ScheduleUpdate:
                    return ScheduleUpdate(schedule=new)
                await self.client.get_schedule_handle(schedule_id).update(replace)
            ids.append(schedule_id)
        return ids

    async def run_handoff(self, schedule: str) -> HandoffNote:
        """Compose and send one handoff note now (what the schedule does at handoff time)."""
        return await self.client.execute_workflow(
            HandoffWorkflow.run, HandoffInput(schedule=schedule),
            id=f"handoff-{schedule}-manual-{datetime.now(UTC):%Y%m%d%H%M%S}", task_queue=self.settings.task_queue)

    # ------------------------------------------------------------------ reads (last: below `list`, mypy
    # takes `list[...]` in an annotation for this method)
    async def list(self, *, open_only: bool = False, severity: Severity | None = None,
                   service: str | None = None, phase: Phase | None = None,
                   limit: int = 100) -> list[IncidentSummary]:
        clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'", "ExecutionStatus != 'ContinuedAsNew'"]
        if open_only:
            active = ", ".join(f"'{p.value}'" for p in policy.ORDER if p in policy.ACTIVE)
            clauses += ["ExecutionStatus = 'Running'", f"{sa.PHASE.name} IN ({active})"]
        if severity:
            clauses.append(f"{sa.SEVERITY.name} = '{severity.value}'")
        if service:
            if len(service) > 63 or not re.fullmatch(SERVICE_NAME, service):
                raise CommandRejected(f"service: {service!r} is not a service name (letters, digits, . _ -)")
            clauses.append(f"{sa.SERVICE.name} = '{quote(service)}'")
        if phase:
            clauses.append(f"{sa.PHASE.name} = '{phase.value}'")
        rows: list[IncidentSummary] = []
        try:
            async for wf in self.client.list_workflows(" AND ".join(clauses), limit=limit):
                attrs = wf.typed_search_attributes
                sev, ph = attrs.get(sa.SEVERITY), attrs.get(sa.PHASE)
                rows.append(IncidentSummary(
                    id=wf.id, title=str(await wf.memo_value("title", "")),
                    severity=Severity(sev) if sev else None, phase=Phase(ph) if ph else None,
                    service=attrs.get(sa.SERVICE), commander=attrs.get(sa.COMMANDER),
                    acknowledged=bool(attrs.get(sa.ACKNOWLEDGED)), declared_at=attrs.get(sa.DECLARED_AT),
                    running=wf.status == WorkflowExecutionStatus.RUNNING))
        except RPCError as exc:
            raise self._rpc_error(exc, "") from None
        if not open_only:  # what Temporal's retention deleted, the archive still lists
            rows += await self._archived_rows({r.id for r in rows}, severity, service, phase, limit)
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(rows, key=lambda r: r.declared_at or epoch, reverse=True)[:limit]

    async def find_by_channel(self, channel_id: str) -> str | None:
        """The incident whose Slack channel this is (the IncidentChannel search attribute), if any."""
        try:
            async for wf in self.client.list_workflows(f'{sa.CHANNEL.name} = "{quote(channel_id)}"', limit=1):
                return wf.id
        except RPCError as exc:
            raise self._rpc_error(exc, "") from None
        return None

async def ensure_handoff_schedules(client: Client, settings: Settings, config: IncidentflowConfig) -> list[str]:
    """Create or update the handoff Schedules (see `Incidents.setup_handoffs`)."""
    return await Incidents(client, settings, config).setup_handoffs()
