"""`/incident …` commands, buttons, modals and events through signed HTTP requests into our real API.

Each test drives the API the way Slack would (signed form posts, a fake Slack for everything going
out) and asserts what the user sees and what the incident becomes (read back from the workflow).
One API + worker serves the module; tests group several commands per incident to stay quick.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.testing import WorkflowEnvironment

from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings, SlackConfig
from domain.models import EventKind, IncidentState, Phase, Role, Severity
from incidentflow.client import Incidents, TemporalUnavailable
from incidentflow.slack.gateway import COMMANDS, Reply, SlackGateway
from incidentflow.slack.reply import within_budget
from tests.conftest import serve_api
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually
from tests.test_slack_e2e import SECRET, button_body, command_body, make_config, signed

_IID = re.compile(r"incident-\d{8}-\d{4}-[a-z0-9-]+")
WORKING = "Working on it…"


@dataclass
class Stack:
    """The API (with its worker) against one fake Slack; helpers speak for a user of that workspace."""

    slack: FakeSlack
    config: IncidentflowConfig
    ids: dict[str, str]  # alice (config `slack:`), bob (config email), mallory (not in config)
    http: httpx.AsyncClient
    incidents: Incidents
    general: str  # a channel that is not an incident's

    async def command(self, text: str, user: str = "alice", channel: str | None = None, trigger_id: str = "",
                      user_name: str | None = None) -> dict[str, Any]:
        """The reply the user sees: the HTTP body, or what followed on the response_url when slow."""
        url = self.slack.new_response_url()  # unique per command, as from Slack (and no two bodies alike)
        body = command_body(text, self.ids.get(user, user), channel or self.general, url, trigger_id)
        if user_name is not None:
            body = _replace(body, user_name=user_name)
        r = await self.http.post("/slack/commands", content=body, headers=signed(body))
        assert r.status_code == 200, r.text
        if not r.content:
            return {}
        reply: dict[str, Any] = r.json()
        if reply.get("text") == WORKING:
            reply = (await self.slack.wait_for_response_async(url, timeout=30))[0]
        return reply

    async def press(self, action_id: str, iid: str, user: str = "alice", trigger_id: str = "") -> dict[str, Any]:
        """A button press; the reply that arrives on its response_url ({} when none within 1 s)."""
        url = self.slack.new_response_url()
        body = button_body(action_id, iid, self.ids[user], url, self.general)
        if trigger_id:
            payload = json.loads(dict(parse_qsl(body.decode()))["payload"])
            body = urlencode({"payload": json.dumps({**payload, "trigger_id": trigger_id})}).encode()
        r = await self.http.post("/slack/interactions", content=body, headers=signed(body))
        assert r.status_code == 200, r.text
        try:
            return dict((await self.slack.wait_for_response_async(url, timeout=1 if trigger_id else 30))[0])
        except TimeoutError:
            return {}

    async def submit(self, view: dict[str, Any], user: str, values: dict[str, Any]) -> httpx.Response:
        """A `view_submission` of an opened modal with these input values (block id → element state)."""
        payload = {"type": "view_submission", "team": {"id": "T0001"},
                   "user": {"id": self.ids[user], "username": user, "name": user},
                   "trigger_id": self.slack.new_trigger_id(), "view": {**view, "state": {"values": values}}}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.http.post("/slack/interactions", content=body, headers=signed(body))

    async def declare(self, text: str, user: str = "alice", channel: str | None = None,
                      user_name: str | None = None) -> str:
        reply = await self.command(f"declare {text}", user, channel, user_name=user_name)
        assert reply["response_type"] == "in_channel", reply
        found = _IID.search(reply["text"])
        assert found, reply
        return found.group(0)

    async def state(self, iid: str) -> IncidentState:
        return await self.incidents.get(iid)

    async def channel_of(self, iid: str) -> str:
        state = await eventually(lambda: self.state(iid), lambda s: s.chat is not None, timeout=60)
        assert state.chat is not None
        return state.chat.channel_id


def _replace(body: bytes, **fields: str) -> bytes:
    return urlencode({**dict(parse_qsl(body.decode(), keep_blank_values=True)), **fields}).encode()


def text_input(value: str | None) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def select(value: str | None) -> dict[str, Any]:
    option = {"text": {"type": "plain_text", "text": value}, "value": value} if value else None
    return {"value": {"type": "static_select", "selected_option": option}}


def decisions(s: IncidentState) -> tuple[Any, ...]:
    """What a command could change: fields, and the timeline events people made (not async system ones)."""
    made = [(e.kind, e.actor, e.text) for e in s.timeline if e.actor not in ("incidentflow", "escalation", "slack")]
    return (s.severity, s.phase, dict(s.roles), s.acknowledged_by, s.last_update_at, s.resolution_summary, made)


def usage(name: str) -> str:
    return f"Usage: `/incident {COMMANDS[name].usage}`"


@pytest.fixture(scope="module")
async def stack(dev_env: WorkflowEnvironment) -> AsyncIterator[Stack]:
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        general = slack.add_channel(f"general-{time.monotonic_ns()}", members=list(ids.values()), bot_member=True)
        async with serve_api(dev_env, config=config, slack_signing_secret=SECRET, slack_bot_token=slack.bot_token,
                             slack_api_url=slack.base_url) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            yield Stack(slack, config, ids, http, Incidents(dev_env.client, Settings(), config), general)


# ---------------------------------------------------------------------------------------------- help


async def test_help_lists_every_command_and_answers_unknown_ones(stack: Stack) -> None:
    for text in ("help", "", "   ", "HELP"):
        reply = await stack.command(text)
        assert reply["response_type"] == "ephemeral", reply
        for name, spec in COMMANDS.items():
            assert f"`/incident {spec.usage}` — {spec.help}" in reply["text"], (text, name)
    reply = await stack.command("frobnicate the widgets")
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Unknown command `frobnicate`.")
    assert all(f"`/incident {spec.usage}`" in reply["text"] for spec in COMMANDS.values())


# ---------------------------------------------------------------------------------------------- commands


async def test_commands_drive_the_incident(stack: Stack) -> None:
    iid = await stack.declare("sev2 service=checkout Card payments failing")
    channel = await stack.channel_of(iid)
    s = await stack.state(iid)
    assert (s.severity, s.service, s.declared_by, s.title) == (Severity.SEV2, "checkout", "alice", "Card payments failing")

    async def run(text: str, user: str = "alice", where: str | None = channel) -> str:
        reply = await stack.command(text, user, where)
        assert reply["response_type"] == "ephemeral", (text, reply)
        return str(reply["text"])

    async def rejected(text: str, message: str, name: str, where: str | None = channel) -> None:
        before = decisions(await stack.state(iid))
        answer = await run(text, where=where)
        assert message in answer and usage(name) in answer, (text, answer)
        assert decisions(await stack.state(iid)) == before, f"{text!r} changed the incident"

    # outside an incident channel, commands need the id
    await rejected("ack", "This channel is not an incident channel: add the incident id", "ack", where=stack.general)
    await rejected("ack incident-20990101-0000-nope", "no incident with id 'incident-20990101-0000-nope'", "ack",
                   where=stack.general)
    assert f"`{iid}`: acknowledged by alice." == await run(f"ack {iid}", where=stack.general)
    s = await stack.state(iid)
    assert s.acknowledged_by == "alice" and s.acknowledged_at is not None
    await rejected("ack", f"Rejected: {iid}: already acknowledged by alice at {s.acknowledged_at:%H:%M} UTC", "ack")

    # severity: by number, by name, reasons, and the validator's no-op refusal
    assert "severity is now SEV1" in await run("sev 1 all regions affected")
    s = await stack.state(iid)
    assert s.severity == Severity.SEV1
    assert any(e.actor == "alice" and e.text == "Severity SEV2 → SEV1: all regions affected" for e in s.timeline)
    assert "severity is now SEV2" in await run("sev 2")
    await rejected("sev 2", f"Rejected: {iid}: the severity is already SEV2", "sev")
    assert "severity is now SEV1" in await run("sev SEV1")
    assert (await stack.state(iid)).severity == Severity.SEV1
    await rejected("sev 9", "Give a severity from 1 (worst) to 4.", "sev")
    await rejected("sev", "Give a severity from 1 (worst) to 4.", "sev")

    # roles: me, a mention mapped by email lookup (bob), a mention mapped by `slack:` (alice)
    assert "alice is now incident commander" in await run("role ic me")
    assert "bob is now tech lead" in await run(f"role lead <@{stack.ids['bob']}|bob>")
    assert "alice is now scribe" in await run(f"role scribe <@{stack.ids['alice']}|someone>")
    s = await stack.state(iid)
    assert s.roles == {Role.ic: "alice", Role.lead: "bob", Role.scribe: "alice"}
    await rejected("role king me", "Name a role (ic, lead, comms, scribe)", "role")
    await rejected("role ic", "Name a role (ic, lead, comms, scribe)", "role")
    await rejected("role ic me", f"Rejected: {iid}: alice is already the incident commander", "role")

    # phase, updates, notes
    assert "phase is now mitigating" in await run("status mitigating trying a rollback")
    s = await stack.state(iid)
    assert s.phase == Phase.mitigating
    assert any(e.text == "Phase triage → mitigating: trying a rollback" for e in s.timeline)
    await rejected("status sleeping", "Give a phase: investigating, identified, mitigating, monitoring.", "status")
    await rejected("status mitigating", f"Rejected: {iid}: the incident is already in phase mitigating", "status")
    assert "status update posted" in await run("update Rollback at 50%, error rate falling")
    s = await stack.state(iid)
    assert s.last_update_at is not None
    assert [(e.actor, e.text) for e in s.timeline if e.kind == EventKind.status_update] == [
        ("alice", "Rollback at 50%, error rate falling")]
    await rejected("update", "A status update needs text.", "update")
    await rejected("update    ", "A status update needs text.", "update")
    assert f"Noted on `{iid}`." == await run("note the deploy at 10:02 is the suspect")
    await eventually(lambda: stack.state(iid), lambda s: any(
        e.kind == EventKind.note and e.actor == "alice" and e.text == "the deploy at 10:02 is the suspect"
        for e in s.timeline))
    await rejected("note", "A note needs text.", "note")

    # paging someone in, escalating
    assert "paged bob" in await run(f"page <@{stack.ids['bob']}|bob> please look at the db")
    s = await stack.state(iid)
    assert any(e.kind == EventKind.action and e.text == "Paging bob: please look at the db" for e in s.timeline)
    assert any(e.kind == EventKind.page and e.text.startswith("Paged bob (manual, by alice)") for e in s.timeline)
    await rejected("page", "Name who to page (`@user`).", "page")
    known = "is not one of incidentflow's people (known: alice, bob)"
    await rejected("page zed", f"Rejected: person: 'zed' {known}", "page")
    await rejected(f"page <@{stack.ids['mallory']}|mallory> help", f"Rejected: person: 'mallory' {known}", "page")
    await rejected(f"role comms <@{stack.ids['mallory']}|mallory>", f"Rejected: person: 'mallory' {known}", "role")
    assert "escalating at L3" in await run("escalate 3")
    s = await stack.state(iid)
    assert any(e.kind == EventKind.action and e.actor == "alice" and e.text.endswith("L3") for e in s.timeline)
    await rejected("escalate soon", "The level is a number, e.g. `escalate 3`.", "escalate")
    await rejected("escalate 99", "level: Input should be less than or equal to 20", "escalate")

    # resolve and reopen
    await rejected("reopen", f"Rejected: {iid}: cannot reopen: the incident is mitigating", "reopen")
    assert "resolved" in await run("resolve Rolled back the bad deploy")
    s = await stack.state(iid)
    assert s.phase == Phase.resolved and s.resolution_summary == "Rolled back the bad deploy"
    await rejected("resolve again", f"Rejected: {iid}: cannot resolve: the incident is already resolved", "resolve")
    assert "reopened" in await run("reopen errors are back")
    s = await stack.state(iid)
    assert s.phase == Phase.investigating and s.resolved_at is None
    assert any(e.actor == "alice" and e.text == "Phase resolved → investigating: errors are back" for e in s.timeline)

    # the timeline, for anyone
    timeline = await run("timeline")
    assert f"*Timeline of `{iid}`* (SEV1, investigating)" in timeline
    assert "Rollback at 50%, error rate falling" in timeline and "Phase resolved → investigating" in timeline

    # a second incident, driven by id from elsewhere: stood down
    other = await stack.declare("sev3 Synthetic probe red", channel=stack.general)
    await rejected("standdown", "This channel is not an incident channel", "standdown", where=stack.general)
    answer = await run(f"standdown {other}", where=stack.general)
    assert "Standing down needs a reason." in answer and usage("standdown") in answer
    assert f"`{other}`: stood down." == await run(f"standdown {other} the probe itself was broken",
                                                  where=stack.general)
    s = await stack.state(other)
    assert s.phase == Phase.stood_down and s.stand_down_reason == "the probe itself was broken"
    answer = await run(f"ack {other}", where=stack.general)
    assert answer.startswith(f"Rejected: incident {other} is over") or "cannot acknowledge" in answer, answer
    assert (await stack.state(iid)).phase == Phase.investigating, "the channel's incident was not touched"


async def test_people_not_in_config_are_read_only(stack: Stack) -> None:
    iid = await stack.declare("sev4 Read-only check")
    channel = await stack.channel_of(iid)
    mallory = stack.ids["mallory"]
    before = await stack.state(iid)
    for text in ("ack", f"ack {iid}", "sev 1", "role ic me", "declare sev1 Not allowed", "declare"):
        reply = await stack.command(text, "mallory", channel, trigger_id=stack.slack.new_trigger_id())
        assert reply["response_type"] == "ephemeral"
        assert "only read-only commands work for you" in reply["text"] and f"`slack: {mallory}`" in reply["text"]
    assert decisions(await stack.state(iid)) == decisions(before)
    assert not [v for v in stack.slack.views if v.view.get("callback_id") == render.DECLARE_VIEW
                and v.view.get("private_metadata") == channel]
    reply = await stack.command("timeline", "mallory", channel)
    assert f"*Timeline of `{iid}`*" in reply["text"] and "Declared SEV4: Read-only check" in reply["text"]
    reply = await stack.command(f"timeline {iid}", "mallory", stack.general)
    assert f"*Timeline of `{iid}`*" in reply["text"]
    reply = await stack.command("help", "mallory", channel)
    assert all(f"`/incident {spec.usage}`" in reply["text"] for spec in COMMANDS.values())
    # buttons too
    answer = await stack.press(render.ACK, iid, "mallory")
    assert "buttons are for responders" in answer["text"]
    assert (await stack.state(iid)).acknowledged_by is None


async def test_allow_everyone_lets_anyone_act(dev_env: WorkflowEnvironment) -> None:
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        config = config.model_copy(update={"slack": SlackConfig(allow_everyone=True)})
        general = slack.add_channel(f"general-{time.monotonic_ns()}", members=list(ids.values()), bot_member=True)
        async with serve_api(dev_env, config=config, slack_signing_secret=SECRET, slack_bot_token=slack.bot_token,
                             slack_api_url=slack.base_url) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            stack = Stack(slack, config, ids, http, Incidents(dev_env.client, Settings(), config), general)
            iid = await stack.declare("sev4 Graphs look odd", "mallory", user_name="mallory")
            assert (await stack.state(iid)).declared_by == "mallory"
            reply = await stack.command(f"ack {iid}", "mallory", user_name="mallory")
            assert reply["text"] == f"`{iid}`: acknowledged by mallory."
            reply = await stack.command(f"role ic {iid} me", "mallory", user_name="mallory")
            assert "This channel is not an incident channel" in reply["text"], "the id goes right after the command"
            reply = await stack.command(f"role {iid} ic me", "mallory", user_name="mallory")
            assert reply["text"].startswith("Rejected: person: 'mallory' is not one of incidentflow's people "
                                            "(known: alice, bob)"), "anyone may act, but roles go to people"
            reply = await stack.command(f"role {iid} ic <@{ids['alice']}|alice>", "mallory", user_name="mallory")
            assert reply["text"] == f"`{iid}`: alice is now incident commander."
            s = await stack.state(iid)
            assert s.acknowledged_by == "mallory" and s.roles == {Role.ic: "alice"}


# ---------------------------------------------------------------------------------------------- modals


async def test_declare_without_arguments_opens_a_modal(stack: Stack) -> None:
    trigger = stack.slack.new_trigger_id(stack.ids["alice"])
    assert await stack.command("declare", trigger_id=trigger) == {}, "nothing said in the channel: a form opened"
    opened = [v for v in stack.slack.views if v.trigger_id == trigger]
    assert len(opened) == 1
    view = opened[0].view
    assert view["callback_id"] == render.DECLARE_VIEW and view["private_metadata"] == stack.general
    blocks = {b["block_id"]: b for b in view["blocks"]}
    assert {"title", "severity", "service"} <= set(blocks)
    assert blocks["title"]["element"]["type"] == "plain_text_input"
    assert [o["value"] for o in blocks["severity"]["element"]["options"]] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert [o["value"] for o in blocks["service"]["element"]["options"]] == ["checkout"]
    assert blocks["service"].get("optional") is True
    reply = await stack.command("declare", trigger_id=trigger)  # a trigger id works once
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Could not open the form (expired_trigger_id); type `/incident declare")
    reply = await stack.command("declare")  # no trigger id at all
    assert reply["text"] == "Give a title: `/incident declare [sev1-4] [service=NAME] <title>`."

    created = len(stack.slack.calls_to("conversations.create"))
    ephemerals = len(stack.slack.ephemerals)
    for blank in (None, "   "):
        r = await stack.submit(view, "alice", {"title": text_input(blank), "severity": select("SEV1"),
                                               "service": select("checkout"), "description": text_input(None)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["response_action"] == "errors" and set(body["errors"]) == {"title"}, body
        assert "title" in body["errors"]["title"].lower()

    r = await stack.submit(view, "alice", {"title": text_input("Checkout cannot take cards"),
                                           "severity": select("SEV1"), "service": select("checkout"),
                                           "description": text_input("Card form spins forever")})
    assert r.status_code == 200 and not r.content, r.text  # empty 200: the modal closes
    said = stack.slack.ephemerals[ephemerals:]
    assert len(said) == 1 and said[0].user == stack.ids["alice"] and said[0].channel == stack.general
    found = _IID.search(said[0].text)
    assert found and "declared *SEV1*" in said[0].text, said[0].text
    iid = found.group(0)
    s = await stack.state(iid)
    assert (s.title, s.severity, s.service, s.description, s.declared_by) == (
        "Checkout cannot take cards", Severity.SEV1, "checkout", "Card form spins forever", "alice")
    await stack.channel_of(iid)
    assert len(stack.slack.calls_to("conversations.create")) == created + 1, "the blank submissions declared nothing"

    # the form's fields are what they say: a title is not parsed for `sevN` / `service=` words
    r = await stack.submit(view, "bob", {"title": text_input("SEV1 drill: service=checkout failover"),
                                         "severity": select("SEV4"), "service": select(None),
                                         "description": text_input(None)})
    assert r.status_code == 200 and not r.content, r.text
    found = _IID.search(stack.slack.ephemerals[-1].text)
    assert found, stack.slack.ephemerals[-1]
    s = await stack.state(found.group(0))
    assert (s.title, s.severity, s.service, s.declared_by) == (
        "SEV1 drill: service=checkout failover", Severity.SEV4, None, "bob")

    # bad field values come back on their field, not as a server error
    r = await stack.submit(view, "alice", {"title": text_input("x" * 300), "severity": select("SEV3"),
                                           "service": select(None), "description": text_input(None)})
    assert r.status_code == 200 and r.json()["response_action"] == "errors" and "title" in r.json()["errors"], r.text
    r = await stack.submit(view, "alice", {"title": text_input("Unknown service"), "severity": select("SEV3"),
                                           "service": select("nope"), "description": text_input(None)})
    assert r.status_code == 200 and "Unknown service `nope`" in r.json()["errors"]["service"], r.text
    # and people not in the config cannot submit it
    r = await stack.submit(view, "mallory", {"title": text_input("Mallory's"), "severity": select("SEV3"),
                                             "service": select(None), "description": text_input(None)})
    assert r.json()["response_action"] == "errors", r.text


# ---------------------------------------------------------------------------------------------- buttons


async def test_buttons_acknowledge_update_and_resolve(stack: Stack) -> None:
    iid = await stack.declare("sev3 service=checkout Buttons under test")
    answer = await stack.press(render.ACK, iid, "bob")
    assert answer == {"response_type": "ephemeral", "text": f"`{iid}`: acknowledged by bob.",
                      "replace_original": False}
    assert (await stack.state(iid)).acknowledged_by == "bob"  # bob: found by his email
    answer = await stack.press(render.ACK, iid, "alice")
    assert answer["text"].startswith(f"Rejected: {iid}: already acknowledged by bob"), answer
    assert (await stack.state(iid)).acknowledged_by == "bob"

    trigger = stack.slack.new_trigger_id(stack.ids["bob"])
    assert await stack.press(render.POST_UPDATE, iid, "bob", trigger_id=trigger) == {}, "the form says it all"
    opened = [v for v in stack.slack.views if v.trigger_id == trigger]
    assert len(opened) == 1
    view = opened[0].view
    assert view["callback_id"] == render.UPDATE_VIEW and view["private_metadata"] == iid
    assert [b["block_id"] for b in view["blocks"]] == ["text"]
    r = await stack.submit(view, "bob", {"text": text_input("  ")})
    assert r.json() == {"response_action": "errors", "errors": {"text": "A status update needs text."}}
    assert (await stack.state(iid)).last_update_at is None
    r = await stack.submit(view, "bob", {"text": text_input("Failover done; watching error rates")})
    assert r.status_code == 200 and not r.content, r.text
    s = await stack.state(iid)
    assert s.last_update_at is not None
    assert [(e.actor, e.text) for e in s.timeline if e.kind == EventKind.status_update] == [
        ("bob", "Failover done; watching error rates")]

    answer = await stack.press(render.RESOLVE, iid, "alice")
    assert answer["text"].startswith(f"`{iid}`: resolved"), answer
    s = await stack.state(iid)
    assert s.phase == Phase.resolved
    assert any(e.kind == EventKind.phase and e.actor == "alice" and "→ resolved" in e.text for e in s.timeline)
    answer = await stack.press(render.RESOLVE, iid, "alice")
    assert answer["text"] == f"Rejected: {iid}: cannot resolve: the incident is already resolved"


# ---------------------------------------------------------------------------------------------- events


async def test_events_url_verification_and_retries(stack: Stack) -> None:
    async def post(data: dict[str, Any], **headers: str) -> httpx.Response:
        body = json.dumps(data).encode()
        return await stack.http.post("/slack/events", content=body,
                                     headers={**signed(body), "Content-Type": "application/json", **headers})

    r = await post({"token": "legacy", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                    "type": "url_verification"})
    assert r.status_code == 200
    assert r.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}

    def mention(event_id: str) -> dict[str, Any]:
        return {"type": "event_callback", "team_id": "T0001", "event_id": event_id,
                "event": {"type": "app_mention", "user": stack.ids["alice"], "channel": stack.general,
                          "text": "<@UBOT0001> help?", "ts": "1700000000.000100"}}

    before = len(stack.slack.ephemerals)
    r = await post(mention("Ev1"), **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert r.status_code == 200 and not r.content
    assert len(stack.slack.ephemerals) == before, "a redelivery has no effect"
    r = await post(mention("Ev2"))
    assert r.status_code == 200
    new = stack.slack.ephemerals[before:]
    assert len(new) == 1 and new[0].user == stack.ids["alice"] and "`/incident help`" in new[0].text


# ---------------------------------------------------------------------------------------------- slow path


async def test_within_budget_answers_fast_replies_and_posts_slow_ones_later() -> None:
    with FakeSlack() as slack:
        state = types.SimpleNamespace(slack_pending=set())

        async def slow(reply: Reply, seconds: float = 0.3) -> Reply:
            await asyncio.sleep(seconds)
            return reply

        url = slack.new_response_url()
        started = time.monotonic()
        assert await within_budget(state, slow(Reply("done, late")), url, budget=0.05) is None
        assert time.monotonic() - started < 0.25
        assert state.slack_pending, "the follow-up is kept alive"
        assert await slack.wait_for_response_async(url) == [
            {"response_type": "ephemeral", "text": "done, late", "replace_original": False}]

        async def broken() -> Reply:
            await asyncio.sleep(0.2)
            raise RuntimeError("boom")
        url = slack.new_response_url()
        assert await within_budget(state, broken(), url, budget=0.05) is None
        assert (await slack.wait_for_response_async(url))[0]["text"] == "Failed: RuntimeError"

        url = slack.new_response_url()
        fast = await within_budget(state, slow(Reply("done", public=True), 0), url, budget=0.5)
        assert fast is not None and fast.text == "done" and fast.public
        await asyncio.sleep(0.1)
        assert slack.responses[url.rsplit("/", 1)[-1]] == [], "a fast reply is not posted again"
        await eventually(lambda: _value(len(state.slack_pending)), lambda n: n == 0, timeout=5)


async def _value(value: Any) -> Any:
    return value


# ---------------------------------------------------------------------------------------------- failures


async def test_temporal_unreachable_is_said_not_raised() -> None:
    """The gateway alone: Temporal down while finding the channel's incident is a reply, not a 500."""
    config = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice", "slack": "UALICE1"}]})

    async def unreachable() -> Incidents:
        raise TemporalUnavailable("cannot reach Temporal at 127.0.0.1:7233")

    gateway = SlackGateway(unreachable, lambda: config, None)
    for text in ("ack", "sev 1", "timeline", "declare sev1 Down"):
        reply = await gateway.command({"text": text, "user_id": "UALICE1", "user_name": "alice",
                                       "channel_id": "C0INCIDENT"})
        assert "cannot reach Temporal" in reply.text, (text, reply)
    reply, body = await gateway.interaction({"type": "block_actions", "user": {"id": "UALICE1"},
                                             "actions": [{"action_id": render.ACK, "value": "incident-x"}]})
    assert reply is not None and "cannot reach Temporal" in reply.text and body is None
    reply, body = await gateway.interaction({
        "type": "view_submission", "user": {"id": "UALICE1"},
        "view": {"callback_id": render.UPDATE_VIEW, "private_metadata": "incident-x",
                 "state": {"values": {"text": {"value": {"type": "plain_text_input", "value": "hi"}}}}}})
    assert body is not None and body["response_action"] == "errors" and "cannot reach Temporal" in body["errors"]["text"]


