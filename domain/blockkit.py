"""Slack rendering: channel names and Block Kit. Pure functions, no I/O (unit-tested directly).

`mention` turns a person (config id or name) into `<@U…>` when their Slack user is known, else keeps
the name: the adapter builds it from the config and Slack's user lookups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from domain.models.chat import ChannelLink, ChatPost, ChatSummary
from domain.models.common import EventKind, Phase, Role
from domain.text import sentence

Mention = Callable[[str], str]
MAX_CHANNEL_NAME = 80
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]+")

# Button action ids (the interactions endpoint dispatches on these; the value is the incident id).
ACK = "incidentflow.ack"
CLAIM_IC = "incidentflow.claim_ic"
POST_UPDATE = "incidentflow.post_update"
RESOLVE = "incidentflow.resolve"
APPROVE = "incidentflow.runbook_approve"
DENY = "incidentflow.runbook_deny"
PUBLISH_PUBLIC = "incidentflow.public_publish"  # a public update draft: publish it as it is
EDIT_PUBLIC = "incidentflow.public_edit"  # ... or edit it first (a form)
# Modal callback ids
DECLARE_VIEW = "incidentflow.declare"
UPDATE_VIEW = "incidentflow.update"
PUBLIC_VIEW = "incidentflow.public"
PUBLIC_DRAFT_REF = "public:"  # the ref of a draft's timeline event: "public:<incident id>"

_PHASE_ICON = {
    Phase.triage: "🔎", Phase.investigating: "🔎", Phase.identified: "🎯", Phase.mitigating: "🛠️",
    Phase.monitoring: "👀", Phase.resolved: "✅", Phase.postmortem: "📝", Phase.closed: "🔒",
    Phase.stood_down: "⏹️",
}
ENDED = (Phase.resolved, Phase.postmortem, Phase.closed, Phase.stood_down)
_SEV_ICON = {"SEV1": "🔴", "SEV2": "🟠", "SEV3": "🟡", "SEV4": "🔵"}
_KIND_ICON = {
    EventKind.status_update: "📣", EventKind.page: "📟", EventKind.reminder: "⏰", EventKind.warning: "⚠️",
    EventKind.phase: "➡️", EventKind.severity: "🚨", EventKind.role: "👤", EventKind.acknowledged: "👍",
    EventKind.alert: "🔔", EventKind.note: "📝", EventKind.suggestion: "💡", EventKind.action: "⚙️",
    EventKind.approval: "🛑",
}


def sanitize_channel_name(name: str, limit: int = MAX_CHANNEL_NAME) -> str:
    """Slack's rules: lowercase letters, digits, `-` and `_`, at most 80 characters, not blank."""
    clean = _NOT_ALLOWED.sub("-", name.lower())
    clean = re.sub(r"-{2,}", "-", clean).strip("-_")
    return clean[:limit].rstrip("-_") or "incident"


def channel_name(incident_id: str, severity: str, suffix: int = 0) -> str:
    """`incident-YYYYMMDD-HHMM-sevN-<slug>` from an id `incident-YYYYMMDD-HHMM-<slug>[-N]`.

    Ids of another shape keep their text after `incident-`. A suffix (`-2`, `-3`, …) is kept within the
    80-character limit by shortening the slug, never by cutting the suffix off.
    """
    rest = incident_id.removeprefix("incident-")
    match = re.match(r"^(\d{8})-(\d{4})-(.+)$", rest)
    sev = f"sev{severity.strip().upper().removeprefix('SEV')}"
    base = f"incident-{match.group(1)}-{match.group(2)}-{sev}-{match.group(3)}" if match else f"incident-{sev}-{rest}"
    tail = f"-{suffix}" if suffix > 1 else ""
    return sanitize_channel_name(base, MAX_CHANNEL_NAME - len(tail)) + tail


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "—"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:3000]}


def _button(text: str, action_id: str, value: str, style: str | None = None,
            confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id,
                         "value": value}
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = confirm
    return b


def headline(s: ChatSummary) -> str:
    return f"{_SEV_ICON.get(s.severity.value, '')} {s.severity.value} · {s.title}".strip()


def _role_line(s: ChatSummary, mention: Mention) -> str:
    ic = s.roles.get(Role.ic)
    parts = [f"*IC:* {mention(ic) if ic else '_unassigned — claim it_'}"]
    for role in (Role.lead, Role.comms, Role.scribe):
        who = s.roles.get(role)
        label = role.label[0].upper() + role.label[1:]
        parts.append(f"*{label}:* {mention(who) if who else '_unassigned_'}")
    return "   ".join(parts)


