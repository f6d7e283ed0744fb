"""How the CLI reads each kind of argument: argparse `type=` functions, so a bad value is one line on stderr
and exit 2 (`incidentflow drill: error: argument --ack-after: …`), never a traceback."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.models.base import parse_duration
from domain.models.common import SERVICE_NAME

MAX_LEVEL = 20  # EscalateInput's bound


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one `--help` away, and named there)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def choice(enum: Any, label: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return enum.parse(value) if hasattr(enum, "parse") else enum(value.lower())
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            raise argparse.ArgumentTypeError(f"unknown {label} {value!r}; use one of: {allowed}") from None
    parse.__name__ = label  # argparse names the type in some messages
    return parse


def duration(text: str) -> timedelta:
    try:
        value = parse_duration(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read {text!r} as a duration; use e.g. 30s, 15m, 1h, 2d") from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration above zero, e.g. 20m")
    return value


def moment(text: str) -> datetime:
    """An ISO date-time; without an offset it is read in --tz (see `cli.local.moment`)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r} as a moment; use e.g. 2026-03-29T01:30 (in --tz) or 2026-03-29T01:30+01:00"
        ) from None


def timezone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown timezone {text!r}; use an IANA name like Europe/London or "
                                         "UTC") from None


def level(text: str) -> int:
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or not 1 <= int(text) <= MAX_LEVEL:
        raise argparse.ArgumentTypeError(f"{text!r} is not an escalation level; give a number from 1 to {MAX_LEVEL}")
    return int(text)


def service(text: str) -> str:
    if len(text) > 63 or not re.fullmatch(SERVICE_NAME, text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a service name (letters, digits, . _ -; up to 63)")
    return text


def person(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a person (an id from the config's people)")
    return text.strip()
