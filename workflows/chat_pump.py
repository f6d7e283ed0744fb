"""The incident's chat pump (a mixin of IncidentWorkflow): the Slack channel, kept current beside the run loop.

It opens the channel, then syncs: the summary and the pinned context in place, new timeline events
posted, new role holders and paged people invited, messages with buttons closed once answered (a page's
Acknowledge, a runbook's Approve/Deny, whichever route answered). One chat activity at a time, so posts
keep the timeline's order; a rate-limited or broken Slack never delays the incident's timers. What must
survive a restart (channel, message ts, what was posted) lives in `IncidentState.chat` and
`IncidentState.buttons`; the rest is rebuilt on replay.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.chat import ChatActivities
    from domain import policy
    from domain.models.chat import ButtonMessage, ChatOpenInput, ChatPost, ChatSummary, ChatSyncInput
    from domain.models.common import EventKind
    from domain.models.messages import ChannelOpened
    from workflows import options
    from workflows.incident_core import CHAT, SYSTEM, IncidentCore, why
    from workflows.wake_order import WakeOrder

MAX_POSTS_PER_SYNC = 20
# chat-current (0.1.2): paged people are invited, the escalation is told the channel once it opens, and
# messages with buttons are closed once answered. Each changes when the pump runs an activity.
PATCH_CHAT_CURRENT = "chat-current"


class ChatPump(IncidentCore):
    """Chat behaviour of IncidentWorkflow (whose run loop starts the pump and drains it at the end)."""

    async def _chat_pump(self) -> None:
        """Opens the incident channel, then keeps it current: summary in place, timeline posted.

        Runs beside the run loop so a rate-limited or broken Slack never delays the incident's timers.
        State that must survive a restart (channel, message ts, what was posted) is in `self.s.chat`.
        """
        WakeOrder.enter(CHAT)
        s = self.s
        self._chat_current = self._chat_current_patched()
        if s.chat is None and not s.chat_checked:
            await self._open_chat()
        while s.chat is not None and not s.chat.broken:
            await self._order.until(lambda: self._chat_stop or self._chat_pending())
            if not self._chat_pending():
                return
            await self._chat_sync()

    def _chat_current_patched(self) -> bool:
        return self._patched(PATCH_CHAT_CURRENT)

    async def _open_chat(self) -> None:
        """Open (or reuse) the channel once; a worker without chat answers None and chat stays off."""
        s = self.s
        summary = self._chat_summary()
        before = s.seq
        try:
            room = await self._order.settle(workflow.execute_activity_method(
                ChatActivities.open_chat, ChatOpenInput(summary=summary, invite=self._chat_people()),
                summary="Open the incident channel", **options.CHAT))
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
        opened = self._event(EventKind.action, "slack", f"Incident channel #{room.channel_name} opened"
                             + (f": {room.channel_url}" if room.channel_url else ""))
        # Events handled meanwhile are posted now, after the line above; otherwise the context message
        # the channel opened with says it all.
        room.posted_seq = covered if meanwhile else s.seq
        room.opened_seq = opened.seq
        for text in warnings:
            self._event(EventKind.warning, "slack", text)
        link = self._channel_link()
        if self._chat_current and link is not None and s.escalation_active and s.escalation_id:
            self._escalation_signals.append(ChannelOpened(channel=link))  # its next pages link the channel

    def _chat_pending(self) -> bool:
        chat = self.s.chat
        if chat is None or chat.broken:
            return False
        return (any(e.seq > chat.posted_seq for e in self.s.timeline[-MAX_POSTS_PER_SYNC * 5:])
                or self._chat_summary() != self._chat_sent
                or any(p not in chat.invited for p in self._chat_people())
                or bool(self._answered()))

    async def _chat_sync(self) -> None:
        s, chat = self.s, self.s.chat
        assert chat is not None
        summary = self._chat_summary()
        posts, last_seq = self._chat_posts()
        invite = [p for p in self._chat_people() if p not in chat.invited]
        close = self._answered()
        changed = summary != self._chat_sent
        inp = ChatSyncInput(incident_id=s.id, room=chat.model_copy(update={"warnings": []}),
                            summary=summary if changed else None, shown=self._chat_sent if changed else None,
                            posts=posts, invite=invite, close=close)  # `shown`: only the messages it differs in
        what = (f"{len(posts)} post(s)" + (", summary" if inp.summary else "") + (", invites" if invite else "")
                + (f", {len(close)} answered" if close else ""))
        try:
            result = await self._order.settle(workflow.execute_activity_method(ChatActivities.sync_chat, inp,
                                                            summary=f"Slack: {what}", **options.CHAT))
        except ActivityError as exc:
            self._chat_synced(last_seq, summary, invite, [b.ts for b in close])  # given up: never retried forever
            if fatal(exc):
                chat.broken = why(exc)
                self._event(EventKind.warning, "slack", f"Channel updates stopped: {chat.broken}")
            else:
                self._event(EventKind.warning, "slack", f"Not posted to the channel: {why(exc)}")
            return
        self._chat_synced(last_seq, summary, invite, result.closed)
        if self._chat_current:
            for button in result.buttons:
                self._keep_buttons(button)
        for text in result.warnings:
            self._event(EventKind.warning, "slack", text)

    def _chat_synced(self, last_seq: int, summary: ChatSummary, invite: list[str], closed: list[str]) -> None:
        chat = self.s.chat
        assert chat is not None
        chat.posted_seq, self._chat_sent = max(chat.posted_seq, last_seq), summary
        chat.invited = list(dict.fromkeys([*chat.invited, *invite]))
        for button in self.s.buttons:
            if button.ts in closed:
                button.closed = True

    def _chat_posts(self) -> tuple[list[ChatPost], int]:
        """The timeline events not posted yet (at most MAX_POSTS_PER_SYNC), in the order the channel should
        read them, and the last seq they cover. The "channel opened" line goes first: what happened while the
        channel was being created (an auto-run's diagnostics) follows it. Alert churn is one digest, where
        its first alert was."""
        s, chat = self.s, self.s.chat
        assert chat is not None
        posts: list[ChatPost] = []
        alerts: list[str] = []
        last_seq = alert_seq = chat.posted_seq
        digest_at: int | None = None
        for e in s.timeline:
            if e.seq <= chat.posted_seq:
                continue
            if len(posts) >= MAX_POSTS_PER_SYNC:
                break
            last_seq = e.seq
            if e.kind == EventKind.alert:  # alert churn is one message per sync, not one per alert
                alerts.append(e.text)
                alert_seq = e.seq  # the digest's dedup key: never the seq of another event it would shadow
                digest_at = len(posts) if digest_at is None else digest_at
                continue
            post = ChatPost(seq=e.seq, at=e.at, kind=e.kind, actor=e.actor, text=e.text, mention=e.subject,
                            mentions=e.mentions, ref=e.ref)
            if e.seq == chat.opened_seq:
                digest_at = None if digest_at is None else digest_at + 1
                posts.insert(0, post)
            else:
                posts.append(post)
        if alerts and digest_at is not None:
            more = f" (+{len(alerts) - 10} more)" if len(alerts) > 10 else ""
            posts.insert(digest_at, ChatPost(seq=alert_seq, at=workflow.now(), kind=EventKind.alert, actor="alerts",
                                             text="; ".join(alerts[:10]) + more))
        return posts, last_seq

    def _answered(self) -> list[ButtonMessage]:
        """Messages with buttons whose question has been answered, by any route, and not closed yet."""
        if not self._chat_current:
            return []
        out = []
        for button in self.s.buttons:
            if not button.closed and button.outcome is None:
                answer = self._answer(button)
                if answer is not None:
                    out.append(button.model_copy(update={"outcome": answer[0], "ok": answer[1]}))
            elif not button.closed:
                out.append(button)
        return out

    def _answer(self, button: ButtonMessage) -> tuple[str, bool] | None:
        """(who did what and when, was it a yes) once the question is answered; None while it is open."""
        s = self.s
        if button.kind == "page":
            if s.acknowledged_by:
                at = f" at {s.acknowledged_at:%H:%M} UTC" if s.acknowledged_at else ""
                return f"Acknowledged by {s.acknowledged_by}{at}", True
            if s.phase not in policy.ACTIVE:
                return f"Nothing to acknowledge any more: the incident is {s.phase.value.replace('_', ' ')}", True
            return None
        # an approval: the run's next report is its decision (approved, denied, timed out)
        answer = next((e for e in s.timeline if e.ref == button.ref and e.seq > button.seq
                       and e.kind != EventKind.approval), None)
        if answer is None:
            return None
        return answer.text, answer.kind != EventKind.warning

    async def _chat_drain(self) -> None:
        """Let the channel catch up before this run ends (bounded: Slack may be down)."""
        task = self._chat_task
        if task is None or task.done():
            return
        self._chat_stop = True
        try:
            await self._order.until(lambda: task.done(), timeout=timedelta(minutes=10),
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
        """Who belongs in the channel: the declarer, the role holders and (chat-current) whoever was paged or
        is asked to approve a runbook step (everyone the channel @-mentions can read it)."""
        s = self.s
        called: list[str] = []
        if self._chat_current:
            called = [*s.paged, *(m for e in s.timeline if e.kind == EventKind.approval for m in e.mentions)]
        people = [s.declared_by, *s.roles.values(), *called]
        return [p for p in dict.fromkeys(people) if p and p not in (SYSTEM, "alertmanager", "grafana", "generic")]


def fatal(exc: ActivityError) -> bool:
    cause = exc.cause
    if not isinstance(cause, ApplicationError) or not cause.details:
        return False
    detail = cause.details[0]
    return isinstance(detail, dict) and bool(detail.get("fatal"))
