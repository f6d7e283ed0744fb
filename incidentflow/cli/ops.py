"""Running and setting up the pieces: `dev`, `worker`, `api`, `temporal setup`, `handoff`."""

from __future__ import annotations

import argparse
import asyncio
import logging

from temporalio.service import RPCError

from domain.config import ConfigError, Settings, load_config
from incidentflow.client import Incidents, connect, ensure_search_attributes
from incidentflow.logs import JsonFormatter
from incidentflow.temporal_cloud import cloud_setup_message


def run_ops(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "dev":
        from incidentflow.stack import run_dev  # the server, the worker and the API: loaded for `dev` only

        return run_dev(settings, demo=not args.no_demo, external=args.external,
                       terminate_stale=args.terminate_stale, worker_in_process=args.worker_in_process)
    if args.command == "api":
        from incidentflow.stack import run_api

        return run_api(settings)
    if args.command == "worker":
        asyncio.run(_worker(settings))
        return 0
    if args.command == "temporal":
        return asyncio.run(_setup_temporal(settings))
    return asyncio.run(_handoff(args, settings))


async def _setup_temporal(settings: Settings) -> int:
    """Register our search attributes. Temporal Cloud (an API key) may refuse the operator API: then print the
    `tcld` commands that register what is missing, and exit 1."""
    client = await connect(settings)
    try:
        added = await ensure_search_attributes(client, settings.temporal_namespace)
    except RPCError as exc:
        if settings.temporal_api_key is None:
            raise
        print(await cloud_setup_message(client, settings.temporal_namespace, exc))
        return 1
    print(f"search attributes added: {', '.join(added)}" if added else "search attributes already registered")
    return 0


async def _worker(settings: Settings) -> None:
    from incidentflow import tracing
    from workers.main import run_worker  # every adapter (Slack, Kubernetes …): loaded for `worker` only
    from workers.metrics import worker_runtime

    try:
        tracing.setup_tracing("incidentflow-worker")  # only when the OTEL_* variables ask for it
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

    try:
        runtime = worker_runtime(settings, core_logs=_core_logs())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    client = await connect(settings, runtime=runtime)
    door = Incidents(client, settings, load_config(settings.config))
    await door.ensure_statuspage()  # one per cluster: started if not running
    await door.setup_digest()  # the weekly action items review (created, updated, or removed when disabled)
    from incidentflow.stack import _stop_event

    # SIGTERM (a rollout, a node drain) stops polling and lets running activities finish (GRACEFUL_SHUTDOWN)
    await run_worker(client, settings, directory=door, stop=_stop_event())


def _core_logs() -> logging.Logger | None:
    """Where the Rust core's lines go on the worker's own runtime: records, when the logs are JSON (as
    incidentflow.logs arranges for the default runtime)."""
    json = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
    return logging.getLogger("temporalio.core") if json else None


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
