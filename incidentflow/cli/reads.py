"""`incidentflow show ID` and `incidentflow timeline ID`: the reads people repeat most, on a short import path.

They need the Temporal client, the incident's state model and the printers, not the command table, the config
or any workflow module (issue 16: `show` within 1.5x of a minimal Python client doing the same query;
`bench/cli.py`). The full parser (incidentflow.cli.parser) defines the same two commands from here, so help,
arguments and errors are one definition; exit codes are the full CLI's (1 error, 2 usage, 3 Temporal
unreachable, 4 no worker). An incident Temporal no longer has is read from the archive, as everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from pydantic import ValidationError

ID_HELP = "incident id, e.g. incident-20261123-0433-checkout"
JSON_HELP = "print JSON instead of text"
READS = ("show", "timeline")
EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_NO_WORKER = 1, 2, 3, 4


def add_show(sub: Any) -> argparse.ArgumentParser:
    show: argparse.ArgumentParser = sub.add_parser("show", help="show an incident's state")
    show.add_argument("id", help=ID_HELP)
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    return show


def add_timeline(sub: Any) -> argparse.ArgumentParser:
    tl: argparse.ArgumentParser = sub.add_parser("timeline", help="print the timeline")
    tl.add_argument("id", help=ID_HELP)
    tl.add_argument("--markdown", action="store_true",
                    help="the incident as Markdown for its postmortem (header, summary, timeline)")
    tl.add_argument("--json", action="store_true", help=JSON_HELP)
    return tl


def handles(argv: list[str]) -> bool:
    """A read this module answers: `show`/`timeline` first (no global option before it), no help asked."""
    return bool(argv) and argv[0] in READS and not any(a in ("-h", "--help") for a in argv[1:])


def parser() -> argparse.ArgumentParser:
    from incidentflow.cli.types import Parser  # errors on one line, as the full CLI's

    p = Parser(prog="incidentflow")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_show(sub)
    add_timeline(sub)
    return p


def main(argv: list[str]) -> int:
    from domain.settings import Settings
    from incidentflow.client_base import IncidentflowError, NoWorker, TemporalUnavailable
    from incidentflow.logs import configure_logging

    args = parser().parse_args(argv)
    configure_logging(level=os.environ.get("INCIDENTFLOW_LOG_LEVEL", "WARNING").upper())
    try:
        state = asyncio.run(read(Settings(), args.id))
    except NoWorker as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_WORKER
    except TemporalUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except IncidentflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a bad INCIDENTFLOW_* variable
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid input: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    from incidentflow.cli.show import print_state, print_timeline

    if args.command == "show":
        print(state.model_dump_json(indent=2)) if args.json else print_state(state)
    else:
        print_timeline(state, args)
    return 0


async def read(settings: Any, incident_id: str) -> Any:
    """The incident's state from Temporal, else (deleted by retention) from the archive."""
    from incidentflow.client_base import Door, IncidentNotFound, connect

    client = await connect(settings)
    try:
        return await Door(client, settings).get(incident_id)
    except IncidentNotFound:
        # the records store, only when Temporal has no such id
        from incidentflow.client_archive import Archives

        return await Archives(client, settings).get(incident_id)
