"""`incidentflow statuspage show|draft|publish|component` and `incidentflow maintenance schedule|list|cancel|extend`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from domain.config import Settings
from domain.statuspage import render_json
from domain.statuspage.models import ComponentStatus, MaintenanceInput, PublicStatus, utc
from incidentflow.cli.actor import acting
from incidentflow.cli.runbook import UsageError
from incidentflow.cli.types import Parser, person
from incidentflow.client import Incidents

BY_HELP = "who does it: a person of the config (default: INCIDENTFLOW_USER, else your OS user)"
STATUSES = ", ".join(s.value for s in ComponentStatus)


def component_status(text: str) -> tuple[str, ComponentStatus]:
    """argparse type of `--component ID=STATUS`."""
    cid, sep, status = text.partition("=")
    try:
        if not sep or not cid:
            raise ValueError
        return cid.strip(), ComponentStatus(status.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use ID=STATUS with STATUS one of {STATUSES}") from None


def moment(text: str) -> datetime:
    """argparse type of --start/--end/--until: ISO 8601; without a zone it is UTC; with one, converted to UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use an ISO time, e.g. 2026-12-07T02:00 (UTC) or "
                                         "2026-12-07T03:00+01:00") from None
    return utc(at) if at.utcoffset() is not None else at.replace(tzinfo=UTC)


def window(start: datetime, end: datetime) -> str:
    """A maintenance window in UTC, whatever offset it was given with: `2026-12-07 02:00–03:00 UTC` (the end's
    date too when it is another day)."""
    start, end = utc(start), utc(end)
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC" if start.date() == end.date() else \
        f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC"


class _Intermixed(Parser):
    """Takes the optional TEXT after the options too (`publish ID --status identified TEXT`, as README shows
    it): plain argparse gives TEXT its chance only right after ID, and then calls it unrecognized."""

    _inside = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._inside:  # parse_known_intermixed_args calls back here
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def add_parsers(sub: Any) -> None:
    sp = sub.add_parser("statuspage", help="the public status page: show, draft, publish, component")
    acts = sp.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Intermixed)
    sh = acts.add_parser("show", help="the page as the public sees it: overall status, components, open incidents")
    sh.add_argument("--json", action="store_true", help="print Statuspage's summary.json instead")
    dr = acts.add_parser("draft", help="the public update an incident asks for now (edit it, then publish)")
    dr.add_argument("id", help="incident id")
    pb = acts.add_parser("publish", help="publish a public update for an incident (the draft, or TEXT)")
    pb.add_argument("id", help="incident id")
    pb.add_argument("text", nargs="?", help="the update's text (default: the draft)")
    pb.add_argument("--status", type=PublicStatus, choices=list(PublicStatus), metavar="STATUS",
                    help="investigating, identified, monitoring or resolved (default: from the incident's phase)")
    pb.add_argument("--component", type=component_status, action="append", default=[], metavar="ID=STATUS",
                    help=f"a component's status, over the draft's (repeatable; STATUS: {STATUSES})")
    pb.add_argument("--by", type=person, help=BY_HELP)
    co = acts.add_parser("component", help="set component statuses outside an incident")
    co.add_argument("component", type=component_status, nargs="+", metavar="ID=STATUS",
                    help=f"STATUS: {STATUSES}")
    co.add_argument("--by", type=person, help=BY_HELP)

    mt = sub.add_parser("maintenance", help="scheduled maintenance: schedule, list, cancel, extend")
    macts = mt.add_subparsers(dest="action", required=True, metavar="ACTION")
    sc = macts.add_parser("schedule", help="schedule a maintenance window (announced now, components under "
                                           "maintenance during it)")
    sc.add_argument("title", help="what the public reads, e.g. \"Database upgrade\"")
    sc.add_argument("--component", action="append", required=True, metavar="ID",
                    help="an affected component id (repeatable)")
    sc.add_argument("--start", type=moment, required=True, help="ISO time; without a zone, UTC")
    sc.add_argument("--end", type=moment, required=True, help="ISO time; without a zone, UTC")
    sc.add_argument("--body", default="", help="more detail for the public")
    sc.add_argument("--by", type=person, help=BY_HELP)
    macts.add_parser("list", help="scheduled, running and past maintenances")
    ca = macts.add_parser("cancel", help="cancel a maintenance (components go back if it had started)")
    ca.add_argument("id", help="maintenance id (`incidentflow maintenance list`)")
    ca.add_argument("--reason", default="", help="what the public reads")
    ca.add_argument("--by", type=person, help=BY_HELP)
    ex = macts.add_parser("extend", help="move a maintenance's end")
    ex.add_argument("id", help="maintenance id")
    ex.add_argument("--until", type=moment, required=True, help="the new end: ISO time; without a zone, UTC")
    ex.add_argument("--by", type=person, help=BY_HELP)


