"""Jira Cloud tickets for action items (issue 14) against a fake Jira over real HTTP, and Jira's signed
webhooks. Retries are Temporal's: the idempotency tests run the adapter in a real worker on the
time-skipping server, the way the item's workflow will."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import RATE_LIMITED, REJECTED, UNAVAILABLE
from activities.jira import JiraTracker, adf_text
from domain.actions.models import TicketChange, TicketInput, TicketRef, action_id
from domain.jira_webhook import aid_in_labels, issue_aid, ticket_event, verify
from domain.postmortem.config import JiraConfig
from domain.postmortem.models import ItemKind, Priority
from tests.fakes.jira import FakeJira
from tests.fakes.threaded import ThreadedServer
from tests.jira_worker import CreateTicketWorkflow, TicketActivities

AID = action_id("incident-20260509-0735-checkout", "row-1")
SECRET = "jira-webhook-secret-1234"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(project="OPS") as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, follow_redirects=True) as client:  # the adapter must override it
        yield client


def tracker(jira: FakeJira, http: httpx.AsyncClient, *, token: str | None = None, settle: float = 0.0,
            **config: str) -> JiraTracker:
    return JiraTracker(JiraConfig(url=jira.base_url, project="OPS", **config), jira.email,
                       token or jira.api_token, http, settle=settle)


def ticket(aid: str = AID, owner_handle: str | None = None) -> TicketInput:
    return TicketInput(aid=aid, incident_id="incident-20260509-0735-checkout", title="Alert on payment 5xx rate",
                       body="The payment errors were found by a customer.\nIncident: https://ui.example/i/1",
                       owner="alice", owner_handle=owner_handle, due=date(2026, 12, 10), priority=Priority.P1,
                       kind=ItemKind.detect, labels=["incident follow-up"])


# ------------------------------------------------------------------------------- a workflow like the item's


async def create_in_worker(env: WorkflowEnvironment, adapter: JiraTracker, item: TicketInput) -> TicketRef:
    queue = f"jira-{uuid.uuid4().hex[:8]}"
    acts = TicketActivities(adapter)
    async with Worker(env.client, task_queue=queue, workflows=[CreateTicketWorkflow],
                      activities=[acts.create_ticket]):
        result: TicketRef = await env.client.execute_workflow(
            CreateTicketWorkflow.run, item, id=f"ticket-{uuid.uuid4().hex[:8]}", task_queue=queue)
    return result


def creates(jira: FakeJira) -> list[int]:
    return [r.status for r in jira.requests if r.method == "POST" and r.path.endswith("/issue")]


# ------------------------------------------------------------------------------- create


async def test_create_sends_jira_fields_and_a_second_create_adopts_the_issue(
        jira: FakeJira, http: httpx.AsyncClient) -> None:
    alice = jira.add_user("Alice Example")
    adapter = tracker(jira, http)
    ref = await adapter.create(ticket(owner_handle=alice))

    assert ref == TicketRef(tracker="jira", key="OPS-1", url=f"{jira.base_url}/browse/OPS-1")
    fields = jira.issues[0]["fields"]
    assert fields["summary"] == "Alert on payment 5xx rate" and fields["issuetype"] == {"name": "Task"}
    assert fields["labels"] == ["incidentflow", f"incidentflow-{AID}", "priority-P1", "kind-detect",
                                "incident-20260509-0735-checkout", "incident-follow-up"]
    assert fields["duedate"] == "2026-12-10" and fields["assignee"]["accountId"] == alice
    text = adf_text(fields["description"])
    assert "found by a customer." in text and f"incidentflow action item {AID}" in text
    link = next(n for p in fields["description"]["content"] for n in p["content"] if n.get("marks"))
    assert link["marks"] == [{"type": "link", "attrs": {"href": "https://ui.example/i/1"}}]

    assert await adapter.create(ticket(owner_handle=alice)) == ref  # a retry: found by its label
    assert len(jira.issues) == 1 and creates(jira) == [201]
    searches = [r.body for r in jira.requests if r.path.endswith("/search/jql")]
    assert searches[0]["jql"] == f'labels = "incidentflow-{AID}" ORDER BY created ASC'


async def test_a_create_whose_answer_was_lost_is_retried_into_exactly_one_issue(
        ts_env: WorkflowEnvironment, jira: FakeJira, http: httpx.AsyncClient) -> None:
    jira.lose_next("POST", "/issue")  # Jira creates it; the worker never hears back
    ref = await create_in_worker(ts_env, tracker(jira, http), ticket())
    assert len(jira.issues) == 1 and ref.key == jira.issues[0]["key"] == "OPS-1"
    assert creates(jira) == [0]  # one create, answered never; the retry found it


async def test_5xx_and_429_are_retried_by_temporal_into_exactly_one_issue(
        ts_env: WorkflowEnvironment, jira: FakeJira, http: httpx.AsyncClient) -> None:
    jira.fail_next(2, status=503)
    jira.fail_next(1, status=429, retry_after=1)
    ref = await create_in_worker(ts_env, tracker(jira, http), ticket())
    assert ref.key == "OPS-1" and len(jira.issues) == 1
    assert [r.status for r in jira.requests][:3] == [503, 503, 429]


async def test_a_retry_waits_for_jira_search_to_see_the_issue_it_created(
        ts_env: WorkflowEnvironment, jira: FakeJira, http: httpx.AsyncClient) -> None:
    """Jira's JQL search is eventually consistent: without the settle wait the retry makes a second issue."""
    jira.search_lag = 0.6
    jira.lose_next("POST", "/issue")
    await create_in_worker(ts_env, tracker(jira, http, settle=0.0), ticket(action_id("x", "no-settle")))
    assert len(jira.issues) == 2  # what the wait prevents

    jira.lose_next("POST", "/issue")
    ref = await create_in_worker(ts_env, tracker(jira, http, settle=1.0), ticket())
    assert [i["key"] for i in jira.issues if f"incidentflow-{AID}" in i["fields"]["labels"]] == [ref.key]


