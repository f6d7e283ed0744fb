"""StatusPageWorkflow: one long-lived entity that owns the public status page.

Every change (a public update, a component status, a maintenance step) is an update here, applied by the pure
functions of `domain.statuspage.state`, so it is validated whole before anything changes and recorded once.
After changes the run loop writes the static files (and, once a day, refreshes them so the uptime bars move
on). The state is bounded; the run continues as new when Temporal suggests it. Maintenance windows run as
MaintenanceWorkflow children whose timers report back here."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.statuspage import StatusPageActivities
    from domain.statuspage import state as page
    from domain.statuspage.messages import (
        MAINTENANCE_DUE,
        PUBLIC_UPDATE_PUBLISHED,
        PUBLISH_REQUESTED,
        ComponentsInput,
        MaintenanceChange,
        MaintenanceExtend,
        MaintenanceStart,
        MaintenanceStepInput,
        PublicPublished,
        PublishFiles,
        PublishResult,
        StatusPageStart,
    )
    from domain.statuspage.models import (
        Maintenance,
        MaintenanceInput,
        MaintenanceStatus,
        PublishInput,
        StatusPageConfig,
        StatusPageState,
    )
    from workflows import options
    from workflows.maintenance import MaintenanceWorkflow
    from workflows.statuspage_outbox import LOOP, StatusPageOutbox
    from workflows.wake_order import WakeOrder

def maintenance_workflow_id(maintenance_id: str) -> str:
    return f"{workflow.info().workflow_id}-{maintenance_id}"
REQUESTS_KEPT = 500
# wake-order (0.4): the run loop and the outbox pump wake in a fixed rank, and a handler finds the config loaded
# without waiting a round (workflows/wake_order.py). Runs from before it wake as they were recorded.
PATCH_WAKE_ORDER = "wake-order"


def refused(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type="StatusPageError", non_retryable=True)


@workflow.defn(name="StatusPageWorkflow")
class StatusPageWorkflow(StatusPageOutbox):
    @workflow.init
    def __init__(self, start: StatusPageStart) -> None:
        self.state = start.state or StatusPageState()
        self.requests = dict(start.requests)
        self.config: StatusPageConfig | None = None
        self.published = self.state.version if start.state else -1
        self.changes = 0
        self.changes_per_run = start.changes_per_run
        self.outbox = list(start.outbox)
        self.mirror = False
        self._order = WakeOrder()
        self._order.on = workflow.patched(PATCH_WAKE_ORDER)  # before any handler waits

    @workflow.run
    async def run(self, start: StatusPageStart) -> None:
        WakeOrder.enter(LOOP)
        config: StatusPageConfig = await self._order.settle(workflow.execute_activity_method(
            StatusPageActivities.load_statuspage_config, summary="Status page config", **options.CONFIG))
        self.config, self.mirror = config, config.mirror
        if self._sync_components():
            self._bump()
        asyncio.ensure_future(self._outbox_pump())
        while True:
            try:
                await self._order.until(
                    lambda: self.published < self.state.version or workflow.info().is_continue_as_new_suggested()
                    or self.changes >= self.changes_per_run,
                    timeout=self._until_midnight(), timeout_summary="daily refresh of the uptime bars")
            except TimeoutError:
                self._bump()  # a new UTC day: the uptime bars move on
            await self._publish()
            if workflow.info().is_continue_as_new_suggested() or self.changes >= self.changes_per_run:
                await self._settle()
                workflow.continue_as_new(StatusPageStart(state=self.state, requests=self.requests,
                                                         outbox=self.outbox, changes_per_run=self.changes_per_run))

    # ---------------------------------------------------------------- commands
    @workflow.update
    async def publish(self, cmd: PublishInput) -> PublishResult:
        try:
            return await self._publish_once(cmd)
        except page.StatusPageError as exc:
            raise refused(exc) from None

    @workflow.signal(name=PUBLISH_REQUESTED)
    async def publish_requested(self, cmd: PublishInput) -> None:
        """An incident auto-publishes its draft (a severity in `auto_publish`)."""
        try:
            await self._publish_once(cmd)
        except page.StatusPageError as exc:
            workflow.logger.warning("auto-publish for %s refused: %s", cmd.incident_id, exc)

    async def _publish_once(self, cmd: PublishInput) -> PublishResult:
        config = await self._config()
        if cmd.request_id and cmd.request_id in self.requests:
            incident = self.state.incident(cmd.incident_id)
            done = next((u for u in incident.updates if u.id == self.requests[cmd.request_id]), None) \
                if incident else None
            if done is not None:
                return PublishResult(incident_id=cmd.incident_id, update=done, version=self.state.version,
                                     duplicate=True)
        update = page.publish(self.state, config, cmd, workflow.now())
        self._remember(cmd.request_id, update.id)
        self._changed()
        self._tell_update(cmd.incident_id, update.id)
        await self._tell_incident(cmd.incident_id, PublicPublished(
            update_id=update.id, status=cmd.status.value, by=cmd.by, at=workflow.now(), body=cmd.body[:3000]))
        return PublishResult(incident_id=cmd.incident_id, update=update, version=self.state.version)

    @workflow.update
    async def set_components(self, cmd: ComponentsInput) -> int:
        config = await self._config()
        if cmd.request_id and cmd.request_id in self.requests:
            return self.state.version
        try:
            page.check_components(config, [c.component for c in cmd.components])
            for c in cmd.components:
                page.set_component(self.state, config, c.component, c.status, workflow.now())
        except page.StatusPageError as exc:
            raise refused(exc) from None
        self._remember(cmd.request_id, "components")
        self._bump()
        self._tell_components(cmd.components)
        return self.state.version

    @workflow.update
    async def schedule_maintenance(self, cmd: MaintenanceInput) -> Maintenance:
        config = await self._config()
        maintenance_id = f"mnt-{workflow.now():%Y%m%d%H%M}-{str(workflow.uuid4())[:6]}"
        try:
            m = page.schedule_maintenance(self.state, config, cmd, maintenance_id, workflow.now())
        except page.StatusPageError as exc:
            raise refused(exc) from None
        self._changed()
        self._tell_maintenance(m.id)
        await workflow.start_child_workflow(
            MaintenanceWorkflow.run, MaintenanceStart(maintenance=m, page_id=workflow.info().workflow_id), id=maintenance_workflow_id(m.id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON, static_summary=f"Maintenance: {m.title}"[:200])
        return m

    @workflow.update
    async def maintenance_step(self, cmd: MaintenanceStepInput) -> Maintenance:
        """A person moves a maintenance on (verifying, completed early, cancelled)."""
        config = await self._config()
        try:
            m = page.maintenance_step(self.state, config, cmd.maintenance_id, cmd.status,
                                      cmd.body or cmd.status.value.replace("_", " "), workflow.now())
        except page.StatusPageError as exc:
            raise refused(exc) from None
        self._changed()
        self._tell_maintenance(m.id)
        if m.status in (MaintenanceStatus.completed, MaintenanceStatus.cancelled):
            try:
                await self._tell_window(m.id, MaintenanceChange(cancel=True, by=cmd.by))
            except Exception:  # its timers already ran out
                pass
        return m

    @workflow.signal(name=MAINTENANCE_DUE)
    async def maintenance_due(self, cmd: MaintenanceStepInput) -> None:
        """A maintenance window's timer fired (MaintenanceWorkflow): start or end it."""
        config = await self._config()
        m = self.state.maintenance(cmd.maintenance_id)
        if m is None or m.status in (MaintenanceStatus.completed, MaintenanceStatus.cancelled):
            return  # ended by a person meanwhile
        try:
            page.maintenance_step(self.state, config, cmd.maintenance_id, cmd.status,
                                  cmd.body or cmd.status.value.replace("_", " "), workflow.now())
        except page.StatusPageError as exc:
            workflow.logger.warning("maintenance %s not moved on: %s", cmd.maintenance_id, exc)
            return
        self._changed()
        self._tell_maintenance(cmd.maintenance_id)

    @workflow.update
    async def extend_maintenance(self, cmd: MaintenanceExtend) -> Maintenance:
        config = await self._config()
        try:
            m = page.extend_maintenance(self.state, config, cmd.maintenance_id, cmd.until, workflow.now())
        except page.StatusPageError as exc:
            raise refused(exc) from None
        self._changed()
        self._tell_maintenance(m.id)
        await self._tell_window(m.id, MaintenanceChange(until=cmd.until, by=cmd.by))
        return m

    @workflow.query
    def get_state(self) -> StatusPageState:
        return self.state

    # ---------------------------------------------------------------- internals
    async def _tell_incident(self, incident_id: str, done: PublicPublished) -> None:
        """The incident records who published what, and restarts its public cadence (it may have ended)."""
        try:
            await workflow.get_external_workflow_handle(incident_id).signal(PUBLIC_UPDATE_PUBLISHED, done)
        except Exception as exc:
            workflow.logger.info("incident %s not told of its public update: %s", incident_id, exc)

    async def _settle(self) -> None:
        """Before continuing as new: no handler running and the last version on disk (a publish arriving
        during the last write would otherwise reach the new run unwritten)."""
        while True:
            await self._order.until(workflow.all_handlers_finished)
            if self.published >= self.state.version:
                return
            await self._publish()

    async def _tell_window(self, maintenance_id: str, change: MaintenanceChange) -> None:
        handle: workflow.ExternalWorkflowHandle[MaintenanceWorkflow] = workflow.get_external_workflow_handle_for(
            MaintenanceWorkflow.run, maintenance_workflow_id(maintenance_id))
        await handle.signal(MaintenanceWorkflow.change, change)

    async def _config(self) -> StatusPageConfig:
        if self.config is None or not self._order.on:  # loaded: a handler acts at once, in the order of its job
            await self._order.until(lambda: self.config is not None)  # a handler: after the run loop's round
        assert self.config is not None
        return self.config

    def _sync_components(self) -> bool:
        assert self.config is not None
        before = set(self.state.components)
        page.ensure_components(self.state, self.config, workflow.now())
        return set(self.state.components) != before

    def _changed(self) -> None:
        self.changes += 1

    def _bump(self) -> None:
        """A change made outside the transition functions (which bump the version themselves)."""
        self.state.version += 1
        self.state.updated_at = workflow.now()
        self._changed()

    def _remember(self, request_id: str | None, what: str) -> None:
        if request_id:
            self.requests[request_id] = what
            while len(self.requests) > REQUESTS_KEPT:
                del self.requests[next(iter(self.requests))]

    async def _publish(self) -> None:
        assert self.config is not None
        version = self.state.version
        await self._order.settle(workflow.execute_activity_method(
            StatusPageActivities.publish_page, PublishFiles(state=self.state, config=self.config, at=workflow.now()),
            summary=f"Publish the status page (version {version})", **options.PUBLISH))
        self.published = max(self.published, version)

    def _until_midnight(self) -> timedelta:
        now = workflow.now().astimezone(UTC)
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1, minutes=1)
        return midnight - now