async def no_temporal() -> Incidents:
    raise AssertionError("not needed: nothing may be done")


def lookup_gateway(slack: FakeSlack, config: IncidentflowConfig,
                   incidents: Any = no_temporal) -> tuple[SlackGateway, AsyncWebClient]:
    """A gateway on the fake Slack, for the lookups (users.info, conversations.info), with no Temporal."""
    web = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url, retry_handlers=[])
    return SlackGateway(incidents, lambda: config, web), web


async def test_slack_lookup_failures_are_not_remembered() -> None:
    """A Slack hiccup while mapping a user by email must not leave that responder read-only for good."""
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        gateway, _ = lookup_gateway(slack, config)
        slack.fail_next(1, "internal_error", method="users.info")
        assert await gateway.person_for(ids["bob"]) is None, "Slack did not say who bob is"
        assert await gateway.person_for(ids["bob"]) == "bob", "asked again, and found"
        assert await gateway.person_for(ids["alice"]) == "alice"  # by `slack:`, no lookup
        lookups = len(slack.calls_to("users.info"))
        assert await gateway.person_for(ids["bob"]) == "bob"
        assert len(slack.calls_to("users.info")) == lookups, "an answer that worked is remembered"

    # Slack unreachable altogether: still an answer, not an exception
    dead = SlackGateway(no_temporal, lambda: config,
                        AsyncWebClient(token="xoxb-1", base_url="http://127.0.0.1:9/api/", timeout=2, retry_handlers=[]))
    reply = await dead.command({"text": "help", "user_id": "UNOBODY1", "user_name": "nobody", "channel_id": "C1"})
    assert all(f"`/incident {spec.usage}`" in reply.text for spec in COMMANDS.values())
    reply = await dead.command({"text": "ack", "user_id": "UNOBODY1", "user_name": "nobody", "channel_id": "C1"})
    assert "Could not check with Slack who <@UNOBODY1> is" in reply.text and "nothing was done" in reply.text


