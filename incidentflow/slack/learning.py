"""`/incident postmortem …` and `/incident action …`: postmortems and action items from chat.

    /incident postmortem [show|start [template]|publish]      in the incident channel (or with the incident id)
    /incident postmortem set <field> <text>                    root-cause, impact, went-well, review-date, …
    /incident action add "<text>" @owner <YYYY-MM-DD> [P0|P1|P2] [fix|detect|prevent|process]
    /incident action list [mine|overdue|all]     /incident action show|done|drop|due <id> …

Same calls as the CLI and the HTTP API (`Incidents`), done as the caller's config person, with the Slack
request's key (a replayed request is applied once). Bad input gets what was wrong and the usage to type.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from domain.actions.models import ActionItem, ActionItemInput, DoneInput, DropInput, DueInput, ItemResult
from domain.actions.schedule import overdue
from domain.postmortem.models import (
    ItemKind,
    PostmortemPublishInput,
    PostmortemRequest,
    PostmortemResult,
    PostmortemSetInput,
    PostmortemState,
    PostmortemStatus,
    Priority,
)
from incidentflow.client import (
    CommandRejected,
    IncidentflowError,
    IncidentNotFound,
    NoWorker,
    TemporalUnavailable,
)
from incidentflow.slack.reply import Caller, Reply, Usage, first_error, first_word

if TYPE_CHECKING:
    from incidentflow.slack.gateway import SlackGateway

WORDS = ("postmortem", "action")
_ID = re.compile(r"^incident-[a-z0-9][a-z0-9-]*$")
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})
SECTIONS = ("summary", "impact", "root_cause", "trigger", "detection", "resolution", "went_well", "improve",
            "lessons")
FIELDS = (*SECTIONS, "review_date", "reviewers", "status")
USAGE = {
    "postmortem": "postmortem [show|start [template]|publish]",
    "postmortem set": f"postmortem set <field> <text> (fields: {', '.join(f.replace('_', '-') for f in FIELDS)})",
    "action add": 'action add "<text>" @owner <YYYY-MM-DD> [P0|P1|P2] [fix|detect|prevent|process]',
    "action list": "action list [mine|overdue|all]",
    "action show": "action show <item id>",
    "action done": "action done <item id> [note]",
    "action drop": "action drop <item id> <reason>",
    "action due": "action due <item id> <YYYY-MM-DD>",
}
HELP = {  # the `/incident help` lines (slack/syntax.py)
    "postmortem": ("postmortem [show|start [template]|publish|set <field> <text>]",
                   "the incident's postmortem: show it, start it (any severity), fill a section (root-cause, "
                   "impact, went-well, review-date, …), publish it"),
    "action": ('action add "<text>" @owner <YYYY-MM-DD> [P0-P2] [kind] | list [mine|overdue|all] | '
               "show|done|drop|due <item id> …",
               "action items: add one to the incident, list them, mark one done, drop it with a reason, move "
               "its due date"),
}
_LIST_MAX = 30  # lines in a list reply
_NO_WORKER = ("No incidentflow worker took `{what}` within a few seconds, so it is not done yet: it will apply once "
              "a worker is back. Check before repeating it.")


async def command(gw: SlackGateway, name: str, rest: str, caller: Caller, channel_id: str) -> Reply:
    """`/incident postmortem …` or `/incident action …`: parse, check who may, run, answer."""
    first, after = first_word(rest)
    if name == "action":
        sub = first.lower()
        if f"action {sub}" not in USAGE:
            said = f"Unknown action item command `{first}`." if first else "Say what to do with action items."
            return Reply(said + "\nUsage: " + " or ".join(f"`/incident {u}`" for k, u in USAGE.items()
                                                       if k.startswith("action ")))
        return await _guard(f"action {sub}", USAGE[f"action {sub}"], gw, caller, sub not in ("list", "show"),
                            lambda: _action(gw, sub, after, caller, channel_id))
    ident = ""
    if _ID.match(first):  # `/incident postmortem incident-… show`
        ident, (first, after) = first, first_word(after)
    sub = first.lower() or "show"
    if sub not in ("show", "start", "set", "publish"):
        return Reply(f"Unknown postmortem command `{first}`.\nUsage: `/incident {USAGE['postmortem']}` or "
                     f"`/incident {USAGE['postmortem set']}`")
    after = f"{ident} {after}".strip()
    usage = USAGE["postmortem set" if sub == "set" else "postmortem"]
    return await _guard(f"postmortem {sub}", usage, gw, caller, sub != "show",
                        lambda: _postmortem(gw, sub, after, caller, channel_id))


async def _guard(what: str, usage: str, gw: SlackGateway, caller: Caller, writes: bool,
                 action: Callable[[], Awaitable[Reply]]) -> Reply:
    line = f"Usage: `/incident {usage}`"
    if writes and not gw._may_act(caller):
        return Reply(caller.refusal(f" (add `slack: {caller.user_id}` or your email to your entry in the config), "
                                    "so only `postmortem show` and `action list|show` work for you."))
    try:
        return await action()
    except Usage as exc:
        return Reply(f"{exc}\n{line}")
    except CommandRejected as exc:
        return Reply(f"Rejected: {exc}\n{line}")
    except IncidentNotFound as exc:
        return Reply(f"{exc}. {line}")
    except NoWorker:
        return Reply(_NO_WORKER.format(what=what))
    except TemporalUnavailable:
        return Reply("incidentflow cannot reach Temporal right now; nothing was changed. Try again shortly.")
    except IncidentflowError as exc:
        return Reply(f"Failed: {exc}")
    except ValueError as exc:  # pydantic validation of the input
        return Reply(f"{first_error(exc)}\n{line}")


async def _incident(gw: SlackGateway, rest: str, channel_id: str) -> tuple[str, str]:
    """The incident (the id first in `rest`, else the channel's) and the words after it."""
    first, after = first_word(rest)
    if _ID.match(first):
        return first, after
    found = await gw.incident_for_channel(channel_id)
    if found is None:
        raise Usage("This channel is not an incident channel: add the incident id, e.g. "
                    "`/incident postmortem show incident-20261123-0815-checkout`.")
    return found, rest


# ---------------------------------------------------------------------------------------------- postmortem
async def _postmortem(gw: SlackGateway, sub: str, rest: str, caller: Caller, channel_id: str) -> Reply:
    iid, rest = await _incident(gw, rest, channel_id)
    inc = await gw._incidents()
    key = caller.request_key
    if sub == "show":
        return Reply(postmortem_text(await inc.postmortem(iid)))
    if sub == "start":
        template, _ = first_word(rest)
        state = await inc.start_postmortem(iid, PostmortemRequest(by=caller.actor, template=template or None), key=key)
        where = f": {state.sink.link}" if state.sink else " (the draft follows)"
        return Reply(f"`{iid}`: postmortem started ({state.template or 'template by severity'}){where}. Fill it in "
                     f"there or with `/incident postmortem set root-cause …`, then `/incident postmortem publish`.")
    if sub == "publish":
        return Reply(result_text(await inc.publish_postmortem(iid, PostmortemPublishInput(by=caller.actor), key=key)))
    values = await _set_values(gw, rest, caller)
    return Reply(result_text(await inc.set_postmortem(iid, PostmortemSetInput(by=caller.actor, **values), key=key)))


async def _set_values(gw: SlackGateway, rest: str, caller: Caller) -> dict[str, Any]:
    word, text = first_word(rest)
    field = word.lower().replace("-", "_")
    field = {"reviewer": "reviewers", "root": "root_cause", "wentwell": "went_well", "review": "review_date",
             "improvements": "improve", "lesson": "lessons"}.get(field, field)
    if field not in FIELDS:
        raise Usage(f"Name a field: {', '.join(f.replace('_', '-') for f in FIELDS)}." if not word else
                    f"Unknown field `{word}`: use one of {', '.join(f.replace('_', '-') for f in FIELDS)}.")
    if not text:
        raise Usage(f"Give the text of `{word}` after it.")
    if field == "review_date":
        return {field: _date(text, "the review date")}
    if field == "reviewers":
        return {field: [await gw.people.person_arg(w.rstrip(","), caller) for w in text.split() if w.rstrip(",")]}
    if field == "status":
        status = text.lower().replace("-", "_").replace(" ", "_")
        if status not in ("draft", "in_review"):
            raise Usage("The status is `draft` or `in-review` (publishing is `/incident postmortem publish`).")
        return {field: PostmortemStatus(status)}
    return {field: text}


def postmortem_text(s: PostmortemState) -> str:
    f = s.source.facts
    link = s.link or (s.sink.link if s.sink else "not drafted yet")
    filled = [k.replace("_", " ") for k in SECTIONS if getattr(s.fields, k)]
    lines = [f"*Postmortem of `{s.incident_id}`* — {s.status.value.replace('_', ' ')}, template "
             f"{s.template or '(by severity)'}: {link}",
             f"Filled: {', '.join(filled) or 'nothing yet'}; {f.pages} page(s), {f.internal_updates} update(s)."]
    if s.fields.review_date or s.fields.reviewers:
        when = f"{s.fields.review_date:%Y-%m-%d}" if s.fields.review_date else "no date"
        lines.append(f"Review: {when}; reviewers: {', '.join(s.fields.reviewers) or 'none'}.")
    lines += [f"• {hint}" for hint in f.hints]
    if s.items:
        lines.append(f"Action items: {', '.join(f'`{a}`' for a in s.items)}")
    return "\n".join(lines)


def result_text(r: PostmortemResult) -> str:
    items = f" Action items: {', '.join(f'`{a}`' for a in r.items)}." if r.items else ""
    link = f" {r.link}" if r.link else ""
    warnings = "".join(f"\n⚠️ {w}" for w in r.warnings)
    return f"`{r.incident_id}`: postmortem {r.message or r.status.value}.{link}{items}{warnings}"


# ---------------------------------------------------------------------------------------------- action items
async def _action(gw: SlackGateway, sub: str, rest: str, caller: Caller, channel_id: str) -> Reply:
    inc = await gw._incidents()
    key = caller.request_key
    if sub == "list":
        word = first_word(rest)[0].lower()
        if word not in ("", "mine", "overdue", "all"):
            raise Usage(f"`{word}`: list `mine`, `overdue` or `all` (default: every open item).")
        items = await inc.action_items(open_only=word != "all", overdue_only=word == "overdue",
                                       owner=caller.actor if word == "mine" else None)
        return Reply(items_text(items, word))
    if sub == "add":
        iid, rest = await _incident(gw, rest, channel_id)
        cmd = await _add_input(gw, rest, caller)
        item = await inc.add_action(iid, cmd, key=key)
        return Reply(f"`{item.aid}` added to `{iid}`: {item.text} — owner {item.owner}, due {item.due:%Y-%m-%d}, "
                     f"{item.priority.value} {item.kind.value}. Its owner is reminded before it is due.")
    aid, rest = first_word(rest)
    if not aid:
        raise Usage("Give the item id (`/incident action list` shows them).")
    if sub == "show":
        return Reply(item_text(await inc.action(aid)))
    if sub == "done":
        return Reply(done_text(await inc.action_done(aid, DoneInput(by=caller.actor, note=rest), key=key)))
    if sub == "drop":
        if not rest:
            raise Usage("Give a reason: why is it not being done?")
        return Reply(done_text(await inc.action_drop(aid, DropInput(by=caller.actor, reason=rest), key=key)))
    due = _date(first_word(rest)[0], "the new due date")
    return Reply(done_text(await inc.action_due(aid, DueInput(by=caller.actor, due=due), key=key)))


async def _add_input(gw: SlackGateway, rest: str, caller: Caller) -> ActionItemInput:
    """`"text" @owner 2026-12-10 [P1] [kind]`, read from the end: the text is what comes before the owner."""
    words = rest.translate(_QUOTES).split()
    kind = ItemKind(words.pop().lower()) if words and words[-1].lower() in {k.value for k in ItemKind} else None
    priority = Priority(words.pop().upper()) if words and re.fullmatch(r"(?i)p[0-2]", words[-1]) else None
    if not words or not _DATE.match(words[-1]):
        raise Usage("Give the owner and the due date after the text, e.g. `@alice 2026-12-10 P1`.")
    due = _date(words.pop(), "the due date")
    if len(words) < 2:
        raise Usage("Give the text, then the owner: `\"Add a canary stage\" @alice`.")
    owner = await gw.people.person_arg(words.pop(), caller)
    text = " ".join(words).strip().strip("\"'").strip()
    if not text:
        raise Usage("Say what is to be done, in quotes.")
    return ActionItemInput(text=text, owner=owner, due=due, priority=priority or Priority.P2, kind=kind or ItemKind.fix,
                           by=caller.actor)


def _date(word: str, what: str) -> date:
    try:
        return date.fromisoformat("-".join(p.zfill(2) for p in word.strip().split("-")))
    except ValueError:
        raise Usage(f"`{word or '(nothing)'}` is not a date: give {what} as YYYY-MM-DD, e.g. 2026-12-10.") from None


def items_text(items: list[ActionItem], which: str) -> str:
    title = {"mine": "Your open action items", "overdue": "Overdue action items", "all": "Action items"}.get(
        which, "Open action items")
    if not items:
        return f"*{title}*: none."
    today = datetime.now(UTC).date()
    lines = [f"• `{i.aid}` {i.priority.value} {i.kind.value} — {i.text} — {i.owner}, due {i.due:%Y-%m-%d}"
             + (" *overdue*" if overdue(i, today) else "") + (f" ({i.status.value})" if which == "all" else "")
             + f" · `{i.incident_id}`" for i in items[:_LIST_MAX]]
    more = f"\n… and {len(items) - _LIST_MAX} more (`incidentflow action list`)" if len(items) > _LIST_MAX else ""
    return f"*{title}* ({len(items)}):\n" + "\n".join(lines) + more


def item_text(i: ActionItem) -> str:
    ticket = f"\nTicket: {i.ticket.url}" if i.ticket else ""
    reason = f"\nNot doing it: {i.reason}" if i.reason else ""
    history = "".join(f"\n• {line}" for line in i.history[-5:])
    return (f"`{i.aid}` ({i.status.value}) {i.priority.value} {i.kind.value}: {i.text}\nOwner {i.owner}, due "
            f"{i.due:%Y-%m-%d}, from `{i.incident_id}`{ticket}{reason}{history}")


def done_text(r: ItemResult) -> str:
    ticket = f" (ticket {r.ticket.key})" if r.ticket else ""
    return f"`{r.aid}`: {r.status.value}, due {r.due:%Y-%m-%d}{ticket}: {r.text}"
