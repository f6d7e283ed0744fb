"""A door asks Temporal what an id is once (`describe`), then sends commands to a known incident directly
(incidentflow/client_base.py, KNOWN_INCIDENTS). Real time-skipping server and worker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio import client as tc
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.models import AckInput, DeclareInput, NoteInput, Phase, PhaseInput, Severity, StandDownInput
from incidentflow import client_base
from incidentflow.client import Incidents
from incidentflow.client_base import CommandRejected, IncidentNotFound
from tests.conftest import running_worker


class _Describes(tc.Interceptor):
    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: tc.OutboundInterceptor) -> tc.OutboundInterceptor:
        seen = self.ids

        class Outbound(tc.OutboundInterceptor):
            async def describe_workflow(self, input: tc.DescribeWorkflowInput) -> Any:
                seen.append(input.id)
                return await super().describe_workflow(input)

        return Outbound(next)


def _client(env: WorkflowEnvironment, describes: _Describes) -> Client:
    config = env.client.config()
    return Client(**{**config, "interceptors": [*config["interceptors"], describes]})


async def test_commands_to_a_known_incident_skip_the_describe(ts_env: WorkflowEnvironment) -> None:
    describes = _Describes()
    client = _client(ts_env, describes)
    async with running_worker(client) as (settings, _):
        iid = await Incidents(client, settings).declare(DeclareInput(title="Checkout errors", severity=Severity.SEV3,
                                                                     declared_by="alice", page=False))
        door = Incidents(client, settings)
        await door.acknowledge(iid, AckInput(by="alice"))
        assert describes.ids == [iid]  # the first command asks what the id is
        await door.set_phase(iid, PhaseInput(phase=Phase.investigating, by="alice"))
        await Incidents(client, settings).add_note(iid, NoteInput(text="rolled back", by="alice"))  # another door
        assert describes.ids == [iid]
        state = await door.get(iid)  # a read still asks (it needs the status)
        assert state.phase == Phase.investigating and state.acknowledged_by == "alice"
        assert [n.text for n in state.timeline if n.text == "rolled back"]
        await door.stand_down(iid, StandDownInput(by="alice", reason="false alarm"))
        await client.get_workflow_handle(iid).result()
        with pytest.raises(CommandRejected, match="is over"):  # known, ended: the update's NOT_FOUND explains
            await door.set_phase(iid, PhaseInput(phase=Phase.investigating, by="alice"))


async def test_an_id_of_another_workflow_type_is_never_remembered(ts_env: WorkflowEnvironment) -> None:
    describes = _Describes()
    client = _client(ts_env, describes)
    async with running_worker(client) as (settings, _):
        other = f"incident-{uuid.uuid4().hex[:12]}"  # an incident-like id held by a workflow of another type
        await client.start_workflow("NotAnIncident", id=other, task_queue=f"nobody-{uuid.uuid4().hex[:6]}")
        door = Incidents(client, settings)
        for _ in range(2):
            with pytest.raises(IncidentNotFound, match="NotAnIncident"):
                await door.acknowledge(other, AckInput(by="alice"))
        assert describes.ids == [other, other]
        assert other not in client_base._KNOWN.get(client, {})
        await client.get_workflow_handle(other).terminate("test finished")