async def test_a_rate_limited_lookup_waits_as_slack_asks_and_never_refuses_a_responder() -> None:
    """users.info answering 429: asked again after Retry-After; when Slack keeps refusing, the reply says
    so (try again), never that a responder is not one, and nothing is done."""
    with FakeSlack() as slack:
        config, ids = make_config(slack)
        gateway, web = lookup_gateway(slack, config)
        slack.fail_next(1, "ratelimited", retry_after=1, method="users.info")
        started = time.monotonic()
        assert await gateway.person_for(ids["bob"]) == "bob", "asked again after the 429, and found"
        assert time.monotonic() - started >= 0.9, "Retry-After was honoured"
        assert [c.status for c in slack.calls_to("users.info")] == [429, 200]

        slack.fail_next(3, "ratelimited", retry_after=0, method="users.info")
        reply, _ = await gateway.interaction({"type": "block_actions", "user": {"id": ids["mallory"]},
                                              "actions": [{"action_id": render.CLAIM_IC, "value": "incident-x"}]})
        assert reply is not None and "Could not check with Slack who" in reply.text
        assert "users.info: ratelimited" in reply.text and "try again" in reply.text
        assert "not in incidentflow's people" not in reply.text
        assert len(slack.calls_to("users.info")) == 2 + 3, "the lookup and its two retries"
        reply, _ = await gateway.interaction({"type": "block_actions", "user": {"id": ids["mallory"]},
                                              "actions": [{"action_id": render.CLAIM_IC, "value": "incident-x"}]})
        assert reply is not None and "is not in incidentflow's people: buttons are for responders" in reply.text

        slack.fail_next(1, "ratelimited", retry_after=30, method="users.info")  # too long to wait for
        started = time.monotonic()
        reply = await SlackGateway(no_temporal, lambda: config, web).command(
            {"text": "ack", "user_id": ids["bob"], "user_name": "bob", "channel_id": "C1"})
        assert time.monotonic() - started < 5 and "try again in a moment" in reply.text


