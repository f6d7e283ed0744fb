"""The postmortem's timeline, folded from the incident's: one row per meaningful event.

What goes: noise (reminders, suggestions, approval prompts, the channel's plumbing warnings, "Paging …"
announcements that a page row repeats, a runbook's "requested" when its "started" follows) and duplicate
status noise (a note repeating the status update just posted). What folds: an alert that resolved and
re-fired (one row "… firing ×N between 10:02 and 10:40 UTC", then its final resolution), and a burst of
different alerts firing together. The rest is bounded: past `max_rows`, decisions (declaration, pages,
acknowledgement, roles, severity, phases, status and public updates) stay, and the other rows are kept from
both ends. Pure and deterministic: it runs inside workflow code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.models.common import EventKind
from domain.models.incident import IncidentState, TimelineEvent
from domain.postmortem.models import TimelineRow

ALERT = re.compile(r"^Alert (firing|resolved): (.+)$", re.S)
NOISE = frozenset({EventKind.reminder, EventKind.suggestion, EventKind.approval})
# Warnings about incidentflow's own plumbing, not about the incident.
PLUMBING = ("Channel updates stopped", "Not posted to the channel", "Stakeholders not told",
            "No public update drafted", "Not auto-published", "Runbooks for this alert not checked")
DECISIONS = frozenset({EventKind.declared, EventKind.acknowledged, EventKind.role, EventKind.severity,
                       EventKind.phase, EventKind.status_update, EventKind.page})
PUBLIC = "Published a public update"
PUBLISHED = re.compile(r"^Published a public update \(([^)]*)\): (.*)$", re.S)
FENCE = re.compile(r"^(`{3,}|~{3,})[^`]*$")
MAX_TEXT = 300
BURST = timedelta(minutes=2)  # different alerts firing this close together are one row
DUPLICATE_WITHIN = timedelta(minutes=10)


@dataclass
class _Row:
    at: datetime
    seq: int
    text: str
    kind: EventKind | None = None
    body: str = ""  # what it says, without who said it (duplicate status noise compares these)
    decision: bool = False
    alert: tuple[str, str] | None = None  # (status, name) of a single alert's row: bursts fold these


def fold(state: IncidentState, max_rows: int = 200) -> tuple[list[TimelineRow], int]:
    """The folded timeline, and how many of the incident's events have no row of their own."""
    events = sorted(state.timeline, key=lambda e: e.seq)
    kept = [e for e in events if not _noise(e, events)]
    rows = _dedupe(_bursts(sorted(_alert_rows(state, kept) + _other_rows(kept), key=lambda r: (r.at, r.seq))))
    rows = _bound(rows, max(0, max_rows))
    return [TimelineRow(at=r.at, text=r.text) for r in rows], len(events) - len(rows)


def _noise(e: TimelineEvent, events: list[TimelineEvent]) -> bool:
    if e.kind in NOISE:
        return True
    if e.kind == EventKind.warning and (e.actor == "slack" or e.text.startswith(PLUMBING)):
        return True
    if e.kind == EventKind.action and e.text.startswith("Paging "):  # the page (or its warning) follows
        return True
    if e.kind == EventKind.action and e.ref and re.match(r"^Runbook \S+ \(.*\) requested", e.text):
        name = e.text.split(" ", 2)[1]
        return any(o.ref == e.ref and o.text.startswith(f"Runbook {name} started") for o in events)
    return False


def _alert_rows(state: IncidentState, events: list[TimelineEvent]) -> list[_Row]:
    """Per alert: its rows as they are, unless it fired more than once (flapping): then one row for the
    churn, plus its final resolution."""
    by_name: dict[str, list[tuple[TimelineEvent, str]]] = {}
    for e in events:
        m = ALERT.match(e.text) if e.kind == EventKind.alert else None
        if m:
            by_name.setdefault(_one_line(m.group(2)), []).append((e, m.group(1)))
    rows: list[_Row] = []
    for name, seen in by_name.items():
        fired = [e for e, status in seen if status == "firing"]
        if len(fired) <= 1:
            rows += [_Row(_utc(e.at), e.seq, _one_line(e.text), alert=(status, name)) for e, status in seen]
            continue
        notifications = sum(a.count for a in state.alerts.values() if a.title == name)
        counted = f"; {notifications} notifications" if notifications > len(seen) else ""
        rows.append(_Row(_utc(fired[0].at), fired[0].seq, _one_line(
            f"Alert {name} firing ×{len(fired)} between {_hm(fired[0].at)} and {_hm(fired[-1].at)} UTC "
            f"(resolved and re-fired {len(fired) - 1} times{counted})")))
        last, status = seen[-1]
        if status == "resolved":
            rows.append(_Row(_utc(last.at), last.seq, _one_line(last.text)))
    return rows


