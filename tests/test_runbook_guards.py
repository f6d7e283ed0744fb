"""Runbooks and the incident's phase: a run that changes things is refused once the incident is resolved
or ended (a rollback there re-deploys the bad version), by command, by approval (the Slack button and the
CLI both decide through the run's `decide` update) and by the run itself if the incident resolved after
the approval; diagnostics still run on a resolved incident, and on a closed or stood-down one (whose
workflow has ended: the run starts on its own and reports to no timeline). The incident moves to mitigating
when the first change is applied, never when one is only asked for.

The real workflows on the time-skipping server, the official `kubernetes` client against the fake API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.models import EventKind, Phase, PhaseInput, ReopenInput, ResolveInput, StandDownInput
from domain.models.runbook import Decision, RunStatus
from incidentflow.cli.runbook import render_state
from incidentflow.client import CommandRejected, Incidents
from tests.fakes.kubernetes import FakeKubernetes
from tests.helpers import eventually
from tests.test_runbook_flow import DEPLOY, NS, awaiting, declare, fakes, finished, rollback_params, stack
from workflows.incident import IncidentWorkflow

__all__ = ["fakes"]  # the fixture, shared with test_runbook_flow

PODS_ONLY = """\
name: pods-only
title: Look at the pods
steps:
  - {kind: kubernetes.pods, namespace: payments, selector: app=checkout-service}
"""
ROLLBACK_LATER = """\
name: rollback-later
title: Approve, wait, then roll back
steps:
  - {kind: approval, prompt: "Roll back after a pause?"}
  - {kind: wait, duration: 3s}
  - {kind: kubernetes.rollout_undo, namespace: payments, deployment: checkout-service}
