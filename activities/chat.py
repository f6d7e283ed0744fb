"""The incident channel's activities. They hold a Chat port (Slack is one adapter); no vendor code here."""

from __future__ import annotations

from temporalio import activity

from activities.ports import Chat
from domain.models.chat import ChatOpenInput, ChatRoom, ChatSyncInput, ChatSyncResult


class ChatActivities:
    """Chat side effects of the incident. Without a chat adapter (no bot token) they report that chat is off."""

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
            return ChatSyncResult(warnings=["chat is not configured on this worker"])
        self.chat.note_attempt()
        return await self.chat.sync(inp)
