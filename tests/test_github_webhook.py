"""GitHub's signed issue webhooks (issue 14): the signature, the events that close or reopen an item's
ticket, and the marker that names the item — with deliveries signed by the fake GitHub over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from activities.github import GitHubIssues
from domain.actions.models import TicketClosed, TicketInput, action_id
from domain.github_webhook import aid_in, marker, sign, ticket_event, verify
from domain.postmortem.config import GitHubIssuesConfig
from domain.postmortem.models import ItemKind, Priority
from tests.fakes.github import FakeGitHub, send_webhook

SECRET = "whsec-test-0123456789"
AID = action_id("incident-20261207-0935-checkout", "row-1")


class Receiver:
    """A stand-in for the webhook route: verifies the signature of each delivery, keeps the good ones."""

    def __init__(self, secret: str) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = verify(secret, body, self.headers.get("X-Hub-Signature-256"))
                if ok:
                    receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/webhooks/github"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(repo="acme/ops") as fake:
        yield fake


async def an_issue(gh: FakeGitHub, aid: str = AID) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        tracker = GitHubIssues(GitHubIssuesConfig(api_url=gh.base_url, repo=gh.repo), gh.token, http)
        ref = await tracker.create(TicketInput(aid=aid, incident_id="incident-20261207-0935-checkout", title="t",
                                               body="b", owner="alice", due=date(2026, 12, 10), priority=Priority.P2,
                                               kind=ItemKind.fix))
    return int(ref.key)


# ------------------------------------------------------------------------------- the signature


def test_verify_accepts_githubs_signature_only() -> None:
    body = b'{"action":"closed"}'
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify(SECRET, body, good) and verify(SECRET, body, good.upper().replace("SHA256=", "sha256="))
    assert sign(SECRET, body) == good
    assert not verify(SECRET, body + b" ", good)  # the body changed
    assert not verify("another-secret", body, good)
    assert not verify(SECRET, body, None) and not verify(SECRET, body, "")
    assert not verify(SECRET, body, good.replace("sha256=", "sha1="))
    assert not verify(SECRET, body, "sha256=")
    assert not verify("", body, "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest())  # no secret: nothing


async def test_a_delivery_signed_by_the_fake_passes_verification(gh: FakeGitHub, receiver: Receiver) -> None:
    number = await an_issue(gh)
    payload = gh.close_issue(number, by="carol")
    status, _ = send_webhook(receiver.url, SECRET, "issues", payload, delivery="d-1")
    assert status == 204
    [(headers, body)] = receiver.got
    assert (headers["x-github-event"], headers["x-github-delivery"]) == ("issues", "d-1")
    closed = ticket_event(headers["x-github-event"], json.loads(body), "acme/ops", headers["x-github-delivery"])
    assert closed == TicketClosed(tracker="github", key=str(number), closed=True, by="github:carol", event_id="d-1")
    assert aid_in(json.loads(body)["issue"]["body"]) == AID  # the route finds the item by it
    assert send_webhook(receiver.url, "wrong-secret", "issues", payload)[0] == 401 and len(receiver.got) == 1


# ------------------------------------------------------------------------------- the events


async def test_closed_and_reopened_on_the_configured_repo_become_ticket_changes(gh: FakeGitHub) -> None:
    number = await an_issue(gh)
    closed = gh.close_issue(number, by="carol", reason="not_planned")
    reopened = gh.reopen_issue(number, by="dave")
    assert ticket_event("issues", closed, "ACME/ops", "d-1") == TicketClosed(
        tracker="github", key=str(number), closed=True, by="github:carol", event_id="d-1")
    again = ticket_event("issues", reopened, "acme/ops")
    assert again is not None and (again.closed, again.by) == (False, "github:dave")
    assert again.event_id.startswith(f"{closed['issue']['id']}:reopened:")
    # no delivery id: a redelivery keeps its id, a second close gets another
    first = ticket_event("issues", closed, "acme/ops")
    assert first is not None and first == ticket_event("issues", json.loads(json.dumps(closed)), "acme/ops")
    later = dict(closed, issue=dict(closed["issue"], updated_at="2027-01-01T00:00:00Z"))
    assert ticket_event("issues", later, "acme/ops").event_id != first.event_id  # type: ignore[union-attr]


async def test_everything_else_means_nothing(gh: FakeGitHub) -> None:
    number = await an_issue(gh)
    closed = gh.close_issue(number)
    assert ticket_event("issues", closed, "acme/other") is None  # another repository
    assert ticket_event("issue_comment", closed, "acme/ops") is None
    assert ticket_event("issues", dict(closed, action="edited"), "acme/ops") is None
    assert ticket_event("issues", dict(closed, action="labeled"), "acme/ops") is None
    unmarked = dict(closed, issue=dict(closed["issue"], body="filed by hand"))
    assert ticket_event("issues", unmarked, "acme/ops") is None
    assert ticket_event("issues", dict(closed, issue=dict(closed["issue"], body=None)), "acme/ops") is None
    pull = dict(closed, issue=dict(closed["issue"], pull_request={"url": "x"}))
    assert ticket_event("issues", pull, "acme/ops") is None
    assert ticket_event("issues", {"action": "closed"}, "acme/ops") is None
    assert ticket_event("issues", dict(closed, issue=dict(closed["issue"], number="7")), "acme/ops") is None


def test_the_marker_names_the_item() -> None:
    other = action_id("incident-x", "row-9")
    assert aid_in(f"text\n\n{marker(AID)}") == AID
    assert aid_in(f"> quoted from another: {marker(other)}\n\nours:\n{marker(AID)}") == AID  # ours comes last
    assert aid_in("incidentflow:ai-abc") is None and aid_in("incidentflow:ai-ABCDEFGH") is None
    assert aid_in(f"incidentflow:{AID}x") is None and aid_in("") is None and aid_in(None) is None
    assert aid_in(f"plain incidentflow:{AID} works too") == AID
