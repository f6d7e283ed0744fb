"""The Atlassian Statuspage mirror (issue 13) against a fake Statuspage over real HTTP.

Retries are Temporal's: the activities run in a real worker on the time-skipping server, and a small
workflow keeps the Statuspage id in its state the way the status-page workflow does."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import NON_RETRYABLE_TYPES
from activities.statuspage_io import AtlassianStatuspage
from activities.statuspage_mirror import StatuspageMirrorActivities
from domain.statuspage.mirror import MaintenanceMirrorInput, MirrorIncident, MirrorInput, MirrorResult
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    Impact,
    MaintenanceStatus,
    PublicStatus,
    PublishInput,
)
from tests.fakes.statuspage import FakeStatuspage

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=8,
                    non_retryable_error_types=list(NON_RETRYABLE_TYPES))
FAST = 0.05  # request spacing for tests that do not measure it (the product default is 1 s)


@pytest.fixture
def sp() -> Iterator[FakeStatuspage]:
    with FakeStatuspage() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, follow_redirects=True) as client:  # the adapter must override it
        yield client


def adapter(sp: FakeStatuspage, http: httpx.AsyncClient, interval: float = FAST,
            **components: str) -> AtlassianStatuspage:
    return AtlassianStatuspage(http, page_id=sp.page_id, api_key=sp.api_key, base_url=sp.base_url,
                               component_ids=components, min_interval=interval)


def publish(status: PublicStatus, body: str, **components: ComponentStatus) -> PublishInput:
    return PublishInput(incident_id="incident-20260509-0735-checkout", name="Checkout errors", status=status,
                        body=body, impact=Impact.major if status == PublicStatus.investigating else None,
                        components=[ComponentChange(component=c, status=s) for c, s in components.items()],
                        by="alice")


LIFECYCLE = [
    publish(PublicStatus.investigating, "Payments fail for some customers.", api=ComponentStatus.partial_outage),
    publish(PublicStatus.identified, "A bad deploy of the payment service; rolling back."),
    publish(PublicStatus.resolved, "Payments work again since 08:10 UTC.", api=ComponentStatus.operational),
]


# ------------------------------------------------------------------------------- a workflow like ours


@workflow.defn(sandboxed=False)  # a test double: no sandbox re-imports of this module
class _MirrorWorkflow:
    """Mirrors each published update in turn, keeping the Statuspage id in its state."""

    @workflow.run
    async def run(self, updates: list[PublishInput]) -> list[MirrorResult]:
        statuspage_id: str | None = None
        affected: list[str] = []
        results = []
        for cmd in updates:
            affected += [c.component for c in cmd.components if c.component not in affected]
            result = await workflow.execute_activity_method(
                StatuspageMirrorActivities.mirror_update, MirrorInput.from_publish(cmd, statuspage_id, affected),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY)
            statuspage_id = result.statuspage_id or statuspage_id
            results.append(result)
        return results


@workflow.defn(sandboxed=False)
class _MaintenanceWorkflow:
    @workflow.run
    async def run(self, steps: list[MaintenanceMirrorInput]) -> list[MirrorResult]:
        statuspage_id: str | None = None
        results = []
        for step in steps:
            result = await workflow.execute_activity_method(
                StatuspageMirrorActivities.mirror_maintenance, step.model_copy(update={"statuspage_id": statuspage_id}),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY)
            statuspage_id = result.statuspage_id
            results.append(result)
        return results


async def run_mirror(env: WorkflowEnvironment, mirror: AtlassianStatuspage | None, workflow_run: Any,
                     arg: Any) -> tuple[list[MirrorResult], list[tuple[int, timedelta]]]:
    """The workflow's results, and per activity its last attempt and how long (server time) it took in all."""
    queue = f"sp-{uuid.uuid4().hex[:8]}"
    acts = StatuspageMirrorActivities(mirror)
    async with Worker(env.client, task_queue=queue, workflows=[_MirrorWorkflow, _MaintenanceWorkflow],
                      activities=[acts.mirror_update, acts.mirror_maintenance]):
        handle = await env.client.start_workflow(workflow_run, arg, id=f"mirror-{uuid.uuid4().hex[:8]}",
                                                 task_queue=queue, execution_timeout=timedelta(minutes=30))
        results: list[MirrorResult] = await handle.result()
    scheduled: dict[int, datetime] = {}
    attempts: dict[int, int] = {}
    spans = []
    for event in (await handle.fetch_history()).events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = at
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            attempts[started.scheduled_event_id] = started.attempt
        elif event.HasField("activity_task_completed_event_attributes"):
            sid = event.activity_task_completed_event_attributes.scheduled_event_id
            spans.append((attempts[sid], at - scheduled[sid]))
    return results, spans


