"""The status page through the real API and worker on a dev server: draft → publish (comms lead or IC only) →
the public page, Statuspage JSON and feed; subscribe → confirm by the mailed link → mailed on the next update;
maintenance scheduled over HTTP; bad input named. With Temporal unreachable, every public page (front page,
history, feed, JSON) is served from the published files."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.statuspage import write_page
from domain.config import IncidentflowConfig, load_config
from domain.settings import Settings
from domain.statuspage.messages import PublishFiles
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    PublicStatus,
    PublishInput,
    StatusPageState,
)
from domain.statuspage.state import ensure_components, publish
from incidentflow.api import create_app
from tests.conftest import serve_api
from tests.fakes.smtp import SmtpServer
from tests.helpers import uvicorn_serving

EXAMPLE = Path(__file__).parent.parent / "config" / "example.yaml"
LINK = re.compile(r"(/status/(?:confirm|unsubscribe))\?token=([A-Za-z0-9_%~.-]+)")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def config(base: str = "http://status.test") -> IncidentflowConfig:
    cfg = load_config(EXAMPLE)
    return cfg.model_copy(update={"statuspage": cfg.statuspage.model_copy(update={"url": base})})


async def eventually(check: Any, tries: int = 200) -> Any:
    for _ in range(tries):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def test_publish_subscribe_and_the_public_page(dev_env: WorkflowEnvironment, tmp_path: Path,
                                                     smtp: SmtpServer) -> None:
    async with serve_api(dev_env, config=config(), data_dir=tmp_path, smtp_url=smtp.url()) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        iid = (await api.post("/v1/incidents", json={"title": "Card payments failing", "severity": "SEV2",
                                                      "service": "checkout", "declared_by": "alice",
                                                      "page": False})).json()["id"]
        draft = (await api.get(f"/v1/incidents/{iid}/public-updates/draft")).json()
        assert draft["status"] == "investigating" and "Checkout" in draft["body"]
        assert draft["components"] == [{"component": "checkout", "status": "partial_outage"}]

        refused = await api.post(f"/v1/incidents/{iid}/public-updates", json={"by": "bob"})
        assert refused.status_code == 409 and "comms lead" in refused.json()["error"]
        await api.post(f"/v1/incidents/{iid}/roles", json={"role": "comms", "person": "bob", "by": "alice"})
        bad = await api.post(f"/v1/incidents/{iid}/public-updates", json={"by": "bob", "components": {"nope": "x"}})
        assert bad.status_code == 422 and "components" in bad.text

        first = await api.post(f"/v1/incidents/{iid}/public-updates", json={"by": "bob"},
                               headers={"Idempotency-Key": "pub-1"})
        assert first.status_code == 200, first.text
        again = await api.post(f"/v1/incidents/{iid}/public-updates", json={"by": "bob"},
                               headers={"Idempotency-Key": "pub-1"})
        assert again.json()["update"]["id"] == first.json()["update"]["id"]

        summary = await eventually(lambda: _json(api, "/api/v2/summary.json", lambda d: d["incidents"]))
        assert summary["status"]["indicator"] == "major"
        assert next(c for c in summary["components"] if c["id"] == "checkout")["status"] == "partial_outage"
        page = await api.get("/status")
        assert page.status_code == 200 and "Card payments failing" in page.text and "<script" not in page.text
        feed = await api.get("/status/feed.atom")
        assert feed.headers["content-type"].startswith("application/atom+xml") and "Investigating" in feed.text
        timeline = (await api.get(f"/v1/incidents/{iid}/timeline")).json()
        assert any("Published a public update" in e["text"] and e["actor"] == "bob" for e in timeline)

        sub = await api.post("/status/subscribe", json={"email": "Ann@Example.com", "components": ["checkout"]})
        assert sub.status_code == 202, sub.text
        assert (await api.post("/status/subscribe", json={"email": "not-an-address"})).status_code == 422
        assert (await api.post("/status/subscribe", json={"email": "a@example.com",
                                                          "components": ["mars"]})).status_code == 422
        mail = await eventually(_mail_to(smtp, "Ann@Example.com"))
        path, token = LINK.search(mail.message.get_body(("plain",)).get_content()).groups()  # type: ignore[union-attr]
        shown = await api.get(path, params={"token": token})
        assert shown.status_code == 200 and "<form method=post" in shown.text  # a GET never acts
        confirmed = await api.post(path, data={"token": token})
        assert confirmed.status_code == 200 and "Subscribed" in confirmed.text

        await api.post(f"/v1/incidents/{iid}/public-updates",
                       json={"by": "bob", "status": "identified", "text": "A bad release; rolling it back."})
        update = await eventually(_mail_to(smtp, "Ann@Example.com", subject="Identified"))
        assert "rolling it back" in update.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert update.message["List-Unsubscribe"]

        m = await api.post("/v1/maintenances", json={"title": "DB upgrade", "components": ["login"],
                                                     "start": "2030-01-01T02:00Z", "end": "2030-01-01T03:00Z",
                                                     "by": "alice"})
        assert m.status_code == 201, m.text
        listed = (await api.get("/v1/maintenances")).json()
        assert [x["title"] for x in listed] == ["DB upgrade"]
        wrong = await api.post("/v1/maintenances", json={"title": "x", "components": ["login"], "by": "alice",
                                                         "start": "2030-01-01T03:00Z", "end": "2030-01-01T02:00Z"})
        assert wrong.status_code == 422 and "end" in wrong.text
        upcoming = await eventually(lambda: _json(api, "/api/v2/scheduled-maintenances/upcoming.json",
                                                  lambda d: d["scheduled_maintenances"]))
        assert upcoming["scheduled_maintenances"][0]["name"] == "DB upgrade"
        assert (await api.get("/api/v2/nope.json")).status_code == 404


async def test_alerts_for_a_component_under_maintenance_do_not_page(dev_env: WorkflowEnvironment,
                                                                    tmp_path: Path) -> None:
    async with serve_api(dev_env, config=config(), data_dir=tmp_path) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as api:
        now = datetime.now(UTC)
        m = await api.post("/v1/maintenances", json={
            "title": "Auth database upgrade", "components": ["login"], "by": "alice",
            "start": (now + timedelta(seconds=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat()})
        assert m.status_code == 201, m.text
        await eventually(lambda: _json(api, "/api/v2/components.json", lambda d: any(
            c["id"] == "login" and c["status"] == "under_maintenance" for c in d["components"])))
        quiet = await api.post("/v1/alerts/generic", json={"title": "Login errors", "service": "login",
                                                           "severity": "SEV3", "dedup_key": "login-errors"})
        assert quiet.status_code == 202 and quiet.json()["outcome"] == "ignored", quiet.text
        assert m.json()["id"] in quiet.json()["reason"] and "does not page" in quiet.json()["reason"]
        loud = await api.post("/v1/alerts/generic", json={"title": "Login down", "service": "login",
                                                          "severity": "SEV1", "dedup_key": "login-down"})
        assert loud.json()["outcome"] == "accepted", loud.text  # a SEV1 still pages
        other = await api.post("/v1/alerts/generic", json={"title": "Search slow", "service": "search",
                                                           "severity": "SEV3", "dedup_key": "search-slow"})
        assert other.json()["outcome"] == "accepted"


def published(cfg: IncidentflowConfig, directory: Path) -> None:
    """The files the worker wrote before Temporal went away: one resolved incident (on the history page)."""
    sp, at = cfg.statuspage, datetime.now(UTC) - timedelta(days=3)
    state = StatusPageState()
    ensure_components(state, sp, at - timedelta(days=1))
    for status, component, minutes in ((PublicStatus.investigating, ComponentStatus.major_outage, 0),
                                       (PublicStatus.resolved, ComponentStatus.operational, 40)):
        publish(state, sp, PublishInput(incident_id="inc-db", name="Login outage", status=status, by="bob",
                                        body=f"Login is {status.value}.",
                                        components=[ComponentChange(component="login", status=component)]),
                at + timedelta(minutes=minutes))
    write_page(directory, PublishFiles(state=state, config=sp, at=at + timedelta(hours=1)))


async def test_every_public_page_is_served_from_disk_while_temporal_is_down(tmp_path: Path) -> None:
    cfg = config("https://status.example.com")
    published(cfg, tmp_path / "statuspage")
    down = Settings(temporal_address="127.0.0.1:1", data_dir=tmp_path)
    async with uvicorn_serving(create_app(down, config=cfg)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        history = await api.get("/status/history")
        assert history.status_code == 200, history.text
        assert "Incident history" in history.text and "Login outage" in history.text
        assert 'href="/status"' in history.text and 'href="index.html"' not in history.text  # our routes
        front = await api.get("/status")
        assert front.status_code == 200 and "Login outage" in front.text
        assert '<form method="post" action="/status/subscribe">' in front.text  # not the static copy's URL
        assert (await api.get("/status/feed.atom")).status_code == 200
        assert (await api.get("/api/v2/summary.json")).json()["page"]["url"] == "https://status.example.com"
    nothing = Settings(temporal_address="127.0.0.1:1", data_dir=tmp_path / "empty")
    async with uvicorn_serving(create_app(nothing, config=cfg)) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        unpublished = await api.get("/status/history")  # no files and no Temporal: say so, and when to retry
        assert unpublished.status_code == 503 and unpublished.headers["Retry-After"]


async def _json(api: httpx.AsyncClient, path: str, ok: Any) -> dict[str, Any] | None:
    r = await api.get(path)
    data: dict[str, Any] = r.json() if r.status_code == 200 else {}
    return data if data and ok(data) else None


def _mail_to(smtp: SmtpServer, to: str, subject: str = "") -> Any:
    async def check() -> Any:
        for m in smtp.messages():
            if to.lower() in [r.lower() for r in m.recipients] and subject in str(m.message["Subject"]):
                return m
        return None
    return check