"""


def add_runbook(fakes: dict[str, Any], text: str, name: str) -> None:
    (Path(fakes["settings"]["runbooks_dir"]) / f"{name}.yaml").write_text(text)


async def test_a_change_is_refused_on_a_resolved_incident_diagnostics_are_not(
        ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube: FakeKubernetes = fakes["kube"]
    add_runbook(fakes, PODS_ONLY, "pods-only")
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        await inc.resolve(iid, ResolveInput(by="alice", summary="rolled forward"))
        with pytest.raises(CommandRejected) as refused:
            await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")
        assert str(refused.value) == (
            f"{iid}: cannot run rollback-deployment on a resolved incident: it changes things (Roll back {NS}/{DEPLOY} "
            f"to the previous revision). Reopen the incident first (`incidentflow reopen {iid}`); runbooks that "
            "only read (diagnostics) still run")
        state = await inc.get(iid)
        assert state.runbooks == [] and state.phase == Phase.resolved

        diagnostics = (await inc.run_runbook(iid, "pods-only", {}, by="alice")).ref
        run = await finished(inc, diagnostics)
        assert run.status == RunStatus.succeeded and run.results[0].data["pods"] == 3

        await inc.set_phase(iid, PhaseInput(phase=Phase.postmortem, by="alice"))
        with pytest.raises(CommandRejected, match="on a postmortem incident: it changes things"):
            await inc.run_runbook(iid, "scale-up", {"deployment": DEPLOY, "namespace": NS}, by="alice")
        assert not kube.writes()


async def end(inc: Incidents, iid: str, phase: Phase) -> None:
    """Close (after resolving) or stand down the incident, and wait until its workflow has returned."""
    if phase == Phase.closed:
        await inc.resolve(iid, ResolveInput(by="alice", summary="rolled forward"))
        await inc.set_phase(iid, PhaseInput(phase=Phase.closed, by="alice"))
    else:
        await inc.stand_down(iid, StandDownInput(by="alice", reason="a false alarm"))
    assert (await inc.client.get_workflow_handle_for(IncidentWorkflow.run, iid).result()).phase == phase


@pytest.mark.parametrize("phase", [Phase.closed, Phase.stood_down])
async def test_an_ended_incident_refuses_changes_and_still_runs_diagnostics(
        ts_env: WorkflowEnvironment, fakes: dict[str, Any], phase: Phase) -> None:
    kube: FakeKubernetes = fakes["kube"]
    add_runbook(fakes, PODS_ONLY, "pods-only")
    words = phase.value.replace("_", " ")
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        await end(inc, iid, phase)
        with pytest.raises(CommandRejected) as refused:
            await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice", key="k-rollback")
        assert str(refused.value) == (
            f"{iid}: cannot run rollback-deployment (Roll back {NS}/{DEPLOY} to the previous revision): the incident "
            f"is {words}: a change is refused; read-only runbooks still run")

        started = await inc.run_runbook(iid, "pods-only", {}, by="alice", key="k-pods")
        again = await inc.run_runbook(iid, "pods-only", {}, by="alice", key="k-pods")  # a retried request
        run_id = started.ref
        assert run_id and run_id.startswith(f"{iid}-runbook-") and again.ref == run_id, (started, again)
        assert f"the incident is {words}" in started.text and f"incidentflow runbook status {run_id}" in started.text
        run = await finished(inc, run_id)  # read as `incidentflow runbook status` and the HTTP run route read it
        assert run.status == RunStatus.succeeded and run.incident_id == iid, run
        assert run.results[0].data["pods"] == 3 and run.results[0].output
        shown = render_state(run)
        assert "succeeded" in shown and f"(incident {iid}," in shown and "[✓] 1." in shown, shown
        history = await inc.client.get_workflow_handle(run_id).fetch_history()
        assert not [e for e in history.events if e.HasField("signal_external_workflow_execution_initiated_event_"
                                                             "attributes")], "it signals no ended incident"

        other = (await inc.run_runbook(iid, "pods-only", {}, by="bob", key="k-other")).ref
        assert other != run_id and (await finished(inc, other or "")).status == RunStatus.succeeded
        state = await inc.get(iid)
        assert state.phase == phase and state.runbooks == [], "the ended incident itself is unchanged"
        assert not kube.writes()


async def test_a_reopened_incident_takes_changes_again(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        await inc.resolve(iid, ResolveInput(by="alice", summary="looked fixed"))
        await inc.reopen(iid, ReopenInput(by="alice", reason="errors are back"))
        run_id = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")).ref
        await awaiting(inc, run_id)
        await inc.decide_runbook(run_id, Decision(by="alice"))
        assert (await finished(inc, run_id)).status == RunStatus.succeeded


async def test_no_approval_after_the_incident_resolved(ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    """The run asked before the resolve; the approval (a Slack button, the CLI) comes after it."""
    kube: FakeKubernetes = fakes["kube"]
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")).ref
        await awaiting(inc, run_id)
        await inc.resolve(iid, ResolveInput(by="alice", summary="it was the cache"))
        await eventually(lambda: inc.runbook_run(run_id), lambda r: r.incident_phase == Phase.resolved)
        with pytest.raises(CommandRejected, match="cannot approve: the incident is resolved, and a change to a "
                                                  "resolved incident could undo its fix"):
            await inc.decide_runbook(run_id, Decision(by="alice"))
        await inc.decide_runbook(run_id, Decision(by="alice", approve=False))
        assert (await finished(inc, run_id)).status == RunStatus.denied
        assert not kube.writes(), "nothing rolled back on a resolved incident"


async def test_a_run_stops_before_its_change_when_the_incident_resolves(
        ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    kube: FakeKubernetes = fakes["kube"]
    add_runbook(fakes, ROLLBACK_LATER, "rollback-later")
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        run_id = (await inc.run_runbook(iid, "rollback-later", {}, by="alice")).ref
        await awaiting(inc, run_id)
        with ts_env.auto_time_skipping_disabled():  # the 3 s wait lasts 3 s: resolve within it
            await inc.decide_runbook(run_id, Decision(by="alice"))
            await inc.resolve(iid, ResolveInput(by="alice", summary="recovered by itself"))
            run = await finished(inc, run_id)
        assert run.status == RunStatus.denied and run.results[-1].status == "denied"
        assert "the incident is resolved" in run.results[-1].summary
        assert not kube.writes()
        texts = [e.text for e in (await inc.get(iid)).timeline]
        assert any("stopped at step" in t and "resolved" in t for t in texts), texts


async def test_mitigating_comes_with_the_first_change_not_the_request(
        ts_env: WorkflowEnvironment, fakes: dict[str, Any]) -> None:
    async with stack(ts_env, fakes) as inc:
        iid = await declare(inc)
        denied = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="alice")).ref
        await awaiting(inc, denied)
        assert (await inc.get(iid)).phase == Phase.triage
        await inc.decide_runbook(denied, Decision(by="alice", approve=False))
        await finished(inc, denied)
        assert (await inc.get(iid)).phase == Phase.triage, "a denial leaves the phase as it was"

        await inc.set_phase(iid, PhaseInput(phase=Phase.identified, by="alice"))
        approved = (await inc.run_runbook(iid, "rollback-deployment", rollback_params(), by="bob")).ref
        await awaiting(inc, approved)
        assert (await inc.get(iid)).phase == Phase.identified
        await inc.decide_runbook(approved, Decision(by="alice"))
        await finished(inc, approved)
        state = await inc.get(iid)
        assert state.phase == Phase.mitigating
        moved = [e for e in state.timeline if e.kind == EventKind.phase][-1]
        assert moved.text == "Phase identified → mitigating: runbook rollback-deployment applied its first change"
        assert moved.actor == "bob"
