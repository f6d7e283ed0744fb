"""The fake Slack Web API against the real slack_sdk clients (async and sync): wire protocol, errors,
pagination, faults. What other Slack tests rely on is proven here."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import BOT_USER_ID, FakeSlack

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*SEV2* checkout failing"}}]
METADATA = {"event_type": "incident_declared", "event_payload": {"incident_id": "INC-42", "sev": 2}}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)


async def error_of(call: Any) -> str:
    """The Slack error a failing call raises (the SDK raises SlackApiError for ok=false)."""
    with pytest.raises(SlackApiError) as info:
        await call
    assert info.value.response.status_code == 200
    return str(info.value.response["error"])


async def test_auth_test_and_wire_format(slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp["ok"] is True
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert (resp["url"], resp["team"], resp["team_id"], resp["user_id"], resp["bot_id"]) == (
        "https://acme.slack.com/", "Acme", "T0001", slack.bot_user_id, slack.bot_id)
    assert slack.base_url.endswith("/api/") and slack.bot_token.startswith("xoxb-")
    assert slack.calls[-1] == ("auth.test", {}, 200, None)
    assert slack.requests[-1].path == "/api/auth.test"
    assert slack.requests[-1].headers["authorization"] == f"Bearer {slack.bot_token}"


def test_sync_client_and_form_bodies(slack: FakeSlack) -> None:
    sync = WebClient(token=slack.bot_token, base_url=slack.base_url)
    assert sync.auth_test()["user_id"] == BOT_USER_ID
    channel = sync.conversations_create(name="inc-sync")["channel"]
    assert channel["is_member"] and channel["creator"] == BOT_USER_ID and channel["num_members"] == 1
    # a form-encoded body with JSON-encoded blocks/metadata, as older callers send it
    sync.api_call("chat.postMessage", data={"channel": "inc-sync", "text": "hi",
                                            "blocks": json.dumps(BLOCKS), "metadata": json.dumps(METADATA)})
    sync.api_call("chat.postMessage", http_verb="GET", params={"channel": channel["id"], "text": "by GET"})
    msgs = slack.messages("inc-sync")
    assert [(m.text, m.blocks, m.metadata) for m in msgs] == [("hi", BLOCKS, METADATA),
                                                              ("by GET", None, None)]
    history = sync.conversations_history(channel=channel["id"], include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["by GET", "hi"]
    with pytest.raises(SlackApiError) as info:
        sync.chat_postMessage(channel="nope", text="x")
    assert info.value.response["error"] == "channel_not_found"


async def test_auth_errors(slack: FakeSlack) -> None:
    assert await error_of(AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url).auth_test()) \
        == "invalid_auth"
    assert await error_of(AsyncWebClient(base_url=slack.base_url).auth_test()) == "not_authed"
    bot = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
    assert await error_of(bot.api_call("files.fly")) == "unknown_method"
    slack.revoke_token()
    assert await error_of(bot.auth_test()) == "token_revoked"
    assert [c.error for c in slack.calls] == ["invalid_auth", "not_authed", "unknown_method", "token_revoked"]


async def test_apps_connections_open_needs_the_app_token(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.socket_url = "ws://127.0.0.1:9/socket"
    app = AsyncWebClient(base_url=slack.base_url)
    assert (await app.apps_connections_open(app_token=slack.app_token))["url"] == "ws://127.0.0.1:9/socket"
    assert await error_of(app.apps_connections_open(app_token=slack.bot_token)) == "not_allowed_token_type"
    assert await error_of(AsyncWebClient(token=slack.app_token, base_url=slack.base_url).auth_test()) \
        == "not_allowed_token_type"


@pytest.mark.parametrize(("name", "error"), [
    ("", "invalid_name_required"),
    ("x" * 81, "invalid_name_maxlength"),
    ("Incident-42", "invalid_name_specials"),
    ("inc 42", "invalid_name_specials"),
    ("inc#42", "invalid_name_specials"),
    ("---", "invalid_name_punctuation"),
    ("incidents", "name_taken"),
])
async def test_create_rejects_bad_names(slack: FakeSlack, client: AsyncWebClient, name: str,
                                        error: str) -> None:
    assert await error_of(client.conversations_create(name=name)) == error
    assert len(slack.channels) == 1  # only the pre-created "incidents"


async def test_create_name_taken_by_archived_channel(slack: FakeSlack, client: AsyncWebClient) -> None:
    created = (await client.conversations_create(name="x" * 80))["channel"]
    assert created["name"] == "x" * 80 and created["topic"] == {"value": "", "creator": "", "last_set": 0}
    assert (await client.conversations_create(name="inc-1", is_private=True))["channel"]["is_private"]
    await client.conversations_archive(channel=created["id"])
    assert await error_of(client.conversations_create(name="x" * 80)) == "name_taken"
    assert await error_of(client.conversations_archive(channel=created["id"])) == "already_archived"
    assert await error_of(client.conversations_join(channel=created["id"])) == "is_archived"
    assert await error_of(client.chat_postMessage(channel=created["id"], text="x")) == "is_archived"


async def test_list_paginates(slack: FakeSlack, client: AsyncWebClient) -> None:
    ids = [slack.incidents_channel_id] + [slack.add_channel(f"inc-{i}") for i in range(4)]
    private = slack.add_channel("secret", bot_member=True, is_private=True)
    # the SDK's async iteration follows next_cursor; it yields the same response object, mutated
    pages = [dict(page.data) async for page in await client.conversations_list(limit=2)]
    assert [len(p["channels"]) for p in pages] == [2, 2, 1]
    assert [c["id"] for p in pages for c in p["channels"]] == ids
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    cursor = pages[0]["response_metadata"]["next_cursor"]
    again = await client.conversations_list(limit=2, cursor=cursor)
    assert [c["id"] for c in again["channels"]] == ids[2:4]
    assert await error_of(client.conversations_list(cursor="bm9wZQ==")) == "invalid_cursor"
    both = await client.conversations_list(types="public_channel,private_channel", limit=1000)
    assert [c["id"] for c in both["channels"]] == [*ids, private]
    slack.archive_channel("inc-0")
    active = await client.conversations_list(exclude_archived=True)
    assert ids[1] not in [c["id"] for c in active["channels"]]
    assert [c.params.get("limit") for c in slack.calls_to("conversations.list")][:3] == ["2", "2", "2"]


async def test_post_needs_membership(slack: FakeSlack, client: AsyncWebClient) -> None:
    incidents = slack.incidents_channel_id
    assert await error_of(client.chat_postMessage(channel=incidents, text="hi")) == "not_in_channel"
    assert await error_of(client.conversations_join(channel="C00000000")) == "channel_not_found"
    joined = await client.conversations_join(channel=incidents)
    assert joined["channel"]["is_member"] and slack.members(incidents) == [slack.bot_user_id]
    assert (await client.conversations_join(channel=incidents))["warning"] == "already_in_channel"
    first = await client.chat_postMessage(channel="incidents", text="hello", unfurl_links=False)
    second = await client.chat_postMessage(channel=incidents, text="again", blocks=BLOCKS)
    assert first["channel"] == incidents and second["ts"] > first["ts"]
    assert first["message"]["user"] == BOT_USER_ID and first["message"]["bot_id"] == slack.bot_id
    msgs = slack.messages(incidents)
    assert [(m.text, m.ts) for m in msgs] == [("hello", first["ts"]), ("again", second["ts"])]
    assert msgs[0].params["unfurl_links"] is False and msgs[1].blocks == BLOCKS
    with pytest.warns(UserWarning, match="text"):  # the SDK warns, then sends it anyway
        assert await error_of(client.chat_postMessage(channel=incidents)) == "no_text"
    for bad in ([{"text": "untyped"}], [{"type": "divider"}] * 51):
        rejected = client.chat_postMessage(channel=incidents, text="x", blocks=bad)
        assert await error_of(rejected) == "invalid_blocks"
    link = await client.chat_getPermalink(channel=incidents, message_ts=first["ts"])
    assert link["permalink"] == f"https://acme.slack.com/archives/{incidents}/p{first['ts'].replace('.', '')}"


async def test_metadata_round_trip_and_history_pages(slack: FakeSlack, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-meta"))["channel"]["id"]
    posted = [(await client.chat_postMessage(channel=channel, text=f"m{i}", metadata=METADATA))["ts"]
              for i in range(5)]
    await client.chat_postMessage(channel=channel, text="reply", thread_ts=posted[0])
    with_meta = await client.conversations_history(channel=channel, include_all_metadata=True, limit=3)
    assert [m["ts"] for m in with_meta["messages"]] == posted[::-1][:3]
    assert all(m["metadata"] == METADATA for m in with_meta["messages"]) and with_meta["has_more"]
    pages = [dict(p.data) async for p in await client.conversations_history(channel=channel, limit=2)]
    assert [m["text"] for p in pages for m in p["messages"]] == ["m4", "m3", "m2", "m1", "m0"]
    assert all("metadata" not in m for p in pages for m in p["messages"])
    assert pages[-1]["messages"][-1]["reply_count"] == 1
    window = await client.conversations_history(channel=channel, oldest=posted[1], latest=posted[3])
    assert [m["ts"] for m in window["messages"]] == [posted[2]]
    thread = await client.conversations_replies(channel=channel, ts=posted[0])
    assert [m["text"] for m in thread["messages"]] == ["m0", "reply"]
    assert [m.metadata for m in slack.messages(channel)][:5] == [METADATA] * 5
    assert await error_of(client.chat_postMessage(channel=channel, text="x", metadata={"x": 1})) \
        == "invalid_metadata_format"
    incidents = slack.incidents_channel_id
    assert await error_of(client.conversations_history(channel=incidents)) == "not_in_channel"


async def test_update_keeps_versions(slack: FakeSlack, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-upd"))["channel"]["id"]
    ts = (await client.chat_postMessage(channel=channel, text="v1", blocks=BLOCKS))["ts"]
    updated = await client.chat_update(channel=channel, ts=ts, text="v2")
    assert (updated["channel"], updated["ts"], updated["text"]) == (channel, ts, "v2")
    await client.chat_update(channel=channel, ts=ts, text="v3", blocks=[{"type": "divider"}])
    msg = slack.messages(channel)[0]
    assert [v.text for v in msg.versions] == ["v1", "v2", "v3"]
    assert [v.blocks for v in msg.versions] == [BLOCKS, BLOCKS, [{"type": "divider"}]]
    assert [v.text for v in slack.edits(channel, ts)] == ["v2", "v3"] and msg.edited_ts
    assert await error_of(client.chat_update(channel=channel, ts="1.000001", text="x")) == "message_not_found"
    human = slack.add_user(name="alice")
    theirs = slack.add_message(channel, "mine", user=human)
    assert await error_of(client.chat_update(channel=channel, ts=theirs, text="x")) == "cant_update_message"


async def test_pins(slack: FakeSlack, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-pin"))["channel"]["id"]
    ts = (await client.chat_postMessage(channel=channel, text="context"))["ts"]
    await client.pins_add(channel=channel, timestamp=ts)
    assert await error_of(client.pins_add(channel=channel, timestamp=ts)) == "already_pinned"
    assert await error_of(client.pins_add(channel=channel, timestamp="1.000002")) == "message_not_found"
    items = (await client.pins_list(channel=channel))["items"]
    assert [(i["type"], i["message"]["ts"], i["message"]["text"]) for i in items] == [
        ("message", ts, "context")]
    assert slack.pins(channel) == [ts]


async def test_invite_and_members(slack: FakeSlack, client: AsyncWebClient) -> None:
    alice, bob = slack.add_user(name="alice"), slack.add_user(name="bob")
    assert alice.startswith("U") and len(alice) == 9 and alice.isupper()
    incidents = slack.incidents_channel_id
    assert await error_of(client.conversations_invite(channel=incidents, users=[alice])) == "not_in_channel"
    channel = (await client.conversations_create(name="inc-inv"))["channel"]["id"]
    assert await error_of(client.conversations_invite(channel=channel, users=["U404"])) == "user_not_found"
    assert await error_of(client.conversations_invite(channel=channel, users=[alice, BOT_USER_ID])) \
        == "cant_invite_self"
    invited = await client.conversations_invite(channel=channel, users=[alice])
    assert invited["channel"]["num_members"] == 2
    assert await error_of(client.conversations_invite(channel=channel, users=alice)) == "already_in_channel"
    await client.conversations_invite(channel=channel, users=f"{alice},{bob}")  # alice skipped, bob invited
    assert slack.members(channel) == [BOT_USER_ID, alice, bob]
    assert (await client.conversations_members(channel=channel))["members"] == [BOT_USER_ID, alice, bob]
    assert slack.calls_to("conversations.invite")[-1].params["users"] == f"{alice},{bob}"


async def test_topic_purpose_ephemeral_users(slack: FakeSlack, client: AsyncWebClient) -> None:
    alice = slack.add_user(name="alice", email="Alice@Example.com", real_name="Alice A")
    incidents = slack.incidents_channel_id
    assert await error_of(client.conversations_setTopic(channel=incidents, topic="x")) == "not_in_channel"
    channel = (await client.conversations_create(name="inc-misc"))["channel"]["id"]
    set_topic = await client.conversations_setTopic(channel=channel, topic="SEV2 | IC: alice")
    topic = set_topic["channel"]["topic"]
    assert topic["value"] == "SEV2 | IC: alice" and topic["creator"] == BOT_USER_ID
    await client.conversations_setPurpose(channel=channel, purpose="checkout down")
    info = await client.conversations_info(channel=channel)
    assert info["channel"]["purpose"]["value"] == "checkout down"
    assert await error_of(client.conversations_setTopic(channel=channel, topic="x" * 251)) == "too_long"
    assert await error_of(client.chat_postEphemeral(channel=channel, user=alice, text="psst")) \
        == "user_not_in_channel"
    await client.conversations_invite(channel=channel, users=[alice])
    eph = await client.chat_postEphemeral(channel=channel, user=alice, text="psst")
    assert slack.ephemerals[0].ts == eph["message_ts"] and slack.messages(channel) == []
    user = (await client.users_info(user=alice))["user"]
    assert (user["name"], user["real_name"], user["profile"]["email"]) == (
        "alice", "Alice A", "Alice@Example.com")
    assert (await client.users_lookupByEmail(email="alice@example.com"))["user"]["id"] == alice
    assert await error_of(client.users_lookupByEmail(email="nobody@example.com")) == "users_not_found"
    assert await error_of(client.users_info(user="U404")) == "user_not_found"


async def test_rate_limit_every_nth_call_has_no_side_effect(slack: FakeSlack, client: AsyncWebClient) -> None:
    channel = (await client.conversations_create(name="inc-429"))["channel"]["id"]
    slack.rate_limit_every(2, retry_after=7)
    await client.chat_postMessage(channel=channel, text="one")
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel=channel, text="two")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"
    assert info.value.response["error"] == "ratelimited"
    await client.chat_postMessage(channel=channel, text="three")
    assert [m.text for m in slack.messages(channel)] == ["one", "three"]
    assert [(c.status, c.error) for c in slack.calls_to("chat.postMessage")] == [
        (200, None), (429, "ratelimited"), (200, None)]
    slack.clear_faults()
    slack.fail_next(1, method="pins.add")
    slack.fail_next(1, error="internal_error")
    assert await error_of(client.auth_test()) == "internal_error"  # status 200 for non-ratelimited
    ts = (await client.chat_postMessage(channel=channel, text="four"))["ts"]
    with pytest.raises(SlackApiError) as info:
        await client.pins_add(channel=channel, timestamp=ts)
    assert info.value.response.status_code == 429 and info.value.response.headers["Retry-After"] == "1"
    assert slack.pins(channel) == []


async def test_sdk_retry_handler_retries_a_429_once(slack: FakeSlack) -> None:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url,
                            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    slack.add_channel("inc-retry", bot_member=True)
    slack.fail_next(1, retry_after=0)
    started = time.monotonic()
    await client.chat_postMessage(channel="inc-retry", text="once")
    assert time.monotonic() - started < 1.5
    assert [m.text for m in slack.messages("inc-retry")] == ["once"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


async def test_views_open_trigger_ids(slack: FakeSlack, client: AsyncWebClient) -> None:
    view = {"type": "modal", "callback_id": "declare", "title": {"type": "plain_text", "text": "Declare"},
            "blocks": [{"type": "input", "block_id": "title",
                        "label": {"type": "plain_text", "text": "Title"},
                        "element": {"type": "plain_text_input", "action_id": "v"}}]}
    assert await error_of(client.views_open(trigger_id="123.456.abc", view=view)) == "invalid_trigger_id"
    trigger = slack.new_trigger_id(user="U123")
    untitled = {"type": "modal", "blocks": []}
    assert await error_of(client.views_open(trigger_id=trigger, view=untitled)) == "invalid_arguments"
    opened = (await client.views_open(trigger_id=trigger, view=view))["view"]
    assert opened["id"].startswith("V") and opened["root_view_id"] == opened["id"]
    assert opened["callback_id"] == "declare" and opened["blocks"] == view["blocks"]
    assert await error_of(client.views_open(trigger_id=trigger, view=view)) == "expired_trigger_id"
    assert [(v.trigger_id, v.user, v.view["id"]) for v in slack.views] == [(trigger, "U123", opened["id"])]


async def test_response_url_records_posts(slack: FakeSlack) -> None:
    url = slack.new_response_url()
    assert url.startswith(slack.root_url + "/responses/")
    resp = await AsyncWebhookClient(url).send(text="done", response_type="ephemeral", replace_original=True)
    assert (resp.status_code, resp.body) == (200, "ok")
    got = await slack.wait_for_response_async(url, timeout=2)
    assert got == [{"text": "done", "response_type": "ephemeral", "replace_original": True}]
    assert slack.wait_for_response(url.rsplit("/", 1)[1], timeout=0.1) == got
    assert slack.responses[url.rsplit("/", 1)[1]] == got
    with pytest.raises(TimeoutError):
        slack.wait_for_response(slack.new_response_url(), timeout=0.05)
    request = urllib.request.Request(slack.root_url + "/responses/unknown", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=2)
    assert info.value.code == 404
    assert slack.calls == []  # response_url posts are not API calls


async def test_concurrent_posts_get_unique_increasing_ts(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_channel("inc-busy", bot_member=True)
    posted = await asyncio.gather(*(client.chat_postMessage(channel="inc-busy", text=str(i))
                                    for i in range(40)))
    stored = [m.ts for m in slack.messages("inc-busy")]
    assert len(set(stored)) == 40 and stored == sorted(stored)  # fixed width: string order is time order
    assert sorted(r["ts"] for r in posted) == sorted(stored)
