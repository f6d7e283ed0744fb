"""Runbook runs through the one door (`incidentflow.client.Incidents`): render, start, approve, read.

A run is a child of its incident, started by the incident's `start_runbook` update. On a closed or stood-down
incident (its workflow has ended, or is finishing) a read-only run is started here on its own instead, under an
id derived from the incident id and the request's key, so a retry starts it once; a run that changes things is
refused there (`workflows.incident_runbooks.changes_refused`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import policy
from domain.models import CommandResult, IncidentState, Role
from domain.models.runbook import Decision, RunbookRequest, RunbookStart, RunbookState
from domain.runbooks.loader import RunbookSet, load_runbooks
from domain.runbooks.render import coerce_params, render_steps
from domain.runbooks.request import request_for
from incidentflow.client_base import CommandRejected, Door, IncidentNotFound, request_id, update_id
from workflows.incident import IncidentWorkflow
from workflows.incident_runbooks import changes_refused
from workflows.runbook import RunbookWorkflow

RUNBOOK_WORKFLOW_TYPE = "RunbookWorkflow"


class RunbookRuns(Door):
    def runbooks(self) -> RunbookSet:
        """The runbooks under ./runbooks and INCIDENTFLOW_RUNBOOKS_DIR (RunbookError names file:line)."""
        return load_runbooks(self.settings.runbook_paths())

    async def runbook_request(self, incident_id: str, name: str, params: Mapping[str, Any], by: str) -> RunbookRequest:
        """Render a runbook for an incident: parameters typed and checked (ParamError), templates filled."""
        return self._render(await self.get(incident_id), name, params, by)

    def _render(self, state: IncidentState, name: str, params: Mapping[str, Any], by: str) -> RunbookRequest:
        try:
            rb = self.runbooks().get(name)
        except KeyError as exc:
            raise CommandRejected(str(exc.args[0]) if exc.args else str(exc)) from None
        values = coerce_params(rb, dict(params))
        steps = render_steps(rb, values, {"id": state.id, "service": state.service or "",
                                          "severity": state.severity.value},
                             secret_hosts=self.settings.runbook_secret_hosts() or None)
        return request_for(rb, values, steps, by, self.config)

    async def run_runbook(self, incident_id: str, name: str, params: Mapping[str, Any], by: str,
                          key: str | None = None) -> CommandResult:
        """Render and start a runbook. With `key`, a retry of the same request starts it once (the key is
        tied to what was asked, not to the rendering)."""
        state = await self.get(incident_id)
        request = self._render(state, name, params, by)
        asked = json.dumps({"name": name, "params": dict(params), "by": by}, sort_keys=True, default=str)
        return await self._start(state, request, request_id("start_runbook", key, asked) if key else None)

    async def start_runbook(self, incident_id: str, request: RunbookRequest, key: str | None = None) -> CommandResult:
        """Start an already rendered runbook on the incident (its `start_runbook` update)."""
        return await self._start(await self.get(incident_id), request, update_id(IncidentWorkflow.start_runbook,
                                                                                 request, key))

    async def _start(self, state: IncidentState, request: RunbookRequest, uid: str | None) -> CommandResult:
        """The incident starts the run; once it has ended (closed, stood down), a read-only run starts here."""
        if state.phase in policy.TERMINAL:
            return await self._start_alone(state, request, uid)
        try:
            return await self._update(state.id, IncidentWorkflow.start_runbook, request, uid=uid)
        except CommandRejected:
            now = await self.get(state.id)  # it may have ended between the read and the command
            if now.phase not in policy.TERMINAL:
                raise
            return await self._start_alone(now, request, uid)

    async def _start_alone(self, state: IncidentState, request: RunbookRequest, uid: str | None) -> CommandResult:
        """A read-only run with no incident to report to: its own state is its record. The same key (`uid`)
        names the same run, so a retried request starts it once and answers the same."""
        refused = changes_refused(state, request)
        if refused:
            raise CommandRejected(f"{state.id}: {refused}")
        if not request.steps:
            raise CommandRejected(f"{state.id}: runbook {request.runbook} has no steps")
        suffix = (uid or "").rpartition("-")[2][:12] or uuid.uuid4().hex[:12]
        run_id = f"{state.id}-runbook-{suffix}"
        start = RunbookStart(run_id=run_id, incident_id=state.id, request=request,
                             commander=state.roles.get(Role.ic), incident_phase=state.phase)
        try:
            await self.client.start_workflow(
                RunbookWorkflow.run, start, id=run_id, task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"Runbook {request.runbook} on {state.id} ({state.phase.value})"[:200])
        except WorkflowAlreadyStartedError:
            pass  # this request started it before: the same answer
        except RPCError as exc:
            raise self._rpc_error(exc, run_id) from None
        phase = state.phase.value.replace("_", " ")
        return CommandResult(incident_id=state.id, phase=state.phase, severity=state.severity, ref=run_id,
                             text=f"runbook {request.runbook} started as {run_id}; the incident is {phase}, so the "
                                  f"run reports to no timeline: `incidentflow runbook status {run_id}`")

    async def _is_run(self, run_id: str) -> None:
        """An incident (or any other workflow) id is not a runbook run: say so instead of a type error."""
        try:
            desc = await self.client.get_workflow_handle(run_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise IncidentNotFound(f"no runbook run with id {run_id!r}") from None
            raise self._rpc_error(exc, run_id) from None
        if desc.workflow_type != RUNBOOK_WORKFLOW_TYPE:
            raise IncidentNotFound(f"no runbook run with id {run_id!r} ({run_id} is a {desc.workflow_type}; "
                                   "run ids look like <incident id>-runbook-N)")

    async def require_run(self, run_id: str) -> None:
        """IncidentNotFound unless a runbook run has this id (a door asks before checking the decider)."""
        await self._is_run(run_id)

    async def decide_runbook(self, run_id: str, decision: Decision, key: str | None = None) -> str:
        await self._is_run(run_id)
        handle = self.client.get_workflow_handle_for(RunbookWorkflow.run, run_id)
        try:
            text: str = await self._send_update(handle, RunbookWorkflow.decide, decision,
                                                update_id(RunbookWorkflow.decide, decision, key), run_id, 30)
            return text
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                try:
                    desc = await handle.describe()
                except RPCError:
                    raise IncidentNotFound(f"no runbook run with id {run_id!r}") from None
                status = desc.status.name.lower() if desc.status else "closed"
                raise CommandRejected(f"{run_id}: the run has finished ({status}); nothing awaits approval") from None
            raise self._rpc_error(exc, run_id) from None

    async def runbook_run(self, run_id: str) -> RunbookState:
        await self._is_run(run_id)
        handle = self.client.get_workflow_handle_for(RunbookWorkflow.run, run_id)
        try:
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                return await handle.result(rpc_timeout=timedelta(seconds=10))
            if desc.status != WorkflowExecutionStatus.RUNNING:
                raise IncidentNotFound(f"runbook run {run_id} ended abnormally; see it in the Temporal UI")
            return await handle.query(RunbookWorkflow.get_state, rpc_timeout=timedelta(seconds=10))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise IncidentNotFound(f"no runbook run with id {run_id!r}") from None
            raise self._rpc_error(exc, run_id) from None
