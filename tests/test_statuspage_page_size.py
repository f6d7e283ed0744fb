"""The public page stays under 100 KB for a large, realistic page, and keeps its accessibility.

The page: 30 components in 5 groups, 90 days of history with outage days, 10 incidents (2 still open) of 4
updates each, and 2 scheduled maintenances. Each component's 90 uptime bars carry no text of their own: one
summary per component (role=img with a label) says the uptime and on how many days it was disrupted, and
only those days are listed, with their minutes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    MaintenanceInput,
    PublicStatus,
    PublishInput,
    StatusPageConfig,
    StatusPageState,
)
from domain.statuspage.page_template import STYLE
from domain.statuspage.render_html import Links, render_page, static_files
from domain.statuspage.state import day_outages, ensure_components, publish, schedule_maintenance

NOW = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)
LIMIT = 100_000
GROUPS = ["Platform", "Payments", "Storefront", "Data and analytics", "Communications"]
KINDS = ["API", "Dashboard", "Webhooks", "Background jobs", "Search", "File uploads"]
BODY = ("We are seeing elevated error rates for {c}: about a third of requests fail with a timeout and "
        "retries are slow. Our engineers are working on it and we will post the next update within 30 "
        "minutes. Payments already made are not affected and nothing needs to be done on your side.")
STEPS = [(PublicStatus.investigating, ComponentStatus.major_outage), (PublicStatus.identified,
         ComponentStatus.partial_outage), (PublicStatus.monitoring, ComponentStatus.degraded_performance),
         (PublicStatus.resolved, ComponentStatus.operational)]


def large_config() -> StatusPageConfig:
    components = [{"id": f"{g[:4].lower()}-{k.split()[0].lower()}", "name": f"{g} {k}", "group": g,
                   "description": f"{k} for {g.lower()} customers" if n % 2 else "", "services": []}
                  for g in GROUPS for n, k in enumerate(KINDS)]
    return StatusPageConfig.model_validate({"title": "Acme Corporation status", "url": "https://status.example.com",
                                            "components": components})


def large_state(cfg: StatusPageConfig) -> StatusPageState:
    state = StatusPageState()
    ensure_components(state, cfg, NOW - timedelta(days=95))
    ids = [c.id for c in cfg.components]
    for n in range(10):  # 8 resolved over the 90 days, the last 2 still open
        start = NOW - timedelta(days=85 - 9 * n, hours=n)
        hit = ids[(3 * n) % 30:(3 * n) % 30 + 1 + n % 3]
        steps = STEPS if n < 8 else STEPS[: 2 + n % 2]
        gap = timedelta(hours=11) if n % 3 == 0 else timedelta(minutes=50)  # some outages span UTC days
        for k, (status, comp) in enumerate(steps):
            publish(state, cfg, PublishInput(
                incident_id=f"inc-{n}", name=f"Elevated errors on {cfg.component(hit[0]).name}",  # type: ignore[union-attr]
                status=status, body=BODY.format(c=", ".join(hit)), by="comms",
                components=[ComponentChange(component=c, status=comp) for c in hit]),
                min(start + gap * k, NOW - timedelta(minutes=30 - k)))
    for n, ids_ in enumerate((ids[:4], ids[10:12])):
        schedule_maintenance(state, cfg, MaintenanceInput(
            title=f"Database upgrade {n + 1}", body="Writes pause for up to 5 minutes while we switch over.",
            components=ids_, start=NOW + timedelta(days=2 + n), end=NOW + timedelta(days=2 + n, hours=1), by="ops"),
            f"mnt-{n}", NOW)
    return state


class Outline(HTMLParser):
    """What the accessibility checks need: tags with attributes, and each uptime image's bars."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.bars: list[list[dict[str, str | None]]] = []
        self._in_bars = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "div" and a.get("class") == "bars":
            self.bars.append([])
            self._in_bars = True
        elif self._in_bars and tag == "i":
            self.bars[-1].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._in_bars = False

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def outline(html: str) -> Outline:
    parsed = Outline()
    parsed.feed(html)
    return parsed


@pytest.fixture(scope="module")
def cfg() -> StatusPageConfig:
    return large_config()


@pytest.fixture(scope="module")
def state(cfg: StatusPageConfig) -> StatusPageState:
    return large_state(cfg)


