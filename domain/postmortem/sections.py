"""The postmortem document's round trip: the fields people fill sit between markers, so the text can be
read back (publish) and one field replaced (`postmortem set`) without touching anything else people wrote.

    <!-- incidentflow:root_cause -->
    The queue had no bound …
    <!-- /incidentflow:root_cause -->

A field's text is escaped when written (it can never format the page or fake a marker) and unescaped when
read back, so `fields_in(rendered)` gives back what was set. Lines are trimmed and runs of spaces and of
blank lines collapse: that is the only normalisation. The action items table has its own markers
(`<!-- incidentflow:actions -->`); `domain.postmortem.actions_table` reads it.
"""

from __future__ import annotations

import re
from datetime import date

from domain.postmortem.models import PostmortemFields
from domain.timeline_markdown import escape

ACTIONS = "actions"
FIELDS: tuple[str, ...] = tuple(PostmortemFields.model_fields)
# The "_To fill: …_" prompt an empty field shows (templates may pass their own wording).
PROMPTS: dict[str, str] = {
    "summary": "what happened, in two or three sentences",
    "impact": "who or what was affected, how badly and for how long",
    "users_affected": "how many users, which ones",
    "failed_requests": "how many requests failed (from the dashboards)",
    "revenue": "revenue lost or at risk",
    "tickets": "support tickets opened",
    "root_cause": "system conditions, not a person: what made this possible",
    "trigger": "the change or event that set it off (system conditions, not a person)",
    "detection": "how we found out, and how we could have found out sooner",
    "resolution": "what stopped the impact, and what made it last",
    "went_well": "what worked: tools, people, process",
    "improve": "what slowed us down or went wrong",
    "lucky": "what could have made it worse, and didn't",
    "lessons": "what we learned",
    "review_date": "YYYY-MM-DD",
    "reviewers": "who reviews it",
}
# What the block fields are (the rest sit on one line: counts, dates, names).
INLINE = frozenset({"users_affected", "failed_requests", "revenue", "tickets", "review_date", "reviewers"})

_PUNCT = "!-/:-@\\[-`{-~"
_UNESCAPE = re.compile(f"\\\\([{_PUNCT}])")
_LEADING = re.compile(r"^([#>+=\-|])")  # would start a heading, quote, list, setext underline or table
_ORDERED = re.compile(r"^(\d{1,9})([.)])")  # an ordered list item
_CLOSING = re.compile(r"(\s)(#+)$")  # a heading's closing sequence
_PROMPT = re.compile(r"^_To fill(?::[^\n]*)?_$")
# A marker escaped in a value (`\<!-- …`) is text, not a marker.
_SECTION = re.compile(r"(?<!\\)<!-- incidentflow:([a-z_]+) -->(.*?)(?<!\\)<!-- /incidentflow:\1 -->", re.S)


class Md(str):
    """Text that is already Markdown (escaped values, markers, prompts): printed as is."""


# ---------------------------------------------------------------------------- escaping
def inline(text: str) -> Md:
    """One line of text that renders as itself, wherever it lands: in a sentence, a table cell, a heading, or
    at the start of a line (no emphasis, code, links, HTML, table cells, headings or list items)."""
    line = escape(" ".join(text.split())).replace("|", r"\|")
    line = _ORDERED.sub(r"\1\\\2", _LEADING.sub(r"\\\1", line))
    line = _CLOSING.sub(lambda m: m.group(1) + m.group(2).replace("#", r"\#"), line)
    return Md(line + "\\" if line.endswith("\\") else line)  # a last backslash must not escape what follows


def block(text: str) -> Md:
    """Text with line breaks: each line escaped as `inline`, paragraphs kept (one blank line between)."""
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = inline(raw)
        if line or (out and out[-1]):
            out.append(line)
    return Md("\n".join(out).strip("\n"))


def unescape(text: str) -> str:
    """What escaped Markdown reads as: a backslash before punctuation goes (CommonMark's rule)."""
    return _UNESCAPE.sub(r"\1", text)


def prompt(what: str = "") -> Md:
    """The visible "to fill" prompt of an empty field or cell."""
    return Md(f"_To fill: {inline(what)}_" if what else "_To fill_")


