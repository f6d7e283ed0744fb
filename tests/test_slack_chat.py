"""The incident channel's side effects: failures on the timeline, restarts that post nothing twice,
mentions for reminders and pages. Real slack_sdk client against the fake Slack Web API."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.testing import WorkflowEnvironment

import activities.slack_api as slack_activities
from activities.slack import SlackChat
from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import (
    AckInput,
    DeclareInput,
    EventKind,
    PageInput,
    Phase,
    Role,
    RoleInput,
    Severity,
    StatusUpdateInput,
)
from domain.models.chat import ChatOpenInput, ChatPost, ChatSummary, ChatSyncInput
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually


def people(slack: FakeSlack) -> tuple[IncidentflowConfig, dict[str, str]]:
    ids = {"alice": slack.add_user(name="alice", email="alice@example.com"),
           "bob": slack.add_user(name="bob", email="bob@example.com")}
    config = IncidentflowConfig.model_validate({"people": [
        {"id": "alice", "name": "Alice", "slack": ids["alice"]},
        {"id": "bob", "name": "Bob", "email": "bob@example.com"}]})
    return config, ids


def slack_settings(slack: FakeSlack, token: str | None = None) -> dict[str, object]:
    return {"slack_bot_token": token or slack.bot_token, "slack_api_url": slack.base_url}


def warnings(state: object) -> list[str]:
    return [e.text for e in state.timeline if e.kind == EventKind.warning and e.actor == "slack"]  # type: ignore[attr-defined]


async def test_channel_gone_is_reported_and_updates_stop(dev_env: WorkflowEnvironment) -> None:
    with FakeSlack() as slack:
        config, _ = people(slack)
        async with running_worker(dev_env.client, config=lambda: config, **slack_settings(slack)) as (settings, _):
            inc = Incidents(dev_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Search is down", severity=Severity.SEV2, declared_by="alice",
                                                 page=False))
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None)
            assert state.chat is not None
            channel = state.chat.channel_id
            slack.remove_channel(channel)  # someone deleted it
            await inc.post_status_update(iid, StatusUpdateInput(text="Index rebuilding", by="alice"))
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None and s.chat.broken is not None)
            assert "channel_not_found" in (state.chat.broken or "")  # type: ignore[union-attr]
            assert any("Channel updates stopped" in w and "channel_not_found" in w for w in warnings(state))
            calls = len(slack.calls)
            await inc.acknowledge(iid, AckInput(by="bob"))  # the incident goes on; chat stays quiet
            await eventually(lambda: inc.get(iid), lambda s: s.acknowledged_by == "bob")
            assert len(slack.calls) == calls, "no more Slack calls once the channel is known to be gone"


async def test_invalid_token_is_reported_and_the_incident_goes_on(dev_env: WorkflowEnvironment) -> None:
    with FakeSlack() as slack:
        config, _ = people(slack)
        async with running_worker(dev_env.client, config=lambda: config,
                                  **slack_settings(slack, token="xoxb-revoked-or-wrong")) as (settings, _):
            inc = Incidents(dev_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Login errors", declared_by="alice", page=False))
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat_checked and bool(warnings(s)))
            assert state.chat is None
            assert "invalid_auth" in warnings(state)[0] and "could not be opened" in warnings(state)[0]
            assert "xoxb-revoked-or-wrong" not in json.dumps(state.model_dump(mode="json"))
            result = await inc.acknowledge(iid, AckInput(by="alice"))
            assert result.text == "acknowledged by alice"
            assert not [c for c in slack.calls_to("conversations.create") if c.error is None]


def summary(iid: str = "incident-20261123-0815-checkout") -> ChatSummary:
    return ChatSummary(incident_id=iid, title="Checkout slow", severity=Severity.SEV2, phase=Phase.investigating,
                       service="checkout", declared_by="alice", declared_at=datetime(2026, 11, 23, 8, 15, tzinfo=UTC),
                       roles={Role.ic: "bob"})


def adapter(slack: FakeSlack, config: IncidentflowConfig) -> SlackChat:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url, retry_handlers=[])
    return SlackChat(client, Settings(slack_bot_token=slack.bot_token, slack_api_url=slack.base_url), lambda: config)


def our_keys(slack: FakeSlack, channel: str) -> list[str]:
    return [m.metadata["event_payload"]["dedup_key"] for m in slack.messages(channel)
            if m.metadata and m.metadata.get("event_type") == slack_activities.METADATA_EVENT]


async def test_a_restarted_worker_reuses_the_channel_and_posts_nothing_twice(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker A opens the channel and posts; it dies before reporting. Worker B (a fresh process: no
    memory) runs the retry attempt: same channel, no second context/pin/announcement/post."""
    with FakeSlack() as slack:
        config, ids = people(slack)
        a = adapter(slack, config)
        room = await a.open(ChatOpenInput(summary=summary(), invite=["alice", "bob"]))
        post = ChatPost(seq=7, at=datetime.now(UTC), kind=EventKind.note, actor="alice", text="DB failover started")
        await a.sync(ChatSyncInput(incident_id=summary().incident_id, room=room, posts=[post]))
        before = {ch: len(slack.messages(ch)) for ch in (room.channel_id, "incidents")}

        monkeypatch.setattr(slack_activities, "_attempt", lambda: 2)  # the retry attempt, in a new process
        b = adapter(slack, config)
        again = await b.open(ChatOpenInput(summary=summary(), invite=["alice", "bob"]))
        await b.sync(ChatSyncInput(incident_id=summary().incident_id, room=again, posts=[post]))

        assert again.channel_id == room.channel_id and again.channel_name == room.channel_name
        assert (again.context_ts, again.summary_ts, again.announce_ts) == (room.context_ts, room.summary_ts,
                                                                         room.announce_ts)
        assert {ch: len(slack.messages(ch)) for ch in (room.channel_id, "incidents")} == before
        assert len(slack.pins(room.channel_id)) == 1
        assert len([c for c in slack.calls_to("conversations.create") if c.error is None]) == 1
        keys = our_keys(slack, room.channel_id) + our_keys(slack, "incidents")
        assert not [k for k, n in Counter(keys).items() if n > 1]
        assert set(slack.members(room.channel_id)) >= {ids["alice"], ids["bob"]}


