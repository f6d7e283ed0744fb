"""The reports page's HTML and charts (issue 15): landmarks, tables with header cells and captions, results in
words, the three charts inline and labelled, names from alerts escaped, no script, a year of data small."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from domain.archive.models import ArchiveQuery
from domain.reports.charts import Charts, render_charts
from domain.reports.compute import compute
from domain.reports.config import ReportTargets
from domain.reports.models import Report
from domain.reports.page import duration, percent, render_reports_page
from tests.reports_data import sample
from tests.test_reports import ACTIONS, INCIDENTS, NOW, QUERY, inc, t

TITLE = "Incident reports"


class Doc(HTMLParser):
    """Tags with their attributes, and the text of the page, for structure assertions."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t_, a in self.tags if t_ == tag and all(a.get(k) == v for k, v in attrs.items())]


def page(report: Report, charts: Charts | None = None) -> str:
    return render_reports_page(report, charts or render_charts(report), TITLE, NOW)


@pytest.fixture(scope="module")
def html() -> str:
    return page(compute(INCIDENTS, ACTIONS, QUERY, ReportTargets(), NOW))


def test_landmarks_headings_and_tables(html: str) -> None:
    doc = Doc(html)
    assert html.startswith("<!doctype html>") and doc.find("html", lang="en")
    assert len(doc.find("main")) == 1 and doc.find("header", role="banner") and doc.find("footer", role="contentinfo")
    assert doc.find("nav", **{"aria-label": "Report sections"})
    assert len(doc.find("h1")) == 1 and "<h1>Incident reports</h1>" in html
    sections = doc.find("section")
    assert [s["id"] for s in sections] == ["targets", "times", "mtbf", "volume", "quality", "follow"]
    assert all(doc.find("h2", id=s["aria-labelledby"]) for s in sections)
    assert html.count("<table") == html.count("<caption>") == 9
    headers = doc.find("th")
    assert headers and all(h.get("scope") in ("col", "row") for h in headers)
    assert doc.find("meta", name="viewport")


def test_the_figures_are_on_the_page_in_words(html: str) -> None:
    text = " ".join(Doc(html).text)
    # the window and the generation time, in UTC with the zone named
    assert "Nov 23, 2026 00:00 UTC" in text and "Dec 07, 2026 00:00 UTC" in text and "Dec 07, 2026 12:00 UTC" in text
    assert '<time datetime="2026-11-23T00:00:00Z">' in html
    assert "8 incidents: 2 stood down, 1 not resolved yet." in text
    assert ('<tr data-metric="mtta"><th scope="row"><abbr title="Mean time to acknowledge">MTTA</abbr>'
            '<span class="what">declared to first acknowledgement</span></th>\n<td>6</td>'
            '<td data-seconds="180.0">3 min</td><td data-seconds="600.0">10 min</td>'
            '<td data-seconds="270.0">4 min 30 s</td></tr>') in html
    assert '<td data-seconds="3300.0">55 min</td>' in html  # MTTR mean
    assert "20 % (1 of 5)" in text and "25 % (2 of 8)" in text and "1: C" in text
    # targets: the result in words, not colour alone
    assert '<td class="res res-met" data-status="met">✓ Met</td>' in html
    assert "✗ Missed by 2 of 2 services" in text and "lowest 2 d (search)" in text
    assert text.count("✓ Met") == 2 and text.count("✗ Missed") == 5  # 3 targets + 2 MTBF rows by service
    # follow-through: payments 2 items, 1 on time, 1 late, 50 %
    assert "<th scope=\"row\">payments</th><td>2</td><td>0</td><td>0</td><td>1</td><td>1</td><td>0</td><td>50 %</td>" \
        in html
    assert "All times are UTC" in text


def test_charts_are_inline_svg_without_script(html: str) -> None:
    doc = Doc(html)
    svgs = doc.find("svg")
    assert [s["id"] for s in svgs] == ["chart-weekly", "chart-severity", "chart-noisiest"]
    for svg in svgs:
        assert svg["role"] == "img"
        title, desc = svg["aria-labelledby"].split()
        assert doc.find("title", id=title) and doc.find("desc", id=desc)
    assert "<script" not in html and "javascript:" not in html.lower()
    assert " src=" not in html and "@import" not in html and "url(" not in html  # nothing fetched from elsewhere
    assert "Generated with pygal" not in html  # no dated comment: the same report renders the same page
    assert "Bars of the number of incidents per severity: SEV1: 2, SEV2: 2, SEV3: 3, SEV4: 1." in html
    assert "HighErrorRate: 47; DiskFull: 3; LatencyHigh: 1" in html
    for legend in ("MTTA p50", "MTTA p90", "MTTR p50", "MTTR p90"):
        assert f">{legend}</text>" in html


def test_same_report_same_page(html: str) -> None:
    again = compute(list(reversed(INCIDENTS)), list(reversed(ACTIONS)), QUERY, ReportTargets(), NOW)
    assert page(again) == html


def test_names_from_alerts_are_escaped() -> None:
    evil_service, evil_rule = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>\"&"
    rows = [inc("x1", t(12, 1), evil_service, "SEV2", "alert", ack=timedelta(minutes=1), rule=evil_rule,
                notifications=4, pages=1),
            inc("x2", t(12, 2), evil_service, "SEV2", "alert", ack=timedelta(minutes=2), rule=evil_rule,
                notifications=1)]
    html = page(compute(rows, [], QUERY, ReportTargets(), NOW))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # tables (Jinja) and the SVG labels (XML) alike
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert Doc(html).find("tr", **{"data-service": evil_service})  # attribute values escaped, and intact


def test_no_data_reads_as_no_data() -> None:
    html = page(compute([], [], QUERY, ReportTargets(), NOW))
    text = " ".join(Doc(html).text)
    assert "0 incidents" in text and "no data" in text and "– No data" in text
    assert "No incident was opened by an alert." in text and "No action items." in text
    off = ReportTargets(mttd=None, mtta=None, mttr=None, mtbf=None, false_positive_rate=None)
    assert "No targets are configured." in page(compute([], [], QUERY, off, NOW))


def test_a_year_of_data_stays_small() -> None:
    end = datetime(2026, 12, 7, tzinfo=UTC)
    incidents, actions = sample(end, 53, 40, services=[f"service-{i:02d}" for i in range(40)],
                                rules=[f"AlertRule{i:02d}" for i in range(60)])
    year = ArchiveQuery(since=end - timedelta(days=365), until=end + timedelta(days=1))  # Sunday to Monday
    report = compute(incidents, actions, year, ReportTargets(), end)
    html = page(report)
    assert len(report.weeks) == 54  # a leap year from a Sunday touches 54 ISO weeks: the most a year can
    assert len(html.encode()) < 150_000, len(html.encode())
    assert "Showing the 25 services with the most incidents of 40." in html
    assert "the 25 with the most incidents, 35 more in the exports" in html
    assert "And 15 more in the CSV and JSON exports." in html


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (45, "45 s"), (60, "1 min"), (270, "4 min 30 s"), (3600, "1 h"), (3900, "1 h 5 min"),
    (86400 * 2, "2 d"), (316_800, "3 d 16 h"), (89.6, "1 min 30 s"), (None, "no data")])
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert duration(None if seconds is None else timedelta(seconds=seconds)) == text


def test_percentages() -> None:
    assert (percent(0.05), percent(1 / 3), percent(0.0), percent(None)) == ("5 %", "33.3 %", "0 %", "no data")
