"""Alerts in, as responders see them: titles from labels (never a summary's live value), no alert lost for
an unknown or malformed service, and Alertmanager's severity words on the generic webhook.

End to end: our HTTP API (ASGI in process) on the shared dev server, with a worker of the test's own.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain import ingest
from domain.config import ConfigError, IncidentflowConfig, Settings, load_config
from domain.models import AlertmanagerPayload, EventKind, Severity
from domain.routing import Router, render_title
from incidentflow.api import create_app
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.helpers import events, eventually

FIXTURES = Path(__file__).parent / "fixtures"
LIVE = "5xx ratio above 5% (currently 100%)"
CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "alice", "name": "Alice"}],
    "services": [{"name": "checkout"}, {"name": "search"}],
    "routing": {"rules": [
        {"name": "search-pages", "match": ['service="search"'], "title": "{alertname} in {namespace} ({service})"},
        {"name": "checkout-critical", "match": ['service="checkout"', 'severity="critical"'], "severity": "SEV1"},
    ]},
})


def am_payload(service: str, summary: str = LIVE, alertname: str = "HighErrorRate", **labels: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "alertmanager-firing.json").read_text())
    data["groupKey"] = f'{{}}:{{alertname="{alertname}", test="{uuid.uuid4().hex}"}}'
    for alert in data["alerts"]:
        alert["labels"].update(alertname=alertname, service=service, **labels)
        alert["annotations"]["summary"] = summary
        alert["fingerprint"] = uuid.uuid4().hex[:16]
    data["commonLabels"].update(alertname=alertname, service=service, **labels)
    data["commonAnnotations"]["summary"] = summary
    return data


@pytest.fixture
async def api(dev_env: WorkflowEnvironment) -> Any:
    async with running_worker(dev_env.client, config=lambda: CONFIG) as (settings, _):
        app = create_app(Settings.model_validate(settings.model_dump()), dev_env.client, CONFIG)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield http, Incidents(dev_env.client, settings, CONFIG)


async def incident_of(inc: Incidents, response: httpx.Response) -> Any:
    assert response.status_code == 202 and response.json()["outcome"] == "accepted", response.text
    group_id = response.json()["group_id"]
    group = await eventually(lambda: inc.alert_group(group_id), lambda g: g is not None and bool(g.incident_id))
    return await inc.get(group.incident_id)


# ---------------------------------------------------------------------------------------------- titles

async def test_the_title_comes_from_labels_and_the_summary_goes_to_the_description(api: Any) -> None:
    http, inc = api
    state = await incident_of(inc, await http.post("/v1/alerts/alertmanager", json=am_payload("checkout")))
    assert state.title == "HighErrorRate on checkout"
    assert state.description.startswith(LIVE)
    assert f"Alert firing: {LIVE}" in [e.text for e in events(state, EventKind.alert)]
    assert LIVE not in events(state, EventKind.declared)[0].text

    ruled = await incident_of(inc, await http.post("/v1/alerts/alertmanager",
                                                   json=am_payload("search", namespace="discovery")))
    assert ruled.title == "HighErrorRate in discovery (search)", "the matching rule's title template"


def test_title_templates_fall_back_and_are_checked(tmp_path: Path) -> None:
    router = CONFIG.routing.router()
    assert router.title_for("search-pages", {"alertname": "Slow"}, "search") == "Slow on search", \
        "a template whose label is missing falls back to the default"
    assert router.title_for("default", {"alertname": "Slow"}, None) == "Slow"
    assert router.title_for("default", {}, "checkout") == "Alert on checkout"
    assert render_title("{alertname} on {service}", {"alertname": "A\nB", "service": "x"}) == "A B on x"
    payload = AlertmanagerPayload.model_validate(am_payload("checkout", alertname=""))
    assert ingest.from_alertmanager(payload, Router(), datetime.now(UTC)).title == "Alert on checkout"

    bad = tmp_path / "bad.yaml"
    bad.write_text("routing:\n  rules:\n    - match: ['service=\"a\"']\n      title: '{alertname on {service}'\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: routing.rules.0.title: .*invalid title template"):
        load_config(bad)
    bad.write_text("routing:\n  title: '{service'\n")
    with pytest.raises(ConfigError, match=r"routing.title: .*placeholders are label names in braces"):
        load_config(bad)


# ---------------------------------------------------------------------------------------------- services

async def test_an_alert_for_an_unknown_service_still_opens_an_incident(api: Any) -> None:
    http, inc = api
    state = await incident_of(inc, await http.post("/v1/alerts/alertmanager", json=am_payload("checkout-service")))
    assert state.service == "checkout-service" and state.title == "HighErrorRate on checkout-service"
    state = await eventually(lambda: inc.get(state.id), lambda s: bool(events(s, EventKind.warning)))
    [warning] = events(state, EventKind.warning)
    assert warning.text.startswith("The alert names service 'checkout-service', which is not in the config's "
                                   "services: this incident follows the default escalation policy")

    odd = await incident_of(inc, await http.post("/v1/alerts/alertmanager", json=am_payload("Checkout Service!")))
    assert odd.service is None and odd.title == "HighErrorRate"
    odd = await eventually(lambda: inc.get(odd.id), lambda s: bool(events(s, EventKind.warning)))
    assert "'Checkout Service!' (not a valid service name, so none is set)" in events(odd, EventKind.warning)[0].text

    known = await incident_of(inc, await http.post("/v1/alerts/alertmanager", json=am_payload("checkout")))
    assert not events(known, EventKind.warning)


# ---------------------------------------------------------------------------------------------- severity

async def test_the_generic_webhook_takes_alert_severity_words(api: Any) -> None:
    http, inc = api
    mapped = await incident_of(inc, await http.post("/v1/alerts/generic", json={
        "title": f"Disk full {uuid.uuid4().hex[:6]}", "service": "search", "severity": "critical"}))
    assert mapped.severity == Severity.SEV2, "critical maps to SEV2 through the routing config's severity_map"
    ruled = await incident_of(inc, await http.post("/v1/alerts/generic", json={
        "title": f"Payments failing {uuid.uuid4().hex[:6]}", "service": "checkout", "severity": "Critical"}))
    assert ruled.severity == Severity.SEV1, "a rule matching severity=\"critical\" applies, as for Alertmanager"
    direct = await incident_of(inc, await http.post("/v1/alerts/generic", json={
        "title": f"Queue stuck {uuid.uuid4().hex[:6]}", "service": "search", "severity": "SEV4"}))
    assert direct.severity == Severity.SEV4

    bad = await http.post("/v1/alerts/generic", json={"title": "x", "severity": "urgent"})
    assert bad.status_code == 422
    assert bad.json()["fields"] == ["severity: unknown severity 'urgent': use one of SEV1, SEV2, SEV3, SEV4, "
                                    "page, critical, error, warning, info, none"]
