"""Strict validation at the HTTP door, against the real dev server: people, services and escalation levels the
config does not know are a 422 naming the field (and listing the known ones), the actor defaults to the
token's, a generic alert's answer names its incident, and every incident has its Web UI link."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig, Settings, hash_token
from incidentflow.api import create_app
from tests.conftest import running_worker
from tests.helpers import eventually

ADMIN, ALICE, BOT = "admin-token", "alice-token", "bot-token"
PEOPLE = ("alice", "bob", "carol", "dan")
KNOWN = "is not one of incidentflow's people (known: alice, bob, carol, dan)"
CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": p, "name": p.title()} for p in PEOPLE],
    "services": [{"name": "checkout", "escalation_policy": "four"}, {"name": "search"}],
    "escalation_policies": [{"name": "four", "levels": [
        {"wait": "1h", "targets": [{"person": p}]} for p in PEOPLE]}],
    "api_tokens": [{"name": "alice-laptop", "person": "alice", "scopes": ["read", "write"], "hash": hash_token(ALICE)},
                   {"name": "chatbot", "scopes": ["read", "write", "act-as"], "hash": hash_token(BOT)}]})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(dev_env: WorkflowEnvironment) -> AsyncIterator[httpx.AsyncClient]:
    async with running_worker(dev_env.client, config=lambda: CONFIG) as (settings, _):
        settings = Settings.model_validate({**settings.model_dump(), "api_token": ADMIN})
        app = create_app(settings, dev_env.client, CONFIG)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     headers=bearer(ADMIN), timeout=60) as http:
            yield http


async def declare(http: httpx.AsyncClient, **body: Any) -> str:
    r = await http.post("/v1/incidents", json={"title": "Checkout failing", "severity": "SEV2",
                                               "service": "checkout", "declared_by": "carol", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_unknown_people_services_and_levels_are_422_naming_the_field(api: httpx.AsyncClient) -> None:
    unknown_service = await api.post("/v1/incidents", json={"title": "x", "service": "unknownsvc",
                                                             "declared_by": "zed", "commander": "zed"})
    assert unknown_service.status_code == 422, unknown_service.text
    assert unknown_service.json()["fields"] == [f"declared_by: 'zed' {KNOWN}", f"commander: 'zed' {KNOWN}",
                                                "service: unknown service 'unknownsvc' (known: checkout, search)"]
    iid = await declare(api)
    before = (await api.get(f"/v1/incidents/{iid}")).json()
    for route, body, field in (("page", {"person": "zed", "by": "alice"}, "person"),
                               ("roles", {"role": "ic", "person": "zed", "by": "alice"}, "person"),
                               ("acknowledge", {"by": "zed"}, "by"),
                               ("notes", {"text": "hi", "by": "zed"}, "by")):
        r = await api.post(f"/v1/incidents/{iid}/{route}", json=body)
        assert r.status_code == 422 and r.json() == {"error": f"{field}: 'zed' {KNOWN}",
                                                     "fields": [f"{field}: 'zed' {KNOWN}"]}, (route, r.text)
    nine = await api.post(f"/v1/incidents/{iid}/escalate", json={"level": 9, "by": "alice"})
    assert nine.status_code == 422, nine.text
    assert nine.json()["error"] == "level: L9 is not a level of escalation policy 'four' at SEV2: it has L1–L4"
    after = (await api.get(f"/v1/incidents/{iid}")).json()
    def ours(state: dict) -> list:  # the escalation pages on its own meanwhile: only the commands' traces count
        return [e for e in state["timeline"] if e["actor"] != "escalation"]
    assert ours(after) == ours(before) and after["roles"] == {}, "nothing reached the incident"
    four = await api.post(f"/v1/incidents/{iid}/escalate", json={"level": 4, "by": "alice"})
    assert four.status_code == 200 and four.json()["text"] == "escalating at L4"
    named = await api.post(f"/v1/incidents/{iid}/roles", json={"role": "ic", "person": "Bob", "by": "Alice"})
    assert named.json()["text"] == "bob is now incident commander", "a name becomes the person's id"


async def test_the_actor_defaults_to_the_callers_identity(api: httpx.AsyncClient) -> None:
    mine = await api.post("/v1/incidents", json={"title": "Search slow", "page": False}, headers=bearer(ALICE))
    assert mine.status_code == 201, mine.text
    assert (await api.get(f"/v1/incidents/{mine.json()['id']}")).json()["declared_by"] == "alice"
    for token, name in ((ADMIN, "token 'INCIDENTFLOW_API_TOKEN'"), (BOT, "token 'chatbot'")):
        nobody = await api.post("/v1/incidents", json={"title": "Search slow"}, headers=bearer(token))
        assert nobody.status_code == 422 and nobody.json()["error"] == (
            f"declared_by: Field required: {name} names no person to act as; give `declared_by` (one of alice, "
            "bob, carol, dan)"), nobody.text


async def test_without_people_the_actor_is_the_callers_name(dev_env: WorkflowEnvironment) -> None:
    async with running_worker(dev_env.client) as (settings, _):
        open_api = create_app(settings, dev_env.client, IncidentflowConfig())  # no tokens, no people
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=open_api), base_url="http://api") as http:
            made = await http.post("/v1/incidents", json={"title": "Anyone may", "page": False})
            assert made.status_code == 201, made.text
            state = (await http.get(f"/v1/incidents/{made.json()['id']}")).json()
            assert state["declared_by"] == "anyone"


async def test_a_generic_alert_names_its_incident_and_its_group_tells_it(api: httpx.AsyncClient) -> None:
    title = f"Synthetic login check failing {uuid.uuid4().hex[:6]}"
    r = await api.post("/v1/alerts/generic", json={"title": title, "service": "search", "severity": "SEV3"})
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["outcome"] == "accepted" and answer["group_id"].startswith("alertgroup-")
    assert answer["incident_id"].startswith("incident-"), f"the answer names the incident: {answer}"
    group = await api.get(f"/v1/alert-groups/{answer['group_id']}")
    assert group.status_code == 200 and group.json()["incident_id"] == answer["incident_id"], group.text
    state = (await api.get(f"/v1/incidents/{answer['incident_id']}")).json()
    assert state["title"] == title and state["declared_by"] == "generic"
    assert state["url"] == f"http://127.0.0.1:8233/namespaces/default/workflows/{answer['incident_id']}", \
        "an incident opened from an alert has the same link as a declared one"
    for unknown in ("alertgroup-" + "0" * 32, answer["incident_id"], "nothing"):
        missing = await api.get(f"/v1/alert-groups/{unknown}")
        assert missing.status_code == 404 and "no alert group" in missing.json()["error"], missing.text
    again = await api.post("/v1/alerts/generic", json={"title": title, "service": "search"})
    assert again.json()["incident_id"] == answer["incident_id"], "a repeat joins the same incident"
    await eventually(lambda: api.get(f"/v1/incidents/{answer['incident_id']}"),
                     lambda resp: resp.json()["alerts_received"] == 2)


async def test_a_body_that_is_not_json_says_where(api: httpx.AsyncClient) -> None:
    # curl -d sends a form content type; the answer is the same as for application/json
    for ctype in ("application/x-www-form-urlencoded", "text/plain", "application/json"):
        r = await api.post("/v1/incidents", content=b'{"title" "x"}', headers={"content-type": ctype})
        assert r.status_code == 400, (ctype, r.text)
        assert r.json() == {"error": "body: not valid JSON: Expecting ':' delimiter at line 1, column 10 "
                                     "(character 10)"}, (ctype, r.text)
    valid = await api.post("/v1/incidents", content=b'{"title": "x"}', headers={"content-type": "text/plain"})
    assert valid.status_code == 400 and valid.json()["error"] == ("body: send it as JSON, with Content-Type: "
                                                                  "application/json")
