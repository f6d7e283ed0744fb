"""The public status page through the one door (`incidentflow.client.Incidents`): drafts, publishing,
component statuses and maintenance windows, all sent to the one StatusPageWorkflow."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from domain.models import IncidentState, Phase, Role, Severity
from domain.statuspage.drafts import Draft, context_of, draft
from domain.statuspage.mail import SubscriptionRequest, SubscriptionResult, TokenInput
from domain.statuspage.messages import (
    ComponentsInput,
    MaintenanceExtend,
    MaintenanceStepInput,
    PublishResult,
    StatusPageStart,
    statuspage_id,
)
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    Impact,
    Maintenance,
    MaintenanceInput,
    MaintenanceStatus,
    PublicStatus,
    PublishInput,
    StatusPageConfig,
    StatusPageState,
)
from incidentflow.client_base import (
    CommandRejected,
    Door,
    IncidentflowError,
    IncidentNotFound,
    NoWorker,
    update_id,
)
from workflows.status_mail import SubscriptionWorkflow
from workflows.statuspage import StatusPageWorkflow


class StatusPages(Door):
    @property
    def statuspage_config(self) -> StatusPageConfig:
        return self.config.statuspage

    @property
    def _page_id(self) -> str:
        return statuspage_id(self.settings.task_queue)

    def _page(self) -> WorkflowHandle[StatusPageWorkflow, None]:
        return self.client.get_workflow_handle_for(StatusPageWorkflow.run, self._page_id)

    async def ensure_statuspage(self) -> None:
        """Start the StatusPageWorkflow unless it runs (idempotent: every door and the worker may call it)."""
        try:
            await self.client.start_workflow(
                StatusPageWorkflow.run, StatusPageStart(), id=self._page_id, task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE, static_summary="The public status page")
        except RPCError as exc:
            raise self._rpc_error(exc, self._page_id) from None

    async def statuspage_state(self) -> StatusPageState:
        await self.ensure_statuspage()
        try:
            return await self._page().query(StatusPageWorkflow.get_state, rpc_timeout=timedelta(seconds=self.deadline))
        except RPCError as exc:
            raise self._rpc_error(exc, self._page_id) from None

    async def public_draft(self, incident_id: str, now: datetime | None = None) -> Draft:
        """The public update the incident asks for now (the comms lead edits and publishes it)."""
        return self._draft_of(await self.get(incident_id), now)

    def _draft_of(self, state: IncidentState, now: datetime | None = None) -> Draft:
        incident_id = state.id
        cfg = self.statuspage_config
        components = cfg.components_for(state.service)
        if not components:
            known = ", ".join(f"{c.id} ({', '.join(c.services) or 'no services'})" for c in cfg.components)
            raise CommandRejected(f"{incident_id}: service {state.service or '(none)'} affects no status page "
                                  f"component (statuspage.components: {known or 'none configured'}); publish with "
                                  "--component ID=STATUS to name them")
        cadence = cfg.cadence.get(state.severity)
        at = now or datetime.now().astimezone()
        return draft(cfg, context_of(  # a person publishes it: the cause as the responders gave it goes in
            state, state.phase, components,
            at + cadence if cadence and state.phase not in (Phase.resolved, Phase.closed) else None))

    async def publish_public_update(self, incident_id: str, by: str, text: str | None = None,
                                    status: PublicStatus | None = None,
                                    components: dict[str, ComponentStatus] | None = None,
                                    key: str | None = None) -> PublishResult:
        """Publish the draft, or `text`; `status` and `components` override the draft's. Only the incident's
        comms lead or commander publishes (the IC may delegate it: that is what the comms lead is for)."""
        state = await self.get(incident_id)
        allowed = {p for p in (state.roles.get(Role.comms), state.roles.get(Role.ic)) if p}
        if by not in allowed:
            holders = ", ".join(f"{r.value} {state.roles[r]}" for r in (Role.comms, Role.ic) if r in state.roles)
            raise CommandRejected(f"by: only the comms lead or the incident commander publishes to the status page "
                                  f"({holders or 'neither is assigned'}); take the role first: "
                                  f"`incidentflow role {incident_id} comms {by}`")
        try:
            base = self._draft_of(state)
            changes = {c.component: c.status for c in base.components}
        except CommandRejected:
            if not components:
                raise
            base = Draft(incident_id=state.id, name=state.title, status=status or PublicStatus.investigating,
                         impact=Impact.none, body=text or "", components=[])
            changes = {}
        changes.update(components or {})
        cmd = PublishInput(incident_id=incident_id, name=base.name, status=status or base.status,
                           body=text or base.body, impact=base.impact if not components else None,
                           components=[ComponentChange(component=c, status=s) for c, s in changes.items()], by=by,
                           request_id=key)
        return await self._page_update(StatusPageWorkflow.publish, cmd, key)

    async def set_component_statuses(self, changes: dict[str, ComponentStatus], by: str,
                                     key: str | None = None) -> int:
        cmd = ComponentsInput(components=[ComponentChange(component=c, status=s) for c, s in changes.items()],
                              by=by, request_id=key)
        version: int = await self._page_update(StatusPageWorkflow.set_components, cmd, key)
        return version

    async def schedule_maintenance(self, cmd: MaintenanceInput, key: str | None = None) -> Maintenance:
        m: Maintenance = await self._page_update(StatusPageWorkflow.schedule_maintenance, cmd, key)
        return m

    async def maintenances(self) -> list[Maintenance]:
        return (await self.statuspage_state()).maintenances

    async def cancel_maintenance(self, maintenance_id: str, by: str, reason: str = "",
                                 key: str | None = None) -> Maintenance:
        try:
            m: Maintenance = await self._page_update(StatusPageWorkflow.maintenance_step, MaintenanceStepInput(
                maintenance_id=maintenance_id, status=MaintenanceStatus.cancelled,
                body=reason or "This maintenance has been cancelled.", by=by), key)
        except CommandRejected as exc:
            raise _unknown_maintenance(exc) from None
        return m

    async def extend_maintenance(self, maintenance_id: str, until: datetime, by: str,
                                 key: str | None = None) -> Maintenance:
        try:
            m: Maintenance = await self._page_update(StatusPageWorkflow.extend_maintenance, MaintenanceExtend(
                maintenance_id=maintenance_id, until=until, by=by), key)
        except CommandRejected as exc:
            raise _unknown_maintenance(exc) from None
        return m

    async def maintenance_for(self, service: str | None, severity: Severity) -> str | None:
        """The maintenance under way on the service's components (its id), if an alert for it should only
        annotate: a component under maintenance does not page, except a SEV1 unless
        `statuspage.maintenance_pages_sev1` is false."""
        cfg = self.statuspage_config
        components = cfg.components_for(service)
        if not components or (severity == Severity.SEV1 and cfg.maintenance_pages_sev1):
            return None
        try:
            state = await self._page().query(StatusPageWorkflow.get_state, rpc_timeout=timedelta(seconds=2))
        except (RPCError, WorkflowQueryFailedError):  # no page (or it is busy): page as usual
            return None
        active = [m.id for m in state.maintenances if m.active and set(m.components) & set(components)]
        return active[0] if active else None

    async def _page_update(self, update: Any, arg: BaseModel, key: str | None) -> Any:
        await self.ensure_statuspage()
        try:
            return await self._send_update(self._page(), update, arg, update_id(update, arg, key), "status page", 30)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise IncidentNotFound("the status page workflow is not running") from None
            raise self._rpc_error(exc, self._page_id) from None
        except WorkflowUpdateFailedError as exc:  # pragma: no cover - _send_update turns these into CommandRejected
            raise CommandRejected(str(exc.cause)) from None


class Subscriptions(Door):
    """Subscribe / confirm / unsubscribe from the public page: each a short SubscriptionWorkflow (the store and
    the mail server may be slow or down: Temporal retries; the same request within a minute runs once)."""

    async def subscription(self, action: str, request: SubscriptionRequest | None = None,
                           token: TokenInput | None = None) -> SubscriptionResult:
        basis = request.model_dump_json() if request else (token.digest if token else "")
        minute = datetime.now(UTC).strftime("%Y%m%d%H%M")
        wid = f"subscription-{action}-{hashlib.sha256(basis.encode()).hexdigest()[:20]}-{minute}"
        try:
            handle = await self.client.start_workflow(
                SubscriptionWorkflow.run, args=[action, request, token], id=wid, task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                execution_timeout=timedelta(hours=1))
            result: SubscriptionResult = await asyncio.wait_for(handle.result(), timeout=max(self.deadline, 10))
            return result
        except TimeoutError:
            raise NoWorker("no incidentflow worker handled the request in time; it goes on: retry shortly") from None
        except RPCError as exc:
            raise self._rpc_error(exc, wid) from None
        except WorkflowFailureError as exc:
            inner = getattr(exc.cause, "cause", None) or exc.cause
            raise CommandRejected(str(inner)) from None


def _unknown_maintenance(exc: CommandRejected) -> IncidentflowError:
    """An unknown maintenance id is not found (HTTP 404, CLI exit 1), not a refused command (409)."""
    return IncidentNotFound(str(exc)) if "no maintenance" in str(exc) else exc