def writes(sp: FakeStatuspage, method: str) -> list[Any]:
    return [r.body for r in sp.requests if r.method == method and r.status != 429]


# ------------------------------------------------------------------------------- incidents


async def test_an_incident_is_created_then_updated_with_statuspage_fields(
        ts_env: WorkflowEnvironment, sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    api, web = sp.add_component("API"), sp.add_component("Website")
    results, _ = await run_mirror(ts_env, adapter(sp, http, api=api, web=web), _MirrorWorkflow.run, LIFECYCLE)

    assert [r.created for r in results] == [True, False, False] and len(sp.incidents) == 1
    incident = sp.incidents[0]
    assert {r.statuspage_id for r in results} == {incident["id"]}
    created = next(r.body["incident"] for r in sp.requests if r.method == "POST")
    assert created == {"name": "Checkout errors", "status": "investigating", "impact_override": "major",
                       "body": "Payments fail for some customers.", "deliver_notifications": True,
                       "component_ids": [api], "components": {api: "partial_outage"},
                       "metadata": {"incidentflow": {"id": "incident-20260509-0735-checkout"}}}
    patches = [r for r in sp.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == [f"/v1/pages/{sp.page_id}/incidents/{incident['id']}"] * 2
    assert patches[1].body["incident"]["components"] == {api: "operational"}
    assert [u["status"] for u in incident["incident_updates"]] == ["resolved", "identified", "investigating"]
    assert incident["incident_updates"][0]["body"] == "Payments work again since 08:10 UTC."
    assert incident["resolved_at"] and sp.components[api]["status"] == "operational"
    assert sp.components[web]["status"] == "operational"  # not the incident's
    assert {r.headers["authorization"] for r in sp.requests} == {f"OAuth {sp.api_key}"}


async def test_component_statuses_alone_and_components_without_a_statuspage_id(
        sp: FakeStatuspage, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    api = sp.add_component("API")
    mirror = adapter(sp, http, api=api)
    caplog.set_level(logging.INFO, "incidentflow")
    result = await mirror.mirror(MirrorInput(components=[
        ComponentChange(component="api", status=ComponentStatus.degraded_performance),
        ComponentChange(component="search", status=ComponentStatus.major_outage)]), retrying=False)
    assert result == MirrorResult(components=["api"], unmapped=["search"])
    assert [(r.method, r.path, r.body) for r in sp.requests] == [
        ("PATCH", f"/v1/pages/{sp.page_id}/components/{api}", {"component": {"status": "degraded_performance"}})]
    assert sp.components[api]["status"] == "degraded_performance" and not sp.incidents
    assert "no component id configured for search" in caplog.text


async def test_without_a_statuspage_nothing_is_sent(ts_env: WorkflowEnvironment) -> None:
    results, _ = await run_mirror(ts_env, None, _MirrorWorkflow.run, LIFECYCLE[:1])
    assert results == [MirrorResult(mirrored=False)]


# ------------------------------------------------------------------------------- limits and retries


@pytest.mark.parametrize("status", [429, 420])
async def test_rate_limits_are_retried_by_temporal_after_retry_after_at_one_request_a_second(
        ts_env: WorkflowEnvironment, sp: FakeStatuspage, http: httpx.AsyncClient, status: int) -> None:
    api = sp.add_component("API")
    sp.rate_limit_every(3, status=status, retry_after=30)
    results, spans = await run_mirror(ts_env, adapter(sp, http, 1.0, api=api), _MirrorWorkflow.run, LIFECYCLE)

    assert len(sp.incidents) == 1 and [r.statuspage_id for r in results] == [sp.incidents[0]["id"]] * 3
    assert [u["status"] for u in sp.incidents[0]["incident_updates"]] == ["resolved", "identified", "investigating"]
    assert [r.status for r in sp.requests].count(status) >= 2
    retried = [(attempt, took) for attempt, took in spans if attempt > 1]
    assert retried and all(took >= (attempt - 1) * timedelta(seconds=30) for attempt, took in retried), spans
    assert min(sp.gaps()) >= 0.95, sp.gaps()  # 1 request/s per key, retries included


async def test_concurrent_calls_share_the_one_request_a_second_budget(
        sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    ids = {name: sp.add_component(name) for name in ("a", "b", "c", "d")}
    mirror = adapter(sp, http, 1.0, **ids)
    await asyncio.gather(*(mirror.mirror(MirrorInput(components=[
        ComponentChange(component=name, status=ComponentStatus.partial_outage)]), retrying=False) for name in ids))
    assert len(sp.requests) == 4 and min(sp.gaps()) >= 0.95, sp.gaps()


@pytest.mark.parametrize(("status", "retryable"), [
    (400, False), (401, False), (403, False), (404, False), (422, False),
    (408, True), (409, True), (420, True), (429, True), (500, True), (503, True)])
async def test_statuses_split_into_retryable_and_final(sp: FakeStatuspage, http: httpx.AsyncClient, status: int,
                                                        retryable: bool) -> None:
    sp.fail_next(1, status, retry_after=7, body={"error": ["Component status is not valid"]})
    with pytest.raises(ApplicationError) as err:
        await adapter(sp, http, api=sp.add_component("API")).mirror(MirrorInput(components=[
            ComponentChange(component="api", status=ComponentStatus.major_outage)]), retrying=False)
    assert err.value.non_retryable is not retryable
    assert f"HTTP {status}" in err.value.message and "Component status is not valid" in err.value.message
    if status in (420, 429):
        assert err.value.type == "VendorRateLimited" and err.value.next_retry_delay == timedelta(seconds=7)


async def test_a_real_rejection_fails_the_workflow_at_once_with_the_vendors_words(
        ts_env: WorkflowEnvironment, sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    mirror = adapter(sp, http, api="not-a-component-there")  # a mapping that points nowhere
    with pytest.raises(WorkflowFailureError) as err:
        await run_mirror(ts_env, mirror, _MirrorWorkflow.run, LIFECYCLE[:1])
    cause = err.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "VendorRejected" and "Unknown components" in cause.cause.message
    assert len([r for r in sp.requests if r.method == "POST"]) == 1 and not sp.incidents


# ------------------------------------------------------------------------------- idempotency


async def test_a_retry_after_a_lost_answer_never_creates_a_second_incident_nor_a_second_update(
        ts_env: WorkflowEnvironment, sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    api = sp.add_component("API")
    sp.lose_next("POST")  # created, but the answer never arrives: the activity fails and retries
    sp.lose_next("PATCH")  # the same for the first update
    results, spans = await run_mirror(ts_env, adapter(sp, http, api=api), _MirrorWorkflow.run, LIFECYCLE)

    assert len(sp.incidents) == 1 and len(writes(sp, "POST")) == 1
    assert [attempt for attempt, _ in spans] == [2, 2, 1]
    assert results[0].recovered and results[0].already_applied and not results[0].created
    assert results[1].already_applied and results[0].statuspage_id == sp.incidents[0]["id"]
    assert [u["status"] for u in sp.incidents[0]["incident_updates"]] == ["resolved", "identified", "investigating"]
    assert [r.status for r in sp.requests if r.method == "PATCH"] == [0, 200]  # the lost one, then resolved


async def test_a_found_incident_gets_the_update_it_lacks(sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    """The workflow lost the id (it never had the answer): the marker finds the incident, the update goes on it."""
    mirror = adapter(sp, http, api=sp.add_component("API"))
    first = await mirror.mirror(MirrorInput.from_publish(LIFECYCLE[0]), retrying=False)
    second = await mirror.mirror(MirrorInput.from_publish(LIFECYCLE[1]), retrying=False)
    assert (second.statuspage_id, second.recovered, second.already_applied) == (first.statuspage_id, True, False)
    assert len(sp.incidents) == 1 and len(sp.incidents[0]["incident_updates"]) == 2


async def test_an_incident_created_already_resolved_is_found_by_its_name(
        sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    mirror = adapter(sp, http)
    done = MirrorInput.from_publish(LIFECYCLE[2])
    sp.lose_next("POST")
    with pytest.raises(ApplicationError) as lost:
        await mirror.mirror(done, retrying=False)
    again = await mirror.mirror(done, retrying=True)
    assert lost.value.type == "VendorUnavailable" and not lost.value.non_retryable
    assert again.recovered and again.already_applied and len(sp.incidents) == 1
    assert any(r.query.get("q") == "Checkout errors" for r in sp.requests)


def maintenance(status: MaintenanceStatus, body: str, **components: ComponentStatus) -> MaintenanceMirrorInput:
    start = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    return MaintenanceMirrorInput(
        maintenance_id="mnt-db-upgrade", title="Database upgrade", body=body, status=status,
        scheduled_for=start, scheduled_until=start + timedelta(hours=2), affected=["api"],
        components=[ComponentChange(component=c, status=s) for c, s in components.items()])


async def test_a_maintenance_is_announced_once_and_moved_on(
        ts_env: WorkflowEnvironment, sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    api = sp.add_component("API")
    sp.lose_next("POST")
    steps = [maintenance(MaintenanceStatus.scheduled, "We will upgrade the database."),
             maintenance(MaintenanceStatus.in_progress, "Upgrading now.", api=ComponentStatus.under_maintenance),
             maintenance(MaintenanceStatus.completed, "Done.", api=ComponentStatus.operational)]
    results, _ = await run_mirror(ts_env, adapter(sp, http, api=api), _MaintenanceWorkflow.run, steps)

    assert len(sp.incidents) == 1 and results[0].recovered and {r.statuspage_id for r in results} == {
        sp.incidents[0]["id"]}
    created = writes(sp, "POST")[0]["incident"]
    assert created["scheduled_for"] == "2026-12-07T02:00:00Z" and created["scheduled_until"] == "2026-12-07T04:00:00Z"
    assert created["status"] == "scheduled" and created["component_ids"] == [api]
    assert (created["scheduled_auto_in_progress"], created["scheduled_auto_completed"]) == (False, False)
    assert [u["status"] for u in sp.incidents[0]["incident_updates"]] == ["completed", "in_progress", "scheduled"]
    gets = [r.path.rsplit("/", 1)[-1] for r in sp.requests if r.method == "GET"]
    assert gets == ["upcoming", "active_maintenance", "upcoming"]  # the retry found the lost create
    assert sp.components[api]["status"] == "operational"


# ------------------------------------------------------------------------------- the API key


async def test_the_key_stays_out_of_logs_and_errors_and_off_other_hosts(
        sp: FakeStatuspage, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    api = sp.add_component("API")
    mirror = adapter(sp, http, api=api)
    first = await mirror.mirror(MirrorInput.from_publish(LIFECYCLE[0]), retrying=False)
    sp.fail_next(1, 422, body={"error": f"invalid request from key {sp.api_key}"})  # a vendor echoing us back
    with pytest.raises(ApplicationError) as echoed:
        await mirror.mirror(MirrorInput.from_publish(LIFECYCLE[1], first.statuspage_id), retrying=False)
    wrong = AtlassianStatuspage(http, page_id=sp.page_id, api_key="wrong-" + sp.api_key, base_url=sp.base_url)
    with pytest.raises(ApplicationError) as refused:
        await wrong.mirror(MirrorInput.from_publish(LIFECYCLE[0]), retrying=False)
    with FakeStatuspage(page_id=sp.page_id, api_key=sp.api_key) as other:
        sp.redirect_all(other.base_url)
        with pytest.raises(ApplicationError) as moved:
            await mirror.mirror(MirrorInput.from_publish(LIFECYCLE[1], first.statuspage_id), retrying=False)
        assert other.requests == []  # the redirect was not followed, though the client would follow it

    assert "[redacted]" in echoed.value.message and (refused.value.type, refused.value.non_retryable) == (
        "VendorRejected", True)
    assert (moved.value.non_retryable, "HTTP 307" in moved.value.message) == (True, True)
    said = [echoed.value.message, refused.value.message, moved.value.message, caplog.text,
            *(r.getMessage() for r in caplog.records), *(str(r.args) for r in caplog.records)]
    assert not [s for s in said if sp.api_key in s]
    assert any(r.name == "httpx" for r in caplog.records)  # the transport did log: just never the key


@pytest.mark.parametrize("url", ["http://api.statuspage.io", "https://user:pw@api.statuspage.io",
                                 "https://api.statuspage.io?x=1", "api.statuspage.io"])
def test_the_key_only_goes_to_a_plain_https_base(url: str) -> None:
    with pytest.raises(ValueError, match="statuspage_io_url"):
        AtlassianStatuspage(httpx.AsyncClient(), page_id="p", api_key="k", base_url=url)


async def test_ids_cannot_steer_the_request_elsewhere(sp: FakeStatuspage, http: httpx.AsyncClient) -> None:
    mirror = AtlassianStatuspage(http, page_id="../../evil.example/x", api_key=sp.api_key, base_url=sp.base_url,
                                 component_ids={"api": "@evil.example/../x"}, min_interval=FAST)
    with pytest.raises(ApplicationError):
        await mirror.mirror(MirrorInput(components=[
            ComponentChange(component="api", status=ComponentStatus.major_outage)]), retrying=False)
    assert [r.path for r in sp.requests] == ["/v1/pages/..%2F..%2Fevil.example%2Fx/components/%40evil.example%2F..%2Fx"]
    with pytest.raises(ValueError, match="statuspage_id"):
        MirrorIncident(incident_id="i", statuspage_id="../x", name="n", status=PublicStatus.identified, body="b")
