"""The incident's chat pump (a mixin of IncidentWorkflow): the Slack channel, kept current beside the run loop.

It opens the channel, then syncs: the summary message in place, new timeline events posted, new role
holders invited. One chat activity at a time, so posts keep the timeline's order; a rate-limited or
broken Slack never delays the incident's timers. What must survive a restart (channel, message ts,
what was posted) lives in `IncidentState.chat`; the rest is rebuilt on replay.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.chat import ChatActivities
    from domain.models.chat import ChatOpenInput, ChatPost, ChatSummary, ChatSyncInput
    from domain.models.common import EventKind
    from workflows import options
    from workflows.incident_core import SYSTEM, IncidentCore, why

MAX_POSTS_PER_SYNC = 20


class ChatPump(IncidentCore):
    """Chat behaviour of IncidentWorkflow (whose run loop starts the pump and drains it at the end)."""

    async def _chat_pump(self) -> None:
        """Opens the incident channel, then keeps it current: summary in place, timeline posted.

        Runs beside the run loop so a rate-limited or broken Slack never delays the incident's timers.
        State that must survive a restart (channel, message ts, what was posted) is in `self.s.chat`.
        """
        s = self.s
        if s.chat is None and not s.chat_checked:
            await self._open_chat()
        while s.chat is not None and not s.chat.broken:
            await workflow.wait_condition(lambda: self._chat_stop or self._chat_pending())
            if not self._chat_pending():
                return
            await self._chat_sync()

    async def _open_chat(self) -> None:
        """Open (or reuse) the channel once; a worker without chat answers None and chat stays off."""
        s = self.s
        summary = self._chat_summary()
        before = s.seq
        try:
            room = await workflow.execute_activity_method(
                ChatActivities.open_chat, ChatOpenInput(summary=summary, invite=self._chat_people()),
                summary="Open the incident channel", **options.CHAT)
        except ActivityError as exc:
            s.chat_checked = True
            self._event(EventKind.warning, "slack", f"The incident channel could not be opened: {why(exc)}")
            return
        s.chat_checked = True
        if room is None:  # chat is not configured on the worker
            return
        warnings, room.warnings = room.warnings, []
        room.posted_seq = before
        s.chat, self._chat_sent = room, summary
        covered = before if self._declared_seq is None else min(before, self._declared_seq)
        meanwhile = s.seq != covered  # commands handled since the declaration, before the channel existed
        self._event(EventKind.action, "slack", f"Incident channel #{room.channel_name} opened"
                    + (f": {room.channel_url}" if room.channel_url else ""))
        # Events handled meanwhile are posted now, with the line above; otherwise the context message
        # the channel opened with says it all.
        room.posted_seq = covered if meanwhile else s.seq
        for text in warnings:
            self._event(EventKind.warning, "slack", text)

    def _chat_pending(self) -> bool:
        chat = self.s.chat
        if chat is None or chat.broken:
            return False
        return (any(e.seq > chat.posted_seq for e in self.s.timeline[-MAX_POSTS_PER_SYNC * 5:])
                or self._chat_summary() != self._chat_sent
                or any(p not in chat.invited for p in self._chat_people()))

    async def _chat_sync(self) -> None:
        s, chat = self.s, self.s.chat
        assert chat is not None
        summary = self._chat_summary()
        posts: list[ChatPost] = []
        alerts: list[str] = []
        last_seq = alert_seq = chat.posted_seq
        for e in s.timeline:
            if e.seq <= chat.posted_seq:
                continue
            if len(posts) >= MAX_POSTS_PER_SYNC:
                break
            last_seq = e.seq
            if e.kind == EventKind.alert:  # alert churn is one message per sync, not one per alert
                alerts.append(e.text)
                alert_seq = e.seq  # the digest's dedup key: never the seq of another event it would shadow
                continue
            posts.append(ChatPost(seq=e.seq, at=e.at, kind=e.kind, actor=e.actor, text=e.text, mention=e.subject,
                                  ref=e.ref))
        if alerts:
            more = f" (+{len(alerts) - 10} more)" if len(alerts) > 10 else ""
            posts.append(ChatPost(seq=alert_seq, at=workflow.now(), kind=EventKind.alert, actor="alerts",
                                  text="; ".join(alerts[:10]) + more))
        invite = [p for p in self._chat_people() if p not in chat.invited]
        inp = ChatSyncInput(incident_id=s.id, room=chat.model_copy(update={"warnings": []}),
                            summary=None if summary == self._chat_sent else summary, posts=posts, invite=invite)
        what = f"{len(posts)} post(s)" + (", summary" if inp.summary else "") + (", invites" if invite else "")
        try:
            result = await workflow.execute_activity_method(ChatActivities.sync_chat, inp,
                                                            summary=f"Slack: {what}", **options.CHAT)
        except ActivityError as exc:
            chat.posted_seq, self._chat_sent = max(chat.posted_seq, last_seq), summary
            chat.invited = list(dict.fromkeys([*chat.invited, *invite]))
            if fatal(exc):
                chat.broken = why(exc)
                self._event(EventKind.warning, "slack", f"Channel updates stopped: {chat.broken}")
            else:
                self._event(EventKind.warning, "slack", f"Not posted to the channel: {why(exc)}")
            return
        chat.posted_seq, self._chat_sent = max(chat.posted_seq, last_seq), summary
        chat.invited = list(dict.fromkeys([*chat.invited, *invite]))
        for text in result.warnings:
            self._event(EventKind.warning, "slack", text)

    async def _chat_drain(self) -> None:
        """Let the channel catch up before this run ends (bounded: Slack may be down)."""
        task = self._chat_task
        if task is None or task.done():
            return
        self._chat_stop = True
        try:
            await workflow.wait_condition(lambda: task.done(), timeout=timedelta(minutes=10),
                                          timeout_summary="chat catches up")
        except TimeoutError:
            pass

    def _chat_summary(self) -> ChatSummary:
        s = self.s
        last = next((e.text for e in reversed(s.timeline) if e.kind == EventKind.status_update), None)
        return ChatSummary(incident_id=s.id, title=s.title, severity=s.severity, phase=s.phase, service=s.service,
                           declared_by=s.declared_by, declared_at=s.declared_at, roles=dict(s.roles),
                           acknowledged_by=s.acknowledged_by, url=s.url, next_update_due=s.next_update_due,
                           last_update=last, resolution_summary=s.resolution_summary)

    def _chat_people(self) -> list[str]:
        s = self.s
        people = [s.declared_by, *s.roles.values()]
        return [p for p in dict.fromkeys(people) if p and p not in (SYSTEM, "alertmanager", "grafana", "generic")]


def fatal(exc: ActivityError) -> bool:
    cause = exc.cause
    if not isinstance(cause, ApplicationError) or not cause.details:
        return False
    detail = cause.details[0]
    return isinstance(detail, dict) and bool(detail.get("fatal"))
