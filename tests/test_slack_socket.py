"""Slack Socket Mode end to end: a local websocket server plays Slack's Socket Mode endpoint, the fake Slack
Web API answers `apps.connections.open` with its URL, and our real `SlackSocket` (slack_sdk's client inside)
feeds a real `SlackGateway` backed by a real Temporal dev server and worker. Nothing of ours is mocked.

help and declare (slash_commands) → the ack carries the reply; a slow command acks "Working on it…" and the
reply follows via response_url; the Acknowledge button (interactive block_actions) → reply via
response_url; a modal submission with no title → `response_action: errors` in the ack; an app_mention
(events_api) → acked, then the help is posted ephemerally; a `disconnect` → a fresh URL and websocket;
stop() → the websocket closes normally and no task is left behind.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment
from websockets.asyncio.server import Server, ServerConnection, serve

from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import Phase
from incidentflow.api.app import slack_gateway
from incidentflow.client import Incidents
from incidentflow.slack.socket import SlackSocket, SlackSocketError, socket_enabled
from tests.conftest import running_worker
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually


@dataclass
class SocketModeServer:
    """Slack's side of Socket Mode: hello on connect, envelopes out, acks (`{"envelope_id", "payload"}`) in."""

    acks: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    connections: list[ServerConnection] = field(default_factory=list)
    closed: list[int | None] = field(default_factory=list)  # close codes of finished connections
    strays: list[Any] = field(default_factory=list)  # messages that were not acks of our envelopes
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = next(iter(self.server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=t-{uuid.uuid4().hex[:8]}&app_id=A0001"

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        await ws.send(json.dumps({"type": "hello", "num_connections": 1,
                                  "debug_info": {"host": "applink-test", "approximate_connection_time": 3600},
                                  "connection_info": {"app_id": "A0001"}}))
        self.connected.set()
        async for raw in ws:
            msg = json.loads(raw)
            fut = self.acks.get(msg.get("envelope_id"))
            if fut is not None and not fut.done():
                fut.set_result(msg)
            else:
                self.strays.append(msg)
        self.closed.append(ws.close_code)

    async def envelope(self, kind: str, payload: dict[str, Any], accepts: bool = True,
                       **extra: Any) -> tuple[dict[str, Any], float]:
        """Send one envelope on the latest connection; the client's ack and how long it took."""
        eid = str(uuid.uuid4())
        self.acks[eid] = asyncio.get_running_loop().create_future()
        started = time.monotonic()
        await self.connections[-1].send(json.dumps({"envelope_id": eid, "type": kind, "payload": payload,
                                                    "accepts_response_payload": accepts, **extra}))
        ack = await asyncio.wait_for(self.acks[eid], timeout=10)
        return ack, time.monotonic() - started


@pytest.fixture
async def socket_server() -> AsyncIterator[SocketModeServer]:
    fake = SocketModeServer()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        fake.server = server
        yield fake


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def command(text: str, user: str, channel: str, response_url: str = "") -> dict[str, str]:
    return {"token": "unused", "team_id": "T0001", "team_domain": "acme", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": "alice", "command": "/incident",
            "text": text, "api_app_id": "A0001", "is_enterprise_install": "false", "response_url": response_url,
            "trigger_id": ""}


def ours(task: asyncio.Task[Any]) -> bool:
    """A task running our Socket Mode code or slack_sdk's (not the test server's or the worker's)."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = getattr(code, "co_filename", "")
    return "slack_sdk" in filename or "incidentflow" in filename


async def test_socket_mode_end_to_end(dev_env: WorkflowEnvironment, slack: FakeSlack,
                                      socket_server: SocketModeServer) -> None:
    alice = slack.add_user(name="alice", email="alice@example.com")
    general = slack.add_channel(f"general-{time.monotonic_ns()}", members=[alice], bot_member=True)
    config = IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice", "slack": alice}]})
    slack.socket_url = socket_server.url

    async with running_worker(dev_env.client, config=lambda: config) as (worker_settings, _):
        settings = Settings(task_queue=worker_settings.task_queue, slack_app_token=slack.app_token,
                            slack_bot_token=slack.bot_token, slack_api_url=slack.base_url)
        assert socket_enabled(settings)
        inc = Incidents(dev_env.client, settings, config)

        async def incidents() -> Incidents:
            return inc
        state = SimpleNamespace(slack_pending=set())
        socket = SlackSocket(settings, slack_gateway(settings, incidents, lambda: config), state)
        before = {t for t in asyncio.all_tasks() if ours(t)}
        await socket.start()
        await asyncio.wait_for(socket_server.connected.wait(), timeout=5)
        assert await socket.is_connected()
        assert [c.method for c in slack.calls] == ["apps.connections.open"]  # with the app token, on our URL

        # help: the ack carries the reply, as the HTTP body would
        ack, took = await socket_server.envelope("slash_commands", command("help", alice, general))
        assert took < 3
        assert ack["payload"]["response_type"] == "ephemeral"
        assert "/incident declare" in ack["payload"]["text"] and "/incident ack" in ack["payload"]["text"]

        # declare: a real incident in Temporal
        ack, took = await socket_server.envelope("slash_commands",
                                                 command("declare sev2 Socket mode works", alice, general))
        assert took < 3
        body = ack["payload"]
        assert body["response_type"] == "in_channel" and "SEV2" in body["text"], body
        assert "incident_id" not in body and "modal" not in body
        iid = next(w.strip("`:") for w in body["text"].split() if w.strip("`:").startswith("incident-"))
        declared = await inc.get(iid)
        assert declared.title == "Socket mode works" and declared.severity.value == "SEV2"
        listed = await eventually(lambda: inc.list(), lambda rows: any(r.id == iid for r in rows),
                                  timeout=15)
        assert any(r.id == iid for r in listed)

        # the Acknowledge button: acked with no payload, the reply arrives at the response_url
        url = slack.new_response_url()
        ack, took = await socket_server.envelope("interactive", {
            "type": "block_actions", "user": {"id": alice, "username": "alice"}, "response_url": url,
            "trigger_id": "", "channel": {"id": general}, "container": {"type": "message"},
            "actions": [{"action_id": render.ACK, "value": iid, "type": "button"}]}, accepts=False)
        assert took < 3 and "payload" not in ack, ack
        answer = await slack.wait_for_response_async(url)
        assert f"`{iid}`" in answer[0]["text"] and "acknowledged" in answer[0]["text"].lower(), answer
        assert answer[0]["response_type"] == "ephemeral" and answer[0]["replace_original"] is False
        acked = await inc.get(iid)
        assert acked.acknowledged_by == "alice" and acked.phase != Phase.resolved

        # a declare form submitted with no title: the errors come back in the ack (response_action)
        ack, _ = await socket_server.envelope("interactive", {
            "type": "view_submission", "user": {"id": alice, "username": "alice"},
            "view": {"callback_id": render.DECLARE_VIEW, "private_metadata": general, "state": {"values": {
                "title": {"value": {"type": "plain_text_input", "value": ""}}}}}})
        assert ack["payload"] == {"response_action": "errors", "errors": {"title": "A title is needed."}}

        # slower than the ack budget: "Working on it…" now, the result through the response_url
        state.slack_ack_budget = 0
        url = slack.new_response_url()
        ack, took = await socket_server.envelope("slash_commands",
                                                 command(f"note {iid} Checked the dashboards", alice, general, url))
        assert took < 3 and ack["payload"] == {"response_type": "ephemeral", "text": "Working on it…"}
        assert (await slack.wait_for_response_async(url))[0]["text"] == f"Noted on `{iid}`."
        del state.slack_ack_budget

        # events_api: acked at once (no payload), then handled: an app_mention gets the help
        ack, took = await socket_server.envelope("events_api", {
            "token": "unused", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
            "event_id": "Ev0001", "event_time": int(time.time()), "event": {
                "type": "app_mention", "user": alice, "text": "<@UBOT0001> help", "channel": general,
                "ts": f"{time.time():.6f}"}}, accepts=False)
        assert took < 3 and "payload" not in ack
        mentions = await eventually(lambda: _now(slack.ephemerals), lambda es: len(es) >= 1, timeout=5)
        assert mentions[0].user == alice and "/incident declare" in mentions[0].text
        # a redelivery is acked and not handled twice
        await socket_server.envelope("events_api", {"type": "event_callback", "event": {
            "type": "app_mention", "user": alice, "channel": general}}, accepts=False, retry_attempt=1,
            retry_reason="timeout")
        await asyncio.sleep(0.3)
        assert len(slack.ephemerals) == 1

        # an envelope type we do not handle is still acked
        ack, _ = await socket_server.envelope("shortcut", {"type": "shortcut", "callback_id": "x"})
        assert "payload" not in ack
        assert socket_server.strays == []

        # Slack asks for a refresh: a new URL from apps.connections.open, a new websocket, same service
        socket_server.connected.clear()
        await socket_server.connections[-1].send(json.dumps({"type": "disconnect", "reason": "refresh_requested",
                                                             "debug_info": {"host": "applink-test"}}))
        await asyncio.wait_for(socket_server.connected.wait(), timeout=5)
        await eventually(lambda: _now(socket_server.closed), lambda closed: closed == [1000], timeout=5)
        assert len(slack.calls_to("apps.connections.open")) == 2
        ack, _ = await socket_server.envelope("slash_commands", command("help", alice, general))
        assert "/incident declare" in ack["payload"]["text"]

        # stop: the websocket closes normally and nothing of ours or slack_sdk's keeps running
        assert {t for t in asyncio.all_tasks() if ours(t)} - before  # the check below can see them
        await socket.stop()
        await socket.stop()  # idempotent
        assert not await socket.is_connected()
        await eventually(lambda: _now(socket_server.closed), lambda closed: closed == [1000, 1000], timeout=5)
        await asyncio.sleep(0)
        leftover = {t for t in asyncio.all_tasks() if ours(t) and not t.done()} - before
        assert not leftover, leftover
        assert not state.slack_pending
        assert len(socket_server.connections) == 2


async def test_socket_refuses_a_bot_token_and_needs_an_app_token(slack: FakeSlack) -> None:
    assert not socket_enabled(Settings())
    assert not socket_enabled(Settings(slack_app_token=" "))
    with pytest.raises(SlackSocketError, match="APP_TOKEN"):
        SlackSocket(Settings(), gateway=None)  # type: ignore[arg-type]
    before = {t for t in asyncio.all_tasks() if ours(t)}
    wrong = Settings(slack_app_token=slack.bot_token, slack_bot_token=slack.bot_token, slack_api_url=slack.base_url)
    socket = SlackSocket(wrong, gateway=None)  # type: ignore[arg-type]
    with pytest.raises(SlackSocketError, match="not_allowed_token_type") as raised:
        await socket.start()
    assert slack.bot_token not in str(raised.value)
    await socket.stop()
    await asyncio.sleep(0)
    assert not {t for t in asyncio.all_tasks() if ours(t) and not t.done()} - before


async def test_socket_keeps_trying_while_slack_is_unreachable(slack: FakeSlack,
                                                             socket_server: SocketModeServer) -> None:
    """Slack's websocket down at start: start() returns (the API serves alerts meanwhile) and connects later."""
    slack.socket_url = "ws://127.0.0.1:9/unreachable"
    settings = Settings(slack_app_token=slack.app_token, slack_bot_token=slack.bot_token,
                        slack_api_url=slack.base_url)
    socket = SlackSocket(settings, gateway=None)  # type: ignore[arg-type]
    await socket.start()
    assert not await socket.is_connected()
    slack.socket_url = socket_server.url
    await asyncio.wait_for(socket_server.connected.wait(), timeout=8)
    await eventually(socket.is_connected, bool, timeout=5)
    await socket.stop()
    await eventually(lambda: _now(socket_server.closed), lambda closed: closed == [1000], timeout=5)


async def _now(value: Any) -> Any:
    return value


async def test_the_api_process_opens_socket_mode_when_an_app_token_is_set(
        dev_env: WorkflowEnvironment, slack: FakeSlack, socket_server: SocketModeServer) -> None:
    """`incidentflow api` wiring: the app's lifespan connects out, and commands work with no public route."""
    from tests.conftest import serve_api

    slack.socket_url = socket_server.url
    async with serve_api(dev_env, slack_app_token=slack.app_token, slack_bot_token=slack.bot_token,
                         slack_api_url=slack.base_url):
        await asyncio.wait_for(socket_server.connected.wait(), timeout=10)
        user = slack.add_user(name="zed")
        ack, took = await socket_server.envelope("slash_commands", command("help", user, "C1"))
        assert "/incident declare" in ack["payload"]["text"] and took < 3
    await asyncio.sleep(0.2)
    assert socket_server.closed, "stopping the API closes the websocket"
