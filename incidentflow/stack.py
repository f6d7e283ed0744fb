"""Process entry points that run long: the embedded dev stack and the API server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.config import IncidentflowConfig, Settings, load_config
from incidentflow.api import create_app
from incidentflow.client import Incidents, connect, ensure_handoff_schedules, ensure_search_attributes
from incidentflow.client_health import worker_polling
from incidentflow.devstack import (
    DevServer,
    DevStackError,
    WorkerProcess,
    port_open,
    stale_message,
    stale_workflows,
    to_terminate,
)

EXAMPLE_CONFIG = Path("config/example.yaml")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the stack decides when everything stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _api_server(settings: Settings, app: object) -> _Server:
    if port_open(settings.api_host, settings.api_port):
        raise DevStackError(f"port {settings.api_port} on {settings.api_host} is already in use; "
                            "set INCIDENTFLOW_API_PORT to another port")
    return _Server(uvicorn.Config(app, host=settings.api_host, port=settings.api_port,  # type: ignore[arg-type]
                                  log_level="warning", lifespan="on", log_config=None))


def run_api(settings: Settings) -> int:
    from incidentflow import tracing

    tracing.setup_tracing("incidentflow-api")  # only when the OTEL_* variables ask for it

    async def main() -> None:
        stop = _stop_event()
        server = _api_server(settings, create_app(settings, config=load_config(settings.config)))
        task = asyncio.create_task(server.serve())
        print(f"incidentflow API on http://{settings.api_host}:{settings.api_port} "
              f"(Temporal {settings.temporal_address})", flush=True)
        await stop.wait()
        server.should_exit = True
        await task
    asyncio.run(main())
    return 0


WORKER_START_TIMEOUT = 60.0  # seconds for the worker process to import, connect and answer a ping


def run_dev(settings: Settings, demo: bool = True, external: bool = False, terminate_stale: bool = False,
            worker_in_process: bool = False) -> int:
    """The embedded stack. Running workflows this code cannot continue (started by an older incidentflow)
    stop it with a message saying how to go on, unless `terminate_stale` ends them first. The worker runs
    in its own process (as in production), or in this one with `worker_in_process`."""
    if settings.config is None and EXAMPLE_CONFIG.exists():
        settings.config = EXAMPLE_CONFIG
    config = load_config(settings.config)
    server = None if external else DevServer(settings)
    try:
        if server:
            print(f"starting the Temporal dev server ({server.db_file}) …", flush=True)
            server.start()
        asyncio.run(_dev(settings, config, demo, server, terminate_stale, worker_in_process))
    except DevStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server:
            server.stop()
    print("stopped.", flush=True)
    return 0


async def _check_stale(client: Client, settings: Settings, server: DevServer | None, terminate: bool) -> None:
    """Replay what is running before a worker picks it up: a nondeterminism error later helps nobody."""
    stale, checked = await stale_workflows(client)
    if not stale:
        return
    if not terminate:
        where = str(server.db_file) if server else f"Temporal at {settings.temporal_address}"
        fresh = (f"start on a fresh file: remove {settings.data_dir}/ (INCIDENTFLOW_DATA_DIR) and run "
                 "`incidentflow dev` again" if server else None)
        raise DevStackError(stale_message(stale, len(checked), where, fresh))
    ended = to_terminate(stale, checked)
    for workflow_id in ended:
        try:
            await client.get_workflow_handle(workflow_id).terminate(
                "incidentflow dev --terminate-stale: started by an older incidentflow; cannot continue on this code")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: it has ended meanwhile
                raise
    print(f"terminated {len(ended)} stale workflow(s): {', '.join(ended)}", flush=True)


async def _dev(settings: Settings, config: IncidentflowConfig, demo: bool, server: DevServer | None,
               terminate_stale: bool = False, worker_in_process: bool = False) -> None:
    from incidentflow import tracing

    tracing.setup_tracing("incidentflow")

    stop = _stop_event()
    client = await connect(settings, timeout=15.0, wait=True)
    await ensure_search_attributes(client, settings.temporal_namespace)
    await _check_stale(client, settings, server, terminate_stale)
    await ensure_handoff_schedules(client, settings, config)
    await Incidents(client, settings, config).setup_digest()  # the weekly action items review
    await Incidents(client, settings, config).ensure_statuspage()  # the public page is written from the start
    async with _worker(client, settings, config, worker_in_process, stop) as worker_pid:
        api = _api_server(settings, create_app(settings, client, config))
        api_task = asyncio.create_task(api.serve())
        while not api.started and not api_task.done():
            await asyncio.sleep(0.05)
        if api_task.done():
            api_task.result()
        where = f"sqlite {server.db_file}" if server else "external"
        ui = settings.ui_url()
        worker = "in this process" if worker_pid is None else f"its own process (pid {worker_pid})"
        print(f"""
incidentflow dev stack is up
  Temporal    {settings.temporal_address} ({where})
  Web UI      {ui}/namespaces/{settings.temporal_namespace}/workflows
  API         http://{settings.api_host}:{settings.api_port}  (/healthz, /readyz, /docs)
  Status page http://{settings.api_host}:{settings.api_port}/status
  Worker      {worker}, task queue {settings.task_queue}
  Config      {settings.config or 'built-in defaults'}
Press Ctrl-C to stop.
""", flush=True)
        incidents = Incidents(client, settings, config)
        demo_task = None
        if demo:
            from incidentflow.demo import run_demo
            demo_task = asyncio.create_task(run_demo(incidents, stop))
        await stop.wait()
        print("\nstopping …", flush=True)
        if demo_task and not demo_task.done():
            demo_task.cancel()
        api.should_exit = True
        await api_task


@contextlib.asynccontextmanager
async def _worker(client: Client, settings: Settings, config: IncidentflowConfig, in_process: bool,
                  stop: asyncio.Event) -> AsyncIterator[int | None]:
    """The stack's worker → its pid (None: in this process). A worker process that exits on its own stops
    the stack with an error: a stack that accepts incidents nobody works on would be worse."""
    if in_process:
        from workers.main import build_worker

        async with build_worker(client, settings, directory=Incidents(client, settings, config)):
            yield None
        return
    proc = WorkerProcess(settings)
    proc.start()
    died: list[int] = []

    async def watch() -> None:
        while (code := proc.exit_code()) is None:
            await asyncio.sleep(0.5)
        died.append(code)
        stop.set()

    def exited() -> DevStackError:
        return DevStackError(f"the worker process exited (code {died[0]}); its output is above. Run it alone "
                             "to see why: `incidentflow worker`")

    watcher = asyncio.create_task(watch())
    loop = asyncio.get_running_loop()
    try:
        deadline = loop.time() + WORKER_START_TIMEOUT
        while not stop.is_set() and not await _polling(client, settings):
            if died:
                raise exited()
            if loop.time() > deadline:
                raise DevStackError(f"the worker process (pid {proc.pid}) did not poll task queue "
                                    f"'{settings.task_queue}' within {WORKER_START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.2)
        yield proc.pid
    finally:
        watcher.cancel()
        await loop.run_in_executor(None, proc.stop)
    if died:
        raise exited()


async def _polling(client: Client, settings: Settings) -> bool:
    try:
        return await worker_polling(client, settings.temporal_namespace, settings.task_queue)
    except RPCError:  # the server is busy starting: ask again
        return False
