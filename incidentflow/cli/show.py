"""How `show`, `list` and `timeline` print an incident for a person at a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from domain import policy
from domain.models import EventKind, IncidentState, IncidentSummary, Phase

LIST_COLUMNS = ("ID", "SEV", "PHASE", "SERVICE", "IC", "AGE", "TITLE")
_WIDTHS = (44, 5, 13, 12, 10, 7)


def age(delta: timedelta) -> str:
    """`45s`, `12m`, `3h05m`, `2d04h`: how long ago, in at most two units."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes}m"
    if days == 0:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{days}d{hours % 24:02d}h"


def print_list(rows: list[IncidentSummary], as_json: bool, now: datetime | None = None) -> None:
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        print("no incidents match", file=sys.stderr)
        return
    now = now or datetime.now(UTC)
    print(_row(LIST_COLUMNS))
    for r in rows:
        print(_row((r.id, r.severity.value if r.severity else "?", r.phase.value if r.phase else "?",
                    r.service or "-", r.commander or "-", age(now - r.declared_at) if r.declared_at else "?",
                    r.title)))


def _row(cells: tuple[str, ...]) -> str:
    return " ".join(f"{c:<{w}}" for c, w in zip(cells, _WIDTHS)) + " " + cells[-1]


def print_timeline(state: IncidentState, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in state.timeline], indent=2))
    elif args.markdown:
        print(policy.render_markdown(state), end="")
    else:
        for e in state.timeline:
            print(f"{e.at:%Y-%m-%d %H:%M:%S} UTC  {e.kind.value:<14} {e.actor}: {e.text}")


def print_state(state: IncidentState) -> None:
    roles = ", ".join(f"{r.value}={p}" for r, p in state.roles.items()) or "none"
    ack = f"{state.acknowledged_by} at {state.acknowledged_at:%H:%M} UTC" if state.acknowledged_at else "no"
    print(f"{state.id}  {state.severity.value}  {state.phase.value}  {state.title}")
    if state.url:
        print(f"  link: {state.url}")
    print(f"  service: {state.service or '-'}   declared: {state.declared_at:%Y-%m-%d %H:%M} UTC "
          f"by {state.declared_by}")
    print(f"  roles: {roles}   acknowledged: {ack}")
    for line in _outcome(state):
        print(f"  {line}")
    print(f"  last status update: {_last_update(state)}")
    if state.next_update_due:
        print(f"  next status update due: {state.next_update_due:%H:%M} UTC")
    if state.postmortem_due:
        print(f"  postmortem due: {state.postmortem_due:%Y-%m-%d %H:%M} UTC")
    print(f"  allowed next phases: {', '.join(p.value for p in policy.allowed_next(state.phase)) or '-'}")
    if state.alerts:
        print(f"  alerts: {len(state.alerts)} distinct, {state.alerts_received} received")
    if state.chat:
        broken = f" (updates stopped: {state.chat.broken})" if state.chat.broken else ""
        print(f"  slack: #{state.chat.channel_name} {state.chat.channel_url or ''}{broken}".rstrip())
    for run in state.runbooks:
        waiting = f": waiting for approval: {run.awaiting}" if run.awaiting else ""
        print(f"  runbook {run.run_id}  {run.runbook}  {run.status.value}{waiting}")


def _outcome(state: IncidentState) -> list[str]:
    """How it ended (or was resolved): when, and why."""
    lines = []
    if state.phase == Phase.stood_down:
        ended = f" at {state.ended_at:%Y-%m-%d %H:%M} UTC" if state.ended_at else ""
        lines.append(f"stood down{ended}: {state.stand_down_reason or '(no reason given)'}")
    if state.resolved_at:
        lines.append(f"resolved at {state.resolved_at:%Y-%m-%d %H:%M} UTC: "
                     f"{state.resolution_summary or '(no summary given)'}")
    if state.phase == Phase.closed and state.ended_at:
        lines.append(f"closed at {state.ended_at:%Y-%m-%d %H:%M} UTC")
    return lines


def _last_update(state: IncidentState, limit: int = 300) -> str:
    update = next((e for e in reversed(state.timeline) if e.kind == EventKind.status_update), None)
    if update is None:
        return f"at {state.last_update_at:%H:%M} UTC" if state.last_update_at else "none yet"
    text = " ".join(update.text.split())  # one line
    text = text if len(text) <= limit else text[:limit].rstrip() + " …"
    return f"{update.at:%H:%M} UTC by {update.actor}: {text}"