def buttons(s: ChatSummary) -> dict[str, Any]:
    elements = []
    if s.phase not in ENDED:
        if not s.acknowledged_by:
            elements.append(_button("Acknowledge", ACK, s.incident_id, style="primary"))
        if not s.roles.get(Role.ic):
            elements.append(_button("Claim IC", CLAIM_IC, s.incident_id))
        elements.append(_button("Post update", POST_UPDATE, s.incident_id))
        elements.append(_button("Resolve", RESOLVE, s.incident_id, style="danger", confirm={
            "title": {"type": "plain_text", "text": "Resolve the incident?"},
            "text": _mrkdwn(f"This resolves *{s.incident_id}*; the monitoring window and paging stop."),
            "confirm": {"type": "plain_text", "text": "Resolve"},
            "deny": {"type": "plain_text", "text": "Cancel"}}))
    return {"type": "actions", "block_id": "incidentflow.actions", "elements": elements}


def summary_message(s: ChatSummary, mention: Mention) -> tuple[str, list[dict[str, Any]]]:
    """The one message kept current in place (chat.update): state at a glance, and the buttons."""
    icon = _PHASE_ICON.get(s.phase, "")
    ack = f"acknowledged by {mention(s.acknowledged_by)}" if s.acknowledged_by else "*not acknowledged*"
    fields = [f"*Phase:* {icon} {s.phase.value}", f"*Service:* {s.service or '—'}",
              f"*Declared:* {_when(s.declared_at)} by {mention(s.declared_by)}", f"*Status:* {ack}"]
    if s.next_update_due and s.phase not in (Phase.resolved, Phase.closed, Phase.stood_down, Phase.postmortem):
        fields.append(f"*Next update due:* {_when(s.next_update_due)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(s)[:150]}},
        {"type": "section", "fields": [_mrkdwn(f) for f in fields]},
        {"type": "section", "text": _mrkdwn(_role_line(s, mention))},
    ]
    if s.last_update:
        blocks.append({"type": "section", "text": _mrkdwn(f"*Last update:* {s.last_update}")})
    if s.resolution_summary and s.phase in (Phase.resolved, Phase.postmortem, Phase.closed):
        blocks.append({"type": "section", "text": _mrkdwn(f"*Resolution:* {s.resolution_summary}")})
    links = [f"`{s.incident_id}`"] + ([f"<{s.url}|Temporal UI>"] if s.url else [])
    blocks.append({"type": "context", "elements": [_mrkdwn(" · ".join(links))]})
    actions = buttons(s)
    if actions["elements"]:
        blocks.append(actions)
    text = f"{headline(s)} — {s.phase.value}, IC {s.roles.get(Role.ic) or 'unassigned'}"
    return text, blocks


