"""The commands that only talk to Temporal: declare, list, show, timeline and every table command."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from domain.config import Settings
from domain.models import DeclareInput
from incidentflow.cli.actor import acting, actor, cli_config
from incidentflow.cli.show import print_list, print_state, print_timeline
from incidentflow.client import Incidents, connect
from incidentflow.commands import COMMANDS, Command

TABLE: dict[str, Command[Any]] = {c.name: c for c in COMMANDS}
__all__ = ["actor", "open_incidents", "print_state", "run_command"]


async def open_incidents(settings: Settings) -> Incidents:
    return Incidents(await connect(settings), settings, cli_config(settings), source="cli")


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    inc = await open_incidents(settings)
    command = TABLE.get(args.command)
    if command is not None:
        return await _table_command(command, args, inc, settings)
    if args.command == "declare":
        cmd = DeclareInput(title=args.title, severity=args.severity, service=args.service,  # bad input: exit 2
                           description=args.description, declared_by=actor(args, settings), commander=args.ic,
                           page=not args.no_page)
        cmd = inc.vetted(cmd.model_copy(update={"declared_by": acting(args, settings, inc.config)}))
        new_id = await inc.declare(cmd, key=args.idempotency_key)
        print(new_id)
        print(f"  {settings.workflow_url(new_id)}", file=sys.stderr)
    elif args.command == "show":
        state = await inc.get(args.id)
        print(state.model_dump_json(indent=2)) if args.json else print_state(state)
    elif args.command == "timeline":
        print_timeline(await inc.get(args.id), args)
    elif args.command == "list":
        rows = await inc.list(open_only=args.open, severity=args.severity, service=args.service, phase=args.phase)
        print_list(rows, args.json)
    return 0


async def _table_command(command: Command[Any], args: argparse.Namespace, inc: Incidents, settings: Settings) -> int:
    iid: str = getattr(args, "id", None) or ""
    values = {a.field: getattr(args, a.field) for a in command.args}
    command.input(values, actor(args, settings))  # bad input (blank text, a level out of range): exit 2 first
    if command.needs_incident:
        await inc.require_incident(iid)  # then an id that is no incident's, then who you are
    cmd = command.input(values, acting(args, settings, inc.config))
    result = await command.run(inc, iid, cmd, key=args.idempotency_key)
    if result is None:
        print(f"{iid}: {command.accepted}")
        return 0
    print(f"{result.incident_id}: {result.text} ({result.severity.value}, {result.phase.value})")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
