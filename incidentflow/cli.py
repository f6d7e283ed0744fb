"""`incidentflow`: drive incidents against any Temporal (the embedded dev server by default)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from domain import policy
from domain.config import ConfigError, Settings, load_config
from domain.models import (
    AckInput,
    DeclareInput,
    EscalateInput,
    IncidentState,
    NoteInput,
    PageInput,
    Phase,
    PhaseInput,
    ReopenInput,
    ResolveInput,
    Role,
    RoleInput,
    Severity,
    SeverityInput,
    StandDownInput,
    StatusUpdateInput,
)
from domain.runbooks.loader import RunbookError
from domain.runbooks.render import ParamError, RenderError
from incidentflow import runbook_cli
from incidentflow.client import IncidentflowError, Incidents, TemporalUnavailable, connect

EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3


def _actor(args: argparse.Namespace, settings: Settings) -> str:
    if getattr(args, "by", None):
        return str(args.by)
    try:
        return settings.user or os.environ.get("USER") or getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


def _choice(enum: Any, label: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return enum.parse(value) if hasattr(enum, "parse") else enum(value.lower())
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise argparse.ArgumentTypeError(f"unknown {label} {value!r}; use one of: {allowed}") from None
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="incidentflow", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="embedded stack: Temporal dev server + worker + API (+ demo)")
    dev.add_argument("--no-demo", action="store_true", help="do not run the demo incident")
    dev.add_argument("--external", action="store_true",
                     help="use the Temporal at INCIDENTFLOW_TEMPORAL_ADDRESS instead of starting the embedded one")
    sub.add_parser("worker", help="run a worker against INCIDENTFLOW_TEMPORAL_ADDRESS")
    sub.add_parser("api", help="run the HTTP API on INCIDENTFLOW_API_HOST:INCIDENTFLOW_API_PORT")
    temporal = sub.add_parser("temporal", help="Temporal cluster chores")
    temporal.add_argument("action", choices=["setup"], help="setup: register our search attributes")
    ho = sub.add_parser("handoff", help="on-call handoff notes")
    ho.add_argument("action", choices=["setup", "note"],
                    help="setup: create/update the Temporal Schedules; note: run one handoff note now")
    ho.add_argument("--schedule", help="the on-call schedule (note)")
    config = sub.add_parser("config", help="configuration chores")
    config.add_argument("action", choices=["check"])
    config.add_argument("file", help="YAML config file to validate")

    oc = sub.add_parser("oncall", help="who is on call (from the config's schedules)")
    oc.add_argument("--at", help="a moment, e.g. 2026-03-29T01:30 (default: now)")
    oc.add_argument("--tz", default="UTC", help="IANA timezone of --at and of the output (default UTC)")
    oc.add_argument("--schedule", help="only this schedule")
    dr = sub.add_parser("drill", help="rehearse an escalation policy on the time-skipping server (pages nobody)")
    dr.add_argument("--service", help="service whose escalation policy to drill")
    dr.add_argument("--severity", "--sev", type=_choice(Severity, "severity"), default=Severity.SEV2)
    dr.add_argument("--at", help="when the incident starts, e.g. 2026-03-29T01:30 (default: now)")
    dr.add_argument("--tz", default="UTC", help="IANA timezone of --at and of the output")
    dr.add_argument("--ack-after", help="acknowledge after this long, e.g. 20m")

    runbook_cli.add_parser(sub)

    def incident(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("id", help="incident id, e.g. incident-20261123-0433-checkout")
        sp.add_argument("--by", help="who does it (default: INCIDENTFLOW_USER or $USER)")
        return sp

    d = sub.add_parser("declare", help="declare an incident")
    d.add_argument("title")
    d.add_argument("--severity", "--sev", type=_choice(Severity, "severity"), default=Severity.SEV3)
    d.add_argument("--service")
    d.add_argument("--description", default="")
    d.add_argument("--ic", help="incident commander, if someone takes it now")
    d.add_argument("--no-page", action="store_true", help="do not start the escalation policy")
    d.add_argument("--by")
    ls = sub.add_parser("list", help="list incidents (from Temporal visibility)")
    ls.add_argument("--open", action="store_true", help="only incidents still being worked")
    ls.add_argument("--severity", type=_choice(Severity, "severity"))
    ls.add_argument("--service")
    ls.add_argument("--phase", type=_choice(Phase, "phase"))
    ls.add_argument("--json", action="store_true")
    show = incident("show", "show an incident's state")
    show.add_argument("--json", action="store_true")
    incident("ack", "acknowledge")
    r = incident("role", "assign a role (ic, lead, comms, scribe)")
    r.add_argument("role", type=_choice(Role, "role"))
    r.add_argument("person")
    s = incident("severity", "change severity")
    s.add_argument("severity", type=_choice(Severity, "severity"))
    s.add_argument("--reason", default="")
    ph = incident("phase", "move to a phase")
    ph.add_argument("phase", type=_choice(Phase, "phase"))
    ph.add_argument("--note", default="")
    n = incident("note", "add a note to the timeline")
    n.add_argument("text")
    u = incident("update", "post a status update (resets the update cadence)")
    u.add_argument("text")
    rs = incident("resolve", "resolve")
    rs.add_argument("--summary", default="")
    ro = incident("reopen", "reopen a resolved incident")
    ro.add_argument("--reason", default="")
    sd = incident("standdown", "stand down (it was not an incident after all)")
    sd.add_argument("--reason", required=True)
    esc = incident("escalate", "escalate now (or restart the escalation) at a level")
    esc.add_argument("--level", type=int, default=2, help="escalation level, 1-based (default 2)")
    pg = incident("page", "page a person now (adds a responder)")
    pg.add_argument("person")
    pg.add_argument("--note", default="")
    tl = incident("timeline", "print the timeline")
    tl.add_argument("--markdown", action="store_true", help="HH:MM UTC - actor: text lines")
    tl.add_argument("--json", action="store_true")
    return p


async def _incidents(settings: Settings) -> Incidents:
    return Incidents(await connect(settings), settings, load_config(settings.config))


def _print_state(state: IncidentState) -> None:
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


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    cmd = args.command
    by = _actor(args, settings)
    inc = await _incidents(settings)
    iid: str = getattr(args, "id", None) or ""
    updates: dict[str, Callable[[], Awaitable[Any]]] = {
        "ack": lambda: inc.acknowledge(iid, AckInput(by=by)),
        "role": lambda: inc.assign_role(iid, RoleInput(role=args.role, person=args.person, by=by)),
        "severity": lambda: inc.set_severity(iid, SeverityInput(severity=args.severity, by=by,
                                                                 reason=args.reason)),
        "phase": lambda: inc.set_phase(iid, PhaseInput(phase=args.phase, by=by, note=args.note)),
        "update": lambda: inc.post_status_update(iid, StatusUpdateInput(text=args.text, by=by)),
        "resolve": lambda: inc.resolve(iid, ResolveInput(by=by, summary=args.summary)),
        "reopen": lambda: inc.reopen(iid, ReopenInput(by=by, reason=args.reason)),
        "standdown": lambda: inc.stand_down(iid, StandDownInput(by=by, reason=args.reason)),
        "escalate": lambda: inc.escalate(iid, EscalateInput(level=args.level, by=by)),
        "page": lambda: inc.page(iid, PageInput(person=args.person, by=by, note=args.note)),
    }
    if cmd in updates:
        result = await updates[cmd]()
        print(f"{result.incident_id}: {result.text} ({result.severity.value}, {result.phase.value})")
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    elif cmd == "declare":
        new_id = await inc.declare(DeclareInput(title=args.title, severity=args.severity, service=args.service,
                                                description=args.description, declared_by=by,
                                                commander=args.ic, page=not args.no_page))
        print(new_id)
        print(f"  {settings.workflow_url(new_id)}", file=sys.stderr)
    elif cmd == "note":
        await inc.add_note(iid, NoteInput(text=args.text, by=by))
        print(f"{iid}: note added")
    elif cmd == "show":
        state = await inc.get(iid)
        print(state.model_dump_json(indent=2)) if args.json else _print_state(state)
    elif cmd == "timeline":
        state = await inc.get(iid)
        if args.json:
            print(json.dumps([e.model_dump(mode="json") for e in state.timeline], indent=2))
        elif args.markdown:
            print(policy.render_markdown(state), end="")
        else:
            for e in state.timeline:
                print(f"{e.at:%Y-%m-%d %H:%M:%S} UTC  {e.kind.value:<14} {e.actor}: {e.text}")
    elif cmd == "list":
        rows = await inc.list(open_only=args.open, severity=args.severity, service=args.service, phase=args.phase)
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        for r in [] if args.json else rows:
            sev = r.severity.value if r.severity else "?"
            ph = r.phase.value if r.phase else "?"
            print(f"{r.id:<44} {sev:<5} {ph:<13} {r.service or '-':<12} {r.commander or '-':<10} {r.title}")
        if not rows and not args.json:
            print("no incidents match", file=sys.stderr)
    return 0


def _moment(text: str | None, tz_name: str) -> tuple[datetime, ZoneInfo]:
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz: unknown timezone {tz_name!r} (use an IANA name like Europe/London)") from None
    if not text:
        return datetime.now(UTC), tz
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at: cannot read {text!r}; use e.g. 2026-03-29T01:30") from None
    local = moment.replace(tzinfo=tz) if moment.tzinfo is None else moment
    return local.astimezone(UTC), tz  # compute in UTC: same-tzinfo arithmetic is wall-clock


def _local_command(args: argparse.Namespace, settings: Settings) -> int:
    """Commands that read the config only (no Temporal cluster needed)."""
    from domain import oncall

    if settings.config is None and Path("config/example.yaml").exists():
        settings.config = Path("config/example.yaml")
    config = load_config(settings.config)
    at, tz = _moment(args.at, args.tz)
    if args.command == "oncall":
        try:
            table = oncall.who_is_on_call(config.schedules, at, args.schedule)
        except KeyError:
            raise ConfigError(f"no schedule named {args.schedule!r} in {settings.config}") from None
        print(f"On call at {at.astimezone(tz):%Y-%m-%d %H:%M %Z} ({tz.key}):")
        for schedule, layers in table.items():
            for layer, person in layers.items():
                print(f"  {schedule:<24} {layer:<12} {person or '(nobody)'}")
        if not table:
            print("  no schedules configured")
        return 0
    from domain.config import parse_duration
    from incidentflow.drill import render, run_drill

    ack = parse_duration(args.ack_after) if args.ack_after else None
    pages = asyncio.run(run_drill(config, args.service, args.severity, at, ack))
    print(render(pages, at, tz, ack))
    return 0


async def _handoff(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings.config)
    incidents = Incidents(await connect(settings), settings, config)
    if args.action == "setup":
        ids = await incidents.setup_handoffs()
        print("\n".join(ids) if ids else "no schedules in the config: nothing to set up")
        return 0
    names = [s.name for s in config.schedules]
    if args.schedule not in names:
        raise ConfigError(f"--schedule: use one of {', '.join(names) or '(no schedules configured)'}")
    note = await incidents.run_handoff(args.schedule)
    print(note.text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("INCIDENTFLOW_LOG_LEVEL", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        if args.command == "dev":
            from incidentflow.stack import run_dev
            return run_dev(settings, demo=not args.no_demo, external=args.external)
        if args.command == "worker":
            asyncio.run(_worker(settings))
            return 0
        if args.command == "api":
            from incidentflow.stack import run_api
            return run_api(settings)
        if args.command in ("oncall", "drill"):
            return _local_command(args, settings)
        if args.command == "config":
            cfg = load_config(args.file)
            print(f"{args.file}: ok ({len(cfg.services)} services, {len(cfg.people)} people)")
            return 0
        if args.command == "temporal":
            from incidentflow.client import ensure_search_attributes

            async def setup() -> list[str]:
                return await ensure_search_attributes(await connect(settings), settings.temporal_namespace)
            added = asyncio.run(setup())
            print(f"search attributes added: {', '.join(added)}" if added else "search attributes already registered")
            return 0
        if args.command == "handoff":
            return asyncio.run(_handoff(args, settings))
        if args.command == "runbook":
            code = runbook_cli.local(args, settings)
            if code is not None:
                return code

            async def runbook() -> int:
                needs_temporal = not (args.action == "run" and args.dry_run and not args.incident)
                inc = await _incidents(settings) if needs_temporal else None
                return await runbook_cli.remote(args, settings, inc, _actor(args, settings))
            return asyncio.run(runbook())
        return asyncio.run(run_command(args, settings))
    except TemporalUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (runbook_cli.UsageError, ParamError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunbookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (IncidentflowError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid input: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """Console-script entry. Exits with os._exit: the Temporal client's Rust threads can abort CPython's
    finalization ("PyGILState_Release", temporalio/sdk-python#300), turning a clean exit into SIGABRT."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()


async def _worker(settings: Settings) -> None:
    from workers.main import run_worker

    client = await connect(settings)
    await run_worker(client, settings, directory=Incidents(client, settings, load_config(settings.config)))