async def test_a_rate_limit_carries_retry_after_and_a_refusal_names_jiras_errors(
        jira: FakeJira, http: httpx.AsyncClient) -> None:
    adapter = tracker(jira, http)
    jira.fail_next(1, status=429, retry_after=7)
    with pytest.raises(ApplicationError) as limited:
        await adapter.create(ticket())
    assert limited.value.type == RATE_LIMITED and limited.value.next_retry_delay == timedelta(seconds=7)
    jira.fail_next(1, status=502)
    with pytest.raises(ApplicationError) as down:
        await adapter.create(ticket())
    assert down.value.type == UNAVAILABLE and not down.value.non_retryable

    with pytest.raises(ApplicationError) as refused:
        await adapter.create(ticket(owner_handle="712020:nobody"))
    assert refused.value.type == REJECTED and refused.value.non_retryable
    assert "HTTP 400" in str(refused.value)
    assert "assignee: Specified user does not exist" in str(refused.value) and not jira.issues
    with pytest.raises(ApplicationError, match="is not an action item id"):
        await adapter.create(ticket(aid='ai-x" OR project = OPS'))


# ------------------------------------------------------------------------------- close and reopen


async def test_close_and_reopen_through_the_named_transitions_with_one_comment(
        jira: FakeJira, http: httpx.AsyncClient) -> None:
    adapter = tracker(jira, http)
    ref = await adapter.create(ticket())
    close = TicketChange(ticket=ref, close=True, comment="Done in incidentflow by alice: alert added")
    await adapter.change(close)
    assert jira.status_of("OPS-1") == "Done"
    await adapter.change(close)  # a retry, or the item closed twice: nothing new
    issue = jira.issue("OPS-1")
    assert issue is not None and [adf_text(c["body"]).strip() for c in issue["comments"]] == [
        "Done in incidentflow by alice: alert added"]
    moves = [r.body for r in jira.requests if r.method == "POST" and r.path.endswith("/transitions")]
    assert moves == [{"transition": {"id": "31"}}]

    await adapter.change(TicketChange(ticket=ref, close=False))
    assert jira.status_of("OPS-1") == "To Do" and len(jira.events) == 2