async def run(args: argparse.Namespace, settings: Settings, inc: Incidents) -> int:
    key = getattr(args, "idempotency_key", None)
    if args.command == "maintenance":
        return await _maintenance(args, settings, inc, key)
    if args.action == "show":
        state = await inc.statuspage_state()
        cfg = inc.config.statuspage
        if args.json:
            print(json.dumps(render_json.documents(cfg, state)["summary.json"], indent=2))
            return 0
        print(render_json.status(cfg, state)["status"]["description"])
        for c in cfg.components:
            current = state.components.get(c.id)
            print(f"  {c.id:<16} {c.name:<28} {(current.status if current else ComponentStatus.operational).value}")
        for i in [i for i in state.incidents if i.open]:
            print(f"\n{i.name} [{i.status.value}, impact {i.impact.value}] ({i.incident_id})")
            for u in i.updates[:3]:
                print(f"  {utc(u.created_at):%H:%M} UTC {u.status.value}: {u.body}")
        return 0
    if args.action == "draft":
        d = await inc.public_draft(args.id)
        print(f"{d.status.value} (impact {d.impact.value}); components: "
              + (", ".join(f"{c.component}={c.status.value}" for c in d.components) or "none"))
        print(d.body)
        return 0
    by = acting(args, settings, inc.config)
    if args.action == "publish":
        result = await inc.publish_public_update(args.id, by, args.text, args.status,
                                                 dict(args.component) or None, key=key)
        print(f"{result.incident_id}: published {result.update.status.value} (page version {result.version})"
              + (" — already published by an earlier attempt" if result.duplicate else ""))
        return 0
    version = await inc.set_component_statuses(dict(args.component), by, key=key)
    print(f"components set (page version {version})")
    return 0


async def _maintenance(args: argparse.Namespace, settings: Settings, inc: Incidents, key: str | None) -> int:
    if args.action == "list":
        rows = await inc.maintenances()
        for m in rows:
            print(f"{m.id:<28} {m.status.value:<12} {window(m.scheduled_for, m.scheduled_until)}  "
                  f"{m.title} ({', '.join(m.components)})")
        if not rows:
            print("no maintenances")
        return 0
    by = acting(args, settings, inc.config)
    if args.action == "schedule":
        try:
            cmd = MaintenanceInput(title=args.title, body=args.body, components=args.component, start=args.start,
                                   end=args.end, by=by)
        except ValidationError as exc:
            raise UsageError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
        m = await inc.schedule_maintenance(cmd, key=key)
        print(f"{m.id}: {m.title}, {window(m.scheduled_for, m.scheduled_until)}, announced")
        return 0
    if args.action == "cancel":
        m = await inc.cancel_maintenance(args.id, by, args.reason, key=key)
        print(f"{m.id}: {m.status.value}")
        return 0
    m = await inc.extend_maintenance(args.id, args.until, by, key=key)
    print(f"{m.id}: now ends {utc(m.scheduled_until):%Y-%m-%d %H:%M} UTC")
    return 0
