"""Runbooks from Slack: `/incident runbook …` in the incident channel, the approval request posted with
Approve/Deny buttons, a signed button press approving it, the rollback done against the fake cluster."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import EventKind
from domain.models.runbook import RunStatus
from incidentflow.client import Incidents
from tests.conftest import serve_api
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually
from tests.test_slack_e2e import SECRET, button_body, command_body, signed


async def test_runbook_from_slack_with_approval_buttons(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeKubernetes() as kube:
        kube.add_deployment("payments", "checkout-service", "registry.example/checkout:v3", replicas=2, revisions=2)
        alice = slack.add_user(name="alice", email="alice@example.com")
        bob = slack.add_user(name="bob", email="bob@example.com")
        config = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice", "slack": alice},
                                                               {"id": "bob", "name": "Bob", "slack": bob}]})
        settings = {"slack_signing_secret": SECRET, "slack_bot_token": slack.bot_token,
                    "slack_api_url": slack.base_url, "kubeconfig": str(kube.write_kubeconfig(tmp_path / "kc"))}
        async with serve_api(dev_env, config=config, **settings) as url, httpx.AsyncClient(base_url=url,
                                                                                         timeout=30) as http:
            inc = Incidents(dev_env.client, Settings(), config)  # reads only: the API's worker has its own queue
            r = await http.post("/v1/incidents", json={"title": "Checkout 500s", "severity": "SEV2",
                                                       "declared_by": "alice", "commander": "alice", "page": False})
            iid = r.json()["id"]
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None)
            channel = state.chat.channel_id  # type: ignore[union-attr]

            body = command_body("runbook", alice, channel, slack.new_response_url())
            listing = (await http.post("/slack/commands", content=body, headers=signed(body))).json()["text"]
            assert "`rollback-deployment`" in listing and "`scale-up`" in listing

            body = command_body("runbook rollback-deployment namespace=payments deployment=checkout-service replicas",
                                alice, channel, slack.new_response_url())
            bad = (await http.post("/slack/commands", content=body, headers=signed(body))).json()
            assert "key=value" in bad["text"] and "Usage: `/incident runbook" in bad["text"]

            body = command_body("runbook rollback-deployment namespace=payments deployment=checkout-service",
                                alice, channel, slack.new_response_url())
            reply = (await http.post("/slack/commands", content=body, headers=signed(body))).json()
            run_id = f"{iid}-runbook-1"
            assert run_id in reply["text"], reply

            def approval_message() -> list[dict]:
                return [m.blocks for m in slack.messages(channel) if render.APPROVE in json.dumps(m.blocks or [])]
            blocks = (await eventually(lambda: _value(approval_message()), bool))[0]
            buttons = {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}
            assert buttons == {render.APPROVE: run_id, render.DENY: run_id}

            denied_url = slack.new_response_url()
            body = button_body(render.DENY, run_id, bob, denied_url, channel)
            assert (await http.post("/slack/interactions", content=body, headers=signed(body))).status_code == 200
            answer = await slack.wait_for_response_async(denied_url)
            assert "bob may not approve" in answer[0]["text"]

            approved_url = slack.new_response_url()
            body = button_body(render.APPROVE, run_id, alice, approved_url, channel)
            assert (await http.post("/slack/interactions", content=body, headers=signed(body))).status_code == 200
            assert "approved" in (await slack.wait_for_response_async(approved_url))[0]["text"]
            run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None)
            assert run.status == RunStatus.succeeded
            assert kube.revision("payments", "checkout-service") == 3
            texts = await eventually(lambda: _value([m.text for m in slack.messages(channel)]),
                                     lambda t: any("finished" in x for x in t))
            assert any("approved by alice" in t for t in texts)
            assert [e for e in (await inc.get(iid)).timeline if e.kind == EventKind.approval]


async def _value(value: object) -> object:
    return value
