"""The reports page in a real browser: Playwright driving Debian's Chromium (no browser download) with
JavaScript off, on a desktop and a phone width. Screenshots go to .artifacts/reports/ (CI keeps them);
`UPDATE_SCREENSHOT=1` also rewrites docs/reports.png, the README's picture, from a quarter of sample data."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, sync_playwright

from domain.archive.models import ActionItemRow, ArchiveQuery, IncidentRow
from domain.reports.charts import render_charts
from domain.reports.compute import compute
from domain.reports.config import ReportTargets
from domain.reports.page import render_reports_page
from tests.debian import chromium
from tests.reports_data import sample
from tests.test_reports import ACTIONS, INCIDENTS, NOW, QUERY

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".artifacts" / "reports"
README_SHOT = ROOT / "docs" / "reports.png"


def _write(directory: Path, name: str, incidents: list[IncidentRow], actions: list[ActionItemRow],
           query: ArchiveQuery) -> None:
    report = compute(incidents, actions, query, ReportTargets(), NOW)
    html = render_reports_page(report, render_charts(report), "Incident reports", NOW)
    (directory / name).write_text(html, encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("reports")
    _write(directory, "reports.html", INCIDENTS, ACTIONS, QUERY)  # the hand-worked figures
    quarter_start = NOW.replace(hour=0) - timedelta(weeks=13)
    incidents, actions = sample(NOW.replace(hour=0), 13, 12)
    _write(directory, "quarter.html", incidents, actions, ArchiveQuery(since=quarter_start, until=NOW.replace(hour=0)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        executable = chromium()
    except RuntimeError as e:  # no chromium and no way to install it here
        pytest.skip(str(e))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser: object, site: str, width: int, height: int, path: str = "reports.html") -> Page:
    context = browser.new_context(viewport={"width": width, "height": height},  # type: ignore[attr-defined]
                                  java_script_enabled=False)  # the page must work without it
    page: Page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{site}/{path}")
    assert all(u.startswith(site) for u in requests), requests  # nothing from elsewhere
    return page


def cells(row: Locator) -> list[str]:
    return [c.strip() for c in row.locator("th, td").all_inner_texts()]


def check_figures(page: Page) -> None:
    assert page.locator("main").count() == 1 and page.locator("header[role=banner]").count() == 1
    assert page.locator("h1").inner_text() == "Incident reports"
    assert "All times are UTC" in page.locator("footer[role=contentinfo]").inner_text()
    targets = page.locator("#targets tbody tr")
    assert cells(targets.nth(0)) == ["MTTD (mean)", "below 5 min", "4 min", "✓ Met"]
    assert cells(targets.nth(2)) == ["MTTR (mean)", "below 30 min", "55 min", "✗ Missed"]
    assert cells(targets.nth(3)) == ["MTBF per service (mean)", "above 7 d", "lowest 2 d (search)",
                                     "✗ Missed by 2 of 2 services"]
    assert cells(targets.nth(4))[-2:] == ["20 %", "✗ Missed"]
    rows = page.locator("#durations tbody tr")
    assert cells(rows.nth(1)) == ["MTTA\ndeclared to first acknowledgement", "6", "3 min", "10 min", "4 min 30 s"]
    assert cells(rows.nth(3))[1:] == ["5", "40 min", "2 h", "55 min"]
    assert cells(rows.nth(4))[1:] == ["3", "2 d", "7 d", "3 d 16 h"]
    assert page.locator("#fp-alert").inner_text() == "20 % (1 of 5)"
    assert page.locator("#unacked").inner_text() == "1: C"
    rule = page.locator("#rules tbody tr").first
    assert cells(rule) == ["HighErrorRate", "3", "1", "33.3 %", "1", "47"]
    assert cells(page.locator("#follow-table tfoot tr")) == ["All teams", "7", "3", "1", "1", "1", "1", "50 %"]
    assert cells(page.locator("#by-severity tbody tr").nth(2)) == ["SEV3", "3"]


def check_charts(page: Page, width: int) -> None:
    charts = page.locator("figure svg[role=img]")
    assert charts.count() == 3
    for i in range(3):
        box, frame = charts.nth(i).bounding_box(), page.locator("figure").nth(i).bounding_box()
        assert box is not None and box["width"] >= 500 and box["height"] > 200  # drawn, and readable
        assert frame is not None and frame["width"] <= width  # on a phone it scrolls inside its figure
    weekly = page.locator("#chart-weekly")
    assert weekly.locator("path.line").count() >= 4  # 4 series (plus axes)
    assert weekly.locator("circle.dot").count() == 8  # 2 weeks x 4 series, every one with a value
    legends = weekly.locator(".legends text").all_text_contents()  # SVG: text content, not inner text
    assert legends == ["MTTA p50", "MTTA p90", "MTTR p50", "MTTR p90"]
    bars = page.locator("#chart-severity rect.rect")
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(bars.count())]
    assert len(heights) == 4 and heights[2] > heights[0] == heights[1] > heights[3] > 0  # 2, 2, 3, 1
    noisy = page.locator("#chart-noisiest")
    assert noisy.locator("rect.rect").count() == 3
    labels = noisy.locator(".axis text").all_text_contents()
    assert {"HighErrorRate", "DiskFull", "LatencyHigh"} <= set(labels)


@pytest.mark.parametrize(("label", "width", "height"), [("desktop", 1280, 900), ("phone", 390, 844)])
def test_the_report_reads_right_in_a_real_browser(site: str, browser: object, label: str, width: int,
                                                  height: int) -> None:
    page = open_page(browser, site, width, height)
    check_figures(page)
    check_charts(page, width)
    page.get_by_text("Weekly figures as a table").click()  # <details> opens without JavaScript
    assert cells(page.locator("#weeks tbody tr").nth(1)) == ["2026-W49", "4", "1", "2 min", "10 min", "1 h", "2 h"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # wide tables scroll in their box
    for key in ("#targets table", "#durations"):  # the headline figures fit without scrolling, even on a phone
        assert page.evaluate(f"(t => t.scrollWidth <= t.parentElement.clientWidth)"
                             f"(document.querySelector('{key}'))"), key
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"reports-{label}.png"), full_page=True)
    page.context.close()


def test_a_quarter_of_data_and_the_readme_picture(site: str, browser: object) -> None:
    page = open_page(browser, site, 900, 1390, "quarter.html")
    weekly = page.locator("#chart-weekly")
    assert weekly.locator(".axis.x text").count() >= 7 and weekly.locator("circle.dot").count() >= 40
    assert page.locator("#weeks tbody tr").count() == 13
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reports-quarter.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # the top of the page: targets, response times, weekly chart
        page.screenshot(path=str(README_SHOT), clip={"x": 0, "y": 0, "width": 900, "height": 1390})
        assert README_SHOT.stat().st_size < 200_000
    page.context.close()
