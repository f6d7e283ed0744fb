"""The incident channel's activities. They hold a Chat port (Slack is one adapter); no vendor code here."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.ports import Chat
from domain.models.chat import ChatOpenInput, ChatRoom, ChatSyncInput, ChatSyncResult

NOT_HERE = ("chat is not configured on this worker (no Slack bot token, INCIDENTFLOW_SLACK_BOT_TOKEN): the incident's "
            "channel is kept current by a worker that has it")


class ChatActivities:
    """Chat side effects of the incident. Without a chat adapter (no bot token) `open_chat` reports that chat is
    off, and `sync_chat` (for a channel another worker opened) fails retryably, for a worker with chat to take over."""

    def __init__(self, chat: Chat | None) -> None:
        self.chat = chat

    @activity.defn
    async def open_chat(self, inp: ChatOpenInput) -> ChatRoom | None:
        if self.chat is None:
            return None
        self.chat.note_attempt()
        return await self.chat.open(inp)

    @activity.defn
    async def sync_chat(self, inp: ChatSyncInput) -> ChatSyncResult:
        if self.chat is None:
            # The incident has a channel, opened by a worker with chat: retried (by any worker, one with chat takes
            # it over) rather than answered with a warning, which is a new timeline event, so another sync, so a
            # loop that ran up hundreds of events in seconds.
            raise ApplicationError(NOT_HERE, type="ChatNotConfigured")
        self.chat.note_attempt()
        return await self.chat.sync(inp)
