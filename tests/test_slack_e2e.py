"""Slack end to end: signed requests into our real API, the real slack_sdk client out to a fake Slack.

declare (slash command) → channel created, context pinned, announced → "Claim IC" button → summary
message updated in place → `/incident resolve` in the channel → the channel is told. Then the same
run with Slack answering 429 to every third call: it completes, and nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import EventKind, Phase, Role
from incidentflow.client import Incidents
from incidentflow.slack.verify import sign
from tests.conftest import serve_api
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sign(secret, stamp, body),
            "Content-Type": "application/x-www-form-urlencoded"}


def command_body(text: str, user: str, channel: str, response_url: str = "", trigger_id: str = "") -> bytes:
    return urlencode({"command": "/incident", "text": text, "user_id": user, "user_name": user.lower(),
                      "channel_id": channel, "team_id": "T0001", "response_url": response_url,
                      "trigger_id": trigger_id}).encode()


def button_body(action_id: str, incident_id: str, user: str, response_url: str, channel: str = "") -> bytes:
    payload = {"type": "block_actions", "user": {"id": user, "username": user.lower()},
               "response_url": response_url, "trigger_id": "", "channel": {"id": channel},
               "actions": [{"action_id": action_id, "value": incident_id, "type": "button"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def make_config(slack: FakeSlack) -> tuple[IncidentflowConfig, dict[str, str]]:
    ids = {"alice": slack.add_user(name="alice", email="alice@example.com"),
           "bob": slack.add_user(name="bob", email="bob@example.com"),
           "mallory": slack.add_user(name="mallory", email="mallory@example.com")}
    config = IncidentflowConfig.model_validate({
        "people": [{"id": "alice", "name": "Alice", "slack": ids["alice"]},
                   {"id": "bob", "name": "Bob", "email": "bob@example.com"}],  # found by email lookup
        "services": [{"name": "checkout", "runbook": "https://runbooks.example/checkout"}],
    })
    return config, ids


def dedup_keys(slack: FakeSlack, channel: str) -> list[str]:
    return [m.metadata["event_payload"]["dedup_key"] for m in slack.messages(channel)
            if m.metadata and m.metadata.get("event_type") == "incidentflow_post"]


async def run_incident(env: WorkflowEnvironment, slack: FakeSlack, config: IncidentflowConfig,
                       ids: dict[str, str]) -> dict[str, Any]:
    """The whole story through the API; returns what the assertions need."""
    async with serve_api(env, config=config, slack_signing_secret=SECRET, slack_bot_token=slack.bot_token,
                         slack_api_url=slack.base_url) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        general = slack.add_channel(f"general-{time.monotonic_ns()}", members=[ids["alice"]])
        body = command_body("declare sev2 service=checkout Checkout latency high", ids["alice"], general)
        r = await http.post("/slack/commands", content=body, headers=signed(body))
        assert r.status_code == 200, r.text
        reply = r.json()
        assert reply["response_type"] == "in_channel" and "SEV2" in reply["text"]
        iid = next(w.strip("`:") for w in reply["text"].split() if w.strip("`:").startswith("incident-"))
        inc = Incidents(env.client, Settings(), config)

        state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None
                                 and s.chat.posted_seq >= max(e.seq for e in s.timeline), timeout=60)
        assert state.chat is not None
        channel = state.chat.channel_id

        claim_url = slack.new_response_url()
        body = button_body(render.CLAIM_IC, iid, ids["bob"], claim_url, channel)
        r = await http.post("/slack/interactions", content=body, headers=signed(body))
        assert r.status_code == 200, r.text
        answer = await slack.wait_for_response_async(claim_url)
        assert "bob is now incident commander" in answer[0]["text"]
        assert answer[0]["response_type"] == "ephemeral"

        summary_ts = state.chat.summary_ts
        assert summary_ts
        await eventually(lambda: _async(slack.message(channel, summary_ts)),
                         lambda m: m is not None and f"<@{ids['bob']}>" in json.dumps(m.blocks, ensure_ascii=False), timeout=60)

        body = command_body("resolve Rolled back the bad deploy", ids["alice"], channel)
        r = await http.post("/slack/commands", content=body, headers=signed(body))
        assert r.status_code == 200, r.text
        assert "resolved" in r.json()["text"], r.json()
        final = await eventually(lambda: inc.get(iid), lambda s: s.phase == Phase.resolved and s.chat is not None
                                 and s.chat.posted_seq >= max(e.seq for e in s.timeline)
                                 and any("resolved" in m.text for m in slack.messages(channel)), timeout=60)
        await asyncio.sleep(0.5)  # anything in flight lands before we count
        return {"iid": iid, "channel": channel, "state": final, "summary_ts": summary_ts, "general": general}


async def _async(value: Any) -> Any:
    return value


def check_story(slack: FakeSlack, ids: dict[str, str], out: dict[str, Any]) -> None:
    iid, channel, state = out["iid"], out["channel"], out["state"]
    ch = slack.channels[channel]
    # the channel: named by the rules, purpose naming the incident, declarer invited
    assert ch.name.startswith("incident-") and "-sev2-checkout" in ch.name and len(ch.name) <= 80, ch.name
    assert ch.name == render.channel_name(iid, "SEV2")
    assert iid in ch.purpose["value"] and "SEV2" in ch.topic["value"]
    assert ids["alice"] in ch.members and ids["bob"] in ch.members  # bob was invited when he took a role
    # the pinned context message
    pinned = [slack.message(channel, ts) for ts in slack.pins(channel)]
    assert len(pinned) == 1 and pinned[0] is not None
    context = json.dumps(pinned[0].blocks, ensure_ascii=False)
    for expected in ("SEV2", "Checkout latency high", f"<@{ids['alice']}>", "https://runbooks.example/checkout",
                     iid, f"*Incident commander:* <@{ids['bob']}>", "resolved", "|Temporal UI>"):
        assert expected in context, expected
    assert "claim it" not in context, "the pin is kept current: bob claimed IC"
    assert "unassigned — claim it" in json.dumps(pinned[0].versions[0].blocks, ensure_ascii=False)
    # announced in #incidents with a link to the channel
    announced = [m for m in slack.messages("incidents") if f"<#{channel}>" in (m.text + json.dumps(m.blocks, ensure_ascii=False))]
    assert len(announced) == 1
    assert "resolved" in json.dumps(announced[0].blocks, ensure_ascii=False), "the announcement follows the incident's state"
    # the summary: one message, updated in place
    summary = slack.message(channel, out["summary_ts"])
    assert summary is not None and len(summary.versions) >= 3
    latest = json.dumps(summary.blocks, ensure_ascii=False)
    assert f"<@{ids['bob']}>" in latest and "resolved" in latest and "Rolled back the bad deploy" in latest
    assert render.CLAIM_IC not in latest, "no buttons on a resolved incident"
    first = json.dumps(summary.versions[0].blocks, ensure_ascii=False)
    assert render.CLAIM_IC in first and render.ACK in first and render.RESOLVE in first
    # the timeline went to the channel, each event once
    texts = [m.text for m in slack.messages(channel)]
    assert any("bob is incident commander" in t for t in texts)
    assert any("Phase triage → resolved: Rolled back the bad deploy" in t for t in texts)
    keys = dedup_keys(slack, channel) + dedup_keys(slack, "incidents")
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"posted twice: {dupes}"
    assert state.roles[Role.ic] == "bob" and state.acknowledged_by is None
    assert not [e for e in state.timeline if e.kind == EventKind.warning and e.actor == "slack"]


async def test_declare_claim_resolve_end_to_end(dev_env: WorkflowEnvironment) -> None:
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        out = await run_incident(dev_env, slack, config, ids)
        check_story(slack, ids, out)
        assert not [c for c in slack.calls if c.status == 429]


async def test_rate_limited_every_third_call_completes_without_duplicates(dev_env: WorkflowEnvironment) -> None:
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        slack.rate_limit_every(3, retry_after=1)
        out = await run_incident(dev_env, slack, config, ids)
        limited = [c for c in slack.calls if c.status == 429]
        assert len(limited) >= 5, "the fault mode was in force"
        check_story(slack, ids, out)


@pytest.mark.parametrize("case", ["forged", "stale", "replayed", "missing", "wrong-secret"])
async def test_signatures_are_checked_before_anything_else(dev_env: WorkflowEnvironment, case: str) -> None:
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        async with serve_api(dev_env, config=config, slack_signing_secret=SECRET, slack_bot_token=slack.bot_token,
                             slack_api_url=slack.base_url) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            body = command_body("declare sev1 Should never be declared", ids["alice"], "C0GENERAL")
            headers = signed(body)
            if case == "forged":
                body = body.replace(b"sev1", b"sev2")
            elif case == "stale":
                headers = signed(body, ts=int(time.time()) - 301)
            elif case == "replayed":
                first = await http.post("/slack/commands", content=command_body("help", ids["alice"], "C1"),
                                        headers=(h := signed(command_body("help", ids["alice"], "C1"))))
                assert first.status_code == 200
                body, headers = command_body("help", ids["alice"], "C1"), h
            elif case == "missing":
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
            elif case == "wrong-secret":
                headers = signed(body, secret="not-the-secret")
            for path in ("/slack/commands", "/slack/interactions", "/slack/events"):
                r = await http.post(path, content=body, headers=headers)
                assert r.status_code == 401, (path, r.text)
                assert "Slack signature check failed" in r.json()["error"]
            assert not slack.calls_to("conversations.create")
            incidents = await Incidents(dev_env.client, Settings(), config).list()
            assert not [i for i in incidents if i.title == "Should never be declared"]


async def test_signing_secret_unset_refuses_slack_routes(dev_env: WorkflowEnvironment) -> None:
    async with serve_api(dev_env) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = command_body("help", "U1", "C1")
        r = await http.post("/slack/commands", content=body, headers=signed(body))
        assert r.status_code == 401 and "INCIDENTFLOW_SLACK_SIGNING_SECRET" in r.json()["error"]