async def test_a_done_transition_under_another_name_is_found_by_its_category(
        jira: FakeJira, http: httpx.AsyncClient) -> None:
    jira.transition_names["31"] = "Resolve issue"
    adapter = tracker(jira, http)
    ref = await adapter.create(ticket())
    await adapter.change(TicketChange(ticket=ref))
    assert jira.status_of("OPS-1") == "Done"

    jira.transition_names["11"] = "Back to backlog"
    await tracker(jira, http, reopen_transition="Reopen").change(TicketChange(ticket=ref, close=False))
    assert jira.status_of("OPS-1") == "To Do"  # into the To Do category

    await adapter.change(TicketChange(ticket=ref))
    del jira.transition_names["11"]  # a workflow with no way back to To Do
    with pytest.raises(ApplicationError) as missing:
        await tracker(jira, http, reopen_transition="Reopen").change(TicketChange(ticket=ref, close=False))
    assert missing.value.non_retryable and "no transition 'Reopen'" in str(missing.value)
    assert "'In Progress'" in str(missing.value) and "reopen_transition" in str(missing.value)
    assert jira.status_of("OPS-1") == "Done"


# ------------------------------------------------------------------------------- the token's reach


class _Recorder(ThreadedServer):
    """Another host: records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"


async def test_the_token_goes_only_to_the_configured_host_and_never_into_errors_or_logs(
        jira: FakeJira, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with _Recorder() as elsewhere:
        jira.redirect_all(elsewhere.url)
        with pytest.raises(ApplicationError) as moved:
            await tracker(jira, http).create(ticket())
        assert moved.value.non_retryable and "redirect not followed" in str(moved.value)
        assert elsewhere.seen == []
    jira.redirect_all(None)

    with pytest.raises(ApplicationError) as denied:
        await tracker(jira, http, token="wrong-token-abc").create(ticket())
    assert denied.value.non_retryable and "HTTP 401" in str(denied.value)
    assert "INCIDENTFLOW_JIRA_API_TOKEN" in str(denied.value)

    def echo(request: httpx.Request) -> httpx.Response:  # a proxy that echoes the request back
        said = f"bad request: {request.headers['authorization']} {jira.api_token}"
        return httpx.Response(400, json={"errorMessages": [said], "errors": {}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as echoing:
        with pytest.raises(ApplicationError) as echoed:
            await tracker(jira, echoing).create(ticket())
    assert "[redacted]" in str(echoed.value)
    basic = base64.b64encode(f"{jira.email}:{jira.api_token}".encode()).decode()
    for text in (str(moved.value), str(denied.value), str(echoed.value), caplog.text):
        assert jira.api_token not in text and basic not in text

    with pytest.raises(ValueError, match="must use https"):
        JiraTracker(JiraConfig(url="http://jira.example.com", project="OPS"), "a@b.c", "t", http)
    with pytest.raises(ValueError, match="not a plain"):
        JiraTracker(JiraConfig(url="https://u:p@x.atlassian.net", project="OPS"), "a@b.c", "t", http)


# ------------------------------------------------------------------------------- webhooks in


class _WebhookReceiver(ThreadedServer):
    """What the lead's POST /v1/webhooks/jira will do: verify the raw body, then parse."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = verify(SECRET, raw, self.headers.get("X-Hub-Signature"))
                if ok:
                    receiver.got.append(ticket_event(json.loads(raw), "OPS"))
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1/webhooks/jira"


async def test_a_signed_webhook_of_a_close_in_jira_becomes_ticket_closed(
        jira: FakeJira, http: httpx.AsyncClient) -> None:
    await tracker(jira, http).create(ticket())
    closed = jira.set_status("OPS-1", "Done", by="Alice Example")
    with _WebhookReceiver() as receiver:
        assert jira.send_webhook(receiver.url, SECRET, closed).status_code == 204
        assert jira.send_webhook(receiver.url, "another-secret", closed).status_code == 401
        assert jira.send_webhook(receiver.url, None, closed).status_code == 401
        reopened = jira.set_status("OPS-1", "In Progress", by="Bob")
        assert jira.send_webhook(receiver.url, SECRET, reopened).status_code == 204
    first, second = receiver.got
    assert first is not None and first.model_dump() == {
        "tracker": "jira", "key": "OPS-1", "closed": True, "by": "jira:Alice Example",
        "event_id": f"jira:OPS-1:{closed['changelog']['id']}"}
    assert second is not None and second.closed is False and second.by == "jira:Bob"


def test_verify_takes_only_the_exact_body_under_the_secret() -> None:
    import hashlib
    import hmac

    body = b'{"webhookEvent":"jira:issue_updated"}'
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify(SECRET, body, good) and verify(SECRET, body, good.upper().replace("SHA256=", "sha256="))
    assert not verify(SECRET, body + b" ", good)
    assert not verify("other", body, good)
    assert not verify(SECRET, body, None) and not verify(SECRET, body, "") and not verify("", body, good)
    assert not verify(SECRET, body, good.replace("sha256=", "sha1="))


