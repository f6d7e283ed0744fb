"""The trackers' signed webhooks through our real API: closing an action item's ticket in GitHub or Jira closes
the item. A worker with the tracker configured (the fake GitHub or Jira over real HTTP) opens the ticket; the
fake's own webhook payload, signed as the tracker signs it, goes to `/v1/webhooks/github|jira`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.actions.models import ActionItem, ActionItemInput
from domain.config import IncidentflowConfig
from domain.models import DeclareInput, Severity
from domain.postmortem.models import Priority
from incidentflow.client import Incidents
from tests.fakes.github import FakeGitHub, send_webhook
from tests.fakes.jira import FakeJira
from tests.helpers import eventually
from tests.test_learning_doors import serving

SECRET = "learning-webhook-secret-0123"
DUE = datetime.now(UTC).date() + timedelta(days=7)


def config(tmp: Path, tracker: dict[str, Any]) -> IncidentflowConfig:
    return IncidentflowConfig.model_validate({
        "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}], "services": [{"name": "checkout"}],
        "postmortem": {"sink": {"kind": "directory", "directory": str(tmp / "postmortems")}},
        "action_items": {"tracker": tracker}})


async def item_with_ticket(inc: Incidents, title: str) -> ActionItem:
    """An action item on a new incident, once its workflow has opened the ticket."""
    iid = await inc.declare(DeclareInput(title=title, severity=Severity.SEV3, service="checkout", declared_by="alice",
                                         page=False))
    item = await inc.add_action(iid, ActionItemInput(text=f"Follow-up of {title}", owner="bob", due=DUE,
                                                     priority=Priority.P1, by="alice"))
    return await eventually(lambda: inc.action(item.aid), lambda i: i.ticket is not None)


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with FakeGitHub(repo="acme/ops") as gh:
        monkeypatch.setenv("INCIDENTFLOW_GITHUB_TOKEN", gh.token)  # the worker's tracker
        monkeypatch.setenv("INCIDENTFLOW_GITHUB_WEBHOOK_SECRET", SECRET)  # the API's receiver
        yield gh


@pytest.fixture
def jira(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJira]:
    with FakeJira(project="OPS") as fake:
        monkeypatch.setenv("INCIDENTFLOW_JIRA_EMAIL", fake.email)
        monkeypatch.setenv("INCIDENTFLOW_JIRA_API_TOKEN", fake.api_token)
        monkeypatch.setenv("INCIDENTFLOW_JIRA_WEBHOOK_SECRET", SECRET)
        yield fake


@pytest.fixture
async def github_stack(dev_env: WorkflowEnvironment, github: FakeGitHub,
                       tmp_path: Path) -> AsyncIterator[tuple[str, Incidents]]:
    cfg = config(tmp_path, {"kind": "github", "github": {"api_url": github.base_url, "repo": github.repo}})
    async with serving(dev_env, cfg, data_dir=str(tmp_path / "data")) as (url, settings):
        yield url, Incidents(dev_env.client, settings, cfg)


async def test_github_issue_closed_closes_the_item(github_stack: tuple[str, Incidents], github: FakeGitHub) -> None:
    url, inc = github_stack
    hook = f"{url}/v1/webhooks/github"
    item = await item_with_ticket(inc, "Cache stampede")
    assert item.ticket is not None and item.ticket.tracker == "github"
    payload = github.close_issue(int(item.ticket.key), by="carol")

    for secret in ("not-the-secret", ""):  # a wrong signature, none at all: 401, nothing changes
        status, body = await asyncio.to_thread(send_webhook, hook, secret, "issues", payload)
        assert status == 401 and "X-Hub-Signature-256" in json.loads(body)["error"], body
    async with httpx.AsyncClient() as http:
        unsigned = await http.post(hook, json=payload, headers={"X-GitHub-Event": "issues"})
    assert unsigned.status_code == 401
    assert (await inc.action(item.aid)).status.value == "open"

    ping = await asyncio.to_thread(send_webhook, hook, SECRET, "ping", {"zen": "Keep it logically awesome."})
    assert ping[0] == 202 and json.loads(ping[1])["outcome"] == "ignored"
    status, body = await asyncio.to_thread(send_webhook, hook, SECRET, "issues", payload, "delivery-1")
    assert status == 202, body
    assert json.loads(body) == {"outcome": "closed", "aid": item.aid, "ticket": f"github {item.ticket.key}",
                                "reason": f"github ticket {item.ticket.key} closed by github:carol: told action item "
                                          f"{item.aid}"}
    closed = await eventually(lambda: inc.action(item.aid), lambda i: i.status.value == "done")
    assert closed.closed_by == "github:carol"
    assert [h.split(" UTC ", 1)[1] for h in closed.history if "was closed" in h] == [
        f"github:carol: done: github ticket {item.ticket.key} was closed"]

    again = await asyncio.to_thread(send_webhook, hook, SECRET, "issues", payload, "delivery-1")  # a redelivery
    assert again[0] == 202 and json.loads(again[1])["outcome"] in ("closed", "unchanged")
    assert (await inc.action(item.aid)).history == closed.history, "a redelivery changes nothing"
    assert github.issues[0]["state"] == "closed" and not github.comments(int(item.ticket.key)), \
        "the tracker closed it: incidentflow does not close it again"


async def test_jira_issue_done_closes_the_item(dev_env: WorkflowEnvironment, jira: FakeJira, tmp_path: Path) -> None:
    cfg = config(tmp_path, {"kind": "jira", "jira": {"url": jira.base_url, "project": "OPS"}})
    async with serving(dev_env, cfg, data_dir=str(tmp_path / "data")) as (url, settings):
        inc = Incidents(dev_env.client, settings, cfg)
        hook = f"{url}/v1/webhooks/jira"
        item = await item_with_ticket(inc, "Queue backlog")
        assert item.ticket is not None and item.ticket.tracker == "jira"
        progress = jira.set_status(item.ticket.key, "In Progress", by="Alice Example")
        done = jira.set_status(item.ticket.key, "Done", by="Alice Example")

        for secret in ("not-the-secret", None):
            refused = await asyncio.to_thread(jira.send_webhook, hook, secret, done)
            assert refused.status_code == 401 and "X-Hub-Signature" in refused.json()["error"], refused.text
        assert (await inc.action(item.aid)).status.value == "open"

        moved = await asyncio.to_thread(jira.send_webhook, hook, SECRET, progress)
        assert moved.status_code == 202 and moved.json()["outcome"] == "reopened", "open → open: nothing to do"
        assert (await inc.action(item.aid)).status.value == "open"
        comment = {"webhookEvent": "comment_created", "issue": {"key": item.ticket.key}}
        ignored = await asyncio.to_thread(jira.send_webhook, hook, SECRET, comment)
        assert ignored.status_code == 202 and ignored.json()["outcome"] == "ignored"

        closing = await asyncio.to_thread(jira.send_webhook, hook, SECRET, done)
        assert closing.status_code == 202 and closing.json()["outcome"] == "closed", closing.text
        closed = await eventually(lambda: inc.action(item.aid), lambda i: i.status.value == "done")
        assert closed.closed_by == "jira:Alice Example"
        assert jira.status_of(item.ticket.key) == "Done"


async def test_a_receiver_without_its_tracker_ignores_deliveries(dev_env: WorkflowEnvironment, github: FakeGitHub,
                                                                 tmp_path: Path) -> None:
    """The secret is set but `action_items.tracker` names no GitHub repository: 202 ignored (nothing to match)."""
    cfg = config(tmp_path, {"kind": "none"})
    async with serving(dev_env, cfg, data_dir=str(tmp_path / "data")) as (url, _):
        status, body = await asyncio.to_thread(send_webhook, f"{url}/v1/webhooks/github", SECRET, "issues",
                                               {"action": "closed"})
    assert status == 202 and json.loads(body)["reason"].startswith("action_items.tracker.github is not configured")
