"""Commands that read the config only: no Temporal cluster needed (`oncall`, `drill`, `config check`)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from domain import known, oncall
from domain.config import ConfigError, Settings, load_config
from incidentflow.cli.actor import cli_config


def check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: ok ({len(cfg.services)} services, {len(cfg.people)} people)")
    return 0


def moment(at: datetime | None, tz: ZoneInfo) -> datetime:
    """`--at` (already parsed) in UTC: a time without an offset is read in `--tz`; none is now."""
    if at is None:
        return datetime.now(UTC)
    local = at.replace(tzinfo=tz) if at.tzinfo is None else at
    return local.astimezone(UTC)  # compute in UTC: same-tzinfo arithmetic is wall-clock


def run_local(args: argparse.Namespace, settings: Settings) -> int:
    """`oncall` and `drill`."""
    config = cli_config(settings)
    at, tz = moment(args.at, args.tz), args.tz
    where = f" in {settings.config}" if settings.config else " (no config: set INCIDENTFLOW_CONFIG)"
    if args.command == "oncall":
        try:
            table = oncall.who_is_on_call(config.schedules, at, args.schedule)
        except KeyError:
            raise ConfigError(f"no schedule named {args.schedule!r}{where}") from None
        print(f"On call at {at.astimezone(tz):%Y-%m-%d %H:%M %Z} ({tz.key}):")
        for schedule, layers in table.items():
            for layer, person in layers.items():
                print(f"  {schedule:<24} {layer:<12} {person or '(nobody)'}")
        if not table:
            print("  no schedules configured")
        return 0
    from incidentflow.drill import render, run_drill  # the time-skipping server and a worker: drill only

    unknown = known.service_problem(config, "--service", args.service)
    if unknown:
        raise ConfigError(f"{unknown}{where}")
    drill = asyncio.run(run_drill(config, args.service, args.severity, at, args.ack_after))
    print(render(drill, at, tz, args.ack_after))
    return 0
