"""Maintenance windows given with a UTC offset (the HTTP API and the CLI take 03:00+01:00) are kept and
printed in UTC: the subscriber mail, the reminder, the extend note and the input models; a time without a
zone is refused by the models (the CLI reads it as UTC). On the time-skipping server with a real SMTP server,
and over the real HTTP API and worker on a dev server (which also runs cancel and extend)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mail import SmtpMailer
from activities.records import RecordStore
from activities.statuspage import StatusPageActivities
from activities.subscribers import StatusMailActivities
from domain.config import IncidentflowConfig, load_config
from domain.statuspage import state as page
from domain.statuspage.messages import MaintenanceExtend, StatusPageStart
from domain.statuspage.models import (
    Maintenance,
    MaintenanceInput,
    MaintenanceStatus,
    StatusPageConfig,
    StatusPageState,
)
from domain.statuspage.notices import maintenance_notice
from incidentflow.cli.statuspage import moment, window
from tests.conftest import serve_api
from tests.fakes.smtp import SmtpServer
from workflows.maintenance import MaintenanceWorkflow
from workflows.status_mail import StatusMailWorkflow
from workflows.statuspage import StatusPageWorkflow

PLUS1 = timezone(timedelta(hours=1))
CONFIG = StatusPageConfig.model_validate({
    "title": "Acme status", "url": "https://status.example.com",
    "components": [{"id": "api", "name": "Public API"}, {"id": "web", "name": "Website"}]})
EXAMPLE = Path(__file__).parent.parent / "config" / "example.yaml"


def utc_text(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


# ------------------------------------------------------------------------------------- the pure parts

def test_an_offset_is_kept_as_utc_and_a_naive_time_is_refused_by_name() -> None:
    cmd = MaintenanceInput(title="DB", components=["api"], by="dave", start="2030-01-01T03:00+01:00",
                           end="2030-01-01T04:30+01:00")  # type: ignore[arg-type]
    assert (cmd.start, cmd.end) == (datetime(2030, 1, 1, 2, 0, tzinfo=UTC), datetime(2030, 1, 1, 3, 30, tzinfo=UTC))
    assert cmd.start.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match=r"start: give a timezone"):  # naive start, aware end: no TypeError
        MaintenanceInput(title="DB", components=["api"], by="dave", start="2030-01-01T03:00",
                         end="2030-01-01T04:00Z")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"start/end: give a timezone"):
        MaintenanceInput(title="DB", components=["api"], by="dave", start="2030-01-01T03:00",
                         end="2030-01-01T04:00")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"end: must be after start"):  # 02:30 UTC is before 03:00 UTC
        MaintenanceInput(title="DB", components=["api"], by="dave", start="2030-01-01T03:00Z",
                         end="2030-01-01T03:30+01:00")  # type: ignore[arg-type]
    assert moment("2030-01-01T03:00+01:00") == datetime(2030, 1, 1, 2, 0, tzinfo=UTC)
    assert moment("2030-01-01T03:00") == datetime(2030, 1, 1, 3, 0, tzinfo=UTC)  # the CLI: no zone is UTC
    assert window(datetime(2030, 1, 1, 23, 0, tzinfo=PLUS1), datetime(2030, 1, 2, 1, 30, tzinfo=PLUS1)) == \
        "2030-01-01 22:00–2030-01-02 00:30 UTC"


def test_mail_and_extend_note_print_utc_even_for_a_window_kept_with_an_offset() -> None:
    """A maintenance an older version recorded with its +01:00 offset still prints in UTC."""
    now = datetime(2029, 12, 31, 12, 0, tzinfo=UTC)
    m = Maintenance.model_construct(
        id="mnt-x", title="DB upgrade", body="", components=["api"], status=MaintenanceStatus.scheduled,
        scheduled_for=datetime(2030, 1, 1, 3, 0, tzinfo=PLUS1), scheduled_until=datetime(2030, 1, 1, 4, 0, tzinfo=PLUS1),
        created_at=now, by="dave", updates=[], mirror_id=None)
    state = StatusPageState(maintenances=[m])
    assert "Window: 2030-01-01 02:00 to 2030-01-01 03:00 UTC" in maintenance_notice(CONFIG, m).text
    assert Maintenance.model_validate(m.model_dump()).scheduled_for == datetime(2030, 1, 1, 2, 0, tzinfo=UTC)
    page.extend_maintenance(state, CONFIG, "mnt-x", datetime(2030, 1, 1, 5, 30, tzinfo=PLUS1), now)
    assert m.updates[0].body == "Extended until 2030-01-01 04:30 UTC"
    assert "to 2030-01-01 04:30 UTC" in maintenance_notice(CONFIG, m).text
    with pytest.raises(page.StatusPageError, match="until: give a timezone"):
        page.extend_maintenance(state, CONFIG, "mnt-x", datetime(2030, 1, 1, 6, 0), now)
    assert MaintenanceExtend(maintenance_id="mnt-x", until=datetime(2030, 1, 1, 6, 0, tzinfo=PLUS1),
                             by="dave").until == datetime(2030, 1, 1, 5, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------- the workflows

@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
async def page_and_store(ts_env: WorkflowEnvironment, tmp_path: Path,
                         smtp: SmtpServer) -> AsyncIterator[tuple[WorkflowHandle[Any, Any], RecordStore]]:
    store = RecordStore.open(f"sqlite:///{tmp_path}/records.db")
    acts = StatusPageActivities(lambda: CONFIG, tmp_path)
    mail = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: CONFIG)
    queue = f"mt-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(ts_env.client, task_queue=queue,
                          workflows=[StatusPageWorkflow, MaintenanceWorkflow, StatusMailWorkflow],
                          activities=[acts.load_statuspage_config, acts.publish_page, mail.notify_subscribers]):
            handle = await ts_env.client.start_workflow(StatusPageWorkflow.run, StatusPageStart(),
                                                        id=f"page-{queue}", task_queue=queue)
            yield handle, store
    finally:
        store.close()


def mail_texts(smtp: SmtpServer) -> list[str]:
    return [str(m.message.get_body(("plain",)).get_content()) for m in smtp.messages()]  # type: ignore[union-attr]


async def test_a_window_given_at_plus_one_hour_is_mailed_reminded_and_extended_in_utc(
        page_and_store: tuple[WorkflowHandle[Any, Any], RecordStore], ts_env: WorkflowEnvironment,
        smtp: SmtpServer) -> None:
    handle, store = page_and_store
    store.subscribers.confirm(store.subscribers.subscribe("ann@example.com", ["api"]).confirm_token)
    now = await ts_env.get_current_time()
    start, end = (now + timedelta(hours=2)).astimezone(PLUS1), (now + timedelta(hours=3)).astimezone(PLUS1)
    m = await handle.execute_update(StatusPageWorkflow.schedule_maintenance, MaintenanceInput(
        title="Database upgrade", components=["api"], start=start, end=end, by="dave"))
    assert m.scheduled_for == start and m.scheduled_for.utcoffset() == timedelta(0)
    window_text = f"Window: {utc_text(start)} to {utc_text(end)} UTC"
    for _ in range(200):
        if mail_texts(smtp):
            break
        await asyncio.sleep(0.05)
    assert window_text in mail_texts(smtp)[0], mail_texts(smtp)
    await ts_env.sleep(timedelta(hours=1, minutes=1))  # past the 60-minute reminder
    state = await handle.query(StatusPageWorkflow.get_state)
    reminder = state.maintenance(m.id).updates[0].body  # type: ignore[union-attr]
    assert reminder == f"Reminder: this maintenance starts in 60 min, at {utc_text(start)} UTC."
    new_end = (now + timedelta(hours=5)).astimezone(PLUS1)
    extended = await handle.execute_update(StatusPageWorkflow.extend_maintenance, MaintenanceExtend(
        maintenance_id=m.id, until=new_end, by="dave"))
    assert extended.updates[0].body == f"Extended until {utc_text(new_end)} UTC"
    for _ in range(200):
        if len(mail_texts(smtp)) >= 3:
            break
        await asyncio.sleep(0.05)
    texts = mail_texts(smtp)
    assert len(texts) == 3 and reminder in texts[1] and window_text in texts[1], texts
    assert f"Extended until {utc_text(new_end)} UTC" in texts[2]
    assert f"Window: {utc_text(start)} to {utc_text(new_end)} UTC" in texts[2]


# ------------------------------------------------------------------------------------- the HTTP routes

def api_config() -> IncidentflowConfig:
    cfg = load_config(EXAMPLE)
    return cfg.model_copy(update={"statuspage": cfg.statuspage.model_copy(update={"url": "http://status.test"})})


async def until_json(api: httpx.AsyncClient, path: str, ok: Any) -> Any:
    for _ in range(200):
        r = await api.get(path)
        if r.status_code == 200 and ok(r.json()):
            return r.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never matched: {r.text}")


async def test_http_extend_and_cancel_take_offsets_and_give_utc(dev_env: WorkflowEnvironment,
                                                               tmp_path: Path) -> None:
    async with serve_api(dev_env, config=api_config(), data_dir=tmp_path) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        naive = await api.post("/v1/maintenances", json={"title": "x", "components": ["login"], "by": "alice",
                                                         "start": "2030-01-01T03:00", "end": "2030-01-01T04:00Z"})
        assert naive.status_code == 422 and "start: give a timezone" in naive.json()["error"], naive.text
        made = await api.post("/v1/maintenances", json={
            "title": "DB upgrade", "components": ["search"], "by": "alice",
            "start": "2030-01-01T03:00+01:00", "end": "2030-01-01T04:00+01:00"})
        assert made.status_code == 201, made.text
        mid = made.json()["id"]
        assert made.json()["scheduled_for"] == "2030-01-01T02:00:00Z"
        extended = await api.post(f"/v1/maintenances/{mid}/extend", json={"until": "2030-01-01T05:30+01:00",
                                                                          "by": "alice"})
        assert extended.status_code == 200, extended.text
        assert extended.json()["scheduled_until"] == "2030-01-01T04:30:00Z"
        assert extended.json()["updates"][0]["body"] == "Extended until 2030-01-01 04:30 UTC"
        assert [m["scheduled_until"] for m in (await api.get("/v1/maintenances")).json()] == ["2030-01-01T04:30:00Z"]
        early = await api.post(f"/v1/maintenances/{mid}/extend", json={"until": "2030-01-01T01:00Z", "by": "alice"})
        assert early.status_code == 409 and "until: must be after the start" in early.json()["error"]
        no_zone = await api.post(f"/v1/maintenances/{mid}/extend", json={"until": "2030-01-01T06:00", "by": "alice"})
        assert no_zone.status_code == 422 and "until: give a timezone" in no_zone.json()["error"], no_zone.text
        await until_json(api, "/api/v2/scheduled-maintenances/upcoming.json", lambda d: any(
            m["id"] == mid and m["scheduled_until"] == "2030-01-01T04:30:00Z" for m in d["scheduled_maintenances"]))

        now = datetime.now(UTC)
        running = (await api.post("/v1/maintenances", json={
            "title": "Auth failover", "components": ["login"], "by": "alice",
            "start": (now + timedelta(seconds=1)).astimezone(PLUS1).isoformat(),
            "end": (now + timedelta(hours=1)).astimezone(PLUS1).isoformat()})).json()
        await until_json(api, "/api/v2/components.json", lambda d: any(
            c["id"] == "login" and c["status"] == "under_maintenance" for c in d["components"]))
        for which, reason in ((mid, "Postponed to February."), (running["id"], "")):
            cancelled = await api.post(f"/v1/maintenances/{which}/cancel", json={"reason": reason, "by": "alice"},
                                       headers={"Idempotency-Key": f"cancel-{which}"})
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            assert cancelled.json()["updates"][0]["body"] == (reason or "This maintenance has been cancelled.")
        retried = await api.post(f"/v1/maintenances/{mid}/cancel", json={"reason": "Postponed to February.",
                                                                          "by": "alice"},
                                 headers={"Idempotency-Key": f"cancel-{mid}"})
        assert retried.status_code == 200 and retried.json()["status"] == "cancelled"  # the same answer
        again = await api.post(f"/v1/maintenances/{mid}/cancel", json={"by": "alice"})
        assert again.status_code == 409 and "already ended (cancelled)" in again.json()["error"]
        await until_json(api, "/api/v2/components.json", lambda d: any(  # back, though it had started
            c["id"] == "login" and c["status"] == "operational" for c in d["components"]))
        listed = {m["id"]: m for m in (await api.get("/v1/maintenances")).json()}
        assert {listed[mid]["status"], listed[running["id"]]["status"]} == {"cancelled"}
        unknown = await api.post("/v1/maintenances/mnt-nope/cancel", json={"by": "alice"})
        assert unknown.status_code == 404 and "no maintenance 'mnt-nope'" in unknown.json()["error"]
