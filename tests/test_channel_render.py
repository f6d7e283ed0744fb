"""What the channel shows, against the fake Slack with the real slack_sdk client: the pin and the topic
follow the incident, approval requests mention the approvers and offer the Slack way, answered
questions lose their buttons; and the texts read as sentences ("revision?" never becomes "revision?.")."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from domain import blockkit as render
from domain.config import Settings
from domain.models import EventKind, Phase, Role, Severity
from domain.models.chat import ButtonMessage, ChatOpenInput, ChatPost, ChatSyncInput
from domain.text import sentence
from tests.fakes.slack import FakeSlack
from tests.test_slack_chat import adapter, people, summary


def shown(slack: FakeSlack, channel: str, ts: str | None) -> str:
    assert ts is not None
    message = slack.message(channel, ts)
    assert message is not None
    return message.text + json.dumps(message.blocks or [], ensure_ascii=False)


async def test_the_pin_and_the_topic_follow_the_incident() -> None:
    with FakeSlack() as slack:
        config, ids = people(slack)
        chat = adapter(slack, config)
        start = summary().model_copy(update={"roles": {}})
        room = await chat.open(ChatOpenInput(summary=start, invite=["alice"]))
        ui = Settings().workflow_url(start.incident_id)
        pinned = shown(slack, room.channel_id, room.context_ts)
        assert "unassigned — claim it" in pinned and f"<{ui}|Temporal UI>" in pinned, \
            "the Temporal UI link comes from the worker's Settings, even when the state has no url"
        later = start.model_copy(update={"roles": {Role.ic: "bob"}, "phase": Phase.resolved,
                                         "severity": Severity.SEV1, "resolution_summary": "rolled back"})
        result = await chat.sync(ChatSyncInput(incident_id=start.incident_id, room=room, summary=later))
        assert not result.warnings, result.warnings
        pinned = shown(slack, room.channel_id, room.context_ts)
        assert f"*Incident commander:* <@{ids['bob']}>" in pinned and "claim it" not in pinned, pinned
        assert "*Phase:* ✅ resolved" in pinned and "*Severity:* SEV1" in pinned and f"<{ui}|Temporal UI>" in pinned
        assert slack.channels[room.channel_id].topic["value"] == "SEV1 · Checkout slow"
        await chat.sync(ChatSyncInput(incident_id=start.incident_id, room=room, summary=later.model_copy(
            update={"last_update": "watching"})))
        assert len([c for c in slack.calls_to("conversations.setTopic") if c.error is None]) == 2, \
            "the topic is set when it changes, not on every update (Slack posts a line each time)"


async def test_a_deleted_pin_is_a_warning_and_the_posts_still_go_out() -> None:
    with FakeSlack() as slack:
        config, _ = people(slack)
        chat = adapter(slack, config)
        room = await chat.open(ChatOpenInput(summary=summary()))
        gone = room.model_copy(update={"context_ts": "1.000001"})  # someone deleted the pinned message
        post = ChatPost(seq=5, at=datetime.now(UTC), kind=EventKind.note, actor="alice", text="DB failover")
        result = await chat.sync(ChatSyncInput(incident_id=summary().incident_id, room=gone, posts=[post],
                                               summary=summary().model_copy(update={"phase": Phase.mitigating})))
        assert result.warnings and "pinned context not updated" in result.warnings[0], result.warnings
        assert any("DB failover" in m.text for m in slack.messages(room.channel_id))


async def test_an_approval_request_mentions_the_approvers_and_its_buttons_go_once_answered() -> None:
    with FakeSlack() as slack:
        config, ids = people(slack)
        chat = adapter(slack, config)
        room = await chat.open(ChatOpenInput(summary=summary()))
        run = "incident-20261123-0815-checkout-runbook-1"
        ask = ChatPost(seq=9, at=datetime.now(UTC), kind=EventKind.approval, actor="runbook", ref=run,
                       mentions=["bob", "alice"], text="Approval needed from the incident commander (bob), alice: "
                                                       "Roll back shop/checkout? This replaces the running pods.")
        result = await chat.sync(ChatSyncInput(incident_id=summary().incident_id, room=room, posts=[ask]))
        [asked] = result.buttons
        message = shown(slack, room.channel_id, asked.ts)
        assert f"🛑 <@{ids['bob']}> <@{ids['alice']}> Approval needed" in message, message
        assert f"`/incident approve {run}`" in message and f"`/incident deny {run} [reason]`" in message
        assert render.APPROVE in message and render.DENY in message
        assert (asked.kind, asked.ref, asked.seq, asked.channel) == ("approval", run, 9, room.channel_id)

        answered = asked.model_copy(update={"outcome": "Runbook rollback: denied by bob at 08:20 UTC", "ok": False})
        result = await chat.sync(ChatSyncInput(incident_id=summary().incident_id, room=room, close=[answered]))
        assert result.closed == [asked.ts]
        message = shown(slack, room.channel_id, asked.ts)
        assert render.APPROVE not in message and "/incident approve" not in message
        assert f"<@{ids['bob']}>" in message and "⛔ Runbook rollback: denied by bob at 08:20 UTC." in message


async def test_closing_a_message_that_is_gone_is_not_an_error() -> None:
    with FakeSlack() as slack:
        config, _ = people(slack)
        chat = adapter(slack, config)
        room = await chat.open(ChatOpenInput(summary=summary()))
        gone = ButtonMessage(kind="page", ref="x", channel="D0GONE", ts="1.000001", text="paged",
                             outcome="Acknowledged by bob at 08:20 UTC")
        result = await chat.sync(ChatSyncInput(incident_id=summary().incident_id, room=room, close=[gone]))
        assert result.closed == ["1.000001"] and not result.warnings


def test_texts_end_as_one_sentence() -> None:
    assert sentence("`run-1`: approved: Roll back shop/checkout to the previous revision?") == \
        "`run-1`: approved: Roll back shop/checkout to the previous revision?"
    assert sentence("approved: Roll back? This replaces the running pods.") == \
        "approved: Roll back? This replaces the running pods."
    assert sentence("acknowledged by alice") == "acknowledged by alice."
    assert sentence("done (see `x.`)") == "done (see `x.`)"
    assert sentence("Flag `f` is off") == "Flag `f` is off."
