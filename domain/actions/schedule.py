"""When an action item's owner hears about it: one business day before it is due, on the day, then weekly
while it is overdue (our users review open and overdue items weekly). Pure: the workflow asks for the next
reminder from its state, so restarts and continue-as-new carry nothing but the count of reminders sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from domain.actions.models import ActionItem, ItemStatus

OVERDUE_EVERY = timedelta(days=7)
MAX_OVERDUE_REMINDERS = 26  # half a year of weekly nagging, then the digest is the only reminder


def previous_business_day(day: date) -> date:
    current = day - timedelta(days=1)
    while current.weekday() >= 5:
        current -= timedelta(days=1)
    return current


def reminder_schedule(due: date, at: time) -> list[datetime]:
    """Every reminder an open item gets, in order (UTC)."""
    def moment(d: date) -> datetime:
        return datetime.combine(d, at, tzinfo=UTC)
    on_day = moment(due)
    return [moment(previous_business_day(due)), on_day,
            *(on_day + OVERDUE_EVERY * (i + 1) for i in range(MAX_OVERDUE_REMINDERS))]


def next_reminder(item: ActionItem, at: time, now: datetime) -> tuple[datetime, int] | None:
    """The next reminder still to send and its index in the schedule: after the last one sent, skipping those
    whose moment passed before the item existed (an item created on its due day gets the on-the-day one only
    if it is not yet past; a missed run of reminders becomes one, now). None once the item is closed."""
    if item.status != ItemStatus.open:
        return None
    schedule = reminder_schedule(item.due, at)
    index = item.reminders
    created = item.created_at if item.created_at.tzinfo else item.created_at.replace(tzinfo=UTC)
    while index < len(schedule) and schedule[index] <= created:
        index += 1
    # after an outage, several moments may be past: send one reminder now, then go on from the next future one
    while index + 1 < len(schedule) and schedule[index + 1] <= now:
        index += 1
    return (schedule[index], index) if index < len(schedule) else None


def reminder_text(item: ActionItem, today: date) -> str:
    days = (item.due - today).days
    if days > 1:
        when = f"is due in {days} days ({item.due:%a %Y-%m-%d})"
    elif days == 1:
        when = f"is due tomorrow ({item.due:%a %Y-%m-%d})"
    elif days == 0:
        when = "is due today"
    else:
        when = f"is overdue by {-days} day{'s' if days != -1 else ''} (was due {item.due:%Y-%m-%d})"
    ticket = f" Ticket: {item.ticket.url}." if item.ticket else ""
    return (f"Action item {item.aid} ({item.priority.value}, {item.kind.value}) from {item.incident_id} {when}: "
            f"{item.text}.{ticket} Done? `incidentflow action done {item.aid}`; not doing it? "
            f"`incidentflow action drop {item.aid} --reason …`; new date? `incidentflow action due {item.aid} YYYY-MM-DD`.")


def overdue(item: ActionItem, today: date) -> bool:
    return item.status == ItemStatus.open and item.due < today
