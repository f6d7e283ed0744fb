"""Plumbing of the one door into Temporal (`incidentflow.client`): the errors a user sees, connecting,
and sending one update or signal to an incident by method reference.

Temporal errors become three exceptions whose message is shown as is: `TemporalUnavailable`,
`IncidentNotFound`, `CommandRejected` (all `IncidentflowError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from domain.config import IncidentflowConfig, Settings
from domain.models import CommandResult, IncidentState
from workflows.incident import IncidentWorkflow

M = TypeVar("M", bound=BaseModel)
IncidentHandle = WorkflowHandle[IncidentWorkflow, IncidentState]
Signal = Callable[[IncidentWorkflow, M], Awaitable[None] | None]


class IncidentflowError(Exception):
    """Base of the errors a user sees; the message is the whole story."""


class TemporalUnavailable(IncidentflowError):
    pass


class IncidentNotFound(IncidentflowError):
    pass


class CommandRejected(IncidentflowError):
    pass


async def connect(settings: Settings, timeout: float = 5.0) -> Client:
    try:
        return await asyncio.wait_for(
            Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                           data_converter=pydantic_data_converter),
            timeout,
        )
    except (TimeoutError, RuntimeError, OSError, RPCError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "no answer"
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace}): {detail[:200]}; set INCIDENTFLOW_TEMPORAL_ADDRESS or run "
            "`incidentflow dev`"
        ) from None


def signal_name(signal: Callable[..., Awaitable[None] | None]) -> str:
    """The name history records for a `@workflow.signal` method: signal-with-start takes a name."""
    return workflow._SignalDefinition.must_name_from_fn_or_str(signal)


def quote(value: str) -> str:
    """A value inside a single-quoted visibility query string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class Door:
    """What every part of `Incidents` shares: the client, the settings, the config and the error mapping."""

    def __init__(self, client: Client, settings: Settings, config: IncidentflowConfig | None = None) -> None:
        self.client = client
        self.settings = settings
        self.config = config or IncidentflowConfig()

    def _incident(self, incident_id: str) -> IncidentHandle:
        return self.client.get_workflow_handle_for(IncidentWorkflow.run, incident_id)

    async def get(self, incident_id: str) -> IncidentState:
        """The incident's state: its result once it has ended (no worker needed), else a query."""
        handle = self._incident(incident_id)
        try:
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                return await handle.result(rpc_timeout=timedelta(seconds=10))
            if desc.status != WorkflowExecutionStatus.RUNNING:
                raise IncidentNotFound(
                    f"incident {incident_id} ended abnormally ({desc.status.name.lower() if desc.status else '?'}); "
                    "see it in the Temporal UI")
            return await handle.query(IncidentWorkflow.get_state, rpc_timeout=timedelta(seconds=10))
        except RPCError as exc:
            raise self._rpc_error(exc, incident_id) from None
        except WorkflowQueryFailedError as exc:
            raise IncidentflowError(f"incident {incident_id}: query failed: {exc}") from None
        except WorkflowFailureError as exc:
            raise IncidentflowError(f"incident {incident_id} failed: {exc.cause}") from None

    async def _update(self, incident_id: str,
                      update: workflow.UpdateMethodMultiParam[[IncidentWorkflow, M], CommandResult], arg: M,
                      timeout: float = 30) -> CommandResult:
        try:
            return await self._incident(incident_id).execute_update(update, arg,
                                                                    rpc_timeout=timedelta(seconds=timeout))
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = getattr(cause, "message", None) or str(cause)
            raise CommandRejected(f"{incident_id}: {message}") from None
        except RPCError as exc:
            raise await self._command_error(exc, incident_id) from None

    async def _signal(self, incident_id: str, signal: Signal[M], arg: M) -> None:
        try:
            await self._incident(incident_id).signal(signal, arg)
        except RPCError as exc:
            raise await self._command_error(exc, incident_id) from None

    async def _command_error(self, exc: RPCError, incident_id: str) -> IncidentflowError:
        """NOT_FOUND on an update or signal means no such incident, or one that has ended: tell which."""
        if exc.status == RPCStatusCode.NOT_FOUND:
            try:
                desc = await self.client.get_workflow_handle(incident_id).describe()
            except RPCError:
                return self._rpc_error(exc, incident_id)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return CommandRejected(f"incident {incident_id} is over (closed or stood down); "
                                       "declare a new one or see its timeline")
        return self._rpc_error(exc, incident_id)

    def _rpc_error(self, exc: RPCError, incident_id: str) -> IncidentflowError:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return IncidentNotFound(f"no incident with id {incident_id!r}")
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return TemporalUnavailable(f"Temporal at {self.settings.temporal_address} is unavailable: "
                                       f"{exc.message[:200]}")
        return IncidentflowError(f"Temporal error ({exc.status.name}): {exc.message[:300]}")
