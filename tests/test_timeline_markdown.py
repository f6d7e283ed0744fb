"""`timeline --markdown` (and `?format=markdown`): the postmortem's raw material, checked by parsing it as
Markdown (CommonMark plus GitHub's tables and strikethrough), not by string shape alone."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from domain import policy
from domain.models.common import EventKind, Phase, Role, Severity
from domain.models.incident import IncidentState, TimelineEvent

T0 = datetime(2026, 3, 6, 23, 50, tzinfo=UTC)
MIN = timedelta(minutes=1)
MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])
KUBECTL = "NAME                        READY   STATUS             RESTARTS\n" \
          "checkout-7d9f8b6c4-2xkqp    0/1     CrashLoopBackOff   7\n" \
          "checkout-7d9f8b6c4-9mzlt    1/1     Running            0"
LOGS = "2026-03-06T23:51:02Z ERROR pool exhausted (400 waiters)\n" \
       "    at db.Pool.acquire (pool.go:212)\n\n" \
       "2026-03-06T23:51:03Z WARN retrying `SELECT 1` * 3"


def ev(seq: int, minutes: int, kind: EventKind, actor: str, text: str) -> TimelineEvent:
    return TimelineEvent(seq=seq, at=T0 + minutes * MIN, kind=kind, actor=actor, text=text)


def incident(**changes: object) -> IncidentState:
    timeline = [
        ev(1, 0, EventKind.declared, "alice", "Declared SEV1 on checkout: Checkout failing"),
        ev(2, 3, EventKind.note, "bob", "pods crashlooping:\n" + KUBECTL),
        ev(3, 5, EventKind.status_update, "carol", "Checkout failing for ~40% of users; rollback in progress"),
        ev(4, 6, EventKind.note, "carol", "Checkout failing for ~40% of users; rollback in progress"),
        ev(5, 12, EventKind.action, "runbook", f"Step 2 kubernetes.logs: 3 lines\n```\n{LOGS}\n```"),
        ev(6, 80, EventKind.phase, "alice", "Phase monitoring → resolved: rolled back deploy 4812"),
    ]
    base: dict[str, object] = dict(
        id="incident-20260306-2350-checkout", title="Checkout failing", service="checkout", severity=Severity.SEV1,
        phase=Phase.resolved, declared_at=T0, declared_by="alice", acknowledged_by="bob", acknowledged_at=T0 + 4 * MIN,
        resolved_at=T0 + 80 * MIN, roles={Role.ic: "alice", Role.lead: "bob", Role.comms: "carol"},
        description="Payments fail with 502 since deploy 4812.", resolution_summary="Rolled back deploy 4812.\n"
        "Pool size raised to 40.", pages=3, timeline=timeline)
    return IncidentState.model_validate(base | changes)


def one_note(text: str, actor: str = "bob", **changes: object) -> str:
    """The Markdown of an incident whose timeline is this one note (and no other fenced text)."""
    return policy.render_markdown(incident(timeline=[ev(1, 0, EventKind.note, actor, text)], resolution_summary="",
                                           **changes))


def blocks(markdown: str) -> list[Token]:
    """Top-level blocks: paragraph/heading inline tokens, fences and list items, in order."""
    return [t for t in MD.parse(markdown) if t.type in ("inline", "fence") and t.level <= 3]


def text_of(inline_html: str) -> str:
    """What a reader sees: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", inline_html))


def entries(markdown: str) -> list[Token]:
    return [t for t in blocks(markdown) if t.type == "inline" and re.match(r"\d\d:\d\d UTC - ", t.content)]


# ---------------------------------------------------------------- the timeline

def test_multiline_text_becomes_a_fenced_block_under_its_line() -> None:
    md = policy.render_markdown(incident())
    found = blocks(md)
    note = next(i for i, t in enumerate(found) if t.content.startswith("23:53 UTC - bob:"))
    assert found[note].content == "23:53 UTC - bob: pods crashlooping:", "the first line stays on the event's line"
    assert found[note + 1].type == "fence" and found[note + 1].content == KUBECTL + "\n", "verbatim, columns kept"
    step = next(i for i, t in enumerate(found) if "kubernetes.logs" in t.content)
    assert found[step + 1].type == "fence" and found[step + 1].content == LOGS + "\n", \
        "a runbook's own fence is unwrapped, not nested or squashed"
    assert md.count("```") % 2 == 0 and all(t.type != "code_block" for t in MD.parse(md))


def test_every_event_is_its_own_paragraph_and_no_fence_swallows_the_next() -> None:
    state = incident()
    rendered = entries(policy.render_markdown(state))
    assert len(rendered) == len(state.timeline)
    assert [t.content[:9] for t in rendered] == [f"{e.at:%H:%M} UTC" for e in state.timeline]


def test_status_updates_stand_apart_from_notes() -> None:
    rendered = entries(policy.render_markdown(incident()))
    update, note = rendered[2], rendered[3]
    assert text_of(MD.renderInline(update.content)) == \
        "23:55 UTC - Status update by carol: Checkout failing for ~40% of users; rollback in progress"
    assert "<strong>Status update</strong>" in MD.renderInline(update.content)
    assert "<strong>" not in MD.renderInline(note.content)
    assert text_of(MD.renderInline(note.content)).endswith("carol: Checkout failing for ~40% of users; rollback in progress")


