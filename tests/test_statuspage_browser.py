"""The published status page in a real browser: Playwright driving Debian's Chromium (no browser download), on a
desktop and a phone width, served as the static files a bucket or CDN would serve. Screenshots are kept under
.artifacts/statuspage/ (CI keeps them as artifacts)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from activities.statuspage import write_page
from domain.statuspage.messages import PublishFiles
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    MaintenanceInput,
    PublicStatus,
    PublishInput,
    StatusPageConfig,
    StatusPageState,
)
from domain.statuspage.state import ensure_components, publish, schedule_maintenance
from tests.debian import chromium

ARTIFACTS = Path(__file__).resolve().parent.parent / ".artifacts" / "statuspage"
NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)
CONFIG = StatusPageConfig.model_validate({
    "title": "Acme status", "url": "https://status.example.com",
    "components": [
        {"id": "api", "name": "Public API", "group": "Platform", "services": ["checkout"]},
        {"id": "checkout", "name": "Checkout", "group": "Platform", "services": ["checkout"]},
        {"id": "web", "name": "Website", "description": "www.example.com", "services": ["frontend"]},
        {"id": "email", "name": "Email delivery", "services": ["mailer"]}]})


def page_state() -> StatusPageState:
    state = StatusPageState()
    ensure_components(state, CONFIG, NOW - timedelta(days=95))
    old = NOW - timedelta(days=20)
    publish(state, CONFIG, PublishInput(
        incident_id="inc-old", name="Email delays", status=PublicStatus.investigating, by="c",
        body="Emails are delayed by up to 30 minutes.",
        components=[ComponentChange(component="email", status=ComponentStatus.partial_outage)]), old)
    publish(state, CONFIG, PublishInput(
        incident_id="inc-old", name="Email delays", status=PublicStatus.resolved, by="c",
        body="Emails are delivered on time again.",
        components=[ComponentChange(component="email", status=ComponentStatus.operational)]), old + timedelta(hours=3))
    publish(state, CONFIG, PublishInput(
        incident_id="inc-now", name="Checkout payments failing", status=PublicStatus.identified, by="c",
        body="Card payments fail for about half of the attempts.\nWe found the cause: a faulty release.",
        components=[ComponentChange(component="checkout", status=ComponentStatus.major_outage),
                    ComponentChange(component="api", status=ComponentStatus.degraded_performance)]),
            NOW - timedelta(minutes=40))
    schedule_maintenance(state, CONFIG, MaintenanceInput(
        title="Database upgrade", body="Writes pause for up to 5 minutes.", components=["api"],
        start=NOW + timedelta(days=2), end=NOW + timedelta(days=2, hours=1), by="d"), "mnt-1", NOW)
    return state


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("statuspage")
    write_page(directory, PublishFiles(state=page_state(), config=CONFIG, at=NOW))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser: object, site: str, width: int, height: int, path: str = "index.html") -> Page:
    context = browser.new_context(viewport={"width": width, "height": height},  # type: ignore[attr-defined]
                                  java_script_enabled=False)  # the page must work without it
    page: Page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{site}/{path}")
    assert all(u.startswith(site) for u in requests), requests  # nothing from elsewhere
    return page


@pytest.mark.parametrize(("label", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)])
def test_the_page_reads_right_in_a_real_browser(site: str, browser: object, label: str, width: int,
                                                height: int) -> None:
    page = open_page(browser, site, width, height)
    assert page.locator("[role=status]").inner_text() == "Major System Outage"
    assert page.locator("main").count() == 1 and page.locator("header[role=banner]").count() == 1
    assert page.locator("footer[role=contentinfo]").inner_text().startswith("All times are UTC")
    rows = page.locator("ul.components > li")
    assert rows.count() == 4
    checkout = rows.filter(has_text="Checkout")
    assert checkout.locator(".st").inner_text() == "Major outage"
    bars = checkout.locator(".bars")
    assert bars.get_attribute("role") == "img" and "uptime over the last 90 days" in (bars.get_attribute("aria-label")
                                                                                      or "")
    assert bars.locator("i").count() == 90
    assert checkout.locator("details.days summary").inner_text() == "1 disrupted day"  # closed: the list is hidden
    assert checkout.locator("details.days time").get_attribute("datetime") == "2026-12-06"
    delays = rows.filter(has_text="Email delivery")
    assert "disrupted on 1 day" in (delays.locator(".bars").get_attribute("aria-label") or "")
    delays.locator("details.days summary").click()  # opens without JavaScript
    assert "partial outage" in delays.locator("details.days li").inner_text()
    form = page.locator("form[method=post]")
    assert form.get_attribute("action") == "https://status.example.com/status/subscribe"  # the API at statuspage.url
    assert page.get_by_label("Email address").get_attribute("type") == "email"
    assert page.get_by_role("checkbox", name="Checkout").count() == 1
    active = page.locator("section.incident").first
    assert "Checkout payments failing" in active.inner_text() and "faulty release" in active.inner_text()
    assert "Database upgrade" in page.locator("main").inner_text()
    # responsive: nothing wider than the viewport, the bars fit
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = bars.bounding_box()
    assert box is not None and box["width"] <= width
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"status-{label}.png"), full_page=True)
    page.context.close()


def test_history_and_feed_links_work(site: str, browser: object) -> None:
    page = open_page(browser, site, 1280, 900)
    page.get_by_role("link", name="History").click()
    assert page.url.endswith("/history.html")
    assert "Email delays" in page.locator("main").inner_text()
    assert page.locator("h2", has_text="Incident history").count() == 1
    response = page.request.get(f"{site}/feed.atom")
    assert response.ok and b"Checkout payments failing: Identified" in response.body()
    response = page.request.get(f"{site}/api/v2/status.json")
    assert response.json()["status"]["indicator"] == "critical"
    page.context.close()
