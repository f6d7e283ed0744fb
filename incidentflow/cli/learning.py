"""`incidentflow postmortem start|show|set|publish ID` and `incidentflow action add|list|show|done|drop|due|digest`.

Bad dates, priorities, kinds and statuses are argparse types (one line, exit 2); an owner or reviewer the config
does not know, an unknown incident or item, and a refused change are exit 1; no worker in time is exit 4.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from typing import Any

from domain.actions.models import (
    ActionItem,
    ActionItemInput,
    DoneInput,
    DropInput,
    DueInput,
    ItemResult,
    ItemStatus,
)
from domain.actions.schedule import overdue
from domain.config import Settings
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
from incidentflow.cli.actor import acting, actor
from incidentflow.cli.runbook import UsageError
from incidentflow.cli.types import person
from incidentflow.client import Incidents

BY_HELP = "who does it: a person of the config (default: INCIDENTFLOW_USER, else your OS user)"
ID_HELP = "incident id, e.g. incident-20261123-0433-checkout"
AID_HELP = "action item id, e.g. ai-k3v9q2mx (`incidentflow action list`)"
# `postmortem set` flags → PostmortemSetInput fields (the document's sections, then the review)
SECTIONS = {"summary": "the summary", "impact": "the impact (who, what, how much)",
            "root_cause": "the root cause: system conditions, not a person", "trigger": "what set it off",
            "detection": "how it was detected", "resolution": "how it was resolved", "went_well": "what went well",
            "improve": "what could be improved", "lessons": "lessons learned"}


# ---------------------------------------------------------------------------------------------- argument types
def day(text: str) -> date:
    """argparse type of a date: YYYY-MM-DD."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-12-10") from None


def due_day(text: str) -> date:
    """A due date: YYYY-MM-DD, today or later (UTC)."""
    value, today = day(text), datetime.now(UTC).date()
    if value < today:
        raise argparse.ArgumentTypeError(f"{text!r} is in the past (today is {today:%Y-%m-%d} UTC)")
    return value


def priority(text: str) -> Priority:
    try:
        return Priority(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown priority {text!r}; use one of: "
                                         f"{', '.join(p.value for p in Priority)}") from None


def kind(text: str) -> ItemKind:
    try:
        return ItemKind(text.strip().lower())
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown kind {text!r}; use one of: "
                                         f"{', '.join(k.value for k in ItemKind)}") from None


def review_status(text: str) -> PostmortemStatus:
    word = text.strip().lower().replace("-", "_")
    if word not in ("draft", "in_review"):
        raise argparse.ArgumentTypeError(f"unknown status {text!r}; use draft or in_review "
                                         "(publishing is `incidentflow postmortem publish ID`)")
    return PostmortemStatus(word)


# ---------------------------------------------------------------------------------------------- parsers
def add_parsers(sub: Any) -> None:
    _postmortem(sub)
    _action(sub)


def _postmortem(sub: Any) -> None:
    pm = sub.add_parser("postmortem", help="an incident's blameless postmortem: start, show, set, publish")
    acts = pm.add_subparsers(dest="action", required=True, metavar="ACTION")
    st = acts.add_parser("start", help="draft the postmortem now (any severity; SEV1/SEV2 start on resolve)")
    st.add_argument("id", help=ID_HELP)
    st.add_argument("--template", help="template name (default: by severity from the config; built in: default, "
                                       "google-sre, contributors)")
    st.add_argument("--by", type=person, help=BY_HELP)
    sh = acts.add_parser("show", help="status, link, computed facts and hints, action items, history")
    sh.add_argument("id", help=ID_HELP)
    sh.add_argument("--json", action="store_true", help="print JSON instead of text")
    se = acts.add_parser("set", help="fill sections of the document, the review date and reviewers, or the status")
    se.add_argument("id", help=ID_HELP)
    for field, what in SECTIONS.items():
        se.add_argument(f"--{field.replace('_', '-')}", dest=field, metavar="TEXT", help=what)
    se.add_argument("--review-date", type=day, metavar="YYYY-MM-DD", help="the review meeting's date")
    se.add_argument("--reviewer", dest="reviewers", type=person, action="append", metavar="PERSON",
                    help="a reviewer (repeatable; replaces the list)")
    se.add_argument("--status", type=review_status, help="draft or in_review")
    se.add_argument("--by", type=person, help=BY_HELP)
    pb = acts.add_parser("publish", help="read the final text back from the sink, turn its action items table into "
                                         "items, stop the reminders")
    pb.add_argument("id", help=ID_HELP)
    pb.add_argument("--by", type=person, help=BY_HELP)


