"""GitHub (issue 14): postmortems as pull requests, action items as issues, issue webhooks in — against a
fake GitHub REST API over real HTTP (tests/fakes/github.py).

Retries are Temporal's: the idempotency tests run the tracker in a real worker on the time-skipping server,
with the retry policy the workflows use, and count what GitHub ended up with."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta

import httpx
import pytest
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import NON_RETRYABLE_TYPES, error_code
from activities.github import EDITED, GitHubIssues, GitHubPullRequestSink
from domain.actions.models import TicketChange, TicketInput, TicketRef, action_id
from domain.github_webhook import aid_in, marker
from domain.postmortem.config import GitHubIssuesConfig, GitHubSinkConfig
from domain.postmortem.models import ItemKind, PostmortemStatus, Priority, SinkRef, WriteInput
from tests.fakes.github import API_VERSION, FakeGitHub

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=8,
                    non_retryable_error_types=list(NON_RETRYABLE_TYPES))
INCIDENT = "incident-20261207-0935-checkout"
BRANCH, PATH = f"postmortem/{INCIDENT}", f"postmortems/{INCIDENT}.md"
AID = action_id(INCIDENT, "row-1")


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(repo="acme/ops") as fake:
        yield fake


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
async def http(sent: list[httpx.Request]) -> AsyncIterator[httpx.AsyncClient]:
    async def record(request: httpx.Request) -> None:
        sent.append(request)

    # follow_redirects=True: the adapters must refuse redirects themselves
    async with httpx.AsyncClient(timeout=5, follow_redirects=True, event_hooks={"request": [record]}) as client:
        yield client


def sink(gh: FakeGitHub, http: httpx.AsyncClient, token: str | None = None) -> GitHubPullRequestSink:
    return GitHubPullRequestSink(GitHubSinkConfig(api_url=gh.base_url, repo=gh.repo), token or gh.token, http)


def issues(gh: FakeGitHub, http: httpx.AsyncClient, token: str | None = None, **cfg: object) -> GitHubIssues:
    return GitHubIssues(GitHubIssuesConfig(api_url=gh.base_url, repo=gh.repo, **cfg), token or gh.token, http)


def doc(text: str, ref: SinkRef | None = None, title: str = "Checkout errors") -> WriteInput:
    return WriteInput(incident_id=INCIDENT, title=title, markdown=text, status=PostmortemStatus.draft, ref=ref)


def ticket(aid: str = AID, handle: str | None = "alice-gh") -> TicketInput:
    return TicketInput(aid=aid, incident_id=INCIDENT, title="Alert on payment error rate", body="From the postmortem.",
                       owner="alice", owner_handle=handle, due=date(2026, 12, 10), priority=Priority.P1,
                       kind=ItemKind.detect)


async def refused(call: object) -> ApplicationError:
    with pytest.raises(ApplicationError) as failed:
        await call  # type: ignore[misc]
    return failed.value


# ------------------------------------------------------------------------------- the pull-request sink


async def test_a_draft_becomes_a_branch_a_file_and_one_pull_request(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    ref = await sink(gh, http).write(doc("# Checkout errors\n\nDraft 1\n"))

    assert gh.file_text(BRANCH, PATH) == "# Checkout errors\n\nDraft 1\n" and gh.file_text("main", PATH) is None
    [pull] = gh.pulls
    assert (pull["title"], pull["head"]["ref"], pull["base"]["ref"], pull["state"]) == (
        "Postmortem: Checkout errors", BRANCH, "main", "open")
    assert (ref.sink, ref.link, ref.ref) == ("github", pull["html_url"], f"{BRANCH}:{PATH}")
    for r in gh.requests:
        assert r.headers["authorization"] == f"Bearer {gh.token}"
        assert (r.headers["accept"], r.headers["x-github-api-version"]) == ("application/vnd.github+json", API_VERSION)


async def test_an_update_commits_once_and_the_same_text_commits_nothing(
        gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    pm = sink(gh, http)
    first = await pm.write(doc("Draft 1\n"))
    second = await pm.write(doc("Draft 2\n", first, title="Checkout errors after a deploy"))
    puts = [r.body for r in gh.writes("PUT")]
    assert "sha" not in puts[0] and puts[1]["sha"] and puts[1]["branch"] == BRANCH
    assert gh.file_text(BRANCH, PATH) == "Draft 2\n" and second.link == first.link and second.digest != first.digest
    assert [p["title"] for p in gh.pulls] == ["Postmortem: Checkout errors after a deploy"]  # retitled, not a second

    before = len(gh.writes())
    again = await pm.write(doc("Draft 2\n", second, title="Checkout errors after a deploy"))
    assert len(gh.writes()) == before and again == second  # unchanged: no commit, no pull request


async def test_read_back_follows_peoples_edits_then_the_merge(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    pm = sink(gh, http)
    ref = await pm.write(doc("Root cause: (to fill)\n"))
    gh.edit_file(BRANCH, PATH, "Root cause: a connection pool too small for the retry storm.\n")
    assert await pm.read(ref) == "Root cause: a connection pool too small for the retry storm.\n"

    overwrite = await refused(pm.write(doc("Root cause: (to fill)\nReview: Monday\n", ref)))
    assert (overwrite.non_retryable, error_code(overwrite), "changed on GitHub" in overwrite.message) == (
        True, EDITED, True)
    assert gh.file_text(BRANCH, PATH) == "Root cause: a connection pool too small for the retry storm.\n"

    gh.merge(gh.pulls[0]["number"])
    gh.edit_file(BRANCH, PATH, "a late push to the merged branch\n")  # not what was merged
    assert await pm.read(ref) == "Root cause: a connection pool too small for the retry storm.\n"
    assert gh.file_text("main", PATH) == "Root cause: a connection pool too small for the retry storm.\n"


async def test_read_after_a_merge_that_deleted_the_branch(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    pm = sink(gh, http)
    ref = await pm.write(doc("Final text\n"))
    gh.merge(gh.pulls[0]["number"], delete_branch=True)
    assert await pm.read(ref) == "Final text\n"
    wrong = await refused(pm.read(SinkRef(sink="directory", link="x", ref="x.md")))
    assert wrong.non_retryable and "not a GitHub sink reference" in wrong.message


async def test_a_write_retried_after_lost_answers_makes_one_branch_one_commit_one_pull_request(
        gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    pm = sink(gh, http)
    gh.lose_next("POST", "/git/refs")
    gh.lose_next("PUT", PATH)
    gh.lose_next("POST", "/pulls")
    gh.fail_next(1, 502, method="GET", path="/pulls")
    errors = []
    for _ in range(5):
        try:
            ref = await pm.write(doc("Draft 1\n"))
            break
        except ApplicationError as exc:
            assert not exc.non_retryable, exc.message
            errors.append(exc.type)
    assert errors == ["VendorUnavailable"] * 4
    assert [r.method for r in gh.writes()] == ["POST", "PUT", "POST"] and len(gh.pulls) == 1
    assert ref.link == gh.pulls[0]["html_url"] and gh.file_text(BRANCH, PATH) == "Draft 1\n"


async def test_a_file_changed_under_the_write_retries(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    pm = sink(gh, http)
    await pm.write(doc("Draft 1\n"))
    gh.fail_next(1, 409, method="PUT", body={"message": f"{PATH} does not match 0123abcd"})
    conflict = await refused(pm.write(doc("Draft 2\n")))
    assert (conflict.type, conflict.non_retryable) == ("VendorUnavailable", False)
    await pm.write(doc("Draft 2\n"))
    assert gh.file_text(BRANCH, PATH) == "Draft 2\n"


# ------------------------------------------------------------------------------- the issues tracker


async def test_an_issue_carries_labels_the_assignee_and_the_marker(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    ref = await issues(gh, http, labels=["incident-follow-up", "sre"]).create(ticket())
    [issue] = gh.issues
    assert ref == TicketRef(tracker="github", key=str(issue["number"]), url=issue["html_url"])
    assert [label["name"] for label in issue["labels"]] == ["incident-follow-up", "sre", "P1", "detect"]
    assert [a["login"] for a in issue["assignees"]] == ["alice-gh"] and issue["title"] == "Alert on payment error rate"
    assert issue["body"].endswith(marker(AID)) and aid_in(issue["body"]) == AID


async def test_an_owner_who_cannot_be_assigned_still_gets_the_issue(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    gh.state.collaborators = {"bob"}
    await issues(gh, http).create(ticket(handle="alice-gh"))
    [issue] = gh.issues
    assert issue["assignees"] == [] and [r.status for r in gh.requests if r.method == "POST"] == [422, 201]


class _TrackerActivities:
    def __init__(self, tracker: GitHubIssues) -> None:
        self.tracker = tracker

    @activity.defn(name="create_ticket")
    async def create_ticket(self, t: TicketInput) -> TicketRef:
        return await self.tracker.create(t)


@workflow.defn(sandboxed=False)  # a test double: no sandbox re-imports of this module
class _TicketWorkflow:
    @workflow.run
    async def run(self, t: TicketInput) -> TicketRef:
        return await workflow.execute_activity_method(_TrackerActivities.create_ticket, t,
                                                      start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY)


async def create_through_temporal(env: WorkflowEnvironment, tracker: GitHubIssues, t: TicketInput) -> TicketRef:
    queue = f"gh-{uuid.uuid4().hex[:8]}"
    acts = _TrackerActivities(tracker)
    async with Worker(env.client, task_queue=queue, workflows=[_TicketWorkflow], activities=[acts.create_ticket]):
        return await env.client.execute_workflow(_TicketWorkflow.run, t, id=f"ticket-{uuid.uuid4().hex[:8]}",
                                                 task_queue=queue, execution_timeout=timedelta(minutes=5))


async def test_created_then_the_connection_dropped_still_makes_exactly_one_issue(
        ts_env: WorkflowEnvironment, gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    gh.lose_next("POST", "/issues")  # GitHub created it; the worker never heard back
    ref = await create_through_temporal(ts_env, issues(gh, http), ticket())
    assert len(gh.issues) == 1 and ref.key == str(gh.issues[0]["number"])
    assert [r.status for r in gh.requests if r.method == "POST"] == [0]  # the retry found it, created nothing
    listed = [r.query for r in gh.requests if r.method == "GET" and r.path.endswith("/issues")]
    assert listed[-1] | {"page": "1"} == {"labels": "incident-follow-up", "state": "all", "sort": "created",
                                          "direction": "desc", "per_page": "100", "page": "1"}


async def test_5xx_and_rate_limits_are_retried_and_make_one_issue(
        ts_env: WorkflowEnvironment, gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    await issues(gh, http).create(ticket(action_id(INCIDENT, "another item")))  # a neighbour with the same labels
    gh.fail_next(2, 502, method="POST", path="/issues")
    gh.fail_next(1, 503, method="GET", path="/issues")
    gh.rate_limit_next(1, method="POST", path="/issues")
    gh.fail_next(1, 504, method="POST", path="/issues", applied=True)  # created behind a gateway that timed out
    ref = await create_through_temporal(ts_env, issues(gh, http), ticket())
    assert len(gh.issues) == 2 and [aid_in(i["body"]) for i in gh.issues] == [action_id(INCIDENT, "another item"), AID]
    assert ref.key == str(gh.issues[1]["number"])
    assert [r.status for r in gh.requests if r.method == "POST"] == [201, 502, 502, 403, 504]  # then found


async def test_rate_limit_answers_carry_githubs_wait(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    tracker = issues(gh, http)
    gh.rate_limit_next(1, reset_in=30)
    primary = await refused(tracker.create(ticket()))
    gh.fail_next(1, 429, headers={"Retry-After": "7"}, body={"message": "secondary rate limit"})
    secondary = await refused(tracker.create(ticket()))
    assert (primary.type, primary.non_retryable) == ("VendorRateLimited", False)
    assert primary.next_retry_delay is not None and 25 <= primary.next_retry_delay.total_seconds() <= 31
    assert (secondary.type, secondary.next_retry_delay) == ("VendorRateLimited", timedelta(seconds=7))
    assert gh.issues == []


async def test_close_and_reopen_with_a_comment_posted_once(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    tracker = issues(gh, http)
    ref = await tracker.create(ticket())
    number = int(ref.key)
    gh.lose_next("POST", "/comments")
    lost = await refused(tracker.change(TicketChange(ticket=ref, close=True, comment="Done by alice.")))
    assert not lost.non_retryable
    await tracker.change(TicketChange(ticket=ref, close=True, comment="Done by alice."))  # the retry
    [issue] = gh.issues
    assert (issue["state"], issue["state_reason"]) == ("closed", "completed")
    assert [c.split("\n")[0] for c in gh.comments(number)] == ["Done by alice."]

    await tracker.change(TicketChange(ticket=ref, close=True))  # closing a closed issue is fine
    await tracker.change(TicketChange(ticket=ref, close=False, comment="Reopened: the alert is still missing."))
    [issue] = gh.issues
    assert (issue["state"], issue["state_reason"]) == ("open", "reopened") and len(gh.comments(number)) == 2
    bad = await refused(tracker.change(TicketChange(ticket=TicketRef(tracker="github", key="../../x", url="u"))))
    assert bad.non_retryable


async def test_rejections_are_final_and_say_what_to_fix(gh: FakeGitHub, http: httpx.AsyncClient) -> None:
    unknown = GitHubIssues(GitHubIssuesConfig(api_url=gh.base_url, repo="acme/elsewhere"), gh.token, http)
    missing = await refused(unknown.create(ticket()))
    assert (missing.type, missing.non_retryable) == ("VendorRejected", True)
    assert "HTTP 404" in missing.message and "cannot see the repository" in missing.message
    bad_token = await refused(issues(gh, http, token="ghp_wrong").create(ticket()))
    assert "HTTP 401" in bad_token.message and "INCIDENTFLOW_GITHUB_TOKEN" in bad_token.message
    gh.fail_next(1, 403, body={"message": "Resource not accessible by personal access token"})
    forbidden = await refused(issues(gh, http).create(ticket()))
    assert forbidden.non_retryable and "Resource not accessible" in forbidden.message


# ------------------------------------------------------------------------------- the token


async def test_the_token_goes_only_to_the_configured_host(
        gh: FakeGitHub, http: httpx.AsyncClient, sent: list[httpx.Request]) -> None:
    pm, tracker = sink(gh, http), issues(gh, http)
    await tracker.create(ticket())
    await pm.write(doc("Draft\n"))
    with FakeGitHub(host="127.0.0.2", repo=gh.repo, token=gh.token) as evil:
        gh.redirect_all(evil.base_url)  # a moved repository, or someone in the middle
        moved = await refused(tracker.create(ticket(action_id(INCIDENT, "x"))))
        assert evil.requests == []  # the redirect was not followed, though the client would follow it
    assert moved.non_retryable and "redirect not followed" in moved.message
    configured = httpx.URL(gh.base_url)
    assert sent and {(r.url.host, r.url.port) for r in sent} == {(configured.host, configured.port)}
    assert all(r.headers["authorization"] == f"Bearer {gh.token}" for r in sent)


@pytest.mark.parametrize("url", ["http://api.github.com", "https://user:pw@api.github.com",
                                 "https://api.github.com?x=1", "api.github.com"])
def test_the_token_only_goes_to_a_plain_https_api_url(url: str) -> None:
    with pytest.raises(ValueError, match="api_url"):
        GitHubIssues(GitHubIssuesConfig(api_url=url, repo="acme/ops"), "ghp_x", httpx.AsyncClient())
    with pytest.raises(ValueError, match="INCIDENTFLOW_GITHUB_TOKEN"):
        GitHubIssues(GitHubIssuesConfig(repo="acme/ops"), " ", httpx.AsyncClient())


async def test_errors_and_logs_never_carry_the_token(
        gh: FakeGitHub, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    tracker, pm = issues(gh, http), sink(gh, http)
    await tracker.create(ticket())
    gh.fail_next(1, 422, method="POST", path="/issues",  # a server echoing us back
                 body={"message": f"Validation Failed for token {gh.token}"})
    echoed = await refused(tracker.create(ticket(action_id(INCIDENT, "y"))))
    gh.fail_next(1, 500, body={"message": f"oops {gh.token}"})
    outage = await refused(pm.write(doc("Draft\n")))
    wrong = await refused(issues(gh, http, token="ghp_" + "0" * 36).create(ticket()))
    assert "[redacted]" in echoed.message and "[redacted]" in outage.message
    said = [echoed.message, outage.message, wrong.message, caplog.text,
            *(r.getMessage() for r in caplog.records), *(str(r.args) for r in caplog.records)]
    assert not [s for s in said if gh.token in s]
    assert any(r.name == "httpx" for r in caplog.records)  # the transport did log: just never the token
