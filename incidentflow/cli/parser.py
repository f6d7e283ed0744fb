"""The `incidentflow` argument parser. The incident commands are built from `incidentflow.commands`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from domain.models import Phase, Role, Severity
from incidentflow.cli import archive, learning, reads, runbook, statuspage
from incidentflow.cli.types import Parser, choice, duration, level, moment, person, service, timezone
from incidentflow.commands import COMMANDS, Command, Kind

DESCRIPTION = "`incidentflow`: drive incidents against any Temporal (the embedded dev server by default)."
BY_HELP = "who does it: a person of the config (default: INCIDENTFLOW_USER, else your OS user)"
ID_HELP = "incident id, e.g. incident-20261123-0433-checkout"
JSON_HELP = "print JSON instead of text"

_TYPES: dict[Kind, Callable[[str], Any]] = {
    Kind.text: str, Kind.person: person, Kind.level: level,
    Kind.severity: choice(Severity, "severity"), Kind.phase: choice(Phase, "phase"), Kind.role: choice(Role, "role"),
}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="incidentflow", description=DESCRIPTION)
    p.add_argument("--idempotency-key", metavar="KEY", default=None,
                   help="names this command run: running it again with the same key and arguments applies it "
                        "once and prints the first result (default: a new key each run, printed when no worker "
                        "took the command in time)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _chores(sub)
    _local(sub)
    runbook.add_parser(sub)
    statuspage.add_parsers(sub)
    learning.add_parsers(sub)
    archive.add_parsers(sub)
    _bespoke(sub)
    for command in COMMANDS:
        add_command(sub, command)
    reads.add_timeline(sub)
    return p


def add_command(sub: Any, command: Command[Any]) -> argparse.ArgumentParser:
    """A table command: `incidentflow NAME [ID] POSITIONALS… [--FLAG VALUE…] [--by WHO]`."""
    sp: argparse.ArgumentParser = sub.add_parser(command.name, help=command.help)
    if command.needs_incident:
        sp.add_argument("id", help=ID_HELP)
    sp.add_argument("--by", type=person, help=BY_HELP)
    for arg in command.args:
        kwargs: dict[str, Any] = {"type": _TYPES[arg.kind], "help": arg.help}
        if arg.flag:
            sp.add_argument(f"--{arg.field.replace('_', '-')}", dest=arg.field, required=command.required(arg),
                            default=arg.default, **kwargs)
        else:
            sp.add_argument(arg.field, **kwargs)
    return sp


def _chores(sub: Any) -> None:
    dev = sub.add_parser("dev", help="embedded stack: Temporal dev server + worker + API (+ demo)")
    dev.add_argument("--no-demo", action="store_true", help="do not run the demo incident")
    dev.add_argument("--external", action="store_true",
                     help="use the Temporal at INCIDENTFLOW_TEMPORAL_ADDRESS instead of starting the embedded one")
    dev.add_argument("--worker-in-process", action="store_true",
                     help="run the worker in the API's process instead of its own (one process, slower webhooks "
                          "under load)")
    dev.add_argument("--terminate-stale", action="store_true",
                     help="end running workflows an older incidentflow started that this version cannot continue, "
                          "then start")
    sub.add_parser("worker", help="run a worker against INCIDENTFLOW_TEMPORAL_ADDRESS")
    sub.add_parser("api", help="run the HTTP API on INCIDENTFLOW_API_HOST:INCIDENTFLOW_API_PORT")
    temporal = sub.add_parser("temporal", help="Temporal cluster chores")
    temporal.add_argument("action", choices=["setup"], help="setup: register our search attributes")
    ho = sub.add_parser("handoff", help="on-call handoff notes")
    ho.add_argument("action", choices=["setup", "note"],
                    help="setup: create/update the Temporal Schedules; note: run one handoff note now")
    ho.add_argument("--schedule", help="the on-call schedule (note)")
    config = sub.add_parser("config", help="configuration chores")
    config.add_argument("action", choices=["check"], help="check: validate the file (file:line: field: problem)")
    config.add_argument("file", help="YAML config file to validate")


def _local(sub: Any) -> None:
    oc = sub.add_parser("oncall", help="who is on call (from the config's schedules)")
    oc.add_argument("--at", type=moment, help="a moment, e.g. 2026-03-29T01:30 (default: now)")
    oc.add_argument("--tz", type=timezone, default="UTC",
                    help="IANA timezone of --at and of the output (default UTC)")
    oc.add_argument("--schedule", help="only this schedule")
    dr = sub.add_parser("drill", help="rehearse an escalation policy on the time-skipping server (pages nobody)")
    dr.add_argument("--service", type=service, help="service whose escalation policy to drill")
    dr.add_argument("--severity", "--sev", type=_TYPES[Kind.severity], default=Severity.SEV2,
                    help="severity of the rehearsed incident (default SEV2)")
    dr.add_argument("--at", type=moment, help="when the incident starts, e.g. 2026-03-29T01:30 (default: now)")
    dr.add_argument("--tz", type=timezone, default="UTC", help="IANA timezone of --at and of the output")
    dr.add_argument("--ack-after", type=duration, help="acknowledge after this long, e.g. 20m")


def _bespoke(sub: Any) -> None:
    """declare, list and show: each surface shapes these itself (not table commands)."""
    d = sub.add_parser("declare", help="declare an incident")
    d.add_argument("title", help="what is wrong, in a line")
    d.add_argument("--severity", "--sev", type=_TYPES[Kind.severity], default=Severity.SEV3,
                   help="SEV1 (worst) to SEV4 (default SEV3)")
    d.add_argument("--service", type=service, help="the affected service, one of the config's (its escalation "
                                                   "policy pages)")
    d.add_argument("--description", default="", help="more detail (the impact, what is known)")
    d.add_argument("--ic", type=person, help="incident commander, if someone takes it now (a person of the config)")
    d.add_argument("--no-page", action="store_true", help="do not start the escalation policy")
    d.add_argument("--by", type=person, help=BY_HELP)
    ls = sub.add_parser("list", help="list incidents (from Temporal visibility)")
    ls.add_argument("--open", action="store_true", help="only incidents still being worked")
    ls.add_argument("--severity", type=_TYPES[Kind.severity], help="only this severity")
    ls.add_argument("--service", type=service, help="only this service")
    ls.add_argument("--phase", type=_TYPES[Kind.phase], help="only this phase")
    ls.add_argument("--json", action="store_true", help=JSON_HELP)
    reads.add_show(sub)
