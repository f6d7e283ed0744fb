"""The incident as Markdown: the raw material of its postmortem (`timeline --markdown`, the API's
`?format=markdown`).

A header (what, who, when, how long), the summary and resolution, then the timeline: one paragraph per
event, `HH:MM UTC - actor: text`, under a heading per UTC day. Multi-line text (kubectl tables, logs,
pasted notes) goes verbatim into a fenced block under its line; status updates carry a label, so they
stand out from notes. Text from outside is escaped, so a title or a note can never format the page.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from domain.models.common import EventKind, Role
from domain.models.incident import IncidentState, TimelineEvent

LABELS: dict[EventKind, str] = {EventKind.status_update: "**Status update** by "}

# Escaped only where they would start Markdown mid-line (text never starts a line: it follows the time
# and actor), so raw output stays readable: `kube_pod_status`, `p99 < 200 ms`, `R&D`, `C:\temp` are left as is.
_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~])")  # a backslash that would escape the next character
_ALWAYS = re.compile(r"([`*\[\]])")  # code spans, emphasis, links and images
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # inside a word `_` is inert
_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # HTML and autolinks
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_FENCE_LINE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def render(state: IncidentState) -> str:
    lines = _header(state)
    lines += _sections(state)
    lines += ["## Timeline", ""]
    if state.timeline_dropped:
        lines += [f"_{state.timeline_dropped} older low-priority events were dropped to bound the state._", ""]
    day: date | None = None
    for event in state.timeline:
        if _utc(event.at).date() != day:
            day = _utc(event.at).date()
            lines += [f"### {day:%Y-%m-%d} (UTC)", ""]
        lines += entry(event)
    return "\n".join(lines).rstrip("\n") + "\n"


def _header(s: IncidentState) -> list[str]:
    facts = [("Incident", f"`{s.id}`"), ("Severity", s.severity.value), ("Service", escape(s.service or "-")),
             ("Phase", s.phase.value.replace("_", " ")),
             ("Declared", f"{_when(s.declared_at)} by {escape(s.declared_by)}")]
    if s.acknowledged_at is not None:
        facts.append(("Acknowledged", f"{_when(s.acknowledged_at)} by {escape(s.acknowledged_by or '-')}"))
    if s.resolved_at is not None:
        facts.append(("Resolved", _when(s.resolved_at)))
    if s.ended_at is not None:
        facts.append(("Ended", _when(s.ended_at)))
    if s.acknowledged_at is not None:
        facts.append(("Time to acknowledge", duration(s.acknowledged_at - s.declared_at)))
    if s.resolved_at is not None:
        facts.append(("Time to resolve", duration(s.resolved_at - s.declared_at)))
    for role in Role:
        if role in s.roles:
            facts.append((role.label.capitalize(), escape(s.roles[role])))
    if s.stand_down_reason:
        facts.append(("Stood down", escape(_one_line(s.stand_down_reason))))
    if s.pages:
        facts.append(("Pages sent", str(s.pages)))
    if s.postmortem_due is not None:
        facts.append(("Postmortem due", _when(s.postmortem_due)))
    title = escape(s.title).replace("#", r"\#")  # a trailing `#` would close the heading
    return [f"# {title}", "", *(f"- **{name}:** {value}" for name, value in facts), ""]


def _sections(s: IncidentState) -> list[str]:
    out: list[str] = []
    for title, text in (("Summary", s.description), ("Resolution", s.resolution_summary)):
        if text.strip():
            out += [f"## {title}", "", *block(text), ""]
    return out


def entry(event: TimelineEvent) -> list[str]:
    """One timeline event: its line, then its multi-line text as a fenced block, then a blank line."""
    lead, body = split_text(event.text)
    label = LABELS.get(event.kind, "")
    line = f"{_utc(event.at):%H:%M} UTC - {label}{escape(event.actor)}:"
    if lead:
        line += f" {escape(lead)}"
    return [line, *(fenced(body) if body else []), ""]


def block(text: str) -> list[str]:
    """A free-text section: one line escaped, several lines fenced (verbatim)."""
    lead, body = split_text(text)
    if not body:
        return [escape(lead)]
    return fenced(f"{lead}\n{body}" if lead else body)


def split_text(text: str) -> tuple[str, str]:
    """(first line, the rest): the first line goes on the event's line, the rest under it. Text that opens
    with a fence goes under the line whole."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if _FENCE_LINE.match(text):
        return "", text
    lead, _, rest = text.partition("\n")
    return _one_line(lead), rest.strip("\n")


def fenced(body: str) -> list[str]:
    """`body` verbatim in a fence longer than any backtick run inside it. A body that already is one
    fenced block (runbook step output) is unwrapped first, keeping its info string."""
    lines = body.split("\n")
    info = ""
    opening = _FENCE_LINE.match(lines[0])
    if opening and len(lines) >= 2 and lines[-1].strip() == opening.group(1) and not any(
            line.strip().startswith(opening.group(1)) for line in lines[1:-1]):
        info = lines[0].strip()[len(opening.group(1)):].strip()
        lines = lines[1:-1]
    runs = [len(run) for line in lines for run in re.findall(r"`+", line)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    info = re.sub(r"[`\s].*", "", info)  # an info string may not hold backticks; keep its first word
    return [f"{fence}{info}", *lines, fence]


def escape(text: str) -> str:
    """Inline text that renders as itself: no code spans, emphasis, links, HTML or entities."""
    text = _BACKSLASH.sub(r"\\\\", text)
    text = _ALWAYS.sub(r"\\\1", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _TAG.sub(r"\\<", text)
    if text.count("~") >= 2:  # strikethrough needs a pair
        text = text.replace("~", r"\~")
    return _ENTITY.sub(r"\\&", text)


def duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "",
             f"{mins} min" if mins or not (days or hours) else ""]
    return " ".join(p for p in parts if p)


def _when(at: datetime) -> str:
    return f"{_utc(at):%Y-%m-%d %H:%M} UTC"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _one_line(text: str) -> str:
    return " ".join(text.split())
