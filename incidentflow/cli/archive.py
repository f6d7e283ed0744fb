"""`incidentflow archive list|show|export|sync` and `incidentflow report`: the incident archive (what outlives
Temporal's retention) and the learning reports computed from it (MTTD, MTTA, MTTM, MTTR, MTBF, alert quality,
follow-through)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import UTC, datetime
from typing import Any

from domain.archive.models import ArchivedIncident, ArchiveQuery
from domain.archive.when import parse_when
from domain.config import Settings
from domain.models import Severity
from incidentflow.cli.types import service as service_type
from incidentflow.client import Incidents

EXPORT_COLUMNS = ("id", "title", "service", "severity", "phase", "source", "declared_at", "declared_by",
                  "detected_at", "acknowledged_at", "mitigated_at", "resolved_at", "ended_at", "stood_down",
                  "alert_rule", "alerts", "alert_notifications", "pages", "max_level", "runbook_runs",
                  "internal_updates", "public_updates", "postmortem_link", "postmortem_status")


def when(text: str) -> datetime:
    """argparse type of --since/--until (domain.archive.when)."""
    try:
        return parse_when(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def severity(text: str) -> str:
    try:
        return Severity.parse(text).value
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use SEV1, SEV2, SEV3 or SEV4") from None


def _filters(p: argparse.ArgumentParser, since: str | None) -> None:
    p.add_argument("--since", type=when, default=when(since) if since else None,
                   help=f"from (a span back from now: 30d, 12h, 2w; or an ISO date){f'; default {since}' if since else ''}")
    p.add_argument("--until", type=when, help="up to (exclusive; a span back from now or an ISO date)")
    p.add_argument("--service", type=service_type, help="only this service's incidents")
    p.add_argument("--severity", type=severity, help="only this severity (SEV1-SEV4)")


def add_parsers(sub: Any) -> None:
    ar = sub.add_parser("archive", help="the incident archive: list, show, export, sync")
    acts = ar.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = acts.add_parser("list", help="archived incidents, newest first")
    _filters(ls, None)
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    ls.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    sh = acts.add_parser("show", help="one archived incident: its record and timeline")
    sh.add_argument("id", help="incident id")
    sh.add_argument("--json", action="store_true", help="the whole record as JSON")
    ex = acts.add_parser("export", help="every archived incident as JSON lines or CSV, on stdout")
    ex.add_argument("--format", choices=("json", "csv"), default="json", help="json (one record per line, with "
                    "timeline) or csv (one row per incident, summary columns)")
    _filters(ex, None)
    acts.add_parser("sync", help="archive closed incidents (and postmortems, action items) still in Temporal")
    rp = sub.add_parser("report", help="MTTD/MTTA/MTTM/MTTR/MTBF, counts, alert quality, follow-through")
    _filters(rp, "30d")
    out = rp.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the report as JSON (durations in seconds)")
    out.add_argument("--csv", action="store_true", help="one metric per row")


def query_of(args: argparse.Namespace) -> ArchiveQuery:
    return ArchiveQuery(since=getattr(args, "since", None), until=getattr(args, "until", None),
                        service=getattr(args, "service", None), severity=getattr(args, "severity", None),
                        limit=getattr(args, "limit", None))


async def run(args: argparse.Namespace, settings: Settings, incidents: Incidents) -> int:
    if args.command == "report":
        return await _report(args, incidents)
    if args.action == "list":
        rows = await incidents.archive_list(query_of(args))
        for r in rows:
            if args.json:
                print(r.model_dump_json(exclude={"state"}))
            else:
                print(f"{r.id}  {r.severity}  {r.phase:<11} {r.service or '-':<12} "
                      f"{r.declared_at:%Y-%m-%d %H:%M} UTC  {r.title}")
        if not rows and not args.json:
            print("the archive has no incident matching these filters")
        return 0
    if args.action == "show":
        return await _show(args, incidents)
    if args.action == "export":
        return await _export(args, incidents)
    result = await incidents.archive_sync()
    print(f"archived {result.incidents} incident(s), {result.postmortems} postmortem(s), "
          f"{result.action_items} action item(s)")
    return 0


async def _show(args: argparse.Namespace, incidents: Incidents) -> int:
    from domain import policy

    record = await incidents.archived(args.id)
    if record is None:
        print(f"no archived incident {args.id!r} (`incidentflow archive list`)", file=sys.stderr)
        return 1
    if args.json:
        print(record.model_dump_json(indent=2))
        return 0
    if record.state is not None:
        print(policy.render_markdown(record.state), end="")
    else:
        print(record.model_dump_json(indent=2, exclude={"state"}))
    if record.postmortem_link:
        print(f"\nPostmortem ({record.postmortem_status or '?'}): {record.postmortem_link}")
    return 0


async def _export(args: argparse.Namespace, incidents: Incidents) -> int:
    records = await incidents.archive_export(query_of(args))
    if args.format == "json":
        for r in records:
            sys.stdout.write(r.model_dump_json() + "\n")
        return 0
    sys.stdout.write(export_csv(records))
    return 0


def export_csv(records: list[ArchivedIncident]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for r in records:
        data = r.model_dump(mode="json", exclude={"state"})
        writer.writerow(["" if data.get(c) is None else data[c] for c in EXPORT_COLUMNS])
    return out.getvalue()


async def _report(args: argparse.Namespace, incidents: Incidents) -> int:
    from domain.reports.compute import report_csv

    report = await incidents.report(query_of(args))
    if args.json:
        print(json.dumps(report.as_json()))
    elif args.csv:
        sys.stdout.write(report_csv(report))
    else:
        print(report_text(report))
    return 0


def report_text(report: Any) -> str:
    """The report for a terminal: the figures of the CSV form, aligned."""
    from domain.reports.compute import report_csv

    rows = list(csv.reader(io.StringIO(report_csv(report))))
    if not rows:
        return "no incidents in this window"
    width = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    return "\n".join("  ".join(c.ljust(width[i]) for i, c in enumerate(r)).rstrip() for r in rows)
