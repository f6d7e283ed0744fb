"""The action items, read back from the postmortem's tables (on publish each row becomes an item).

Rows come from the tables between `<!-- incidentflow:actions -->` and `<!-- /incidentflow:actions -->` (the
whole document when people deleted the markers). A table is an actions table when its header names an action
and an owner column. The kind comes from a Kind/Type column, else from the heading above the table
("### Detect"); the owner is `@alice` or `alice`; due is YYYY-MM-DD; priority P0–P2. Empty rows and "_To fill_"
placeholders are skipped; every row that lacks what an item needs is named in the problems, so people can fix
the document before publishing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from domain.actions.models import AID_PATTERN
from domain.postmortem.models import ActionRow, ItemKind, Priority
from domain.postmortem.sections import ACTIONS, is_prompt, unescape

KINDS: dict[str, ItemKind] = {
    "fix": ItemKind.fix, "fixes": ItemKind.fix, "mitigate": ItemKind.fix, "mitigation": ItemKind.fix,
    "repair": ItemKind.fix, "detect": ItemKind.detect, "detection": ItemKind.detect, "monitoring": ItemKind.detect,
    "alerting": ItemKind.detect, "prevent": ItemKind.prevent, "prevention": ItemKind.prevent,
    "process": ItemKind.process, "other": ItemKind.process,
}
MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                      "dec"), 1)}
MAX_ACTION = 500
_MARKED = re.compile(rf"(?<!\\)<!-- incidentflow:{ACTIONS} -->(.*?)(?:(?<!\\)<!-- /incidentflow:{ACTIONS} -->|$)", re.S)
_DELIMITER = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")
_NAMED = re.compile(r"^(?:(\d{1,2})\s+([a-z]{3,9})|([a-z]{3,9})\s+(\d{1,2}))$")
_PRIORITY = re.compile(r"^p?([0-9])$")
_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (  # first match wins, by header words
    ("action", ("action", "follow-up", "follow up", "followup", "what")),
    ("owner", ("owner", "who", "assignee")),
    ("due", ("due", "deadline", "date")),
    ("priority", ("priority", "prio")),
    ("kind", ("kind", "type", "category", "group")),
    ("aid", ("bug", "ticket", "item id", "id", "tracking")),
)


@dataclass
class _Table:
    columns: dict[str, int]
    kind: ItemKind | None  # from the heading above it
    rows: list[list[str]] = field(default_factory=list)


def parse_actions(markdown: str, default_year: int | None = None) -> tuple[list[ActionRow], list[str]]:
    """The action rows of the document, and the problems of the rows that lack what an item needs. A due
    date without a year ("12-10", "Dec 10") takes `default_year`, when given."""
    rows: list[ActionRow] = []
    problems: list[str] = []
    seen: set[str] = set()
    for table in _tables(_actions_part(markdown)):
        for cells in table.rows:
            row, issues = _row(table, cells, default_year)
            if row is None:
                continue
            name = _short(row.action)
            if row.action.casefold() in seen:
                problems.append(f"row {name!r}: listed twice (the second is left out)")
                continue
            seen.add(row.action.casefold())
            rows.append(row)
            if issues:
                problems.append(f"row {name!r}: {'; '.join(issues)}")
    return rows, problems


def _actions_part(markdown: str) -> str:
    found = _MARKED.search(markdown)
    return found.group(1) if found else markdown


def _tables(text: str) -> list[_Table]:
    """The actions tables, each with the kind its heading names (a table ends at a line without a `|`)."""
    lines = [line.strip() for line in text.split("\n")]
    tables: list[_Table] = []
    kind: ItemKind | None = None
    current: _Table | None = None
    for i, line in enumerate(lines):
        if current is not None and "|" in line:
            if not _DELIMITER.match(line):
                current.rows.append(_cells(line))
            continue
        current = None
        heading = _HEADING.match(line)
        if heading:
            kind = _kind_word(unescape(heading.group(1)), heading=True)
        elif "|" in line and i + 1 < len(lines) and _DELIMITER.match(lines[i + 1]):
            columns = _columns(_cells(line))
            current = _Table(columns, kind)
            if "action" in columns and "owner" in columns:  # other tables are read past, not kept
                tables.append(current)
    return tables


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip() for cell in _CELL_SPLIT.split(line)]


def _columns(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        words = unescape(cell).strip("*_ ").casefold()
        for name, names in _COLUMNS:
            if name not in columns and any(words == n or words.startswith(n + " ") or words.endswith(" " + n)
                                           for n in names):
                columns[name] = index
                break
    return columns


def _row(table: _Table, cells: list[str], default_year: int | None) -> tuple[ActionRow | None, list[str]]:
    def cell(name: str) -> str:
        index = table.columns.get(name)
        text = cells[index] if index is not None and index < len(cells) else ""
        return "" if is_prompt(text) or text.strip() in ("-", "—", "–") else unescape(text).strip()

    action = " ".join(cell("action").split())
    if not action:
        return None, []
    issues: list[str] = []
    if len(action) > MAX_ACTION:
        action = action[: MAX_ACTION - 1] + "…"
        issues.append(f"the action is longer than {MAX_ACTION} characters (cut)")
    owner = _owner(cell("owner"), issues)
    due = _due(cell("due"), default_year, issues)
    priority = _priority(cell("priority"), issues)
    kind = table.kind or ItemKind.fix
    if cell("kind"):
        found = _kind_word(cell("kind"))
        if found is None:
            issues.append(f"kind {cell('kind')[:30]!r} is not fix, detect, prevent or process")
        kind = found or kind
    aid = cell("aid").strip("`")
    return ActionRow(action=action, owner=owner, due=due, priority=priority, kind=kind,
                     aid=aid if re.match(AID_PATTERN, aid) else None), issues


def _owner(text: str, issues: list[str]) -> str | None:
    owner = text.strip("*_` ").lstrip("@")
    if not owner:
        issues.append("no owner")
        return None
    if re.search(r"[,;]|\s(and|&)\s", owner):
        issues.append(f"one owner per item, not {owner[:60]!r}")
        return None
    return owner[:128]


def _due(text: str, default_year: int | None, issues: list[str]) -> date | None:
    raw = text.strip("*_` ").casefold()
    if not raw:
        issues.append("no due date")
        return None
    try:
        if m := _ISO.match(raw):
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if default_year is not None and (m := _MONTH_DAY.match(raw)):
            return date(default_year, int(m.group(1)), int(m.group(2)))
        if default_year is not None and (m := _NAMED.match(raw)):
            day, month = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
            if month[:3] in MONTHS:
                return date(default_year, MONTHS[month[:3]], int(day))
    except ValueError:
        pass
    issues.append(f"due {text[:30]!r} is not a date (YYYY-MM-DD)")
    return None


def _priority(text: str, issues: list[str]) -> Priority | None:
    raw = text.strip("*_` ").casefold()
    if not raw:
        issues.append("no priority")
        return None
    m = _PRIORITY.match(raw)
    if m is None or f"P{m.group(1)}" not in Priority.__members__:
        issues.append(f"priority {text[:20]!r} is not P0, P1 or P2")
        return None
    return Priority(f"P{m.group(1)}")


def _kind_word(text: str, heading: bool = False) -> ItemKind | None:
    """The kind a cell names, or a heading ("### Detect (alerts)"; "Other follow-ups" names none)."""
    words = re.findall(r"[a-z]+", text.casefold())
    if not words or (heading and words[0] == "other"):
        return None
    return KINDS.get(words[0])


def _short(action: str) -> str:
    return action if len(action) <= 60 else action[:59] + "…"