def context_message(s: ChatSummary, mention: Mention, runbook: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The pinned context: what, how bad, who declared it, who leads, where to look. Kept current (the
    adapter updates it whenever the summary changes), so the pin never says "unassigned" of a claimed role."""
    comms = s.roles.get(Role.comms)
    ic = s.roles.get(Role.ic)
    open_ = s.phase not in ENDED
    nobody_ic = "unassigned — claim it" if open_ else "none"
    lines = [
        f"*Severity:* {s.severity.value}", f"*Title:* {s.title}", f"*Service:* {s.service or '—'}",
        f"*Phase:* {_PHASE_ICON.get(s.phase, '')} {s.phase.value}",
        f"*Declared by:* {mention(s.declared_by)} at {_when(s.declared_at)}",
        f"*Incident commander:* {mention(ic) if ic else nobody_ic}",
        f"*Comms lead:* {mention(comms) if comms else 'unassigned'}",
    ]
    links = []
    if s.url:
        links.append(f"<{s.url}|Temporal UI>")
    links.append(f"<{runbook}|Runbook>" if runbook else "Runbook: none linked for this service")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Incident context: {headline(s)}"[:150]}},
        {"type": "section", "text": _mrkdwn("\n".join(lines))},
        {"type": "context", "elements": [_mrkdwn(" · ".join(links))]},
        {"type": "context", "elements": [_mrkdwn("Type `/incident help` for commands. Updates are posted here; "
                                                 "the summary message below stays current.")]},
    ]
    text = f"{headline(s)} — {s.phase.value}; declared by {s.declared_by}; IC {ic or nobody_ic}"
    return text, blocks


def pinned_message(s: ChatSummary, mention: Mention, runbook: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The channel's one pinned message, kept current in place: what, how bad, where it stands, who leads,
    where to look, and the buttons (the context and the summary in one message: one post and one
    chat.update per change instead of two)."""
    open_ = s.phase not in ENDED
    ic = s.roles.get(Role.ic)
    ack = f"acknowledged by {mention(s.acknowledged_by)}" if s.acknowledged_by else "*not acknowledged*"
    lines = [f"*Severity:* {s.severity.value}", f"*Title:* {s.title}", f"*Service:* {s.service or '—'}",
             f"*Phase:* {_PHASE_ICON.get(s.phase, '')} {s.phase.value}", f"*Status:* {ack}",
             f"*Declared by:* {mention(s.declared_by)} at {_when(s.declared_at)}",
             f"*Incident commander:* {mention(ic) if ic else ('unassigned — claim it' if open_ else 'none')}"]
    for role in (Role.comms, Role.lead, Role.scribe):
        who = s.roles.get(role)
        lines.append(f"*{role.label[0].upper() + role.label[1:]}:* {mention(who) if who else 'unassigned'}")
    if s.next_update_due and open_:
        lines.append(f"*Next update due:* {_when(s.next_update_due)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(s)[:150]}},
        {"type": "section", "text": _mrkdwn("\n".join(lines))},
    ]
    if s.last_update:
        blocks.append({"type": "section", "text": _mrkdwn(f"*Last update:* {s.last_update}")})
    if s.resolution_summary and s.phase in (Phase.resolved, Phase.postmortem, Phase.closed):
        blocks.append({"type": "section", "text": _mrkdwn(f"*Resolution:* {s.resolution_summary}")})
    links = [f"`{s.incident_id}`"] + ([f"<{s.url}|Temporal UI>"] if s.url else [])
    links.append(f"<{runbook}|Runbook>" if runbook else "Runbook: none linked for this service")
    blocks += [{"type": "context", "elements": [_mrkdwn(" · ".join(links))]},
               {"type": "context", "elements": [_mrkdwn("Type `/incident help` for commands. This message stays "
                                                        "current; updates are posted below.")]}]
    actions = buttons(s)
    if actions["elements"]:
        blocks.append(actions)
    return f"{headline(s)} — {s.phase.value}, IC {ic or 'unassigned'}", blocks


def announcement(s: ChatSummary, channel_id: str, mention: Mention) -> tuple[str, list[dict[str, Any]]]:
    """The post in the shared incidents channel, linking to the incident channel; updated as it goes."""
    state = _PHASE_ICON.get(s.phase, "") + " " + s.phase.value
    text = f"{headline(s)} — join <#{channel_id}>"
    line = (f"*{headline(s)}*\n{state} · {s.service or 'no service'} · declared by {mention(s.declared_by)}"
            f" · IC {mention(s.roles[Role.ic]) if s.roles.get(Role.ic) else 'unassigned'}\nJoin <#{channel_id}>")
    if s.resolution_summary and s.phase in (Phase.resolved, Phase.postmortem, Phase.closed):
        line += f"\n*Resolution:* {s.resolution_summary}"
    return text, [{"type": "section", "text": _mrkdwn(line)}]


def post_message(p: ChatPost, mention: Mention) -> tuple[str, list[dict[str, Any]] | None]:
    """One timeline event as a channel message; status updates stand out, reminders and pages mention."""
    icon = _KIND_ICON.get(p.kind, "•")
    who = mention(p.actor) if p.actor not in ("incidentflow", "escalation") else p.actor
    if p.kind == EventKind.status_update:
        text = f"📣 *Status update* from {who}:\n{p.text}"
        return text, [{"type": "section", "text": _mrkdwn(text)}]
    if p.kind == EventKind.approval and p.ref:  # a runbook waits: Approve / Deny right here
        return approval_message(p, mention)
    if p.kind == EventKind.suggestion and p.ref and p.ref.startswith(PUBLIC_DRAFT_REF):
        return public_draft_message(p, mention)
    text = f"{icon} {p.text}"
    if p.mention:
        # the event text names the person ("→ alice", "Paged alice"): lead with the mention
        text = f"{icon} {mention(p.mention)} {p.text}"
    if p.actor not in ("incidentflow", "escalation") and p.kind not in (EventKind.alert,):
        text += f" — {who}"
    return text, None


def has_buttons(p: ChatPost) -> bool:
    """A post whose message carries buttons (an approval request, a public update draft): its own message,
    its ts kept to close it once answered."""
    return bool(p.ref) and (p.kind == EventKind.approval
                            or (p.kind == EventKind.suggestion and (p.ref or "").startswith(PUBLIC_DRAFT_REF)))


def posts_message(posts: list[ChatPost], mention: Mention) -> tuple[str, list[dict[str, Any]] | None]:
    """Several timeline events as one message, a line (or more) each, in order; one event as `post_message`."""
    if len(posts) == 1:
        return post_message(posts[0], mention)
    return "\n".join(post_message(p, mention)[0] for p in posts), None


def public_draft_message(p: ChatPost, mention: Mention) -> tuple[str, list[dict[str, Any]]]:
    """A public update draft for the comms lead: Publish as it is, or Edit it first."""
    iid = (p.ref or "").removeprefix(PUBLIC_DRAFT_REF)
    text = f"📰 {mention(p.mention) + ' ' if p.mention else ''}{p.text}"
    return text, [
        {"type": "section", "text": _mrkdwn(text)},
        {"type": "actions", "block_id": f"incidentflow.public.{p.seq}", "elements": [
            _button("Publish", PUBLISH_PUBLIC, iid, style="primary"), _button("Edit", EDIT_PUBLIC, iid)]}]


def approval_question(p: ChatPost, mention: Mention) -> str:
    """What an approval request asks, with the approvers @-mentioned (what stays once it is answered)."""
    asked = " ".join(mention(person) for person in dict.fromkeys(p.mentions))
    return f"🛑 {asked + ' ' if asked else ''}{p.text}"


def approval_message(p: ChatPost, mention: Mention) -> tuple[str, list[dict[str, Any]]]:
    """An approval request: the approvers mentioned, the buttons, and the `/incident` way to decide."""
    question = approval_question(p, mention)
    how = (f"Approve or Deny with the buttons, or type `/incident approve {p.ref}` or "
           f"`/incident deny {p.ref} [reason]` here.")
    return f"{question}\n{how}", [
        {"type": "section", "text": _mrkdwn(question)},
        {"type": "actions", "block_id": f"incidentflow.approval.{p.seq}", "elements": [
            _button("Approve", APPROVE, p.ref or "", style="primary"),
            _button("Deny", DENY, p.ref or "", style="danger")]},
        {"type": "context", "elements": [_mrkdwn(how)]}]


def page_message(incident_id: str, summary: str, reason: str, incident_url: str | None,
                 channel: ChannelLink | None) -> tuple[str, str, list[dict[str, Any]]]:
    """A page as a direct message: (what it says for good, its text, its blocks with Acknowledge).

    The first part is what stays once the page is answered (`closed_message`); the call to act goes."""
    where = (f"Join <#{channel.id}>." if channel is not None
             else "You will be invited to the incident channel once it is open.")
    link = f" <{incident_url}|Temporal UI>" if incident_url else ""
    said = f"📟 You are paged for *{summary}* (`{incident_id}`, {reason or 'manual'}). {where}{link}"
    act = "Acknowledge to stop the escalation."
    return said, f"{said}\n{act}", [
        {"type": "section", "text": _mrkdwn(said)},
        {"type": "actions", "block_id": "incidentflow.page", "elements": [
            _button("Acknowledge", ACK, incident_id, style="primary")]},
        {"type": "context", "elements": [_mrkdwn(act)]}]


def closed_message(said: str, outcome: str, ok: bool) -> tuple[str, list[dict[str, Any]]]:
    """A message whose question was answered: what it asked, then who did what and when; no buttons."""
    done = f"{'✅' if ok else '⛔'} {sentence(outcome)}"
    return f"{said}\n{done}", [{"type": "section", "text": _mrkdwn(said)},
                                {"type": "context", "elements": [_mrkdwn(done)]}]


def timeline_text(events: list[tuple[datetime, str, str, str]], limit: int = 20) -> str:
    """`/incident timeline`: the last events, one line each (time UTC, actor, text)."""
    shown = events[-limit:]
    lines = [f"`{at:%H:%M}` *{actor}* — {text}" for at, _, actor, text in shown]
    more = f"_…{len(events) - limit} earlier events_\n" if len(events) > limit else ""
    return more + "\n".join(lines) if lines else "No events yet."
