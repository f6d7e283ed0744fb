"""Commands that read the config only: no Temporal cluster needed (`oncall`, `drill`, `config check`)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain import oncall
from domain.config import ConfigError, Settings, load_config
from domain.models.base import parse_duration


def check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: ok ({len(cfg.services)} services, {len(cfg.people)} people)")
    return 0


def moment(text: str | None, tz_name: str) -> tuple[datetime, ZoneInfo]:
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz: unknown timezone {tz_name!r} (use an IANA name like Europe/London)") from None
    if not text:
        return datetime.now(UTC), tz
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at: cannot read {text!r}; use e.g. 2026-03-29T01:30") from None
    local = at.replace(tzinfo=tz) if at.tzinfo is None else at
    return local.astimezone(UTC), tz  # compute in UTC: same-tzinfo arithmetic is wall-clock


def run_local(args: argparse.Namespace, settings: Settings) -> int:
    """`oncall` and `drill`."""
    if settings.config is None and Path("config/example.yaml").exists():
        settings.config = Path("config/example.yaml")
    config = load_config(settings.config)
    at, tz = moment(args.at, args.tz)
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
    from incidentflow.drill import render, run_drill  # the time-skipping server and a worker: drill only

    ack = parse_duration(args.ack_after) if args.ack_after else None
    pages = asyncio.run(run_drill(config, args.service, args.severity, at, ack))
    print(render(pages, at, tz, ack))
    return 0
