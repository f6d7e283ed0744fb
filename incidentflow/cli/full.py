"""The full `incidentflow` CLI: every command (`incidentflow.cli.entry` sends `show` and `timeline` the short
way, `incidentflow.cli.reads`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import uuid

from pydantic import ValidationError

from domain.config import ConfigError, Settings
from domain.runbooks.loader import RunbookError
from domain.runbooks.render import ParamError, RenderError
from incidentflow.cli import runbook
from incidentflow.cli.incidents import open_incidents, run_command
from incidentflow.cli.local import check_config, run_local
from incidentflow.cli.ops import run_ops
from incidentflow.cli.parser import build_parser
from incidentflow.client import IncidentflowError, NoWorker, TemporalUnavailable
from incidentflow.logs import configure_logging

EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_NO_WORKER = 1, 2, 3, 4
__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.idempotency_key = args.idempotency_key or str(uuid.uuid4())  # one per run: a retry inside is applied once
    configure_logging(level=os.environ.get("INCIDENTFLOW_LOG_LEVEL", "WARNING").upper())
    try:
        return _dispatch(args, Settings())
    except NoWorker as exc:
        print(f"error: {exc}\nTo get its result without applying it twice, run it again with "
              f"`incidentflow --idempotency-key {args.idempotency_key} {' '.join(_argv(argv))}`", file=sys.stderr)
        return EXIT_NO_WORKER
    except TemporalUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (runbook.UsageError, ParamError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RunbookError, IncidentflowError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid input: {problems}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _argv(argv: list[str] | None) -> list[str]:
    """The arguments as given, quoted for a shell, without an --idempotency-key (the hint adds its own)."""
    given = list(sys.argv[1:] if argv is None else argv)
    out, skip = [], False
    for word in given:
        if skip:
            skip = False
        elif word == "--idempotency-key":
            skip = True
        elif not word.startswith("--idempotency-key="):
            out.append(shlex.quote(word))
    return out


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in ("dev", "worker", "api", "temporal", "handoff"):
        return run_ops(args, settings)
    if args.command in ("oncall", "drill"):
        return run_local(args, settings)
    if args.command == "config":
        return check_config(args)
    if args.command in ("statuspage", "maintenance"):
        return asyncio.run(_statuspage(args, settings))
    if args.command in ("postmortem", "action"):
        return asyncio.run(_learning(args, settings))
    if args.command in ("archive", "report"):
        return asyncio.run(_archive(args, settings))
    if args.command == "runbook":
        code = runbook.local(args, settings)
        return code if code is not None else asyncio.run(_runbook(args, settings))
    return asyncio.run(run_command(args, settings))


async def _runbook(args: argparse.Namespace, settings: Settings) -> int:
    needs_temporal = not (args.action == "run" and args.dry_run and not args.incident)
    inc = await open_incidents(settings) if needs_temporal else None
    return await runbook.remote(args, settings, inc)


async def _statuspage(args: argparse.Namespace, settings: Settings) -> int:
    from incidentflow.cli import statuspage

    return await statuspage.run(args, settings, await open_incidents(settings))


async def _learning(args: argparse.Namespace, settings: Settings) -> int:
    from incidentflow.cli import learning

    return await learning.run(args, settings, await open_incidents(settings))


async def _archive(args: argparse.Namespace, settings: Settings) -> int:
    from incidentflow.cli import archive
    from incidentflow.cli.incidents import cli_config
    from incidentflow.client import Incidents

    if getattr(args, "action", None) == "sync":
        return await archive.run(args, settings, await open_incidents(settings))
    # the archive is read straight from the records store: it answers while Temporal is down
    return await archive.run(args, settings, Incidents(None, settings, cli_config(settings), source="cli"))  # type: ignore[arg-type]
