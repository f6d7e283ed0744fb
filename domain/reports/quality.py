"""Alert quality and follow-through: counts over the rows a report selected (pure, plain loops)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date

from domain.archive.models import ActionItemRow, IncidentRow
from domain.reports.models import NO_TEAM, AlertQuality, FollowThrough, RuleQuality
from domain.reports.stats import rate

NOISIEST = 10
UNACKNOWLEDGED_LISTED = 50


@dataclass(slots=True)
class _Rule:
    incidents: int = 0
    stood_down: int = 0
    paged_unacknowledged: int = 0
    notifications: int = 0

    def model(self, rule: str) -> RuleQuality:
        return RuleQuality(rule=rule, incidents=self.incidents, stood_down=self.stood_down,
                           false_positive_rate=rate(self.stood_down, self.incidents),
                           paged_unacknowledged=self.paged_unacknowledged, notifications=self.notifications)


def alert_quality(rows: Sequence[IncidentRow]) -> AlertQuality:
    """`rows` oldest first. An incident "paged unacknowledged" when it paged someone (pages > 0) and has no
    acknowledgement, stood-down ones included: a page nobody answered is the noise we look for."""
    stood_down = alert_declared = alert_stood_down = 0
    unacknowledged: list[str] = []
    rules: dict[str, _Rule] = {}
    for r in rows:
        stood_down += r.stood_down
        if r.source == "alert":
            alert_declared += 1
            alert_stood_down += r.stood_down
        silent = r.pages > 0 and r.acknowledged_at is None
        if silent:
            unacknowledged.append(r.id)
        if r.alert_rule is not None:
            rule = rules.get(r.alert_rule)
            if rule is None:
                rule = rules[r.alert_rule] = _Rule()
            rule.incidents += 1
            rule.stood_down += r.stood_down
            rule.paged_unacknowledged += silent
            rule.notifications += r.alert_notifications
    by_incidents = sorted(rules.items(), key=lambda kv: (-kv[1].incidents, kv[0]))
    by_noise = sorted(((name, rule) for name, rule in rules.items() if rule.notifications),
                      key=lambda kv: (-kv[1].notifications, -kv[1].incidents, kv[0]))
    return AlertQuality(
        declared=len(rows), stood_down=stood_down, false_positive_rate=rate(stood_down, len(rows)),
        alert_declared=alert_declared, alert_stood_down=alert_stood_down,
        alert_false_positive_rate=rate(alert_stood_down, alert_declared),
        paged_unacknowledged=len(unacknowledged), paged_unacknowledged_ids=unacknowledged[:UNACKNOWLEDGED_LISTED],
        rules=[rule.model(name) for name, rule in by_incidents],
        noisiest=[rule.model(name) for name, rule in by_noise[:NOISIEST]])


@dataclass(slots=True)
class _Tally:
    total: int = 0
    open: int = 0
    overdue: int = 0
    done: int = 0
    on_time: int = 0
    late: int = 0
    dropped: int = 0

    def add(self, item: ActionItemRow, today: date) -> None:
        """open: overdue when due before today. done: on time when its closing date (UTC) is on or before
        the due date, late after it; a done item without a closing date is neither. Dates, not times."""
        self.total += 1
        if item.status == "open":
            self.open += 1
            self.overdue += item.due < today
        elif item.status == "done":
            self.done += 1
            if item.closed_at is not None:
                if item.closed_at.astimezone(UTC).date() <= item.due:
                    self.on_time += 1
                else:
                    self.late += 1
        elif item.status == "dropped":
            self.dropped += 1

    def model(self, team: str | None) -> FollowThrough:
        return FollowThrough(team=team, total=self.total, open=self.open, overdue=self.overdue, done=self.done,
                             done_on_time=self.on_time, done_late=self.late, dropped=self.dropped,
                             on_time_rate=rate(self.on_time, self.on_time + self.late))


def follow_through(items: Sequence[ActionItemRow], today: date) -> tuple[FollowThrough, list[FollowThrough]]:
    """Every item's tally and one per team (no team: "unassigned"), teams by name."""
    everyone = _Tally()
    teams: dict[str, _Tally] = {}
    for item in items:
        everyone.add(item, today)
        team = item.team or NO_TEAM
        tally = teams.get(team)
        if tally is None:
            tally = teams[team] = _Tally()
        tally.add(item, today)
    return everyone.model(None), [teams[t].model(t) for t in sorted(teams)]
