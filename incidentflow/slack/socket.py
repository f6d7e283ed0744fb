"""Slack Socket Mode: the same commands, buttons, modals and events as the HTTP routes, over a websocket.

With `INCIDENTFLOW_SLACK_APP_TOKEN` (an app-level `xapp-…` token) set, the API process dials out to Slack
(`apps.connections.open` on `settings.slack_api_url`, then the websocket it names) instead of needing a
public HTTPS endpoint. Each envelope is handed to the same `SlackGateway` and answered like the HTTP
route would: the ack carries what the route's HTTP body would have (command reply, `response_action`
errors), within Slack's 3 seconds (`within_budget`: a slower result follows through `response_url`).
Button replies go through the payload's `response_url`, as over HTTP.

No signature check: the websocket itself is authenticated by the app token. Tokens are never logged.

    socket = SlackSocket(settings, app.state.slack_gateway, app.state)
    await socket.start()
    ...
    await socket.stop()
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websockets import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from domain.config import Settings
from incidentflow.slack.gateway import SlackGateway
from incidentflow.slack.reply import WORKING, Reply, post_response, within_budget

log = logging.getLogger("incidentflow.slack.socket")

# apps.connections.open errors that no retry fixes: a wrong, revoked or non-app-level token
_FATAL = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
                    "not_allowed_token_type", "missing_scope", "invalid_token"})


def socket_enabled(settings: Settings) -> bool:
    """Socket Mode is on when an app-level token is configured."""
    token = settings.slack_app_token
    return token is not None and bool(token.get_secret_value().strip())


class _Ack(Protocol):
    def __call__(self, payload: dict[str, Any] | None = None) -> Awaitable[None]: ...


class SlackSocketError(Exception):
    """Socket Mode cannot work with this configuration (no token, or Slack refused it)."""


class _Client(SocketModeClient):
    """slack_sdk's websockets client, but it keeps hold of the tasks it starts so none outlive `stop()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listener_tasks: set[asyncio.Future[None]] = set()

    async def process_message(self) -> None:
        raw = await self.message_queue.get()
        if raw is None:
            return
        message: dict[str, Any] = json.loads(raw) if raw.startswith("{") else {}
        task = asyncio.ensure_future(self.run_message_listeners(message, raw))
        self.listener_tasks.add(task)
        task.add_done_callback(self.listener_tasks.discard)

    def background(self) -> list[asyncio.Future[Any]]:
        return [t for t in (self.message_processor, self.current_session_monitor, self.message_receiver)
                if t is not None]