def _action(sub: Any) -> None:
    ac = sub.add_parser("action", help="action items: add, list, show, done, drop, due, digest")
    acts = ac.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = acts.add_parser("add", help="add an action item to an incident (reminders go to its owner)")
    add.add_argument("id", help=ID_HELP)
    add.add_argument("text", help="what is to be done, in a line")
    add.add_argument("--owner", type=person, required=True, help="who does it (a person of the config)")
    add.add_argument("--due", type=due_day, required=True, metavar="YYYY-MM-DD", help="due date, today or later")
    add.add_argument("--priority", type=priority, default=Priority.P2, help="P0, P1 or P2 (default P2)")
    add.add_argument("--kind", type=kind, default=ItemKind.fix, help="fix, detect, prevent or process (default fix)")
    add.add_argument("--by", type=person, help=BY_HELP)
    ls = acts.add_parser("list", help="open action items (from Temporal visibility), by due date")
    ls.add_argument("--overdue", action="store_true", help="only overdue ones (open and past due)")
    ls.add_argument("--owner", type=person, help="only this owner's")
    ls.add_argument("--incident", help="only this incident's")
    ls.add_argument("--all", action="store_true", help="done and dropped ones too")
    ls.add_argument("--json", action="store_true", help="print JSON instead of text")
    sh = acts.add_parser("show", help="one action item with its history")
    sh.add_argument("aid", help=AID_HELP)
    sh.add_argument("--json", action="store_true", help="print JSON instead of text")
    dn = acts.add_parser("done", help="mark it done (closes its ticket)")
    dn.add_argument("aid", help=AID_HELP)
    dn.add_argument("--note", default="", help="what was done")
    dn.add_argument("--by", type=person, help=BY_HELP)
    dr = acts.add_parser("drop", help="not doing it, with a reason (closes its ticket)")
    dr.add_argument("aid", help=AID_HELP)
    dr.add_argument("--reason", required=True, help="why it is not done")
    dr.add_argument("--by", type=person, help=BY_HELP)
    du = acts.add_parser("due", help="move its due date (its reminders start over)")
    du.add_argument("aid", help=AID_HELP)
    du.add_argument("date", type=due_day, metavar="YYYY-MM-DD", help="the new due date, today or later")
    du.add_argument("--by", type=person, help=BY_HELP)
    dg = acts.add_parser("digest", help="send the weekly review of open and overdue items now")
    dg.add_argument("--setup", action="store_true", help="instead, create or update the weekly Schedule "
                                                         "(action_items.digest in the config)")


# ---------------------------------------------------------------------------------------------- running
async def run(args: argparse.Namespace, settings: Settings, inc: Incidents) -> int:
    if args.command == "postmortem":
        return await _run_postmortem(args, settings, inc)
    return await _run_action(args, settings, inc)


async def _run_postmortem(args: argparse.Namespace, settings: Settings, inc: Incidents) -> int:
    key = args.idempotency_key
    if args.action == "show":
        state = await inc.postmortem(args.id)
        print(state.model_dump_json(indent=2)) if args.json else print_postmortem(state)
        return 0
    if args.action == "set":
        values = {f: getattr(args, f) for f in (*SECTIONS, "review_date", "reviewers", "status")}
        given = {f: v for f, v in values.items() if v is not None}
        if not given:
            raise UsageError("nothing to set: give a field, e.g. --root-cause TEXT, --impact TEXT, --went-well TEXT, "
                             "--improve TEXT, --lessons TEXT, --review-date YYYY-MM-DD, --reviewer P, --status")
        PostmortemSetInput(by=actor(args, settings), **given)  # bad input (blank, too long): exit 2 first
        await inc.require_incident(args.id)
        result = await inc.set_postmortem(args.id, PostmortemSetInput(by=acting(args, settings, inc.config), **given),
                                          key=key)
        return _print_result(result)
    await inc.require_incident(args.id)
    by = acting(args, settings, inc.config)
    if args.action == "start":
        state = await inc.start_postmortem(args.id, PostmortemRequest(by=by, template=args.template), key=key)
        print(f"{args.id}: postmortem {state.status.value} ({state.template or 'template by severity'})"
              + (f": {state.sink.link}" if state.sink else ""))
        return 0
    return _print_result(await inc.publish_postmortem(args.id, PostmortemPublishInput(by=by), key=key))


