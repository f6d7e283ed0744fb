"""ActionItemWorkflow's durable timers on the time-skipping server: a reminder one business day before the due
date, one on the day, then weekly while overdue; done stops them, a new due date starts them over; the ticket
is opened once and closed when the item is, and the tracker closing it finishes the item."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.action_items import ActionActivities
from activities.archive import ArchiveActivities
from activities.notify import IncidentActivities, LogNotifier
from domain.actions.models import (
    ActionItem,
    ActionItemStart,
    DoneInput,
    DropInput,
    DueInput,
    ItemStatus,
    TicketChange,
    TicketClosed,
    TicketInput,
    TicketRef,
)
from domain.actions.schedule import next_reminder, previous_business_day, reminder_schedule
from domain.config import IncidentflowConfig
from domain.postmortem.models import ItemKind, Priority
from workflows.action_item import ActionItemWorkflow

AT = time(9, 0)
ARCHIVE: MemoryArchive  # set below the class


class CountingTracker:
    """A tracker port that records what it was asked (the HTTP trackers have their own tests)."""

    kind = "github"

    def __init__(self) -> None:
        self.created: list[TicketInput] = []
        self.changes: list[TicketChange] = []

    async def create(self, ticket: TicketInput) -> TicketRef:
        self.created.append(ticket)
        return TicketRef(tracker="github", key=str(len(self.created)), url=f"https://gh.example/i/{len(self.created)}")

    async def change(self, change: TicketChange) -> None:
        self.changes.append(change)


@asynccontextmanager
async def item_worker(env: WorkflowEnvironment, tracker: CountingTracker | None = None,
                      config: IncidentflowConfig | None = None) -> AsyncIterator[tuple[str, LogNotifier]]:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    notifier = LogNotifier()
    cfg = config or IncidentflowConfig.model_validate({"people": [{"id": "alice", "name": "Alice", "github": "alice-gh"}]})
    actions = ActionActivities(lambda: cfg, tracker)
    archive = ArchiveActivities(lambda: ARCHIVE, lambda: cfg)
    async with Worker(env.client, task_queue=queue, workflows=[ActionItemWorkflow],
                      activities=[IncidentActivities(notifier).send_notification, actions.open_ticket,
                                  actions.change_ticket, actions.send_digest, archive.archive_action],
                      workflow_failure_exception_types=[Exception]):
        yield queue, notifier


def next_monday(after: date, weeks: int = 2) -> date:
    day = after + timedelta(days=7 * weeks)
    return day - timedelta(days=day.weekday())


def an_item(now: datetime, due: date, aid: str = "ai-aaaabbbb") -> ActionItem:
    return ActionItem(aid=aid, incident_id="incident-20261207-0100-checkout", text="Alert on queue depth",
                      owner="alice", due=due, priority=Priority.P1, kind=ItemKind.detect, created_at=now,
                      created_by="bob")


async def reminders(notifier: LogNotifier) -> list[str]:
    return [m.dedup_key for m in notifier.delivered if m.kind == "action_item_due"]


def test_the_schedule_is_the_business_day_before_the_day_then_weekly() -> None:
    due = date(2026, 12, 14)  # a Monday: the business day before is Friday
    schedule = reminder_schedule(due, AT)
    assert previous_business_day(due) == date(2026, 12, 11)
    assert schedule[:4] == [datetime(2026, 12, 11, 9, tzinfo=UTC), datetime(2026, 12, 14, 9, tzinfo=UTC),
                            datetime(2026, 12, 21, 9, tzinfo=UTC), datetime(2026, 12, 28, 9, tzinfo=UTC)]
    created = datetime(2026, 12, 12, 8, tzinfo=UTC)  # after Friday's reminder: the first is on the day
    item = an_item(created, due)
    assert next_reminder(item, AT, created) == (schedule[1], 1)
    late = datetime(2027, 1, 20, tzinfo=UTC)  # a worker down for weeks: one reminder now, not a burst
    assert next_reminder(item, AT, late) == (schedule[6], 6)  # the latest moment passed, Jan 18
    assert next_reminder(item.model_copy(update={"status": ItemStatus.done}), AT, created) is None


async def test_reminders_before_on_the_day_and_weekly_overdue_until_done(ts_env: WorkflowEnvironment) -> None:
    tracker = CountingTracker()
    async with item_worker(ts_env, tracker) as (queue, notifier):
        now = datetime.now(UTC)
        due = next_monday(now.date())
        item = an_item(now, due)
        handle = await ts_env.client.start_workflow(ActionItemWorkflow.run, ActionItemStart(item=item, remind_at=AT),
                                                    id=item.aid, task_queue=queue)
        schedule = reminder_schedule(due, AT)
        assert await reminders(notifier) == []
        await ts_env.sleep(schedule[0] - now + timedelta(minutes=1))
        assert await reminders(notifier) == [f"{item.aid}:reminder:0"]
        text = next(m.text for m in notifier.delivered if m.kind == "action_item_due")
        assert text.startswith(f"Action item {item.aid} (P1, detect) from incident-20261207-0100-checkout is due")
        assert "https://gh.example/i/1" in text and m_recipient(notifier) == "alice"
        await ts_env.sleep(schedule[1] - schedule[0])
        assert await reminders(notifier) == [f"{item.aid}:reminder:{i}" for i in range(2)]
        await ts_env.sleep(timedelta(days=15))  # two weeks overdue: two weekly reminders
        assert await reminders(notifier) == [f"{item.aid}:reminder:{i}" for i in range(4)]
        overdue = [m.text for m in notifier.delivered if m.kind == "action_item_due"][-1]
        assert "is overdue by 14 days" in overdue

        result = await handle.execute_update(ActionItemWorkflow.done, DoneInput(by="bob", note="alert added"))
        assert result.status == ItemStatus.done
        final = await handle.result()
        assert final.status == ItemStatus.done and final.closed_by == "bob"
        await ts_env.sleep(timedelta(days=30))
        assert len(await reminders(notifier)) == 4, "no reminder after done"
        assert len(tracker.created) == 1 and tracker.created[0].owner_handle == "alice-gh"
        assert tracker.changes == [TicketChange(ticket=final.ticket, close=True, comment="Done (incidentflow, bob).")]
        archived = ARCHIVE.items[item.aid]
        assert archived.status == ItemStatus.done and archived.ticket == final.ticket, "the archive has the outcome"


def m_recipient(notifier: LogNotifier) -> str | None:
    return next(m.recipient for m in notifier.delivered if m.kind == "action_item_due")


async def test_a_new_due_date_restarts_the_reminders_and_past_dates_are_refused(ts_env: WorkflowEnvironment) -> None:
    async with item_worker(ts_env) as (queue, notifier):
        now = datetime.now(UTC)
        due = next_monday(now.date())
        item = an_item(now, due, aid="ai-ccccdddd")
        handle = await ts_env.client.start_workflow(ActionItemWorkflow.run, ActionItemStart(item=item, remind_at=AT),
                                                    id=item.aid, task_queue=queue)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ActionItemWorkflow.set_due, DueInput(by="bob", due=now.date() - timedelta(days=1)))
        assert "is in the past" in str(refused.value.cause)
        later = due + timedelta(days=28)
        await handle.execute_update(ActionItemWorkflow.set_due, DueInput(by="bob", due=later))
        await ts_env.sleep(reminder_schedule(due, AT)[1] - now + timedelta(hours=1))
        assert await reminders(notifier) == [], "the old dates no longer remind"
        await ts_env.sleep(reminder_schedule(later, AT)[0] - reminder_schedule(due, AT)[1])
        assert len(await reminders(notifier)) == 1
        assert (await handle.query(ActionItemWorkflow.get)).due == later
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(ActionItemWorkflow.drop, DropInput.model_construct(by="bob", reason=" "))
        assert "reason" in str(refused.value.cause)  # blank after trimming: refused by the input model
        await handle.execute_update(ActionItemWorkflow.drop, DropInput(by="bob", reason="service retired"))
        final = await handle.result()
        assert final.status == ItemStatus.dropped and final.reason == "service retired"


async def test_the_tracker_closing_the_ticket_finishes_the_item_once(ts_env: WorkflowEnvironment) -> None:
    tracker = CountingTracker()
    async with item_worker(ts_env, tracker) as (queue, _):
        now = datetime.now(UTC)
        item = an_item(now, next_monday(now.date()), aid="ai-eeeeffff")
        handle = await ts_env.client.start_workflow(ActionItemWorkflow.run, ActionItemStart(item=item, remind_at=AT),
                                                    id=item.aid, task_queue=queue)
        while (await handle.query(ActionItemWorkflow.get)).ticket is None:
            await ts_env.sleep(timedelta(seconds=1))
        await handle.signal(ActionItemWorkflow.ticket_closed, TicketClosed(tracker="jira", key="1", by="jira:x"))
        assert (await handle.query(ActionItemWorkflow.get)).status == ItemStatus.open, "another tracker's ticket"
        event = TicketClosed(tracker="github", key="1", by="github:octocat", event_id="d-1")
        await handle.signal(ActionItemWorkflow.ticket_closed, event)
        await handle.signal(ActionItemWorkflow.ticket_closed, event)  # a redelivery
        final = await handle.result()
        assert final.status == ItemStatus.done and final.closed_by == "github:octocat"
        assert tracker.changes == [], "the tracker closed it: not closed again"


class MemoryArchive:
    """The archive port of the worker (the records store has its own tests): what was written, by aid."""

    def __init__(self) -> None:
        self.items: dict[str, ActionItem] = {}

    def put_action(self, item: ActionItem, team: str | None) -> None:
        self.items[item.aid] = item


ARCHIVE = MemoryArchive()
