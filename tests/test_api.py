"""HTTP health endpoints: /readyz is 200 only when Temporal answers and a worker polls our queue."""

from __future__ import annotations

import uuid

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.config import Settings
from incidentflow.api import create_app
from tests.conftest import running_worker
from tests.helpers import eventually


def http(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")  # type: ignore[arg-type]


async def test_readyz_waits_for_a_worker(dev_env: WorkflowEnvironment) -> None:
    lonely = Settings(task_queue=f"nobody-{uuid.uuid4().hex[:6]}")
    async with http(create_app(lonely, dev_env.client)) as api:
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        not_ready = await api.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"temporal": True, "worker": False}
        assert lonely.task_queue in not_ready.json()["reason"]
    async with running_worker(dev_env.client) as (settings, _):
        async with http(create_app(settings, dev_env.client)) as api:
            ready = await eventually(lambda: api.get("/readyz"), lambda r: r.status_code == 200)
            assert ready.json() == {"status": "ready", "checks": {"temporal": True, "worker": True}}


async def test_readyz_names_the_unreachable_temporal() -> None:
    settings = Settings(temporal_address="127.0.0.1:1")
    async with http(create_app(settings)) as api:
        assert (await api.get("/healthz")).status_code == 200, "liveness does not depend on Temporal"
        resp = await api.get("/readyz")
        assert resp.status_code == 503 and "127.0.0.1:1" in resp.json()["reason"]
        assert (await api.get("/openapi.json")).json()["info"]["title"] == "incidentflow"