def test_only_status_changes_of_our_labelled_issues_in_the_project_are_events(jira: FakeJira) -> None:
    issue = {"id": "10001", "key": "OPS-7", "fields": {
        "labels": ["incidentflow", f"incidentflow-{AID}"], "project": {"key": "OPS"},
        "status": {"name": "Closed", "statusCategory": {"key": "done"}}}}
    moved = {"webhookEvent": "jira:issue_updated", "timestamp": 1767225600000, "user": {"displayName": "Eve"},
             "issue": issue, "changelog": {"id": "4242", "items": [{"field": "status", "fieldId": "status"}]}}
    event = ticket_event(moved, "OPS")
    assert event is not None and event.closed and event.event_id == "jira:OPS-7:4242"
    assert ticket_event(moved, "WEB") is None
    assert ticket_event({**moved, "webhookEvent": "jira:issue_created"}, "OPS") is None
    assert ticket_event({**moved, "changelog": {"id": "1", "items": [{"field": "summary"}]}}, "OPS") is None
    unlabelled = {**issue, "fields": {**issue["fields"], "labels": ["incidentflow"]}}
    assert ticket_event({**moved, "issue": unlabelled}, "OPS") is None
    no_id = ticket_event({**moved, "changelog": {"items": [{"field": "status"}]}, "user": None}, "OPS")
    assert no_id is not None and no_id.event_id == "jira:OPS-7:1767225600000" and no_id.by == "jira:unknown"
    assert ticket_event({"webhookEvent": "jira:issue_updated", "issue": "x"}, "OPS") is None

    assert aid_in_labels(["x", f"incidentflow-{AID}"]) == AID and issue_aid(moved) == AID
    assert issue_aid({"issue": unlabelled}) is None and issue_aid({}) is None
    assert aid_in_labels(["incidentflow", "incidentflow-incident-1", "incidentflow-ai-123"]) is None
    assert aid_in_labels(None) is None


async def test_a_refused_create_fails_the_workflow_without_retrying(
        ts_env: WorkflowEnvironment, jira: FakeJira, http: httpx.AsyncClient) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await create_in_worker(ts_env, tracker(jira, http), ticket(owner_handle="712020:ghost"))
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == REJECTED and creates(jira) == [400]


# ------------------------------------------------------------------------------- a worker killed mid-create


@pytest.mark.timeout(120)
async def test_a_worker_killed_after_jira_created_the_issue_leaves_exactly_one_issue(
        dev_env: WorkflowEnvironment, jira: FakeJira, http: httpx.AsyncClient, tmp_path: Path) -> None:
    client, queue, log = dev_env.client, f"jira-kill-{uuid.uuid4().hex[:8]}", tmp_path / "worker.log"
    env = {**os.environ, "INCIDENTFLOW_JIRA_EMAIL": jira.email, "INCIDENTFLOW_JIRA_API_TOKEN": jira.api_token}
    jira.hang_next("POST", "/issue")  # Jira creates the issue; its answer never reaches worker A
    with open(log, "ab") as out:
        worker_a = subprocess.Popen(
            [sys.executable, "-m", "tests.jira_worker", client.service_client.config.target_host, queue,
             jira.base_url], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        handle = await client.start_workflow(CreateTicketWorkflow.run, ticket(), task_queue=queue,
                                             id=f"ticket-{uuid.uuid4().hex[:8]}")
        deadline = time.monotonic() + 60
        while not jira.issues:
            assert worker_a.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        os.kill(worker_a.pid, signal.SIGKILL)
        worker_a.wait(10)
        acts = TicketActivities(tracker(jira, http, settle=0.5))
        async with Worker(client, task_queue=queue, workflows=[CreateTicketWorkflow],
                          activities=[acts.create_ticket]):
            ref: TicketRef = await asyncio.wait_for(handle.result(), 60)
    finally:
        if worker_a.poll() is None:
            os.kill(worker_a.pid, signal.SIGKILL)
            worker_a.wait(10)
    assert ref.key == "OPS-1" and len(jira.issues) == 1 and creates(jira) == [0]
