"""The postmortem document, rendered from a Jinja2 template (the built-in ones in TEMPLATE_DIR, or the users').

Templates run in jinja2's sandbox with autoescape off, but every value a template prints goes through the
Markdown escape (`finalize`): a title, a note or a field can never format the page, whatever the template
does. What is already Markdown (markers, prompts, the output of the filters below) is an `Md` and printed as
is. Times are UTC and say so; durations read "1 h 5 min".

What a template gets: `source` (PostmortemSource), `facts`, `fields` (PostmortemFields), `actions` (rows),
`actions_by_kind` (kind value -> rows), `kinds`, `status` ("Draft" …), `now`, `authors`, `duration`,
`ended_at`, `span` (start – end UTC), `timeline` (rows with `.time` and `.text`), `omitted`, `facts_list` ((label, value) pairs),
`hints`; `field(name)` and `inline(name)` (a field between its markers, or its "_To fill_" prompt),
`todo(what)`, `link(text, url)`; filters `md`, `block`, `when`, `day`, `clock`, `dur`, `fill`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from domain.postmortem.models import ActionRow, DraftInput, ItemKind, PostmortemFacts, PostmortemStatus
from domain.postmortem.sections import Md, block, field_texts, inline, prompt, section
from domain.timeline_markdown import duration

TEMPLATE_DIR = Path(__file__).parent / "templates"  # <name>.md.j2 (read by the activity, not here)
MAX_OUTPUT = 1_000_000  # characters: a template that loops wild fails instead of filling a sink
STATUS = {PostmortemStatus.draft: "Draft", PostmortemStatus.in_review: "In review",
          PostmortemStatus.published: "Published"}


class TemplateError(ValueError):
    """A postmortem template that does not compile or fails while rendering; the message names the template
    and, when known, the line."""


class _Row:
    def __init__(self, time: Md, text: str) -> None:
        self.time, self.text = time, text


def render_markdown(template_text: str, draft: DraftInput) -> str:
    """The document: the template filled from the draft, blank-line runs collapsed, one final newline."""
    name = draft.template
    try:
        text = _compiled(template_text).render(**context(draft))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"postmortem template {name!r}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:  # an undefined name, something the sandbox refuses
        raise TemplateError(f"postmortem template {name!r}: {exc}") from None
    except (TypeError, ValueError, LookupError, ArithmeticError, AttributeError) as exc:
        raise TemplateError(f"postmortem template {name!r} failed: {type(exc).__name__}: {exc}") from None
    if len(text) > MAX_OUTPUT:
        raise TemplateError(f"postmortem template {name!r} made {len(text)} characters (max {MAX_OUTPUT})")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def context(draft: DraftInput) -> dict[str, Any]:
    src, facts = draft.source, draft.source.facts
    texts = field_texts(draft.fields)
    ended = facts.resolved_at or facts.ended_at
    by_kind: dict[str, list[ActionRow]] = {k.value: [a for a in draft.actions if a.kind == k] for k in ItemKind}
    days = {_utc(r.at).date() for r in src.timeline}
    clock = when if len(days) > 1 else hhmm

    def field(name: str, wording: str | None = None) -> Md:
        return section(name, texts.get(name, ""), one_line=False, wording=wording)

    def one_line(name: str, wording: str | None = None) -> Md:
        return section(name, texts.get(name, ""), one_line=True, wording=wording)

    return {
        "source": src, "facts": facts, "fields": draft.fields, "actions": draft.actions, "actions_by_kind": by_kind,
        "kinds": [k.value for k in ItemKind], "status": STATUS[draft.status], "now": draft.now,
        "template": draft.template, "authors": authors(draft), "ended_at": ended,
        "duration": duration(ended - facts.started_at) if ended else None, "span": span(facts.started_at, ended),
        "timeline": [_Row(clock(r.at), r.text) for r in src.timeline], "omitted": src.timeline_omitted,
        "facts_list": facts_list(facts), "hints": facts.hints,
        "field": field, "inline": one_line, "todo": prompt, "link": link,
    }


def authors(draft: DraftInput) -> str:
    """The role holders, each once with their roles ("bob (incident commander), alice (tech lead)")."""
    holders: dict[str, list[str]] = {}
    for role, person in draft.source.roles.items():
        holders.setdefault(person, []).append(role.label)
    if not holders:
        return draft.source.declared_by
    return ", ".join(f"{person} ({', '.join(roles)})" for person, roles in holders.items())


def facts_list(f: PostmortemFacts) -> list[tuple[str, str]]:
    """The computed facts as (label, value) lines."""
    def dur(d: timedelta | None) -> str:
        return duration(d) if d is not None else "—"

    level = f" (highest level L{f.max_level})" if f.max_level else ""
    runs = "; ".join(f"{r.runbook} ({r.title}): {r.status.replace('_', ' ')}, by {r.by}" +
                     (" (automatic)" if r.auto else "") for r in f.runbooks) or "none"
    gap = (f"; longest gap {duration(f.longest_update_gap)}" if f.longest_update_gap is not None else "") + \
        (f" (cadence {duration(f.cadence)})" if f.cadence is not None else "")
    return [
        ("Time to detect", dur(f.time_to_detect) if f.detected_at else "— (no alert)"),
        ("Time to acknowledge", dur(f.time_to_acknowledge)),
        ("Time to mitigate", dur(f.time_to_mitigate)),
        ("Time to resolve", dur(f.time_to_resolve)),
        ("Pages sent", f"{f.pages}{level}"),
        ("Runbooks", runs),
        ("Status updates", f"{f.internal_updates} internal, {f.public_updates} public{gap}"),
        ("Alerts", f"{f.alerts} distinct, {f.alert_notifications} notifications"),
    ]


def span(start: datetime, end: datetime | None) -> Md:
    """"2026-03-06 10:02 – 11:10 UTC (1 h 8 min)"; the end's date only when it is another day."""
    if end is None:
        return Md(f"{when(start)} – ongoing")
    same_day = _utc(start).date() == _utc(end).date()
    stop = f"{_utc(end):%H:%M} UTC" if same_day else when(end)
    return Md(f"{_utc(start):%Y-%m-%d %H:%M} – {stop} ({duration(end - start)})")


