"""ActionItemWorkflow: one follow-up, tracked to completion.

It holds the item (owner, due date, priority, kind, status), reminds its owner one business day before it is
due, on the day, then weekly while it is overdue (`domain.actions.schedule`), and keeps its ticket in a tracker
in step: creating the item creates the ticket (idempotent on the item's id, so a retried activity finds the
ticket an earlier attempt made), finishing the item closes it, and the tracker's signed webhook closing the
ticket finishes the item. Owner, status, due date and incident are search attributes (the Temporal UI filters
by them) and the item's summary is the memo, so `action list` reads visibility without waking any worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.action_items import ActionActivities
    from activities.archive import ArchiveActivities
    from activities.notify import IncidentActivities
    from domain.actions.models import (
        ActionItem,
        ActionItemStart,
        DoneInput,
        DropInput,
        DueInput,
        ItemResult,
        ItemStatus,
        TicketChange,
        TicketClosed,
        TicketInput,
    )
    from domain.actions.schedule import next_reminder, reminder_schedule, reminder_text
    from domain.models import NotifyInput
    from workflows import options
    from workflows import search_attributes as sa

PATCH_ARCHIVE = "archive"  # 0.3: items are written to the archive (histories from before never were)
HISTORY_KEPT = 50  # lines of the item's own history
CONTINUE_AFTER = 2000  # history events: a long-overdue item's weekly reminders never grow it without bound


def memo_of(item: ActionItem) -> dict[str, object]:
    """What `action list` shows, read from visibility."""
    return {"item": item.model_dump(mode="json", exclude={"history"})}


@workflow.defn(name="ActionItemWorkflow")
class ActionItemWorkflow:
    @workflow.init
    def __init__(self, start: ActionItemStart) -> None:
        self.item = start.item
        self._remind_at = start.remind_at
        self._changed = False
        self._tracker_closed = False  # the tracker closed the ticket: do not close it again
        self._events: set[str] = set()  # webhook deliveries seen (a redelivery changes nothing)
        self._archive_due = True  # the archive has it as it is now? (reports count open items too)

    @workflow.run
    async def run(self, start: ActionItemStart) -> ActionItem:
        self._publish()
        if start.tracker and self.item.ticket is None:
            await self._open_ticket()
        while self.item.status == ItemStatus.open:
            await self._archive()
            if workflow.info().get_current_history_length() > CONTINUE_AFTER:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(ActionItemStart(item=self.item, tracker=False, remind_at=self._remind_at))
            self._changed = False
            nxt = next_reminder(self.item, self._remind_at, workflow.now())
            if nxt is None:
                await workflow.wait_condition(lambda: self._changed)
                continue
            at, index = nxt
            wait = at - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._changed, timeout=wait,
                                                  timeout_summary=f"reminder {index + 1} to {self.item.owner}")
                    continue  # something changed (a new due date, done): compute the next reminder again
                except TimeoutError:
                    pass
            if self.item.status == ItemStatus.open:
                await self._remind(index)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._sync_ticket()
        self._publish()
        self._archive_due = True
        await self._archive()
        return self.item

    # ---------------------------------------------------------------- commands
    @workflow.update
    def done(self, cmd: DoneInput) -> ItemResult:
        note = f": {cmd.note}" if cmd.note else ""
        self._close(ItemStatus.done, cmd.by, f"done{note}")
        return self._result()

    @done.validator
    def _check_done(self, cmd: DoneInput) -> None:
        self._check_open("mark it done")

    @workflow.update
    def drop(self, cmd: DropInput) -> ItemResult:
        self.item.reason = cmd.reason
        self._close(ItemStatus.dropped, cmd.by, f"not doing it: {cmd.reason}")
        return self._result()

    @drop.validator
    def _check_drop(self, cmd: DropInput) -> None:
        self._check_open("drop it")
        if not cmd.reason.strip():
            raise ValueError("dropping an action item needs a reason (--reason)")

    @workflow.update
    def set_due(self, cmd: DueInput) -> ItemResult:
        old, self.item.due = self.item.due, cmd.due
        # a new date: its reminders start over (before, on the day, overdue), from the next one still ahead
        self.item.reminders = sum(1 for at in reminder_schedule(cmd.due, self._remind_at) if at <= workflow.now())
        self._note(cmd.by, f"due {old:%Y-%m-%d} → {cmd.due:%Y-%m-%d}")
        self._changed = self._archive_due = True
        self._publish()
        return self._result()

    @set_due.validator
    def _check_due(self, cmd: DueInput) -> None:
        self._check_open("change its due date")
        today = workflow.now().astimezone(UTC).date()
        if cmd.due < today:
            raise ValueError(f"due: {cmd.due:%Y-%m-%d} is in the past (today is {today:%Y-%m-%d} UTC)")
        if cmd.due == self.item.due:
            raise ValueError(f"due: it is already due {cmd.due:%Y-%m-%d}")

    @workflow.signal
    def ticket_closed(self, event: TicketClosed) -> None:
        """The tracker's webhook: the ticket was closed (the item is done) or reopened."""
        ticket = self.item.ticket
        if event.event_id in self._events or ticket is None or (ticket.tracker, ticket.key) != (event.tracker, event.key):
            return
        if event.event_id:
            self._events.add(event.event_id)
        if event.closed and self.item.status == ItemStatus.open:
            self._tracker_closed = True
            self._close(ItemStatus.done, event.by, f"done: {ticket.tracker} ticket {ticket.key} was closed")

    @workflow.query
    def get(self) -> ActionItem:
        return self.item

    # ---------------------------------------------------------------- the work
    def _check_open(self, what: str) -> None:
        if self.item.status != ItemStatus.open:
            raise ValueError(f"cannot {what}: {self.item.aid} is already {self.item.status.value}")

    def _close(self, status: ItemStatus, by: str, text: str) -> None:
        self.item.status, self.item.closed_by, self.item.closed_at = status, by, workflow.now()
        self._note(by, text)
        self._changed = True
        self._publish()

    async def _archive(self) -> None:
        """The archive keeps every item (open ones too: reports count them); a write per change."""
        if not self._archive_due or not workflow.patched(PATCH_ARCHIVE):
            return
        self._archive_due = False
        try:
            await workflow.execute_activity_method(ArchiveActivities.archive_action, self.item,
                                                   summary=f"Archive {self.item.aid}", **options.ARCHIVE)
        except ActivityError:
            self._note("incidentflow", "not archived (the records store is unavailable)")

    def _note(self, by: str, text: str) -> None:
        stamp = workflow.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        self.item.history = [*self.item.history[1 - HISTORY_KEPT:], f"{stamp} UTC {by}: {text}"]

    def _result(self) -> ItemResult:
        i = self.item
        return ItemResult(aid=i.aid, status=i.status, text=i.text, due=i.due, ticket=i.ticket)

    def _publish(self) -> None:
        i = self.item
        due = datetime.combine(i.due, datetime.min.time(), tzinfo=UTC)
        workflow.upsert_search_attributes([
            sa.ACTION_OWNER.value_set(i.owner), sa.ACTION_STATUS.value_set(i.status.value),
            sa.ACTION_INCIDENT.value_set(i.incident_id), sa.ACTION_DUE.value_set(due)])
        workflow.upsert_memo(memo_of(i))
        workflow.set_current_details(
            f"**{i.status.value}** · {i.priority.value} {i.kind.value} · owner {i.owner} · due {i.due:%Y-%m-%d}"
            + (f" · [{i.ticket.key}]({i.ticket.url})" if i.ticket else "") + f"\n\n{i.text}")

    async def _open_ticket(self) -> None:
        i = self.item
        ticket = TicketInput(aid=i.aid, incident_id=i.incident_id, title=i.text, owner=i.owner, due=i.due,
                             priority=i.priority, kind=i.kind,
                             body=f"Action item {i.aid} from incident {i.incident_id} ({i.kind.value}, "
                                  f"{i.priority.value}), owner {i.owner}, due {i.due:%Y-%m-%d}.\n\n{i.text}")
        try:
            ref = await workflow.execute_activity_method(
                ActionActivities.open_ticket, ticket, summary=f"Ticket for {i.aid}", **options.TRACKER)
        except ActivityError as exc:
            self._note("incidentflow", f"no ticket: {exc.cause or exc}")
            return
        if ref is not None:
            self.item.ticket = ref
            self._note("incidentflow", f"ticket {ref.key}: {ref.url}")
            self._publish()

    async def _sync_ticket(self) -> None:
        """The item is closed here: close its ticket too (unless the tracker closed it)."""
        i = self.item
        if i.ticket is None or self._tracker_closed:
            return
        why = f"Not doing it: {i.reason}" if i.status == ItemStatus.dropped else "Done"
        change = TicketChange(ticket=i.ticket, close=True, comment=f"{why} (incidentflow, {i.closed_by}).")
        try:
            await workflow.execute_activity_method(ActionActivities.change_ticket, change,
                                                   summary=f"Close {i.ticket.key}", **options.TRACKER)
        except ActivityError as exc:
            self._note("incidentflow", f"ticket {i.ticket.key} not closed: {exc.cause or exc}")

    async def _remind(self, index: int) -> None:
        i = self.item
        i.reminders, i.last_reminder_at = index + 1, workflow.now()
        text = reminder_text(i, workflow.now().astimezone(UTC).date())
        self._note("incidentflow", f"reminded {i.owner}")
        message = NotifyInput(incident_id=i.incident_id, dedup_key=f"{i.aid}:reminder:{index}",
                              kind="action_item_due", recipient=i.owner, text=text)
        try:
            await workflow.execute_activity_method(IncidentActivities.send_notification, message,
                                                   summary=f"Remind {i.owner} of {i.aid}", **options.NOTIFY)
        except ActivityError:
            pass  # undeliverable for an hour: the next reminder is already scheduled
        self._publish()
