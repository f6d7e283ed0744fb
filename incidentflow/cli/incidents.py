"""The commands that only talk to Temporal: declare, list, show, timeline and every table command."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from domain import policy
from domain.config import Settings, load_config
from domain.models import DeclareInput, IncidentState
from incidentflow.client import Incidents, connect
from incidentflow.commands import COMMANDS, Command

TABLE: dict[str, Command[Any]] = {c.name: c for c in COMMANDS}


def actor(args: argparse.Namespace, settings: Settings) -> str:
    if getattr(args, "by", None):
        return str(args.by)
    try:
        return settings.user or os.environ.get("USER") or getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


async def open_incidents(settings: Settings) -> Incidents:
    return Incidents(await connect(settings), settings, load_config(settings.config))


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    inc = await open_incidents(settings)
    command = TABLE.get(args.command)
    if command is not None:
        return await _table_command(command, args, inc, actor(args, settings))
    if args.command == "declare":
        new_id = await inc.declare(DeclareInput(title=args.title, severity=args.severity, service=args.service,
                                                description=args.description, declared_by=actor(args, settings),
                                                commander=args.ic, page=not args.no_page),
                                   key=args.idempotency_key)
        print(new_id)
        print(f"  {settings.workflow_url(new_id)}", file=sys.stderr)
    elif args.command == "show":
        state = await inc.get(args.id)
        print(state.model_dump_json(indent=2)) if args.json else print_state(state)
    elif args.command == "timeline":
        _timeline(await inc.get(args.id), args)
    elif args.command == "list":
        await _list(inc, args)
    return 0


async def _table_command(command: Command[Any], args: argparse.Namespace, inc: Incidents, by: str) -> int:
    iid: str = getattr(args, "id", None) or ""
    cmd = command.input({a.field: getattr(args, a.field) for a in command.args}, by)
    result = await command.run(inc, iid, cmd, key=args.idempotency_key)
    if result is None:
        print(f"{iid}: {command.accepted}")
        return 0
    print(f"{result.incident_id}: {result.text} ({result.severity.value}, {result.phase.value})")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _timeline(state: IncidentState, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in state.timeline], indent=2))
    elif args.markdown:
        print(policy.render_markdown(state), end="")
    else:
        for e in state.timeline:
            print(f"{e.at:%Y-%m-%d %H:%M:%S} UTC  {e.kind.value:<14} {e.actor}: {e.text}")


async def _list(inc: Incidents, args: argparse.Namespace) -> None:
    rows = await inc.list(open_only=args.open, severity=args.severity, service=args.service, phase=args.phase)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    for r in rows:
        sev = r.severity.value if r.severity else "?"
        ph = r.phase.value if r.phase else "?"
        print(f"{r.id:<44} {sev:<5} {ph:<13} {r.service or '-':<12} {r.commander or '-':<10} {r.title}")
    if not rows:
        print("no incidents match", file=sys.stderr)


def print_state(state: IncidentState) -> None:
    roles = ", ".join(f"{r.value}={p}" for r, p in state.roles.items()) or "none"
    ack = f"{state.acknowledged_by} at {state.acknowledged_at:%H:%M} UTC" if state.acknowledged_at else "no"
    print(f"{state.id}  {state.severity.value}  {state.phase.value}  {state.title}")
    print(f"  service: {state.service or '-'}   declared: {state.declared_at:%Y-%m-%d %H:%M} UTC "
          f"by {state.declared_by}")
    print(f"  roles: {roles}   acknowledged: {ack}")
    if state.next_update_due:
        print(f"  next status update due: {state.next_update_due:%H:%M} UTC")
    if state.postmortem_due:
        print(f"  postmortem due: {state.postmortem_due:%Y-%m-%d %H:%M} UTC")
    print(f"  allowed next phases: {', '.join(p.value for p in policy.allowed_next(state.phase)) or '-'}")
    if state.alerts:
        print(f"  alerts: {len(state.alerts)} distinct, {state.alerts_received} received")
    if state.chat:
        broken = f" (updates stopped: {state.chat.broken})" if state.chat.broken else ""
        print(f"  slack: #{state.chat.channel_name} {state.chat.channel_url or ''}{broken}".rstrip())
    for run in state.runbooks:
        waiting = f": waiting for approval: {run.awaiting}" if run.awaiting else ""
        print(f"  runbook {run.run_id}  {run.runbook}  {run.status.value}{waiting}")