# ---------------------------------------------------------------------------- filters
def when(at: datetime | None) -> Md:
    return Md(f"{_utc(at):%Y-%m-%d %H:%M} UTC") if at is not None else Md("")


def hhmm(at: datetime | None) -> Md:
    return Md(f"{_utc(at):%H:%M}") if at is not None else Md("")


def day(at: datetime | date | None) -> Md:
    if at is None:
        return Md("")
    return Md(f"{_utc(at):%Y-%m-%d}" if isinstance(at, datetime) else at.isoformat())


def dur(delta: timedelta | None) -> Md:
    return Md(duration(delta)) if delta is not None else Md("—")


def fill(value: object, what: str = "") -> Md:
    """The value escaped, or the "_To fill_" prompt when it is empty (table cells)."""
    text = plain(value)
    return inline(text) if text.strip() else prompt(what)


def link(text: object, url: str | None) -> Md:
    """[text](url) for an http(s) URL; otherwise the text alone."""
    label = inline(plain(text))
    if not url or not re.match(r"^https?://[^\s<>]+$", url):
        return label
    return Md(f"[{label}](<{quote(url, safe=':/?#[]@!$&*+,;=%-._~')}>)")


def plain(value: object) -> str:
    """A value as text: times in UTC with the zone named, durations in words, enums by value."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return str(when(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value)
    return str(value)


def _finalize(value: object) -> str:
    """Every printed value: Markdown as is, anything else escaped."""
    return value if isinstance(value, Md) else inline(plain(value))


def _utc(at: datetime | date) -> datetime:
    if not isinstance(at, datetime):
        return datetime(at.year, at.month, at.day, tzinfo=UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@lru_cache(maxsize=64)
def _compiled(template_text: str) -> jinja2.Template:
    """A template compiled once per text (compiling the default one is ~9 ms of CPU, rendering it ~2 ms); a user's
    edited template is a new text, so it is compiled again. Templates are safe to render from several threads."""
    return _ENV.from_string(template_text)


def _md_filter(fn: Callable[[str], Md]) -> Callable[[object], Md]:
    return lambda value: fn(plain(value))


_ENV = SandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined, finalize=_finalize,
                            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_ENV.filters.update({"md": _md_filter(inline), "cell": _md_filter(inline), "block": _md_filter(block),
                     "when": when, "day": day, "clock": hhmm, "dur": dur, "fill": fill})