class SlackSocket:
    """One Socket Mode connection feeding `gateway`; `start()` it once, `stop()` it once.

    `state` is where `within_budget` keeps its response_url follow-ups (`slack_pending`) and may set
    `slack_ack_budget`; pass the FastAPI `app.state` to share them with the HTTP routes. `grace` is how
    long `stop()` lets requests in flight (and their follow-ups) finish before cancelling them.
    """

    def __init__(self, settings: Settings, gateway: SlackGateway, state: Any = None, *,
                 ping_interval: float = 10.0, grace: float = 5.0, retry_max: float = 30.0) -> None:
        if not socket_enabled(settings):
            raise SlackSocketError("Socket Mode needs INCIDENTFLOW_SLACK_APP_TOKEN (an app-level xapp-… token)")
        self.settings = settings
        self.gateway = gateway
        self.state = state if state is not None else SimpleNamespace()
        if not hasattr(self.state, "slack_pending"):
            self.state.slack_pending = set()
        self.ping_interval = ping_interval
        self.grace = grace
        self.retry_max = retry_max
        self._client: _Client | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the connection. A refused token raises `SlackSocketError`; Slack being unreachable does
        not stop the caller: it is logged and retried in the background (with backoff) until `stop()`."""
        if self._client is not None:
            raise RuntimeError("SlackSocket.start() was already called")
        assert self.settings.slack_app_token is not None  # socket_enabled() held in __init__
        bot = self.settings.slack_bot_token.get_secret_value() if self.settings.slack_bot_token else None
        web = AsyncWebClient(token=bot or None, base_url=self.settings.slack_api_url, timeout=10,
                             retry_handlers=[])
        client = self._client = _Client(app_token=self.settings.slack_app_token.get_secret_value().strip(),
                                        logger=log, web_client=web, auto_reconnect_enabled=True,
                                        ping_interval=self.ping_interval)
        client.socket_mode_request_listeners.append(self._on_request)
        try:
            await client.connect()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in _FATAL:
                await self._shutdown_client(client)
                self._client = None
                raise SlackSocketError(f"Slack refused the app token for Socket Mode: {error} (it must be an "
                                       "app-level xapp-… token with the connections:write scope)") from None
            self._retry_in_background(f"apps.connections.open failed: {error or type(exc).__name__}")
        except asyncio.CancelledError:
            await self._shutdown_client(client)
            self._client = None
            raise
        except Exception as exc:  # noqa: BLE001 - network trouble: keep trying, the API serves meanwhile
            self._retry_in_background(type(exc).__name__)
        else:
            log.info("Slack Socket Mode connected")

    async def is_connected(self) -> bool:
        return self._client is not None and await self._client.is_connected()

    async def stop(self) -> None:
        """Stop taking envelopes, let the ones in flight answer (up to `grace` seconds), then close the
        websocket and cancel whatever is left. Idempotent."""
        client = self._client
        if client is None or self._stopped:
            return
        self._stopped = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        client.auto_reconnect_enabled = False
        for task in (client.message_receiver, client.current_session_monitor):
            if task is not None:
                task.cancel()
        busy = set(client.listener_tasks) | set(self._pending())
        if busy:
            _, late = await asyncio.wait(busy, timeout=self.grace)
            if late:
                log.warning("Slack Socket Mode: %d request(s) still running at shutdown, cancelled", len(late))
        await self._shutdown_client(client)
        log.info("Slack Socket Mode disconnected")

    def _pending(self) -> set[asyncio.Task[None]]:
        pending: set[asyncio.Task[None]] = self.state.slack_pending
        return pending

    async def _shutdown_client(self, client: _Client) -> None:
        try:
            await client.close()  # cancels the sdk's tasks and closes the websocket
        except Exception as exc:  # noqa: BLE001 - a half-open socket must not stop the shutdown
            log.warning("Slack Socket Mode: closing the websocket failed: %s", type(exc).__name__)
        leftovers = [*client.background(), *client.listener_tasks]
        if client is self._client:
            leftovers += list(self._pending())
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _retry_in_background(self, why: str) -> None:
        log.warning("Slack Socket Mode: could not connect (%s); retrying in the background", why)
        self._connecting = asyncio.create_task(self._keep_connecting(), name="slack-socket-connect")

    async def _keep_connecting(self) -> None:
        delay = 1.0
        client = self._client
        assert client is not None
        while not self._stopped:
            await asyncio.sleep(delay)
            try:
                await client.connect_to_new_endpoint(force=True)
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error in _FATAL:
                    log.error("Slack refused the app token for Socket Mode (%s): giving up", error)
                    return
                log.warning("Slack Socket Mode: still cannot connect (%s)", error or type(exc).__name__)
            except Exception as exc:  # noqa: BLE001
                log.warning("Slack Socket Mode: still cannot connect (%s)", type(exc).__name__)
            else:
                log.info("Slack Socket Mode connected")
                return
            delay = min(delay * 2, self.retry_max)

    # ------------------------------------------------------------------ envelopes
    async def _on_request(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        acked = False

        async def ack(payload: dict[str, Any] | None = None) -> None:
            nonlocal acked
            acked = True
            body = payload if payload and req.accepts_response_payload else None
            try:
                await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id,
                                                                          payload=body))
            except Exception as exc:  # noqa: BLE001 - the connection went away: Slack redelivers or times out
                log.warning("Slack Socket Mode: could not ack a %s envelope: %s", req.type, type(exc).__name__)

        try:
            handler = self._handlers().get(req.type)
            if handler is None:
                await ack()
                return
            await handler(req, ack)
        except Exception:
            log.exception("Slack Socket Mode: a %s envelope failed", req.type)
            if not acked:
                await ack({"response_type": "ephemeral", "text": "Failed: see the incidentflow API log"}
                          if req.type == "slash_commands" else None)

    def _handlers(self) -> dict[str, Callable[[SocketModeRequest, _Ack], Awaitable[None]]]:
        return {"slash_commands": self._command, "interactive": self._interactive, "events_api": self._event}

    async def _command(self, req: SocketModeRequest, ack: _Ack) -> None:
        form = {str(k): "" if v is None else str(v) for k, v in req.payload.items()}
        reply = await within_budget(self.state, self.gateway.command(form), form.get("response_url", ""))
        if reply is None:
            await ack(dict(WORKING))
        elif reply.opened_modal:
            await ack()  # the form is open: nothing to say in the channel
        else:
            await ack(reply.message())

    async def _interactive(self, req: SocketModeRequest, ack: _Ack) -> None:
        payload = req.payload
        response_url = str(payload.get("response_url") or "")
        result: dict[str, tuple[Reply | None, dict[str, Any] | None]] = {}

        async def work() -> Reply:
            result["out"] = await self.gateway.interaction(payload)
            return result["out"][0] or Reply("")
        reply = await within_budget(self.state, work(), response_url)
        await ack(result.get("out", (None, None))[1] or None)  # view_submission: response_action errors
        if reply is not None and reply.text and response_url:
            await post_response(response_url, reply)

    async def _event(self, req: SocketModeRequest, ack: _Ack) -> None:
        await ack()  # Slack retries events not acked in 3 s: ack first, then act
        if req.retry_attempt:  # a redelivery of an event we already took
            return
        await self.gateway.event(req.payload)