async def test_a_rate_limited_channel_lookup_is_asked_again() -> None:
    """Visibility lags a new incident by a second, so a command in its channel asks Slack for the channel's
    purpose; a 429 there is asked again after Retry-After instead of 'not an incident channel'."""
    class Lagging:
        async def find_by_channel(self, channel_id: str) -> None:
            return None

    async def lagging() -> Any:
        return Lagging()

    with FakeSlack() as slack:
        config, ids = make_config(slack)
        channel = slack.add_channel("inc-lagging", members=[ids["alice"]], bot_member=True)
        gateway, web = lookup_gateway(slack, config, lagging)
        await web.conversations_setPurpose(channel=channel,
                                           purpose="Incident incident-20261207-1200-checkout (SEV2): Checkout errors")
        slack.fail_next(1, "ratelimited", retry_after=1, method="conversations.info")
        assert await gateway.incident_for_channel(channel) == "incident-20261207-1200-checkout"
        assert [c.status for c in slack.calls_to("conversations.info")] == [429, 200]
        slack.fail_next(1, "channel_not_found", method="conversations.info")  # not rate limited: no retry
        assert await gateway.incident_for_channel(slack.add_channel("general-x", bot_member=True)) is None
        assert [c.status for c in slack.calls_to("conversations.info")] == [429, 200, 200]
        # Slack keeps refusing: the reply says so (and how to go on), never "not an incident channel"
        slack.fail_next(3, "ratelimited", retry_after=0, method="conversations.info")
        reply = await gateway.command({"text": "ack", "user_id": ids["alice"], "user_name": "alice",
                                       "channel_id": slack.add_channel("inc-busy", bot_member=True)})
        assert "Could not check with Slack which incident this channel belongs to" in reply.text, reply.text
        assert "conversations.info: ratelimited" in reply.text and "add the incident id" in reply.text
        assert "not an incident channel" not in reply.text
