"""The StatusPageWorkflow and MaintenanceWorkflow on the time-skipping server: published files on disk,
retries applied once, refusals that change nothing, maintenance timers that move the components, subscribers
mailed at each maintenance step; and (pure) the state kept under its byte bound, update ids never reused."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mail import SmtpMailer
from activities.records import RecordStore
from activities.statuspage import StatusPageActivities, published_version
from activities.statuspage_io import AtlassianStatuspage
from activities.statuspage_mirror import StatuspageMirrorActivities
from activities.subscribers import StatusMailActivities
from domain.statuspage import state as page_state
from domain.statuspage.messages import (
    STATUSPAGE_ID,
    MaintenanceExtend,
    MaintenanceStepInput,
    PublishFiles,
    StatusPageStart,
)
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    Impact,
    MaintenanceInput,
    MaintenanceStatus,
    PublicIncident,
    PublicStatus,
    PublicUpdate,
    PublishInput,
    StatusPageConfig,
    StatusPageState,
)
from tests.fakes.smtp import SmtpServer
from tests.fakes.statuspage import FakeStatuspage
from workflows.maintenance import MaintenanceWorkflow
from workflows.status_mail import StatusMailWorkflow
from workflows.statuspage import StatusPageWorkflow

CONFIG = StatusPageConfig.model_validate({
    "title": "Acme status", "url": "https://status.example.com",
    "components": [{"id": "api", "name": "Public API", "services": ["checkout"]},
                   {"id": "web", "name": "Website", "services": ["frontend"]}]})


def summary(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "api/v2/summary.json").read_text())  # type: ignore[no-any-return]


def status_of(directory: Path, component: str) -> str:
    return str(next(c["status"] for c in summary(directory)["components"] if c["id"] == component))


async def until(check: Any, env: WorkflowEnvironment, tries: int = 100) -> None:
    import asyncio
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.05)
    assert check()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def sp() -> Iterator[FakeStatuspage]:
    with FakeStatuspage() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    opened = RecordStore.open(f"sqlite:///{tmp_path}/records.db")
    yield opened
    opened.close()


@pytest.fixture
async def page(ts_env: WorkflowEnvironment, tmp_path: Path, smtp: SmtpServer, sp: FakeStatuspage,
               store: RecordStore) -> Any:
    config = CONFIG.model_copy(update={"mirror": True})
    acts = StatusPageActivities(lambda: config, tmp_path)
    mail = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: config)
    api_id = sp.add_component("Public API")
    async with httpx.AsyncClient(timeout=5) as http:
        mirror = StatuspageMirrorActivities(AtlassianStatuspage(
            http, page_id=sp.page_id, api_key=sp.api_key, base_url=sp.base_url, component_ids={"api": api_id},
            min_interval=0.01))
        queue = f"sp-{uuid.uuid4().hex[:8]}"
        async with Worker(ts_env.client, task_queue=queue,
                          workflows=[StatusPageWorkflow, MaintenanceWorkflow, StatusMailWorkflow],
                          activities=[acts.load_statuspage_config, acts.publish_page, mail.notify_subscribers,
                                      mirror.mirror_update, mirror.mirror_maintenance]):
            handle = await ts_env.client.start_workflow(StatusPageWorkflow.run, StatusPageStart(),
                                                        id=STATUSPAGE_ID, task_queue=queue)
            yield handle, tmp_path / "statuspage"


def publish_input(**kw: Any) -> PublishInput:
    return PublishInput.model_validate({
        "incident_id": "inc-1", "name": "Checkout failing", "status": "investigating", "by": "carol",
        "body": "We are investigating failed payments.",
        "components": [{"component": "api", "status": "major_outage"}], **kw})


async def test_a_publish_lands_on_disk_once_and_a_refusal_changes_nothing(
        page: tuple[WorkflowHandle[Any, Any], Path], ts_env: WorkflowEnvironment) -> None:
    handle, directory = page
    first = await handle.execute_update(StatusPageWorkflow.publish, publish_input(request_id="r1"))
    again = await handle.execute_update(StatusPageWorkflow.publish, publish_input(request_id="r1"))
    assert again.duplicate and again.update.id == first.update.id
    await until(lambda: published_version(directory) >= first.version, ts_env)
    assert status_of(directory, "api") == "major_outage"
    assert summary(directory)["status"]["indicator"] == "critical"
    assert b"We are investigating failed payments." in (directory / "index.html").read_bytes()
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(StatusPageWorkflow.publish, publish_input(
            incident_id="inc-2", components=[{"component": "api", "status": "operational"},
                                             {"component": "nope", "status": "major_outage"}]))
    assert "unknown nope" in str(err.value.cause)
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.components["api"].status == ComponentStatus.major_outage and state.incident("inc-2") is None
    assert len(state.incident("inc-1").updates) == 1  # type: ignore[union-attr]


async def test_resolution_puts_components_back(page: tuple[WorkflowHandle[Any, Any], Path],
                                               ts_env: WorkflowEnvironment) -> None:
    handle, directory = page
    await handle.execute_update(StatusPageWorkflow.publish, publish_input())
    done = await handle.execute_update(StatusPageWorkflow.publish, publish_input(
        status=PublicStatus.resolved, body="Payments work again.",
        components=[ComponentChange(component="api", status=ComponentStatus.operational)]))
    await until(lambda: published_version(directory) >= done.version, ts_env)
    assert status_of(directory, "api") == "operational"
    assert summary(directory)["incidents"] == []  # summary lists unresolved only
    history = json.loads((directory / "api/v2/incidents.json").read_text())["incidents"]
    assert history[0]["status"] == "resolved" and len(history[0]["incident_updates"]) == 2


async def test_maintenance_timers_move_the_components(page: tuple[WorkflowHandle[Any, Any], Path],
                                                      ts_env: WorkflowEnvironment) -> None:
    handle, directory = page
    now = await ts_env.get_current_time()
    m = await handle.execute_update(StatusPageWorkflow.schedule_maintenance, MaintenanceInput(
        title="Database upgrade", components=["api"], start=now + timedelta(hours=2),
        end=now + timedelta(hours=3), by="dave"))
    await ts_env.sleep(timedelta(hours=2, minutes=1))
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.components["api"].status == ComponentStatus.under_maintenance
    steps = [u.body for u in reversed(state.maintenance(m.id).updates)]  # type: ignore[union-attr]
    assert steps[1].startswith("Reminder: this maintenance starts in 60 min"), steps  # not the 24 h one: too late
    assert steps[2] == "The scheduled maintenance has started."
    assert state.maintenance(m.id).status == MaintenanceStatus.in_progress  # type: ignore[union-attr]
    await handle.execute_update(StatusPageWorkflow.extend_maintenance, MaintenanceExtend(
        maintenance_id=m.id, until=now + timedelta(hours=5), by="dave"))
    await ts_env.sleep(timedelta(hours=1, minutes=30))  # past the old end: still under maintenance
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.components["api"].status == ComponentStatus.under_maintenance
    await ts_env.sleep(timedelta(hours=2))
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.components["api"].status == ComponentStatus.operational
    assert state.maintenance(m.id).status == MaintenanceStatus.completed  # type: ignore[union-attr]
    await until(lambda: published_version(directory) >= state.version, ts_env)
    assert status_of(directory, "api") == "operational"


async def test_a_cancelled_maintenance_never_starts(page: tuple[WorkflowHandle[Any, Any], Path],
                                                    ts_env: WorkflowEnvironment) -> None:
    handle, _ = page
    now = await ts_env.get_current_time()
    m = await handle.execute_update(StatusPageWorkflow.schedule_maintenance, MaintenanceInput(
        title="Network work", components=["web"], start=now + timedelta(hours=1), end=now + timedelta(hours=2),
        by="dave"))
    await handle.execute_update(StatusPageWorkflow.maintenance_step, MaintenanceStepInput(
        maintenance_id=m.id, status=MaintenanceStatus.cancelled, body="Postponed.", by="dave"))
    await ts_env.sleep(timedelta(hours=1, minutes=5))
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.components["web"].status == ComponentStatus.operational
    assert state.maintenance(m.id).status == MaintenanceStatus.cancelled  # type: ignore[union-attr]
    child = ts_env.client.get_workflow_handle(f"{STATUSPAGE_ID}-{m.id}")
    assert await child.result() == "cancelled"


async def test_each_update_mails_subscribers_once_and_mirrors_to_statuspage(
        page: tuple[WorkflowHandle[Any, Any], Path], ts_env: WorkflowEnvironment, smtp: SmtpServer,
        sp: FakeStatuspage, store: RecordStore) -> None:
    handle, _ = page
    for email, comps in (("ann@example.com", ["api"]), ("bob@example.com", ["web"]), ("cy@example.com", [])):
        store.subscribers.confirm(store.subscribers.subscribe(email, comps).confirm_token)
    store.subscribers.subscribe("unconfirmed@example.com", [])
    await handle.execute_update(StatusPageWorkflow.publish, publish_input(request_id="a"))
    await handle.execute_update(StatusPageWorkflow.publish, publish_input(request_id="a"))  # a retry: no mail
    await handle.execute_update(StatusPageWorkflow.publish, publish_input(
        status=PublicStatus.resolved, body="Payments work again.",
        components=[ComponentChange(component="api", status=ComponentStatus.operational)]))
    await until(lambda: len(smtp.messages()) >= 4 and len(sp.incidents) == 1
                and sp.incidents[0]["status"] == "resolved", ts_env, tries=200)
    counts = smtp.count_by_recipient()
    assert counts == {"ann@example.com": 2, "cy@example.com": 2}  # api subscribers and everyone; confirmed only
    subjects = sorted({m.message["Subject"] for m in smtp.messages()})
    assert subjects == ["[Acme status] Checkout failing: Investigating", "[Acme status] Checkout failing: Resolved"]
    assert all(m.message["List-Unsubscribe"] for m in smtp.messages())
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.incident("inc-1").mirror_id == sp.incidents[0]["id"]  # type: ignore[union-attr]
    assert len(sp.incidents) == 1 and len(sp.incidents[0]["incident_updates"]) == 2


async def test_subscribers_are_mailed_each_maintenance_step_of_their_components(
        page: tuple[WorkflowHandle[Any, Any], Path], ts_env: WorkflowEnvironment, smtp: SmtpServer,
        store: RecordStore) -> None:
    """Announced, each reminder, started and completed (or cancelled): one mail per step to the subscribers of
    the maintenance's components and to those of all components; never to those of other components."""
    handle, _ = page
    for email, comps in (("ann@example.com", ["api"]), ("bob@example.com", ["web"]), ("cy@example.com", [])):
        store.subscribers.confirm(store.subscribers.subscribe(email, comps).confirm_token)
    now = await ts_env.get_current_time()
    m = await handle.execute_update(StatusPageWorkflow.schedule_maintenance, MaintenanceInput(
        title="Database upgrade", components=["api"], start=now + timedelta(hours=25),
        end=now + timedelta(hours=26), by="dave"))
    off = await handle.execute_update(StatusPageWorkflow.schedule_maintenance, MaintenanceInput(
        title="Network work", components=["web"], start=now + timedelta(hours=30), end=now + timedelta(hours=31),
        by="dave"))
    await until(lambda: len(smtp.messages()) >= 4, ts_env, tries=200)  # both announced
    await handle.execute_update(StatusPageWorkflow.maintenance_step, MaintenanceStepInput(
        maintenance_id=off.id, status=MaintenanceStatus.cancelled, body="Postponed.", by="dave"))
    await ts_env.sleep(timedelta(hours=26, minutes=5))  # 24 h and 1 h reminders, start, end
    await until(lambda: len(smtp.messages()) >= 14, ts_env, tries=200)

    def subjects(to: str) -> list[str]:
        return [str(r.message["Subject"]) for r in smtp.messages() if to in r.recipients]
    upgrade = [f"[Acme status] Maintenance: Database upgrade ({step})"
               for step in ("scheduled", "scheduled", "scheduled", "in progress", "completed")]
    network = [f"[Acme status] Maintenance: Network work ({step})" for step in ("scheduled", "cancelled")]
    assert sorted(subjects("ann@example.com")) == sorted(upgrade)
    assert sorted(subjects("bob@example.com")) == sorted(network)
    assert sorted(subjects("cy@example.com")) == sorted(upgrade + network)
    bodies = [str(r.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
              for r in smtp.messages() if "ann@example.com" in r.recipients]
    for says in ("Reminder: this maintenance starts in 24 h", "Reminder: this maintenance starts in 60 min",
                 "In progress - The scheduled maintenance has started.",
                 "Completed - The scheduled maintenance is complete."):
        assert any(says in b for b in bodies), (says, bodies)
    assert any("Cancelled - Postponed." in str(r.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
               for r in smtp.messages() if "bob@example.com" in r.recipients)
    assert smtp.count_by_recipient() == {"ann@example.com": 5, "bob@example.com": 2, "cy@example.com": 7}
    state = await handle.query(StatusPageWorkflow.get_state)
    assert state.maintenance(m.id).status == MaintenanceStatus.completed  # type: ignore[union-attr]


async def test_publishes_across_continue_as_new_all_land(tmp_path: Path) -> None:
    """The page continues as new (when Temporal suggests it, here after 40 events, or after 12 changes): a
    publish arriving while the old run writes its last version is neither failed nor left unwritten
    (bench/statuspage.py found both)."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from tests.conftest import binary

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), data_converter=pydantic_data_converter, ui=False,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"])
    try:
        acts = StatusPageActivities(lambda: CONFIG, tmp_path)
        no_mail = StatusMailActivities(None, None, lambda: CONFIG)  # type: ignore[arg-type]  # no SMTP: sends nothing
        queue = f"sp-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=queue, workflows=[StatusPageWorkflow, MaintenanceWorkflow,
                                                                   StatusMailWorkflow],
                          activities=[acts.load_statuspage_config, acts.publish_page, no_mail.notify_subscribers]):
            handle = await env.client.start_workflow(StatusPageWorkflow.run, StatusPageStart(changes_per_run=12),
                                                     id=f"page-{queue}", task_queue=queue)
            last = 0
            for i in range(60):
                result = await handle.execute_update(StatusPageWorkflow.publish, publish_input(
                    incident_id=f"inc-{i}", request_id=f"r{i}"))
                last = result.version
            directory = tmp_path / "statuspage"
            await until(lambda: published_version(directory) >= last, env, tries=200)
            first = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
            # back-to-back publishes keep the old run settling until they pause: then it goes on as new
            for _ in range(100):
                if (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    break
                await asyncio.sleep(0.1)
            assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
            assert len(summary(directory)["incidents"]) == 60
    finally:
        await env.shutdown()


# ------------------------------------------------------------------------------------- the state's size (pure)

def _incident(n: int, is_open: bool, updates: int, at: datetime) -> PublicIncident:
    status = PublicStatus.investigating if is_open else PublicStatus.resolved
    return PublicIncident(
        id=f"pi-inc-{n}", incident_id=f"inc-{n}", name="N" * 200, status=status, impact=Impact.critical,
        created_at=at, updated_at=at, resolved_at=None if is_open else at, components=["api"],
        updates=[PublicUpdate(id=f"pi-inc-{n}-u{k}", status=status, body=f"{n}/{k} " + "x" * 4990, created_at=at,
                              by="carol") for k in range(updates, 0, -1)])


def test_the_state_stays_under_its_byte_bound_in_the_worst_case() -> None:
    """The count limits (200 incidents, 50 updates of up to 5,000 characters) allow ~50 MB, and the whole state
    is one payload (publish_page's input, continue-as-new's; Temporal refuses 2 MB). The next change prunes it
    under MAX_STATE_BYTES: open incidents keep their newest updates, the most recent history stays."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    state = StatusPageState(incidents=[_incident(n, n >= 195, page_state.MAX_UPDATES, start + timedelta(minutes=n))
                                       for n in reversed(range(200))])  # newest first; five still open
    assert page_state.state_bytes(state) > 50_000_000
    page_state.publish(state, CONFIG, publish_input(incident_id="inc-new", body="y" * 5000), start + timedelta(hours=5))
    size = page_state.state_bytes(state)
    assert size <= page_state.MAX_STATE_BYTES
    assert len(StatusPageStart(state=state, requests={f"r{i}": "x" * 80 for i in range(500)}).model_dump_json()) \
        < 1_000_000  # continue-as-new's input, with the most request ids it keeps
    assert len(PublishFiles(state=state, config=CONFIG, at=start).model_dump_json()) < 1_000_000
    opened = [i for i in state.incidents if i.open]
    assert [i.incident_id for i in opened] == ["inc-new", *(f"inc-{n}" for n in range(199, 194, -1))]
    assert all(i.updates[0].id == f"{i.id}-u{len(i.updates) if i.incident_id == 'inc-new' else 50}"
               for i in opened)  # each keeps its newest update
    resolved = [int(i.incident_id.split("-")[1]) for i in state.incidents if not i.open]
    assert resolved and resolved == list(range(194, 194 - len(resolved), -1))  # the newest history stays
    assert size > page_state.MAX_STATE_BYTES * 0.8, "pruned to the bound, not far beyond it"

    small = StatusPageState(incidents=[_incident(n, n == 0, 4, start) for n in range(20)])  # ~420 KB
    before = small.model_dump_json()
    page_state._prune(small, CONFIG, start)
    assert small.model_dump_json() == before  # a state under the bound keeps every incident whole


def test_update_ids_are_never_reused_after_older_updates_are_pruned() -> None:
    """An update's id names its subscriber mail and mirror call: the 51st and 52nd updates of one incident, and
    the reopening of a resolved incident whose older updates were pruned, each get an id of their own."""
    state, at = StatusPageState(), datetime(2026, 3, 1, tzinfo=UTC)
    ids = [page_state.publish(state, CONFIG, publish_input(body=f"update {i}"), at).id for i in range(page_state.MAX_UPDATES + 2)]
    assert len(set(ids)) == len(ids) and ids[-1] == f"pi-inc-1-u{page_state.MAX_UPDATES + 2}"
    trimmed = _incident(7, False, 3, at)
    trimmed.updates = trimmed.updates[:1]  # u3 kept, u1 and u2 pruned
    state.incidents.append(trimmed)
    reopened = page_state.publish(state, CONFIG, publish_input(incident_id="inc-7", body="It is back."), at)
    assert reopened.id == "pi-inc-7-u4"
