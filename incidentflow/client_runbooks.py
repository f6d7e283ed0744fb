"""Runbook runs through the one door (`incidentflow.client.Incidents`): render, start, approve, read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from domain.models import CommandResult
from domain.models.runbook import Decision, RunbookRequest, RunbookState
from domain.runbooks.loader import RunbookSet, load_runbooks
from domain.runbooks.render import coerce_params, render_steps
from domain.runbooks.request import request_for
from incidentflow.client_base import CommandRejected, Door, IncidentNotFound, request_id, update_id
from workflows.incident import IncidentWorkflow
from workflows.runbook import RunbookWorkflow

RUNBOOK_WORKFLOW_TYPE = "RunbookWorkflow"


class RunbookRuns(Door):
    def runbooks(self) -> RunbookSet:
        """The runbooks under ./runbooks and INCIDENTFLOW_RUNBOOKS_DIR (RunbookError names file:line)."""
        return load_runbooks(self.settings.runbook_paths())

    async def runbook_request(self, incident_id: str, name: str, params: Mapping[str, Any], by: str) -> RunbookRequest:
        """Render a runbook for an incident: parameters typed and checked (ParamError), templates filled."""
        try:
            rb = self.runbooks().get(name)
        except KeyError as exc:
            raise CommandRejected(str(exc.args[0]) if exc.args else str(exc)) from None
        state = await self.get(incident_id)
        values = coerce_params(rb, dict(params))
        steps = render_steps(rb, values, {"id": state.id, "service": state.service or "",
                                          "severity": state.severity.value},
                             secret_hosts=self.settings.runbook_secret_hosts() or None)
        return request_for(rb, values, steps, by, self.config)

    async def run_runbook(self, incident_id: str, name: str, params: Mapping[str, Any], by: str,
                          key: str | None = None) -> CommandResult:
        """Render and start a runbook. With `key`, a retry of the same request starts it once (the key is
        tied to what was asked, not to the rendering)."""
        request = await self.runbook_request(incident_id, name, params, by)
        asked = json.dumps({"name": name, "params": dict(params), "by": by}, sort_keys=True, default=str)
        return await self._update(incident_id, IncidentWorkflow.start_runbook, request,
                                  uid=request_id("start_runbook", key, asked) if key else None)

    async def start_runbook(self, incident_id: str, request: RunbookRequest, key: str | None = None) -> CommandResult:
        """Start an already rendered runbook on the incident (its `start_runbook` update)."""
        return await self._update(incident_id, IncidentWorkflow.start_runbook, request, key=key)

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