async def test_a_channel_name_taken_by_someone_else_gets_a_suffix() -> None:
    with FakeSlack() as slack:
        config, ids = people(slack)
        s = summary()
        taken = render.channel_name(s.incident_id, "SEV2")
        slack.add_channel(taken, members=[ids["alice"]], creator=ids["alice"])  # a human made it first
        room = await adapter(slack, config).open(ChatOpenInput(summary=s))
        assert room.channel_name == f"{taken}-2"
        assert s.incident_id in slack.channels[room.channel_id].purpose["value"]


def test_channel_names_follow_slacks_rules() -> None:
    name = render.channel_name("incident-20261123-0815-checkout-latency-high", "SEV1")
    assert name == "incident-20261123-0815-sev1-checkout-latency-high"
    long = render.channel_name("incident-20261123-0815-" + "very-long-slug-" * 10, "SEV3", suffix=12)
    assert len(long) <= 80 and long.endswith("-12") and long.startswith("incident-20261123-0815-sev3-")
    odd = render.channel_name("incident-20261123-0815-Ünïcode & Spaces!", "SEV4")
    assert odd == "incident-20261123-0815-sev4-n-code-spaces"
    assert all(c.islower() or c.isdigit() or c in "-_" for c in odd)


async def test_reminders_and_pages_mention_the_person(ts_env: WorkflowEnvironment) -> None:
    """Cadence reminders go to the comms lead (else the IC) with an @-mention; pages mention the paged."""
    with FakeSlack() as slack:
        config, ids = people(slack)
        async with running_worker(ts_env.client, config=lambda: config, **slack_settings(slack)) as (settings, _):
            inc = Incidents(ts_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Payments failing", severity=Severity.SEV1, declared_by="alice",
                                                 commander="alice", page=False))
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None)
            channel = state.chat.channel_id  # type: ignore[union-attr]
            await inc.assign_role(iid, RoleInput(role=Role.comms, person="bob", by="alice"))
            await ts_env.sleep(timedelta(minutes=11))  # the first update is due 10 min after declaring
            await eventually(lambda: inc.get(iid), lambda s: s.reminders_sent >= 1)
            await inc.page(iid, PageInput(person="alice", by="bob", note="need the DB owner"))

            def texts() -> list[str]:
                return [m.text for m in slack.messages(channel)]
            await eventually(lambda: _ready(texts()), lambda t: any("status update is due" in x for x in t)
                             and any("Paged alice" in x for x in t))
            reminder = next(x for x in texts() if "status update is due" in x)
            page = next(x for x in texts() if "Paged alice" in x)
            assert f"<@{ids['bob']}>" in reminder, reminder  # bob is comms lead, found by his email
            assert f"<@{ids['alice']}>" in page, page
            assert ids["bob"] in slack.members(channel), "role holders are invited"


async def _ready(value: list[str]) -> list[str]:
    return value


def test_the_app_manifest_matches_the_routes_and_the_calls_we_make() -> None:
    from pathlib import Path

    import yaml

    from incidentflow.api import create_app

    manifest = yaml.safe_load((Path(__file__).parent.parent / "slack-app-manifest.yaml").read_text())
    routes = set(create_app(Settings()).openapi()["paths"])
    command = manifest["features"]["slash_commands"][0]
    urls = [command["url"], manifest["settings"]["interactivity"]["request_url"],
            manifest["settings"]["event_subscriptions"]["request_url"]]
    assert command["command"] == "/incident"
    assert [u.split(".example.com", 1)[1] for u in urls] == ["/slack/commands", "/slack/interactions",
                                                             "/slack/events"]
    assert {"/slack/commands", "/slack/interactions", "/slack/events"} <= routes
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {"commands", "chat:write", "channels:manage", "channels:read", "channels:join", "channels:history",
              "pins:write", "users:read", "users:read.email"}
    assert needed <= scopes, needed - scopes