def test_the_large_page_is_under_100_kb_served_and_published(cfg: StatusPageConfig, state: StatusPageState) -> None:
    assert len(cfg.components) == 30 and len({c.group for c in cfg.components}) == 5
    assert len(state.incidents) == 10 and sum(i.open for i in state.incidents) == 2
    assert all(len(i.updates) >= 2 for i in state.incidents) and len(state.maintenances) == 2
    down_days = sum(bool(day_outages(state, c.id, NOW)) for c in cfg.components)
    assert down_days >= 15  # the bars are not all green: outage days cost bytes too
    served = render_page(cfg, state, NOW, Links.served())
    published = static_files(cfg, state, NOW)["index.html"]
    assert len(served.encode()) < LIMIT, f"served page is {len(served.encode())} bytes"
    assert len(published) < LIMIT, f"published index.html is {len(published)} bytes"
    for c in cfg.components:
        assert c.name in served
    assert all(i.name in served for i in state.incidents)  # every incident of the 10 is on the front page


def test_the_large_page_keeps_its_accessibility(cfg: StatusPageConfig, state: StatusPageState) -> None:
    html = render_page(cfg, state, NOW, Links.served())
    page = outline(html)
    assert page.find("html", lang="en") and page.find("meta", name="viewport")
    assert page.find("header", role="banner") and len(page.find("main")) == 1
    assert page.find("footer", role="contentinfo") and page.find("nav")
    assert "All times are UTC (Coordinated Universal Time)" in html and "@media" in html
    assert "<script" not in html and " style=" not in html and not re.findall(r'(?:src|href|action)="https?://', html)

    images = page.find("div", class_="bars")
    assert len(images) == 30 and all(len(bars) == cfg.history_days for bars in page.bars)
    for spec, image, bars in zip(cfg.components, images, page.bars, strict=True):
        assert image["role"] == "img"
        label = image["aria-label"] or ""
        assert re.fullmatch(rf"{re.escape(spec.name)}: \d+(\.\d+)? % uptime over the last 90 days; "
                            r"(no disruptions|disrupted on \d+ days?)", label), label
        disrupted = [b for b in bars if b.get("class")]
        outages = day_outages(state, spec.id, NOW)
        assert len(disrupted) == len(outages)  # a class only on the days with an outage: green is the default
        assert all(b.get("title") for b in disrupted) and not any(b.get("title") for b in bars if not b.get("class"))
        if outages:
            assert f"disrupted on {len(outages)} day" in label
    # each disrupted day is listed as text, with its date as a machine-readable time
    listed = {a["datetime"] for a in page.find("time") if re.fullmatch(r"\d{4}-\d\d-\d\d", a["datetime"] or "")}
    assert listed == {day for c in cfg.components for day in day_outages(state, c.id, NOW)}
    assert html.count("<summary>") == sum(bool(day_outages(state, c.id, NOW)) for c in cfg.components)

    form = page.find("form", method="post", action="/status/subscribe")
    assert form, "the subscribe form is on the page"
    email = page.find("input", type="email", name="email")
    assert email and page.find("label", for_=email[0]["id"] or "?")
    boxes = page.find("input", type="checkbox", name="components")
    assert sorted(b["value"] or "" for b in boxes) == sorted(c.id for c in cfg.components)
    assert page.find("fieldset") and page.find("legend")


def _luminance(hex_colour: str) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    full = hex_colour if len(hex_colour) == 7 else "#" + "".join(ch * 2 for ch in hex_colour[1:])
    r, g, b = (int(full[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def colour(selector: str, prop: str = "color") -> str:
    found = re.search(rf"(?:^|}}|\n){re.escape(selector)}\{{[^}}]*?(?<![-\w]){prop}:(#[0-9a-f]{{6}}|#[0-9a-f]{{3}})(?![0-9a-f])", STYLE)
    assert found, f"{selector} has no {prop} in the style"
    return found.group(1)


def test_every_text_colour_passes_wcag_aa_contrast() -> None:
    white, page_bg = "#ffffff", colour("body", "background")
    pairs = [(colour("body"), page_bg), (colour("body"), white), (colour("a"), white), (colour("a"), page_bg),
             (colour(".meta"), white), (colour(".meta"), page_bg)]
    pairs += [(colour(f".st-{s.value}"), white) for s in ComponentStatus]
    pairs += [(colour(".banner"), colour(f".ind-{i}", "background"))
              for i in ("none", "minor", "major", "critical", "maintenance")]
    for fg, bg in pairs:
        assert contrast(fg, bg) >= 4.5, f"{fg} on {bg} is {contrast(fg, bg):.2f}:1"