async def _run_action(args: argparse.Namespace, settings: Settings, inc: Incidents) -> int:
    key = args.idempotency_key
    if args.action == "list":
        items = await inc.action_items(open_only=not args.all, owner=args.owner, incident=args.incident,
                                       overdue_only=args.overdue)
        if args.json:
            print(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        else:
            print_items(items)
        return 0
    if args.action == "show":
        item = await inc.action(args.aid)
        print(item.model_dump_json(indent=2)) if args.json else print_item(item)
        return 0
    if args.action == "digest":
        if args.setup:
            schedule = await inc.setup_digest()
            print(f"weekly review schedule: {schedule}" if schedule else "the weekly review is off "
                  "(action_items.digest.enabled: false): its schedule is removed")
            return 0
        sent = await inc.run_digest()
        print(f"review sent: {sent.open} open, {sent.overdue} overdue, to {', '.join(sent.sent) or 'nowhere'}")
        return 0
    if args.action == "add":
        values = {"text": args.text, "owner": args.owner, "due": args.due, "priority": args.priority, "kind": args.kind}
        ActionItemInput(by=actor(args, settings), **values)  # bad input (a blank text): exit 2 first
        await inc.require_incident(args.id)
        item = await inc.add_action(args.id, ActionItemInput(by=acting(args, settings, inc.config), **values), key=key)
        print(item.aid)
        print(f"  {item.text} — owner {item.owner}, due {item.due:%Y-%m-%d}, {item.priority.value} "
              f"{item.kind.value} ({item.incident_id})")
        return 0
    by = acting(args, settings, inc.config)
    if args.action == "done":
        result = await inc.action_done(args.aid, DoneInput(by=by, note=args.note), key=key)
    elif args.action == "drop":
        result = await inc.action_drop(args.aid, DropInput(by=by, reason=args.reason), key=key)
    else:
        result = await inc.action_due(args.aid, DueInput(by=by, due=args.date), key=key)
    print(item_result(result))
    return 0


# ---------------------------------------------------------------------------------------------- printing
def item_result(r: ItemResult) -> str:
    ticket = f"; ticket {r.ticket.key}: {r.ticket.url}" if r.ticket else ""
    return f"{r.aid}: {r.status.value}, due {r.due:%Y-%m-%d}: {r.text}{ticket}"


def _print_result(result: PostmortemResult) -> int:
    print(f"{result.incident_id}: {result.message or result.status.value} ({result.status.value})")
    if result.link:
        print(f"  {result.link}")
    if result.items:
        print(f"  action items: {', '.join(result.items)}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0


def _span(value: Any) -> str:
    if value is None:
        return "—"
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def print_postmortem(s: PostmortemState) -> None:
    src, f = s.source, s.source.facts
    print(f"Postmortem of {s.incident_id}: {src.title}")
    print(f"  status {s.status.value}, template {s.template or '(by severity)'}, {src.severity.value}, "
          f"{s.drafts} draft(s)")
    print(f"  link: {s.link or (s.sink.link if s.sink else 'not drafted yet')}")
    if s.published_at:
        print(f"  published {s.published_at:%Y-%m-%d %H:%M} UTC by {s.published_by}")
    if s.fields.review_date or s.fields.reviewers:
        when = f"{s.fields.review_date:%Y-%m-%d}" if s.fields.review_date else "no date"
        print(f"  review: {when}; reviewers: {', '.join(s.fields.reviewers) or 'none'}")
    print(f"  detect {_span(f.time_to_detect)}, acknowledge {_span(f.time_to_acknowledge)}, mitigate "
          f"{_span(f.time_to_mitigate)}, resolve {_span(f.time_to_resolve)}; {f.pages} page(s)"
          + (f", up to L{f.max_level}" if f.max_level else "")
          + f"; {f.internal_updates} internal / {f.public_updates} public update(s)")
    for hint in f.hints:
        print(f"  hint: {hint}")
    filled = [k.replace("_", " ") for k, v in s.fields.model_dump().items() if v and k in SECTIONS]
    print(f"  filled: {', '.join(filled) or 'nothing yet'}")
    if s.actions:
        print("Action items:")
        for row in s.actions:
            due = f"{row.due:%Y-%m-%d}" if row.due else "no due date"
            print(f"  {row.aid or '-':<12} {row.kind.value:<8} {row.priority.value if row.priority else '--':<3} "
                  f"{row.owner or 'no owner':<12} {due:<11} {row.action}")
    if s.history:
        print("History:")
        for line in s.history:
            print(f"  {line}")


def print_items(items: list[ActionItem]) -> None:
    if not items:
        print("no action items")
        return
    today = datetime.now(UTC).date()
    for i in items:
        late = " OVERDUE" if overdue(i, today) else ""
        print(f"{i.aid:<12} {i.status.value:<7} {i.due:%Y-%m-%d}{late:<8} {i.priority.value} {i.kind.value:<8} "
              f"{i.owner:<12} {i.incident_id}  {i.text}")


def print_item(i: ActionItem) -> None:
    late = " (overdue)" if i.status == ItemStatus.open and overdue(i, datetime.now(UTC).date()) else ""
    print(f"{i.aid}: {i.text}")
    print(f"  {i.status.value}{late}; {i.priority.value} {i.kind.value}; owner {i.owner}; due {i.due:%Y-%m-%d}")
    print(f"  incident {i.incident_id}; created {i.created_at:%Y-%m-%d %H:%M} UTC by {i.created_by} ({i.source})")
    if i.ticket:
        print(f"  ticket {i.ticket.tracker} {i.ticket.key}: {i.ticket.url}")
    if i.reason:
        print(f"  not doing it: {i.reason}")
    for line in i.history:
        print(f"  {line}")
