"""The public status page's pure core: state changes, outage minutes, Statuspage JSON, HTML, feed, drafts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from domain.models.common import Phase, Severity
from domain.statuspage import render_json
from domain.statuspage.drafts import DraftContext, draft, public_status
from domain.statuspage.models import (
    ComponentChange,
    ComponentStatus,
    Impact,
    MaintenanceInput,
    MaintenanceStatus,
    PublicStatus,
    PublishInput,
    StatusPageConfig,
    StatusPageState,
    check_template,
)
from domain.statuspage.render_html import Links, render_feed, render_page, static_files
from domain.statuspage.state import (
    StatusPageError,
    day_outages,
    ensure_components,
    maintenance_step,
    publish,
    schedule_maintenance,
    under_maintenance,
    uptime,
)

T0 = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)


def config(**kw: object) -> StatusPageConfig:
    return StatusPageConfig.model_validate({
        "title": "Acme status", "url": "https://status.example.com",
        "components": [{"id": "api", "name": "Public API", "group": "Core", "services": ["checkout"]},
                       {"id": "web", "name": "Website", "services": ["frontend"]}], **kw})


def fresh(cfg: StatusPageConfig) -> StatusPageState:
    state = StatusPageState()
    ensure_components(state, cfg, T0 - timedelta(days=1))
    return state


def pub(state: StatusPageState, cfg: StatusPageConfig, status: PublicStatus, at: datetime, **kw: object) -> None:
    changes = kw.pop("components", [ComponentChange(component="api", status=ComponentStatus.major_outage)])
    publish(state, cfg, PublishInput.model_validate({
        "incident_id": "inc-1", "name": "Checkout failing", "status": status, "body": f"{status.value} text",
        "by": "alice", "components": changes, **kw}), at)


def test_publish_creates_the_incident_and_changes_components_once() -> None:
    cfg = config()
    state = fresh(cfg)
    pub(state, cfg, PublicStatus.investigating, T0)
    inc = state.incident("inc-1")
    assert inc is not None and inc.open and inc.impact == Impact.critical
    assert state.components["api"].status == ComponentStatus.major_outage
    assert [a.new_status for a in inc.updates[0].affected_components] == [ComponentStatus.major_outage]
    pub(state, cfg, PublicStatus.resolved, T0 + timedelta(minutes=45),
        components=[ComponentChange(component="api", status=ComponentStatus.operational)])
    assert not inc.open and inc.resolved_at == T0 + timedelta(minutes=45)
    assert [u.status for u in inc.updates] == [PublicStatus.resolved, PublicStatus.investigating]  # newest first
    assert state.version == 2


def test_unknown_component_is_refused_and_nothing_changes() -> None:
    cfg = config()
    state = fresh(cfg)
    with pytest.raises(StatusPageError, match=r"unknown db.*known: api, web"):
        pub(state, cfg, PublicStatus.investigating, T0,
            components=[ComponentChange(component="api", status=ComponentStatus.major_outage),
                        ComponentChange(component="db", status=ComponentStatus.major_outage)])
    assert state.components["api"].status == ComponentStatus.operational and not state.incidents


def test_outage_minutes_split_at_utc_midnight_and_weighted_uptime() -> None:
    cfg = config()
    state = fresh(cfg)
    pub(state, cfg, PublicStatus.investigating, T0)  # 23:30 major outage
    pub(state, cfg, PublicStatus.identified, T0 + timedelta(minutes=60),
        components=[ComponentChange(component="api", status=ComponentStatus.partial_outage)])
    days = day_outages(state, "api", T0 + timedelta(minutes=90))
    assert days["2026-12-06"].major == 30 and days["2026-12-07"].major == 30
    assert days["2026-12-07"].partial == 30
    assert uptime(days["2026-12-07"]) == round(100 * (1 - (30 + 9) / 1440), 2)
    assert uptime(None) == 100.0


def test_indicator_and_statuspage_documents() -> None:
    cfg = config()
    state = fresh(cfg)
    assert render_json.status(cfg, state)["status"] == {"indicator": "none", "description": "All Systems Operational"}
    pub(state, cfg, PublicStatus.investigating, T0,
        components=[ComponentChange(component="web", status=ComponentStatus.partial_outage)])
    docs = render_json.documents(cfg, state)
    assert docs["status.json"]["status"]["indicator"] == "major"
    summary = docs["summary.json"]
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    web = next(c for c in summary["components"] if c["id"] == "web")
    assert web["status"] == "partial_outage"
    group = next(c for c in summary["components"] if c["group"])
    assert group["name"] == "Core" and group["components"] == ["api"]
    upd = summary["incidents"][0]["incident_updates"][0]
    assert upd["status"] == "investigating" and upd["affected_components"][0]["old_status"] == "operational"
    assert docs["incidents/unresolved.json"]["incidents"][0]["shortlink"].startswith("https://status.example.com/")


def test_maintenance_puts_components_under_maintenance_and_back_but_not_over_an_outage() -> None:
    cfg = config()
    state = fresh(cfg)
    m = schedule_maintenance(state, cfg, MaintenanceInput(
        title="DB upgrade", components=["api", "web"], start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2),
        by="bob"), "mnt-1", T0)
    assert render_json.documents(cfg, state)["scheduled-maintenances/upcoming.json"]["scheduled_maintenances"]
    pub(state, cfg, PublicStatus.investigating, T0,
        components=[ComponentChange(component="web", status=ComponentStatus.major_outage)])
    maintenance_step(state, cfg, m.id, MaintenanceStatus.in_progress, "started", T0 + timedelta(hours=1))
    assert state.components["api"].status == ComponentStatus.under_maintenance
    assert state.components["web"].status == ComponentStatus.major_outage  # the incident's status stays
    assert under_maintenance(state, ["api"]) and not under_maintenance(state, ["other"])
    maintenance_step(state, cfg, m.id, MaintenanceStatus.completed, "done", T0 + timedelta(hours=2))
    assert state.components["api"].status == ComponentStatus.operational
    with pytest.raises(StatusPageError, match="already ended"):
        maintenance_step(state, cfg, m.id, MaintenanceStatus.in_progress, "again", T0 + timedelta(hours=3))
    with pytest.raises(ValueError, match="end"):
        MaintenanceInput(title="x", components=["api"], start=T0, end=T0, by="b")


def test_history_is_bounded_to_the_window() -> None:
    cfg = config()
    state = fresh(cfg)
    pub(state, cfg, PublicStatus.investigating, T0)
    pub(state, cfg, PublicStatus.resolved, T0 + timedelta(hours=1),
        components=[ComponentChange(component="api", status=ComponentStatus.operational)])
    later = T0 + timedelta(days=cfg.history_days + 2)
    pub(state, cfg, PublicStatus.investigating, later, incident_id="inc-2",
        components=[ComponentChange(component="web", status=ComponentStatus.degraded_performance)])
    assert [i.incident_id for i in state.incidents] == ["inc-2"]
    assert "2026-12-06" not in state.outages.get("api", {})


def test_html_page_is_small_accessible_and_has_no_script_or_external_assets() -> None:
    cfg = config(components=[{"id": f"c{n}", "name": f"Component {n}", "services": []} for n in range(12)])
    state = fresh(cfg)
    publish(state, cfg, PublishInput(incident_id="inc-9", name="<b>Login</b> broken", status=PublicStatus.identified,
                                     body="Line one\nline <script>two</script>", by="a",
                                     components=[ComponentChange(component="c1", status=ComponentStatus.major_outage)]),
            T0)
    html = render_page(cfg, state, T0 + timedelta(minutes=5), Links.served())
    assert len(html.encode()) < 100_000
    assert "<script" not in html and "&lt;script&gt;" in html and "&lt;b&gt;Login" in html
    assert not re.findall(r'(?:src|href)="https?://', html)
    for landmark in ('<main', 'role="banner"', 'role="contentinfo"', 'lang="en"', 'aria-label="Component 1:'):
        assert landmark in html
    assert "UTC" in html and html.count("<i>") + html.count("<i class=") == 12 * cfg.history_days  # a bar per day, text only on bad days
    assert html.count('<i class="b-critical" title="Dec 06">') == 1
    assert '<time datetime="2026-12-06">Dec 06</time>: 99.65 % uptime, 5 min major outage</li>' in html
    assert 'aria-label="Component 1: 99.99 % uptime over the last 90 days; disrupted on 1 day"' in html
    assert 'aria-label="Component 2: 100.0 % uptime over the last 90 days; no disruptions"' in html
    assert 'href="/status/history"' in html and '<form method="post" action="/status/subscribe">' in html


def test_feed_is_atom_with_an_entry_per_update() -> None:
    cfg = config()
    state = fresh(cfg)
    pub(state, cfg, PublicStatus.investigating, T0)
    pub(state, cfg, PublicStatus.monitoring, T0 + timedelta(minutes=20))
    root = ET.fromstring(render_feed(cfg, state, T0))
    entries = root.findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == 2
    assert entries[0].findtext("{http://www.w3.org/2005/Atom}title") == "Checkout failing: Monitoring"


def test_static_files_cover_the_page_feed_and_every_json_document() -> None:
    cfg = config()
    files = static_files(cfg, fresh(cfg), T0)
    assert {"index.html", "history.html", "feed.atom", "api/v2/summary.json", "api/v2/status.json",
            "api/v2/components.json", "api/v2/incidents.json", "api/v2/incidents/unresolved.json",
            "api/v2/scheduled-maintenances/upcoming.json"} <= set(files)
    assert b'href="history.html"' in files["index.html"]
    # the static copy's form posts to the API at statuspage.url (a static host cannot take a POST)
    assert b'<form method="post" action="https://status.example.com/status/subscribe">' in files["index.html"]
    assert b"<form" not in files["history.html"]
    bare = static_files(config(url=None), fresh(cfg), T0)["index.html"]
    assert b'action="/status/subscribe"' in bare


@pytest.mark.parametrize(("phase", "status"), [
    (Phase.triage, PublicStatus.investigating), (Phase.investigating, PublicStatus.investigating),
    (Phase.identified, PublicStatus.identified), (Phase.mitigating, PublicStatus.identified),
    (Phase.monitoring, PublicStatus.monitoring), (Phase.resolved, PublicStatus.resolved)])
def test_drafts_follow_the_phase_and_are_specific(phase: Phase, status: PublicStatus) -> None:
    cfg = config()
    d = draft(cfg, DraftContext(incident_id="inc-1", title="Checkout payments failing", severity=Severity.SEV2,
                                phase=phase, service="checkout", components=["api"],
                                next_update=T0 + timedelta(minutes=30), resolved_at=T0))
    assert public_status(phase) == status and d.status == status
    assert "Public API" in d.body and "stability" not in d.body.lower()
    if status != PublicStatus.resolved:
        assert "00:00 UTC" in d.body  # when the next update comes
        assert d.components[0].status in (ComponentStatus.partial_outage, ComponentStatus.degraded_performance)
    else:
        assert d.components[0].status == ComponentStatus.operational


def test_draft_templates_are_configurable_and_checked() -> None:
    cfg = config(templates={"investigating": "Trouble with {{ components }} ({{ severity }})."})
    d = draft(cfg, DraftContext(incident_id="i", title="t", severity=Severity.SEV1, phase=Phase.triage,
                                components=["api", "web"]))
    assert d.body == "Trouble with Public API and Website (SEV1)."
    with pytest.raises(ValueError, match="template line 1"):
        check_template("{{ components ")