async def test_commands_while_the_channel_opens_are_posted_once_it_exists(dev_env: WorkflowEnvironment) -> None:
    """Slack is slow to create the channel (a 429 first): what happens meanwhile still reaches it."""
    with FakeSlack() as slack:
        config, _ = people(slack)
        slack.fail_next(1, error="ratelimited", method="conversations.create", retry_after=1)
        async with running_worker(dev_env.client, config=lambda: config, **slack_settings(slack)) as (settings, _):
            inc = Incidents(dev_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Cart empty", severity=Severity.SEV2, declared_by="alice",
                                                 page=False))
            await inc.acknowledge(iid, AckInput(by="bob"))
            await inc.post_status_update(iid, StatusUpdateInput(text="Carts load empty for 20% of users", by="alice"))
            state = await inc.get(iid)
            assert state.chat is None, "the commands above ran before the channel existed"
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None
                                     and s.chat.posted_seq >= max(e.seq for e in s.timeline))
            texts = [m.text for m in slack.messages(state.chat.channel_id)]  # type: ignore[union-attr]
            assert len([t for t in texts if "Acknowledged" in t]) == 1, texts
            assert len([t for t in texts if "Carts load empty for 20% of users" in t]) == 1, texts


async def test_slack_paging_channel_sends_one_direct_message_with_an_ack_button(ts_env: WorkflowEnvironment) -> None:
    """`notify: [slack]`: the escalation's page is a DM (once, even when Slack rate-limits), and the
    incident channel mentions the paged person too."""
    with FakeSlack() as slack:
        alice = slack.add_user(name="alice", email="alice@example.com")
        config = IncidentflowConfig.model_validate({
            "people": [{"id": "alice", "name": "Alice", "slack": alice, "notify": ["slack", "log"]},
                       {"id": "nobody", "name": "No Slack", "notify": ["slack"]}],
            "services": [{"name": "checkout", "escalation_policy": "p"}],
            "escalation_policies": [{"name": "p", "levels": [{"wait": "10m", "targets": [{"person": "alice"}]}]}]})
        slack.rate_limit_every(4, retry_after=1)
        async with running_worker(ts_env.client, config=lambda: config, **slack_settings(slack)) as (settings, _):
            inc = Incidents(ts_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Checkout down", severity=Severity.SEV1, service="checkout",
                                                 declared_by="alice"))
            state = await eventually(lambda: inc.get(iid), lambda s: s.pages >= 1 and s.chat is not None)
            page = next(e for e in state.timeline if e.kind == EventKind.page)
            assert "via slack+log" in page.text, page.text
            dms = await eventually(lambda: _ready(slack.dm(alice)), lambda m: len(m) >= 1)
            assert len(dms) == 1 and "You are paged for *[SEV1] Checkout down*" in dms[0].text
            buttons = [e for b in dms[0].blocks or [] if b["type"] == "actions" for e in b["elements"]]
            assert [(b["action_id"], b["value"]) for b in buttons] == [(render.ACK, iid)]
            refused = await inc.page(iid, PageInput(person="nobody", by="alice"))  # no Slack user: says how to fix
            assert refused.text == "could not page nobody" and "has no Slack user" in refused.warnings[0]
            state = await inc.get(iid)
            assert any("Could not page nobody" in e.text for e in state.timeline if e.kind == EventKind.warning)
            await inc.acknowledge(iid, AckInput(by="alice"))
            await ts_env.sleep(timedelta(minutes=11))
            assert len(slack.dm(alice)) == 1, "acknowledged: no second page"


async def test_a_refused_page_does_not_stop_the_escalation(ts_env: WorkflowEnvironment) -> None:
    """L1's only channel refuses (no Slack user): the timeline says why, and L2 is still paged on time."""
    with FakeSlack() as slack:
        alice = slack.add_user(name="alice", email="alice@example.com")
        config = IncidentflowConfig.model_validate({
            "people": [{"id": "alice", "name": "Alice", "slack": alice, "notify": ["slack"]},
                       {"id": "nobody", "name": "No Slack", "notify": ["slack"]}],
            "escalation_policies": [{"name": "default", "levels": [
                {"wait": "5m", "targets": [{"person": "nobody"}]},
                {"wait": "30m", "targets": [{"person": "alice"}]}]}]})
        async with running_worker(ts_env.client, config=lambda: config, **slack_settings(slack)) as (settings, _):
            inc = Incidents(ts_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="API errors", severity=Severity.SEV2, declared_by="alice"))
            state = await eventually(lambda: inc.get(iid), lambda s: any("Could not page nobody" in e.text
                                                                         for e in s.timeline))
            assert state.pages == 0
            await ts_env.sleep(timedelta(minutes=6))
            state = await eventually(lambda: inc.get(iid), lambda s: s.pages == 1)
            assert "Paged alice (L2" in next(e.text for e in state.timeline if e.kind == EventKind.page)
            assert len(await eventually(lambda: _ready(slack.dm(alice)), lambda m: len(m) == 1)) == 1
