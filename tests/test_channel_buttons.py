"""Buttons never outlive their question: a page's Acknowledge and a runbook's Approve/Deny are replaced,
in place, by who did what and when, whichever route answered (Slack, CLI, API, the approval timeout).
Real slack_sdk against the fake Slack; runbook steps on the in-memory cluster."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.steps import RunbookSteps
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import AckInput, DeclareInput, ResolveInput, Severity
from domain.models.runbook import Decision, RunStatus
from incidentflow.client import Incidents
from tests.fakes.memory import MemoryCluster, MemoryDirectory, MemoryProbe
from tests.fakes.slack import FakeSlack, SlackMessage
from tests.helpers import eventually
from workers.main import build_worker

RUNBOOK = """\
name: roll-back
title: Roll back checkout
approvers: [ic]
approval_timeout: 10m
steps:
  - {kind: approval, prompt: "Roll back shop/checkout? This replaces the running pods."}
  - {kind: kubernetes.rollout_undo, namespace: shop, deployment: checkout}
"""


def config(slack: FakeSlack) -> tuple[IncidentflowConfig, dict[str, str]]:
    ids = {name: slack.add_user(name=name, email=f"{name}@example.com") for name in ("alice", "bob")}
    return IncidentflowConfig.model_validate({
        "people": [{"id": "alice", "name": "Alice", "slack": ids["alice"], "notify": ["slack"]},
                   {"id": "bob", "name": "Bob", "email": "bob@example.com"}],
        "services": [{"name": "checkout", "escalation_policy": "p"}],
        "escalation_policies": [{"name": "p", "levels": [{"wait": "10m", "targets": [{"person": "alice"}]}]}],
    }), ids


@asynccontextmanager
async def stack(env: WorkflowEnvironment, slack: FakeSlack, cfg: IncidentflowConfig,
                tmp_path: Path) -> AsyncIterator[Incidents]:
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "roll-back.yaml").write_text(RUNBOOK)
    cluster = MemoryCluster()
    cluster.add_deployment("shop", "checkout", ["checkout:v1", "checkout:v2"])
    settings = Settings(task_queue=f"buttons-{uuid.uuid4().hex[:8]}", runbooks_dir=tmp_path / "runbooks",
                        slack_bot_token=slack.bot_token, slack_api_url=slack.base_url)
    probe = MemoryProbe()
    worker = build_worker(env.client, settings, fail_fast=True, config=lambda: cfg,
                          runbook_steps=RunbookSteps(cluster, probe, probe), directory=MemoryDirectory())
    async with worker:  # ts_env is a fresh server per test: nothing left running can stall another test
        yield Incidents(env.client, settings, cfg)


def buttons(message: SlackMessage | None) -> list[str]:
    assert message is not None
    return [e["action_id"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]]


def shown(message: SlackMessage | None) -> str:
    assert message is not None
    return message.text + json.dumps(message.blocks or [], ensure_ascii=False)


async def _value(value: Any) -> Any:
    return value


@pytest.mark.parametrize("answer", ["ack", "resolve"])
async def test_a_pages_acknowledge_button_goes_once_answered_elsewhere(ts_env: WorkflowEnvironment, tmp_path: Path,
                                                                       answer: str) -> None:
    """Acknowledged from the CLI/API (or resolved without an acknowledgement): the DM says so, without a button."""
    with FakeSlack() as slack:
        cfg, ids = config(slack)
        async with stack(ts_env, slack, cfg, tmp_path) as inc:
            iid = await inc.declare(DeclareInput(title="Checkout down", severity=Severity.SEV1, service="checkout",
                                                 declared_by="bob"))
            [dm] = await eventually(lambda: _value(slack.dm(ids["alice"])), lambda m: len(m) == 1)
            assert buttons(dm) == [render.ACK]
            await eventually(lambda: inc.get(iid), lambda s: any(b.kind == "page" for b in s.buttons))
            if answer == "ack":
                await inc.acknowledge(iid, AckInput(by="bob"))
            else:
                await inc.resolve(iid, ResolveInput(by="bob", summary="false alarm"))
            closed = await eventually(lambda: _value(slack.message(dm.channel, dm.ts)), lambda m: not buttons(m))
            state = await inc.get(iid)
            if answer == "ack":
                assert f"Acknowledged by bob at {state.acknowledged_at:%H:%M} UTC" in shown(closed), shown(closed)
            else:
                assert "Nothing to acknowledge any more: the incident is resolved" in shown(closed), shown(closed)
            assert "You are paged for *[SEV1] Checkout down*" in shown(closed), "what it was about stays"
            assert "Acknowledge to stop the escalation" not in shown(closed)
            await eventually(lambda: inc.get(iid), lambda s: all(b.closed for b in s.buttons))


@pytest.mark.parametrize("decision", ["approve", "deny", "timeout"])
async def test_approve_and_deny_go_once_decided_by_any_route(ts_env: WorkflowEnvironment, tmp_path: Path,
                                                             decision: str) -> None:
    with FakeSlack() as slack:
        cfg, ids = config(slack)
        async with stack(ts_env, slack, cfg, tmp_path) as inc:
            iid = await inc.declare(DeclareInput(title="Checkout errors", severity=Severity.SEV2, service="checkout",
                                                 declared_by="alice", commander="alice", page=False))
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None)
            channel = state.chat.channel_id  # type: ignore[union-attr]
            run_id = (await inc.run_runbook(iid, "roll-back", {}, by="alice")).ref
            assert run_id

            def approvals() -> list[SlackMessage]:
                return [m for m in slack.messages(channel) if "Approval needed" in m.text]
            [asked] = await eventually(lambda: _value(approvals()), lambda m: len(m) == 1)
            assert buttons(asked) == [render.APPROVE, render.DENY]
            assert f"/incident approve {run_id}" in shown(asked), "the Slack way to decide is offered"
            await eventually(lambda: inc.get(iid), lambda s: any(b.kind == "approval" for b in s.buttons))
            if decision == "timeout":
                await ts_env.sleep(timedelta(minutes=11))
            else:
                await inc.decide_runbook(run_id, Decision(approve=decision == "approve", by="alice", comment="ok"))
            run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None)
            closed = await eventually(lambda: _value(slack.message(channel, asked.ts)), lambda m: not buttons(m))
            text = shown(closed)
            assert "Roll back shop/checkout? This replaces the running pods." in text, "the question stays"
            expected = {"approve": ("✅", "approved by alice at"), "deny": ("⛔", "denied by alice at"),
                        "timeout": ("⛔", "denied automatically: no decision within 10 min")}[decision]
            assert all(part in text for part in expected), text
            assert run.status == (RunStatus.succeeded if decision == "approve" else RunStatus.denied)