def test_days_are_headed_when_the_incident_crosses_midnight() -> None:
    md = policy.render_markdown(incident())
    assert md.index("### 2026-03-06 (UTC)") < md.index("23:50 UTC - alice") < md.index("### 2026-03-07 (UTC)") \
        < md.index("00:02 UTC - runbook")


def test_a_fence_inside_the_text_gets_a_longer_fence() -> None:
    text = "repro:\n```\ncurl -s localhost\n```\nthen\n````\nnested\n````"
    md = one_note(text)
    fence = next(t for t in blocks(md) if t.type == "fence")
    assert fence.content == text.split("\n", 1)[1] + "\n" and fence.markup == "`````"


def test_dropped_events_are_noted_before_the_timeline() -> None:
    md = policy.render_markdown(incident(timeline_dropped=7))
    assert "_7 older low-priority events were dropped to bound the state._" in md
    assert md.index("dropped") < md.index("23:50 UTC - alice")


# ---------------------------------------------------------------- the header

def header(md: str) -> dict[str, str]:
    items = re.findall(r"^- \*\*(.+?):\*\* (.*)$", md, flags=re.M)
    return {name: text_of(MD.renderInline(value)) for name, value in items}


def test_the_header_says_what_who_when_and_how_long() -> None:
    md = policy.render_markdown(incident())
    assert md.startswith("# Checkout failing\n")
    assert header(md) == {
        "Incident": "incident-20260306-2350-checkout", "Severity": "SEV1", "Service": "checkout",
        "Phase": "resolved", "Declared": "2026-03-06 23:50 UTC by alice",
        "Acknowledged": "2026-03-06 23:54 UTC by bob", "Resolved": "2026-03-07 01:10 UTC",
        "Time to acknowledge": "4 min", "Time to resolve": "1 h 20 min", "Incident commander": "alice",
        "Tech lead": "bob", "Comms lead": "carol", "Pages sent": "3"}
    found = blocks(md)
    summary = next(i for i, t in enumerate(found) if t.content == "Summary")
    assert found[summary + 1].content == "Payments fail with 502 since deploy 4812."
    resolution = next(i for i, t in enumerate(found) if t.content == "Resolution")
    assert found[resolution + 1].type == "fence"
    assert found[resolution + 1].content == "Rolled back deploy 4812.\nPool size raised to 40.\n"


def test_a_stood_down_incident_says_why_and_a_fresh_one_shows_only_what_is_known() -> None:
    ended = T0 + 20 * MIN
    md = policy.render_markdown(incident(phase=Phase.stood_down, resolved_at=None, ended_at=ended,
                                         stand_down_reason="false alarm: a synthetic check", resolution_summary=""))
    facts = header(md)
    assert facts["Phase"] == "stood down" and facts["Stood down"] == "false alarm: a synthetic check"
    assert facts["Ended"] == "2026-03-07 00:10 UTC" and "Time to resolve" not in facts
    assert "## Resolution" not in md
    fresh = header(policy.render_markdown(incident(acknowledged_by=None, acknowledged_at=None, resolved_at=None,
                                                   phase=Phase.triage, roles={}, pages=0, service=None)))
    assert fresh["Service"] == "-" and not {"Acknowledged", "Time to acknowledge", "Incident commander"} & set(fresh)


# ---------------------------------------------------------------- escaping

HOSTILE = "*bold* _em_ [link](http://x) <b>tag</b> `code` &amp; ~~gone~~ # not a heading \\*"


def test_text_from_outside_renders_as_itself() -> None:
    md = one_note(HOSTILE, actor=HOSTILE, title=HOSTILE + " #")
    title = next(t for t in MD.parse(md) if t.type == "heading_open")
    assert title.tag == "h1"
    heading = next(t for t in blocks(md) if t.type == "inline")
    assert text_of(MD.renderInline(heading.content)) == HOSTILE + " #"
    line = MD.renderInline(entries(md)[0].content)
    assert text_of(line) == f"23:50 UTC - {HOSTILE}: {HOSTILE}"
    assert not re.search(r"<(?!/?strong)", line.replace("&lt;", "")), "no tag but our labels"


def test_readable_text_is_left_alone() -> None:
    text = "kube_pod_status_ready < 1 for R&D pods at C:\\temp, see incident-20260306-2350-checkout"
    md = one_note(text)
    assert f"23:50 UTC - bob: {text}" in md.splitlines()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab _*`[]()<>!&#;~|\\-=+.:/\n")), min_size=1, max_size=60))
def test_any_note_renders_as_itself(text: str) -> None:
    md = one_note(text)
    found = entries(md)
    assert len(found) == 1, md
    lines = text.replace("\r", "").strip("\n").split("\n")
    first = " ".join(lines[0].split())
    shown = text_of(MD.renderInline(found[0].content))
    if lines[0].lstrip().startswith(("```", "~~~")):  # opens with a fence: all of it goes under the line
        assert shown == "23:50 UTC - bob:"
    else:
        assert shown == f"23:50 UTC - bob: {first}".rstrip()
    rest = "\n".join(lines[1:]).strip("\n")
    fences = [t for t in MD.parse(md) if t.type in ("fence", "code_block")]
    if rest and not lines[0].lstrip().startswith(("```", "~~~")):
        assert len(fences) == 1 and fences[0].type == "fence"
        unwrapped = re.fullmatch(r"(`{3,}|~{3,})[^\n]*\n(.*)\n\1", rest, flags=re.S)
        if not unwrapped:  # else a step's own fence, unwrapped: its inside is shown
            assert fences[0].content == rest + "\n", "shown verbatim"
