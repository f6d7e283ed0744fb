"""Histories recorded with the code from before a patch, for tests/test_replay.py.

- `*.before-mitigate-on-change.json`: the `mitigate-on-change` and `runbook-phase` patches change what the
  incident does when a runbook starts and when it resolves with a run still waiting. Run 1 asks for a scale
  (destructive), is approved and scales; run 2 asks again and is still waiting when the incident resolves,
  then is denied.
- `*.before-unknown-service.json`: the `unknown-service` patch makes an alert group warn its new incident when
  the alert names a service the config does not list. A batch routed by a newer API (with
  `route.unknown_service`) reached a worker from before the patch, which opened the incident without a word.

They were recorded with these scenarios on the code before the patches (commit be9c81c's tree, exported
with `git archive`), so they prove the patched code still replays what older workers recorded:

    git archive be9c81c | tar -x -C /tmp/old && cp tests/record_prepatch_histories.py /tmp/old/tests/
    cd /tmp/old && PYTHONPATH=. <checkout>/.venv/bin/python -m tests.record_prepatch_histories <checkout>/tests/histories

Never re-record these to make a failure go away.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain import ingest
from domain.models import AlertmanagerPayload, DeclareInput, Phase, PhaseInput, ResolveInput, Severity
from domain.models.group import AlertGroupStart
from domain.models.runbook import Decision, RenderedStep, RunbookRequest
from incidentflow.client import Incidents
from tests.conftest import binary, register_search_attributes, running_worker
from tests.fakes.kubernetes import FakeKubernetes
from tests.record_histories import FIXTURES, MIN, recording_config, start

SUFFIX = "before-mitigate-on-change"
INCIDENT = "incident-recorded-mitigation"
UNKNOWN_SUFFIX = "before-unknown-service"


def scale_request() -> RunbookRequest:
    return RunbookRequest(runbook="scale-orders", title="Scale orders", by="dan", steps=[
        RenderedStep(index=0, name="approve", kind="approval", title="Approval: scale?", destructive=False,
                     diagnostic=False, args={"prompt": "Scale orders to 4?"}),
        RenderedStep(index=1, name="scale", kind="kubernetes.scale", title="Scale shop/orders to 4 replicas",
                     destructive=True, diagnostic=False,
                     args={"namespace": "shop", "deployment": "orders", "replicas": 4, "factor": None,
                           "max_replicas": 10})])


async def pending(inc: Incidents, run_id: str) -> None:
    while (await inc.runbook_run(run_id)).pending is None:
        await asyncio.sleep(0.05)


async def scenario(env: WorkflowEnvironment, inc: Incidents) -> list[str]:
    await start(env, inc, INCIDENT, DeclareInput(title="Orders slow", severity=Severity.SEV2, service="orders",
                                                 declared_by="dan", commander="dan", page=False))
    first = (await inc.start_runbook(INCIDENT, scale_request())).ref or ""
    await pending(inc, first)
    await inc.decide_runbook(first, Decision(by="dan"))
    await env.client.get_workflow_handle(first).result()
    second = (await inc.start_runbook(INCIDENT, scale_request())).ref or ""
    await pending(inc, second)
    await inc.resolve(INCIDENT, ResolveInput(by="dan", summary="scaled"))  # run 2 still waits
    await asyncio.sleep(0.5)
    await inc.decide_runbook(second, Decision(by="dan", approve=False))
    await env.client.get_workflow_handle(second).result()
    await inc.set_phase(INCIDENT, PhaseInput(phase=Phase.postmortem, by="dan"))
    await inc.set_phase(INCIDENT, PhaseInput(phase=Phase.closed, by="dan"))
    await env.client.get_workflow_handle(INCIDENT).result()
    return [INCIDENT, first, second]


async def unknown_service(env: WorkflowEnvironment, inc: Incidents) -> str:
    """A group run that opens its incident for an alert whose route names an unknown service."""
    payload = AlertmanagerPayload.model_validate(json.loads((FIXTURES / "alertmanager-firing.json").read_text()))
    payload.groupKey = '{}:{alertname="CheckoutErrorRate", service="checkout-service"}'
    batch = ingest.from_alertmanager(payload, inc.config.routing.router(), datetime.now(UTC))
    sent = batch.model_dump(mode="json")
    sent["route"].update(service="checkout-service", unknown_service="checkout-service")  # as a newer API routes it
    group_id = ingest.group_workflow_id(batch.group_key)
    await env.client.start_workflow(
        "AlertGroupWorkflow", AlertGroupStart(group_key=batch.group_key, policy=inc.config.incident_policy()),
        id=group_id, task_queue=inc.settings.task_queue, start_signal="alerts", start_signal_args=[sent])
    while not (group := await inc.alert_group(group_id)) or not group.incident_id:
        await asyncio.sleep(0.05)
    await inc.resolve(group.incident_id, ResolveInput(by="alice", summary="restarted"))
    while (await inc.alert_group(group_id) or group).incident_phase != Phase.resolved:
        await asyncio.sleep(0.05)
    await env.sleep(31 * MIN)  # past the reopen window: the group run ends
    await env.client.get_workflow_handle(group_id).result()
    return group_id


async def main(out: Path) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=pydantic_data_converter)
    await register_search_attributes(env)
    config = recording_config()
    try:
        with FakeKubernetes() as kube, TemporaryDirectory() as tmp:
            kube.add_deployment("shop", "orders", "registry.example/orders:v2", replicas=2, revisions=2)
            kubeconfig = str(kube.write_kubeconfig(Path(tmp) / "kubeconfig"))
            async with running_worker(env.client, config=lambda: config, kubeconfig=kubeconfig) as (settings, _):
                inc = Incidents(env.client, settings, config)
                ids = await asyncio.wait_for(scenario(env, inc), 60)
                named = [(i, SUFFIX) for i in ids] + [(await unknown_service(env, inc), UNKNOWN_SUFFIX)]
                for workflow_id, suffix in named:
                    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                    (out / f"{workflow_id}.{suffix}.json").write_text(history.to_json())
                    print("wrote", out / f"{workflow_id}.{suffix}.json")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/histories")))