def is_prompt(text: str) -> bool:
    return bool(_PROMPT.match(text.strip()))


# ---------------------------------------------------------------------------- sections
def section(name: str, value: str, *, one_line: bool | None = None, wording: str | None = None) -> Md:
    """A field between its markers: the escaped value, or the prompt when it is empty."""
    if name not in FIELDS:
        raise ValueError(f"unknown postmortem field {name!r}: one of {', '.join(FIELDS)}")
    one_line = name in INLINE if one_line is None else one_line
    body = (inline(value) if one_line else block(value)) if value.strip() else prompt(
        PROMPTS[name] if wording is None else wording)
    inner = body if one_line else f"\n{body}\n"
    return Md(f"<!-- incidentflow:{name} -->{inner}<!-- /incidentflow:{name} -->")


def fields_in(markdown: str) -> dict[str, str]:
    """Every field found between its markers, as text (prompts read as empty). The first section of a name
    counts; names that are not fields (the actions) are left out."""
    found: dict[str, str] = {}
    for match in _SECTION.finditer(markdown):
        name, body = match.group(1), match.group(2)
        if name in FIELDS and name not in found:
            found[name] = _text_of(body)
    return found


def _text_of(body: str) -> str:
    lines = [line.strip() for line in body.strip().split("\n")]
    if len(lines) == 1 and is_prompt(lines[0]):
        return ""
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(unescape(" ".join(line.split())))
    return "\n".join(out).strip("\n")


def with_fields(markdown: str, updates: dict[str, str]) -> str:
    """The document with only these fields replaced (each in the layout it has: on one line or as a block);
    every other edit people made stays. A field whose markers people deleted is an error naming it."""
    unknown = sorted(set(updates) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown postmortem field(s) {', '.join(unknown)}: one of {', '.join(FIELDS)}")
    present = {m.group(1) for m in _SECTION.finditer(markdown)}
    missing = [name for name in updates if name not in present]
    if missing:
        listed = ", ".join(f"<!-- incidentflow:{n} --> … <!-- /incidentflow:{n} -->" for n in missing)
        raise ValueError(f"the document has no {', '.join(missing)} section (its markers were deleted: {listed}); "
                         "put the markers back around the section, or edit the document directly")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in updates:
            return match.group(0)
        one_line = "\n" not in match.group(2)
        return section(name, updates[name], one_line=one_line)

    return _SECTION.sub(replace, markdown)


def missing_sections(markdown: str) -> list[str]:
    """The fields (and the action items) a document has no markers for: a user's template may leave some
    out; `postmortem set` on those fails, so say it when drafting."""
    present = {m.group(1) for m in _SECTION.finditer(markdown)}
    return [name for name in (*FIELDS, ACTIONS) if name not in present]


# ---------------------------------------------------------------------------- fields <-> text
def field_texts(fields: PostmortemFields) -> dict[str, str]:
    """The fields as the document holds them: text (dates as YYYY-MM-DD, reviewers comma-separated)."""
    texts: dict[str, str] = {}
    for name in FIELDS:
        value = getattr(fields, name)
        if isinstance(value, date):
            texts[name] = value.isoformat()
        elif isinstance(value, list):
            texts[name] = ", ".join(value)
        else:
            texts[name] = "" if value is None else str(value)
    return texts


def fields_of(texts: dict[str, str], base: PostmortemFields | None = None) -> tuple[PostmortemFields, list[str]]:
    """The fields read back from a document (on top of `base`), and what could not be read (a review date
    that is not YYYY-MM-DD): that field keeps its earlier value."""
    values = (base or PostmortemFields()).model_dump()
    problems: list[str] = []
    for name, text in texts.items():
        if name not in FIELDS:
            continue
        if name == "review_date":
            try:
                values[name] = date.fromisoformat(text) if text else None
            except ValueError:
                problems.append(f"review date {text[:40]!r} is not a date (YYYY-MM-DD)")
        elif name == "reviewers":
            values[name] = [p.strip().lstrip("@") for p in re.split(r"[,;]", text) if p.strip()]
        else:
            values[name] = text
    return PostmortemFields.model_validate(values), problems
