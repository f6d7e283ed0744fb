"""The HTTP API against the real dev server: webhooks in, incidents driven, errors that name the field."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig, Routing, RoutingRule, Settings
from incidentflow.api import create_app
from tests.conftest import running_worker
from tests.helpers import eventually

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = IncidentflowConfig(routing=Routing(rules=[
    RoutingRule(name="drop-watchdog", match=['alertname="Watchdog"'], action="drop"),
    RoutingRule(name="info-annotates", match=['severity="info"'], action="annotate"),
]))


def am_payload(service: str, **labels: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "alertmanager-firing.json").read_text())
    data["groupKey"] = f'{{}}:{{alertname="CheckoutErrorRate", service="{service}"}}'
    for alert in data["alerts"]:
        alert["labels"].update(service=service, **labels)
        alert["fingerprint"] = f"{service}-{alert['fingerprint']}"
    data["commonLabels"].update(service=service, **labels)
    return data


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")  # type: ignore[arg-type]


@pytest.fixture
async def api(dev_env: WorkflowEnvironment) -> Any:
    async with running_worker(dev_env.client) as (settings, _):
        settings = Settings.model_validate({**settings.model_dump(), "api_token": "api-secret",
                                            "alertmanager_token": "am-secret", "max_body_bytes": 65536})
        app = create_app(settings, dev_env.client, CONFIG)
        async with client_for(app) as http:
            http.headers["Authorization"] = "Bearer api-secret"
            yield http, app


AM = {"Authorization": "Bearer am-secret"}


async def test_alertmanager_webhook_opens_one_incident_and_the_api_drives_it(api: Any) -> None:
    http, app = api
    svc = f"co-{uuid.uuid4().hex[:6]}"
    for _ in range(3):  # a retry and an HA twin: still one incident
        resp = await http.post("/v1/alerts/alertmanager", json=am_payload(svc), headers=AM)
        assert resp.status_code == 202 and resp.json()["outcome"] == "accepted", resp.text
    rows = await eventually(lambda: http.get("/v1/incidents", params={"service": svc}),
                            lambda r: len(r.json()) == 1)
    row = rows.json()[0]
    assert row["severity"] == "SEV2" and row["phase"] == "triage" and row["title"] == f"CheckoutErrorRate on {svc}"
    iid = row["id"]
    state = await eventually(lambda: http.get(f"/v1/incidents/{iid}"),
                             lambda r: r.json()["alerts_received"] == 3)
    assert list(state.json()["alerts"].values())[0]["count"] == 3
    assert state.json()["url"] == app.state.settings.workflow_url(iid), "opened from an alert, linked all the same"

    assert (await http.post(f"/v1/incidents/{iid}/acknowledge", json={"by": "alice"})).status_code == 200
    ok = await http.post(f"/v1/incidents/{iid}/roles", json={"role": "ic", "person": "alice", "by": "alice"})
    assert ok.json()["text"] == "alice is now incident commander"
    assert (await http.post(f"/v1/incidents/{iid}/phase", json={"phase": "identified", "by": "bob"})).status_code == 200
    back = await http.post(f"/v1/incidents/{iid}/phase", json={"phase": "triage", "by": "bob"})
    assert back.status_code == 409 and "allowed next phases: mitigating" in back.json()["error"]
    assert (await http.post(f"/v1/incidents/{iid}/notes", json={"text": "pool", "by": "dan"})).status_code == 202
    upd = await http.post(f"/v1/incidents/{iid}/status-updates", json={"text": "rolling back", "by": "carol"})
    assert upd.status_code == 200
    assert (await http.post(f"/v1/incidents/{iid}/severity", json={"severity": "SEV1", "by": "alice"})).json()[
        "severity"] == "SEV1"
    assert (await http.post(f"/v1/incidents/{iid}/resolve", json={"by": "alice"})).json()["phase"] == "resolved"
    assert (await http.post(f"/v1/incidents/{iid}/reopen", json={"by": "alice"})).json()["phase"] == "investigating"
    sd = await http.post(f"/v1/incidents/{iid}/stand-down", json={"by": "alice", "reason": "test"})
    assert sd.json()["phase"] == "stood_down"
    markdown = await http.get(f"/v1/incidents/{iid}/timeline", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "alertmanager: Declared SEV2 on " in markdown.text and "dan: pool" in markdown.text
    timeline = (await http.get(f"/v1/incidents/{iid}/timeline")).json()
    assert timeline[0]["kind"] == "declared" and timeline[-1]["text"].endswith("stood_down: test")

    metrics = (await http.get("/metrics")).text
    assert 'incidentflow_alerts_received_total{outcome="accepted",source="alertmanager"} 3.0' in metrics
    assert "incidentflow_http_request_duration_seconds_bucket" in metrics
    # by method, route template and the status answered (a refusal counts under its own status)
    count = "incidentflow_http_request_duration_seconds_count"
    assert re.search(count + r'\{method="POST",route="/v1/alerts/alertmanager",status="202"\} [1-9]', metrics)
    assert re.search(count + r'\{method="POST",route="/v1/incidents/\{[a-z_]+\}/phase",status="409"\} 1\.0', metrics)


async def test_routing_drop_and_annotate(api: Any) -> None:
    http, _ = api
    svc = f"rt-{uuid.uuid4().hex[:6]}"
    dropped = await http.post("/v1/alerts/alertmanager", json=am_payload(svc, alertname="Watchdog"), headers=AM)
    assert dropped.json() == {"outcome": "dropped", "rule": "drop-watchdog"}
    lonely = await http.post("/v1/alerts/alertmanager", json=am_payload(svc, severity="info"), headers=AM)
    assert lonely.json()["outcome"] == "ignored" and svc in lonely.json()["reason"]
    declared = await http.post("/v1/incidents", json={"title": "Manual", "service": svc, "declared_by": "pat"})
    assert declared.status_code == 201 and declared.headers["location"].endswith(declared.json()["id"])
    iid = declared.json()["id"]
    note = am_payload(svc, severity="info")
    note["groupKey"] += "-info"
    annotated = await eventually(lambda: http.post("/v1/alerts/alertmanager", json=note, headers=AM),
                                 lambda r: r.json()["outcome"] == "annotated")
    assert annotated.json()["incident_id"] == iid
    state = await eventually(lambda: http.get(f"/v1/incidents/{iid}"), lambda r: r.json()["alerts_received"] == 1)
    assert state.json()["phase"] == "triage" and state.json()["alerts"], "attached to the open incident"


async def test_bad_input_gets_a_clear_4xx_and_nothing_happens(api: Any) -> None:
    http, app = api
    body = am_payload("bad")
    body["alerts"][0]["status"] = "burning"
    bad = await http.post("/v1/alerts/alertmanager", json=body, headers=AM)
    assert bad.status_code == 422 and "alerts.0.status" in bad.json()["error"]
    missing = {k: v for k, v in am_payload("bad").items() if k != "groupKey"}
    assert "groupKey: Field required" in (await http.post("/v1/alerts/alertmanager", json=missing, headers=AM)).text
    garbage = await http.post("/v1/alerts/alertmanager", content=b"{not json", headers={**AM, "content-type": "application/json"})
    assert garbage.status_code == 400 and "JSON" in garbage.json()["error"], "malformed JSON is a 400 (issue 11)"
    assert "line 1, column 2" in garbage.json()["error"]
    huge = await http.post("/v1/alerts/generic", content=b"x" * 70_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "larger than 65536 bytes" in huge.json()["error"]
    generic = await http.post("/v1/alerts/generic", json={"title": "x", "severity": "SEV9"})
    assert generic.status_code == 422 and generic.json()["fields"][0].startswith("severity:")
    no_by = await http.post("/v1/incidents", json={"title": "x", "page": False})  # the caller's own name (no people)
    assert no_by.status_code == 201, no_by.text
    state = (await http.get(f"/v1/incidents/{no_by.json()['id']}")).json()
    assert state["declared_by"] == "INCIDENTFLOW_API_TOKEN"
    unknown = await http.get("/v1/incidents/incident-19990101-0000-none")
    assert unknown.status_code == 404 and "no incident" in unknown.json()["error"]
    assert (await http.post("/v1/incidents/incident-19990101-0000-none/acknowledge", json={"by": "a"})).status_code == 404
    app.state.shedder.inflight = app.state.shedder.limit  # as if that many webhooks were in flight
    shed = await http.post("/v1/alerts/generic", json={"title": "x"})
    app.state.shedder.inflight = 0
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"


async def test_tokens(api: Any) -> None:
    http, _ = api
    anon = httpx.AsyncClient(transport=http._transport, base_url="http://api")
    assert (await anon.get("/v1/incidents")).status_code == 401
    wrong = await anon.get("/v1/incidents", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    # the Alertmanager webhook has its own token; the API token does not open it
    api_token = await anon.post("/v1/alerts/alertmanager", json=am_payload("t"),
                                headers={"Authorization": "Bearer api-secret"})
    assert api_token.status_code == 401
    assert (await anon.get("/healthz")).status_code == 200 and (await anon.get("/metrics")).status_code == 200


def grafana_app(dev_env: WorkflowEnvironment, settings: Settings, **extra: Any) -> httpx.AsyncClient:
    cfg = Settings.model_validate({**settings.model_dump(), "grafana_hmac_secret": "test-hmac-secret", **extra})
    return client_for(create_app(cfg, dev_env.client, CONFIG))


async def test_grafana_signature(dev_env: WorkflowEnvironment) -> None:
    fixture = json.loads((FIXTURES / "grafana-hmac.json").read_text())
    body = fixture["body"].encode()
    signature = fixture["without_timestamp"]["headers"]["X-Grafana-Alerting-Signature"]
    async with running_worker(dev_env.client) as (settings, _):
        async with grafana_app(dev_env, settings) as http:
            for header in ("X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature"):
                ok = await http.post("/v1/alerts/grafana", content=body,
                                     headers={"content-type": "application/json", header: signature})
                assert ok.status_code == 202, ok.text
            put = await http.put("/v1/alerts/grafana", content=body,
                                 headers={"content-type": "application/json", "X-Grafana-Alerting-Signature": signature})
            assert put.status_code == 202
            forged = await http.post("/v1/alerts/grafana", content=body.replace(b"0.0731", b"0.0001"),
                                     headers={"content-type": "application/json", "X-Grafana-Alerting-Signature": signature})
            assert forged.status_code == 401 and "does not match" in forged.json()["error"]
            unsigned = await http.post("/v1/alerts/grafana", content=body, headers={"content-type": "application/json"})
            assert unsigned.status_code == 401
        async with grafana_app(dev_env, settings,
                               grafana_hmac_timestamp_header="X-Grafana-Alerting-Signature-Timestamp") as http:
            def signed(stamp: int) -> dict[str, str]:
                mac = hmac.new(b"test-hmac-secret", f"{stamp}:".encode() + body, hashlib.sha256).hexdigest()
                return {"content-type": "application/json", "X-Grafana-Alerting-Signature": mac,
                        "X-Grafana-Alerting-Signature-Timestamp": str(stamp)}
            assert (await http.post("/v1/alerts/grafana", content=body, headers=signed(int(time.time())))).status_code == 202
            stale = await http.post("/v1/alerts/grafana", content=body, headers=signed(int(time.time()) - 3600))
            assert stale.status_code == 401 and "off" in stale.json()["error"]


async def test_temporal_down_means_503_with_retry_after() -> None:
    settings = Settings(temporal_address="127.0.0.1:1")
    async with client_for(create_app(settings, config=CONFIG)) as http:
        resp = await http.post("/v1/alerts/alertmanager", json=am_payload("down"))
        assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
        assert "127.0.0.1:1" in resp.json()["error"]
        metrics = (await http.get("/metrics")).text
        assert 'incidentflow_alerts_received_total{outcome="unavailable",source="alertmanager"} 1.0' in metrics