def _other_rows(events: list[TimelineEvent]) -> list[_Row]:
    rows = []
    for e in events:
        if e.kind == EventKind.alert and ALERT.match(e.text):
            continue
        decision = e.kind in DECISIONS or (e.kind == EventKind.action and e.text.startswith(PUBLIC))
        text, body = _text(e)
        rows.append(_Row(_utc(e.at), e.seq, text, kind=e.kind, body=body.casefold(), decision=decision))
    return rows


def _text(e: TimelineEvent) -> tuple[str, str]:
    """The row's text, and what it says without who said it."""
    if e.kind == EventKind.status_update:
        status = next((line[len("Status: "):] for line in e.text.split("\n") if line.startswith("Status: ")), None)
        body = _one_line(status if status is not None else _first(e.text))
        return _one_line(f"Status update by {e.actor}: {body}"), body
    public = PUBLISHED.match(e.text) if e.kind == EventKind.action else None
    if public:
        return _one_line(f"Public update ({public.group(1)}) by {e.actor}: {_first(public.group(2))}"), ""
    body = _one_line(_first(e.text))
    if e.kind in (EventKind.page, EventKind.alert, EventKind.warning) or e.actor in ("runbook", "escalation"):
        return body, body
    return _one_line(f"{e.actor}: {body}"), body


def _bursts(rows: list[_Row]) -> list[_Row]:
    """Different alerts changing the same way within BURST of the first: one row naming them."""
    out: list[_Row] = []
    group: list[_Row] = []

    def flush() -> None:
        if len(group) == 1:
            out.append(group[0])
        elif group:
            status = group[0].alert[0] if group[0].alert else ""
            names = [r.alert[1] for r in group if r.alert]
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            out.append(_Row(group[0].at, group[0].seq, _one_line(f"{len(names)} alerts {status}: {shown}")))
        group.clear()

    for row in rows:
        first = group[0] if group else None
        if not (first and first.alert and row.alert and row.alert[0] == first.alert[0]
                and row.at - first.at <= BURST):
            flush()
        if row.alert:
            group.append(row)
        else:
            out.append(row)
    flush()
    return out


def _dedupe(rows: list[_Row]) -> list[_Row]:
    """Duplicate status noise: a note or status update saying what one said shortly before (a note pasting
    the update just posted, an update posted twice), or any row repeating the one before it."""
    out: list[_Row] = []
    talk = (EventKind.note, EventKind.status_update)
    for row in rows:
        prev = out[-1] if out else None
        if prev is not None and prev.text == row.text and row.at - prev.at <= DUPLICATE_WITHIN:
            continue
        if row.kind in talk and row.body and _said_before(out, row):
            continue
        out.append(row)
    return out


def _said_before(out: list[_Row], row: _Row) -> bool:
    """A note or status update saying the same as one within DUPLICATE_WITHIN before it."""
    for r in reversed(out):
        if row.at - r.at > DUPLICATE_WITHIN:
            return False
        if r.kind in (EventKind.note, EventKind.status_update) and r.body == row.body:
            return True
    return False


def _bound(rows: list[_Row], max_rows: int) -> list[_Row]:
    if len(rows) <= max_rows:
        return rows
    decisions = [i for i, r in enumerate(rows) if r.decision]
    others = [i for i, r in enumerate(rows) if not r.decision]
    if len(decisions) >= max_rows:
        keep = set(_ends(decisions, max_rows))
    else:
        keep = set(decisions) | set(_ends(others, max_rows - len(decisions)))
    return [r for i, r in enumerate(rows) if i in keep]


def _ends(indexes: list[int], n: int) -> list[int]:
    """n of the indexes, from both ends (the start and the end of an incident tell the most)."""
    if n <= 0:
        return []
    tail = n // 2
    return indexes[: n - tail] + (indexes[-tail:] if tail else [])


def _first(text: str) -> str:
    """The first line that says something (not a fence), and " (…)" when there is more."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    said = [line for line in lines if not FENCE.match(line)]
    if not said:
        return ""
    return said[0] + (" (…)" if len(lines) > 1 else "")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


def _hm(at: datetime) -> str:
    return f"{_utc(at):%H:%M}"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
