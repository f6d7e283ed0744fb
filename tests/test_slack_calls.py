"""How many Slack calls an incident channel costs, and that the fewer calls still show everything: one pinned
message (context and summary), updates only for what changed, consecutive events in one message, invites in
one call. Real slack_sdk client against the fake Slack Web API."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from domain import blockkit as render
from domain.models import EventKind, Phase, Role
from domain.models.chat import ChatOpenInput, ChatPost, ChatSyncInput
from tests.fakes.slack import FakeSlack
from tests.test_slack_chat import adapter, our_keys, people, summary


def methods(slack: FakeSlack, since: int = 0) -> Counter[str]:
    return Counter(c.method for c in slack.calls[since:] if c.error is None)


def post(seq: int, text: str, kind: EventKind = EventKind.note, ref: str | None = None) -> ChatPost:
    return ChatPost(seq=seq, at=datetime(2026, 11, 23, 8, 20, tzinfo=UTC), kind=kind, actor="alice", text=text,
                    ref=ref)


def blocks_text(message: object) -> str:
    return repr(getattr(message, "blocks", None) or "") + str(getattr(message, "text", ""))


async def test_a_channel_opens_with_one_pinned_message_and_invites_in_one_call() -> None:
    with FakeSlack() as slack:
        config, ids = people(slack)
        room = await adapter(slack, config).open(ChatOpenInput(summary=summary(), invite=["alice", "bob"]))
        calls = methods(slack)
        assert calls["conversations.create"] == 1 and calls["pins.add"] == 1
        assert calls["conversations.invite"] == 1, calls  # alice and bob together
        assert calls["chat.postMessage"] == 2, calls  # the pinned message and the announcement
        assert calls["conversations.info"] == 0, calls  # a new channel: its topic is known to be empty
        assert room.context_ts == room.summary_ts and slack.pins(room.channel_id) == [room.context_ts]
        pinned = blocks_text(slack.message(room.channel_id, room.context_ts or ""))
        # the summary (who leads, where it stands) and the context (where to look) in the one message
        for expected in ("*Incident commander:*", "investigating", "*Status:*", "Runbook", "/incident help"):
            assert expected in pinned, (expected, pinned)
        assert set(slack.members(room.channel_id)) >= {ids["alice"], ids["bob"]}


async def test_one_refused_user_falls_back_to_one_invite_each() -> None:
    with FakeSlack() as slack:
        config, ids = people(slack)
        chat = adapter(slack, config)
        room = await chat.open(ChatOpenInput(summary=summary(), invite=["alice"]))
        warnings: list[str] = []
        # alice is already there: Slack refuses the batch, and one call each says who is new (bob)
        handled = await chat.invite(room.channel_id, ["alice", "bob", "carol"], warnings)
        assert handled == ["alice", "bob", "carol"]
        assert set(slack.members(room.channel_id)) >= {ids["alice"], ids["bob"]}
        assert warnings == ["carol has no Slack user (set `slack:` or `email:` in the config): not invited"]


async def test_a_sync_updates_only_the_messages_whose_content_changed() -> None:
    with FakeSlack() as slack:
        config, ids = people(slack)
        chat = adapter(slack, config)
        first = summary()
        room = await chat.open(ChatOpenInput(summary=first))
        iid = first.incident_id

        # a status update: the pinned message shows it; the announcement and the topic do not change
        updated = first.model_copy(update={"last_update": "Failover done, watching"})
        before = len(slack.calls)
        await chat.sync(ChatSyncInput(incident_id=iid, room=room, summary=updated, shown=first))
        assert methods(slack, before) == Counter({"chat.update": 1}), methods(slack, before)
        assert "Failover done, watching" in blocks_text(slack.message(room.channel_id, room.context_ts or ""))

        # resolved: the pinned message and the announcement change; the topic (severity, title) does not
        resolved = updated.model_copy(update={"phase": Phase.resolved, "resolution_summary": "Rolled back"})
        before = len(slack.calls)
        await chat.sync(ChatSyncInput(incident_id=iid, room=room, summary=resolved, shown=updated))
        assert methods(slack, before) == Counter({"chat.update": 2}), methods(slack, before)
        [announced] = [m for m in slack.messages("incidents") if m.ts == room.announce_ts]
        assert "resolved" in blocks_text(announced)

        # a new IC and a new severity: the topic follows, set without asking Slack first
        worse = resolved.model_copy(update={"roles": {Role.ic: "alice"}, "severity": resolved.severity.SEV1})
        before = len(slack.calls)
        await chat.sync(ChatSyncInput(incident_id=iid, room=room, summary=worse, shown=resolved))
        assert methods(slack, before) == Counter({"chat.update": 2, "conversations.setTopic": 1})
        assert slack.channels[room.channel_id].topic["value"].startswith("SEV1")
        assert f"<@{ids['alice']}>" in blocks_text(slack.message(room.channel_id, room.context_ts or ""))


async def test_consecutive_events_go_as_one_message_in_order_and_a_question_alone() -> None:
    with FakeSlack() as slack:
        config, _ = people(slack)
        chat = adapter(slack, config)
        room = await chat.open(ChatOpenInput(summary=summary()))
        iid = summary().incident_id
        posts = [post(5, "Paged alice"), post(6, "DB failover started"), post(7, "Replica promoted"),
                 post(8, "Approve rollback?", EventKind.approval, ref=f"{iid}-runbook-1"), post(9, "Waiting on it")]
        before = len(slack.calls)
        result = await chat.sync(ChatSyncInput(incident_id=iid, room=room, posts=posts))
        assert methods(slack, before) == Counter({"chat.postMessage": 3})
        texts = [m.text for m in slack.messages(room.channel_id)][-3:]
        lines = texts[0].splitlines()
        assert texts[0].index("Paged alice") < texts[0].index("DB failover") < texts[0].index("Replica")
        assert len(lines) == 3, lines
        assert "Approve rollback?" in texts[1] and "Waiting on it" in texts[2]
        [asked] = result.buttons  # the question's own message, kept to close it once answered
        assert asked.seq == 8 and asked.ts == slack.messages(room.channel_id)[-2].ts
        assert render.APPROVE in blocks_text(slack.message(room.channel_id, asked.ts))
        assert len(result.posted) == len(posts)

        # the same sync again (a retry): nothing new
        before = len(slack.calls)
        await chat.sync(ChatSyncInput(incident_id=iid, room=room, posts=posts))
        assert methods(slack, before)["chat.postMessage"] == 0
        keys = our_keys(slack, room.channel_id)
        assert len(keys) == len(set(keys)) and f"{iid}:event:5-7" in keys


async def test_an_activitys_calls_share_one_kept_alive_connection() -> None:
    """The worker's client (ScopedWebClient) holds one HTTP session per operation: a sync's calls go over one
    connection (a TLS handshake to slack.com saved per call), each operation has its own, and it is closed at
    the end. Without the scope the SDK opens a connection per call."""
    import asyncio

    from activities.slack import SlackChat
    from activities.slack_api import ScopedWebClient
    from domain.config import Settings

    with FakeSlack() as slack:
        config, _ = people(slack)
        chat = SlackChat.from_settings(Settings(slack_bot_token=slack.bot_token, slack_api_url=slack.base_url),
                                       lambda: config)
        assert isinstance(chat.client, ScopedWebClient)
        before = slack.connections
        for _ in range(4):
            await chat.call("auth.test")
        assert slack.connections - before == 4  # outside a scope: a connection per call, as the SDK does

        before = slack.connections
        async with chat.connection():
            session = chat.client.session
            assert session is not None
            for _ in range(4):
                await chat.call("auth.test")
            assert chat.client.session is session
        assert session.closed and chat.client.session is None
        assert slack.connections - before == 1

        async def one() -> object:  # concurrent operations: a session each, none shared
            async with chat.connection():
                await chat.call("auth.test")
                return chat.client.session
        first, second = await asyncio.gather(one(), one())
        assert first is not second

        room = await chat.open(ChatOpenInput(summary=summary(), invite=["alice", "bob"]))
        before, calls = slack.connections, slack.call_count
        await chat.sync(ChatSyncInput(incident_id=room.channel_name, room=room, posts=[post(n, f"{n} " + "x" * 2000) for n in (5, 6, 7)],
                                      summary=summary().model_copy(update={"phase": Phase.identified}),
                                      shown=summary()))
        made = slack.call_count - calls
        assert made >= 5  # three posts (too long to go as one message), the pinned message, the announcement
        # its posts and its updates run side by side, each reusing the connections the others let go
        assert 1 <= slack.connections - before < made


async def test_a_rate_limited_call_is_made_again_after_a_short_retry_after() -> None:
    """Slack's advice for 429: wait Retry-After and send the same call again (it was not applied). Per call, so
    an activity of several calls is not started over by every 429; a long wait is left to Temporal's retry."""
    import time

    import pytest
    from slack_sdk.errors import SlackApiError

    from activities.slack_api import ScopedWebClient, ShortRateLimitRetry

    with FakeSlack() as slack:
        client = ScopedWebClient(token=slack.bot_token, base_url=slack.base_url, timeout=10,
                                 retry_handlers=[ShortRateLimitRetry()])
        slack.rate_limit_every(2, retry_after=1)
        started = time.monotonic()
        for _ in range(3):
            assert (await client.auth_test())["ok"]
        assert [c.status for c in slack.calls_to("auth.test")] == [200, 429, 200, 429, 200], "each 429 sent again"
        assert time.monotonic() - started >= 1.9, "after Retry-After"
        slack.clear_faults()
        slack.fail_next(1, "ratelimited", retry_after=30, method="auth.test")
        started = time.monotonic()
        with pytest.raises(SlackApiError):
            await client.auth_test()  # 30 s: not waited for here (the activity fails; Temporal retries later)
        assert time.monotonic() - started < 5
        slack.fail_next(3, "ratelimited", retry_after=0, method="auth.test")
        with pytest.raises(SlackApiError):
            await client.auth_test()  # two more tries, then the 429 is the answer
        assert [c.status for c in slack.calls_to("auth.test")][-3:] == [429, 429, 429]
