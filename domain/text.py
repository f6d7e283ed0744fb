"""Text that arrives from outside (titles, names, notes) made safe to store, render and log.

A field must never be able to start a new log line, move a terminal's cursor, ring its bell, cut a C
string short or reorder what a reader sees. `single_line` is for titles, names and reasons;
`multi_line` for notes, status updates and descriptions, which keep their line breaks.

What goes, and why:
- controls: C0 (NUL, BEL, ESC, CR, LF, TAB …), DEL and C1 (NEL …): they break lines, drive terminals,
  and end C strings;
- U+2028/U+2029 (line/paragraph separators): line breaks to browsers, JSON-in-JS and some log viewers;
- bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): they make a reader see text
  in another order than it is stored ("Trojan Source");
- U+FEFF (byte-order mark) and U+200B (zero-width space): invisible, so "alice" could differ from "alice";
- lone surrogates: not text, and a UTF-8 log stream cannot encode them (become U+FFFD).

What stays, on purpose: ZWJ/ZWNJ (U+200D/U+200C: emoji sequences such as 👩‍💻, Persian and Indic
scripts) and the implicit direction marks LRM/RLM/ALM (U+200E/U+200F/U+061C: needed by Arabic and
Hebrew text, and they cannot override the order of a run the way U+202E can).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_CONTROLS = "\x00-\x1f\x7f-\x9f"
_LINE_SEPARATORS = "\u2028\u2029"
_BIDI = "\u202a-\u202e\u2066-\u2069"
_INVISIBLE = "\ufeff\u200b"
_SURROGATES = "\ud800-\udfff"

# Every code point a cleaned text never contains: also what log formatters escape.
UNSAFE = re.compile(f"[{_CONTROLS}{_LINE_SEPARATORS}{_BIDI}{_INVISIBLE}{_SURROGATES}]")
_TO_SPACE = re.compile(f"[{_CONTROLS}{_LINE_SEPARATORS}]")
_REMOVED = re.compile(f"[{_BIDI}{_INVISIBLE}]")
_SURROGATE = re.compile(f"[{_SURROGATES}]")
_SPACES = re.compile(" {2,}")
_REPR_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _drop_invisible(s: str) -> str:
    return _SURROGATE.sub("\ufffd", _REMOVED.sub("", s))


def single_line(s: str) -> str:
    """One line of visible text: controls and line breaks become a space, bidi controls and invisible
    characters go, runs of spaces collapse to one, and the ends are trimmed. Idempotent."""
    return _SPACES.sub(" ", _TO_SPACE.sub(" ", _drop_invisible(s))).strip()


def multi_line(s: str) -> str:
    """Text with line breaks: every kind of line break (CRLF, CR, NEL, U+2028 …) becomes "\\n", tabs
    stay (indentation of pasted output), other controls become a space, bidi controls and invisible
    characters go, and the ends are trimmed. Spacing inside lines is kept. Idempotent."""
    lines = _drop_invisible(s).splitlines()
    return "\n".join(_TO_SPACE.sub(lambda m: "\t" if m.group() == "\t" else " ", line) for line in lines).strip()


def escape_unsafe(s: str) -> str:
    """Repr-style escapes (`\\n`, `\\x1b`, `\\u202e`) for every UNSAFE code point, nothing else: for
    text that must be shown as is but stay on one line (log messages). Backslashes are left alone."""
    return UNSAFE.sub(_escape, s)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _REPR_ESCAPES:
        return _REPR_ESCAPES[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ENDS_SENTENCE = re.compile(r"[.!?…](?:[)\]\"'`*_~]*)$")


def sentence(text: str) -> str:
    """`text` ending as a sentence: a full stop is added unless it already ends in . ! ? or … (also
    before closing quotes, brackets or Markdown marks), so "revision?" never becomes "revision?."."""
    text = text.rstrip()
    return text if not text or _ENDS_SENTENCE.search(text) else text + "."


def _single_line_input(value: object) -> object:
    return single_line(value) if isinstance(value, str) else value


def _multi_line_input(value: object) -> object:
    return multi_line(value) if isinstance(value, str) else value


# Cleaning runs before the str schema, so Field(min_length=…, max_length=…) checks the cleaned text:
# `title: SingleLine = Field(..., min_length=1, max_length=200)`; `note: MultiLine = Field("", max_length=4000)`.
SingleLine = Annotated[str, BeforeValidator(_single_line_input)]
MultiLine = Annotated[str, BeforeValidator(_multi_line_input)]
