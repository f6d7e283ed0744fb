"""Postmortem sinks (issue 14): the directory sink on a real filesystem, the signed webhook sink against a
receiver in this file over real HTTP (it checks the signature the way the README tells receivers to), and
the builders that pick a sink and a tracker from the config and the environment."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import NON_RETRYABLE_TYPES, REJECTED, UNAVAILABLE
from activities.jira import JiraTracker
from activities.postmortem_sinks import DirectorySink, WebhookSink, build_sink, build_tracker
from domain.config import ConfigError
from domain.postmortem.config import (
    GitHubIssuesConfig,
    GitHubSinkConfig,
    JiraConfig,
    LearningSecrets,
    SinkConfig,
    TrackerConfig,
    WebhookSinkConfig,
)
from domain.postmortem.models import PostmortemStatus, SinkRef, WriteInput
from tests.fakes.threaded import ThreadedServer

INCIDENT = "incident-20260509-0735-checkout"
SECRET = "postmortem-hook-secret-5678"
DRAFT = "# Checkout errors — 2026-05-09\n\n## Summary\n\n_To fill._\n"


def doc(markdown: str = DRAFT, ref: SinkRef | None = None,
        status: PostmortemStatus = PostmortemStatus.draft) -> WriteInput:
    return WriteInput(incident_id=INCIDENT, title="Checkout errors", markdown=markdown, status=status, ref=ref)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------- directory


async def test_the_directory_sink_writes_one_file_per_incident_and_links_it(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path / "postmortems")
    ref = await sink.write(doc())
    path = tmp_path / "postmortems" / f"{INCIDENT}.md"
    assert path.read_text() == DRAFT and ref == SinkRef(sink="directory", link=str(path), ref=str(path),
                                                       digest=sha(DRAFT))
    linked = await DirectorySink(tmp_path / "postmortems", "https://wiki.example/pm/").write(doc())
    assert linked.link == f"https://wiki.example/pm/{INCIDENT}.md" and linked.ref == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{INCIDENT}.md"]


async def test_an_unchanged_text_writes_nothing_and_a_new_one_replaces_it(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    ref = await sink.write(doc())
    path = Path(ref.ref)
    before = path.stat()
    time.sleep(0.01)
    assert await sink.write(doc(ref=ref)) == ref
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    new = await sink.write(doc(DRAFT + "\n## Impact\n\n3 % of checkouts failed.\n", ref=ref))
    assert "3 % of checkouts failed." in path.read_text() and new.digest != ref.digest
    assert path.stat().st_ino != before.st_ino  # a new file renamed over the old one


async def test_reading_back_returns_the_file_as_people_left_it(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    ref = await sink.write(doc())
    edited = DRAFT.replace("_To fill._", "A bad deploy of payments broke checkout for 20 minutes.")
    Path(ref.ref).write_text(edited)
    assert await sink.read(ref) == edited

    Path(ref.ref).unlink()
    with pytest.raises(ApplicationError, match="is gone") as gone:
        await sink.read(ref)
    assert gone.value.non_retryable
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.md").write_text("secret")
    for outside in (tmp_path / "elsewhere" / "x.md", tmp_path / "x.txt", Path("/etc/passwd")):
        with pytest.raises(ApplicationError, match="is not a postmortem file"):
            await sink.read(SinkRef(sink="directory", link="", ref=str(outside)))
    with pytest.raises(ApplicationError, match="cannot name a file"):
        await sink.write(WriteInput(incident_id="../escape", title="x", markdown="x"))


async def test_writes_are_atomic_readers_see_a_whole_document_and_a_failed_write_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = DirectorySink(tmp_path)
    versions = [f"# v{n}\n" + ("line of the postmortem\n" * 20_000) for n in range(6)]
    ref = await sink.write(doc(versions[0]))
    seen: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(Path(ref.ref).read_text())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:]:
            await sink.write(doc(version))
    finally:
        stop.set()
        thread.join()
    assert seen <= set(versions) and seen  # never a half-written file

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):  # not an ApplicationError: Temporal retries it
        await sink.write(doc("# a new draft\n"))
    assert Path(ref.ref).read_text() == versions[-1]
    assert [p.name for p in tmp_path.iterdir()] == [f"{INCIDENT}.md"]  # no temporary file left behind


# ------------------------------------------------------------------------------- webhook: a receiver


class Receiver(ThreadedServer):
    """A team's docs service: checks every request's signature and timestamp, keeps the documents."""

    def __init__(self, secret: str = SECRET, *, markdown_as_json: bool = True) -> None:
        self.secret = secret
        self.as_json = markdown_as_json
        self.docs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []  # method, raw query, status answered
        self.fail_next: list[int] = []
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body, ctype = receiver.answer(self.command, self.path, dict(self.headers), raw)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if receiver.redirect_to and status == 307:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks/postmortems"

    def signed(self, headers: dict[str, str], method: str, query: str, raw: bytes) -> bool:
        """The documented scheme, computed independently of the adapter."""
        stamp = headers.get("X-Incidentflow-Timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        mac = hmac.new(self.secret.encode(), f"{stamp}\n{method}\n{query}\n".encode() + raw, hashlib.sha256)
        return hmac.compare_digest(headers.get("X-Incidentflow-Signature", ""), "sha256=" + mac.hexdigest())

    def answer(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, str]:
        parts = urlsplit(target)
        status, body, ctype = self._route(method, parts.query, headers, raw)
        self.requests.append((method, parts.query, status))
        return status, body, ctype

    def _route(self, method: str, query: str, headers: dict[str, str], raw: bytes) -> tuple[int, bytes, str]:
        if self.redirect_to:
            return 307, b"", "text/plain"
        if self.fail_next:
            return self.fail_next.pop(0), b"upstream down", "text/plain"
        if not self.signed(headers, method, query, raw):
            return 401, b'{"error": "bad signature"}', "application/json"
        if method == "POST":
            payload = json.loads(raw)
            self.docs[payload["incident_id"]] = {**payload, "posts": self.docs.get(payload["incident_id"], {})
                                                 .get("posts", 0) + 1}
            answer = {"url": f"https://docs.example/pm/{payload['incident_id']}", "id": "doc-17"}
            return 200, json.dumps(answer).encode(), "application/json"
        found = self.docs.get(parse_qs(query).get("incident_id", [""])[0])
        if found is None:
            return 404, b"no such document", "text/plain"
        if self.as_json:
            return 200, json.dumps({"markdown": found["markdown"]}).encode(), "application/json"
        return 200, found["markdown"].encode(), "text/markdown; charset=utf-8"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5, follow_redirects=True) as client:  # the sink must override it
        yield client


def hook(receiver: Receiver, http: httpx.AsyncClient, secret: str = SECRET) -> WebhookSink:
    return WebhookSink(WebhookSinkConfig(url=receiver.url), SecretStr(secret), http)


# ------------------------------------------------------------------------------- webhook: behaviour


async def test_the_webhook_sink_posts_a_signed_draft_and_reads_the_final_text_back(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    sink = hook(receiver, http)
    ref = await sink.write(doc(status=PostmortemStatus.in_review))
    got = receiver.docs[INCIDENT]
    assert {k: got[k] for k in ("incident_id", "title", "status", "markdown", "digest")} == {
        "incident_id": INCIDENT, "title": "Checkout errors", "status": "in_review", "markdown": DRAFT,
        "digest": sha(DRAFT)}
    assert ref == SinkRef(sink="webhook", link=f"https://docs.example/pm/{INCIDENT}", ref=f"{INCIDENT}/doc-17",
                          digest=sha(DRAFT))
    assert await sink.write(doc(ref=ref)) == ref and got["posts"] == 1  # unchanged: nothing sent

    receiver.docs[INCIDENT]["markdown"] = DRAFT + "\nEdited in the docs service.\n"
    assert await sink.read(ref) == DRAFT + "\nEdited in the docs service.\n"
    assert receiver.requests[-1] == ("GET", f"incident_id={INCIDENT}&id=doc-17", 200)

    receiver.as_json = False
    assert await sink.read(ref) == DRAFT + "\nEdited in the docs service.\n"  # text/markdown works too


async def test_a_receiver_refuses_a_wrong_signature_and_the_refusal_is_final(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    with pytest.raises(ApplicationError) as refused:
        await hook(receiver, http, secret="not-the-shared-secret").write(doc())
    assert refused.value.type == REJECTED and refused.value.non_retryable and "HTTP 401" in str(refused.value)
    assert INCIDENT not in receiver.docs
    with pytest.raises(ApplicationError) as missing:
        await hook(receiver, http).read(SinkRef(sink="webhook", link="", ref="incident-unknown"))
    assert missing.value.non_retryable and "HTTP 404" in str(missing.value)


async def test_no_redirect_is_followed_and_the_secret_never_leaves(
        receiver: Receiver, http: httpx.AsyncClient) -> None:
    with Receiver(secret="x") as elsewhere:
        receiver.redirect_to = elsewhere.url
        with pytest.raises(ApplicationError, match="redirect not followed") as moved:
            await hook(receiver, http).write(doc())
        assert moved.value.non_retryable and elsewhere.requests == []

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=f"cannot store; config was {SECRET}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as echoing:
        with pytest.raises(ApplicationError) as echoed:
            await hook(receiver, echoing).write(doc())
    assert echoed.value.type == UNAVAILABLE and SECRET not in str(echoed.value) and "[redacted]" in str(echoed.value)
    with pytest.raises(ValueError, match="not a plain"):
        WebhookSink(WebhookSinkConfig(url="ftp://docs.example/x"), SECRET, http)


class _SinkActivities:
    def __init__(self, sink: WebhookSink) -> None:
        self._sink = sink

    @activity.defn
    async def write_postmortem(self, item: WriteInput) -> SinkRef:
        return await self._sink.write(item)


@workflow.defn(sandboxed=False)
class _WriteWorkflow:
    @workflow.run
    async def run(self, item: WriteInput) -> SinkRef:
        return await workflow.execute_activity_method(
            _SinkActivities.write_postmortem, item, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5,
                                     non_retryable_error_types=list(NON_RETRYABLE_TYPES)))


async def test_5xx_from_the_receiver_is_retried_by_temporal(
        ts_env: WorkflowEnvironment, receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.fail_next = [503, 502]
    queue = f"sink-{uuid.uuid4().hex[:8]}"
    acts = _SinkActivities(hook(receiver, http))
    async with Worker(ts_env.client, task_queue=queue, workflows=[_WriteWorkflow], activities=[acts.write_postmortem]):
        ref: SinkRef = await ts_env.client.execute_workflow(_WriteWorkflow.run, doc(), id=f"pm-{uuid.uuid4().hex[:8]}",
                                                            task_queue=queue)
    assert ref.ref == f"{INCIDENT}/doc-17" and [s for _, _, s in receiver.requests] == [503, 502, 200]
    assert receiver.docs[INCIDENT]["posts"] == 1


# ------------------------------------------------------------------------------- builders


def test_build_sink_picks_the_configured_sink_and_names_a_missing_secret(tmp_path: Path) -> None:
    none = LearningSecrets.model_construct()
    default = build_sink(SinkConfig(), tmp_path, none, None)
    assert isinstance(default, DirectorySink) and default.kind == "directory"
    assert default._dir == tmp_path / "postmortems"
    webhook = SinkConfig(kind="webhook", webhook=WebhookSinkConfig(url="https://docs.example/hook"))
    with pytest.raises(ConfigError, match="INCIDENTFLOW_POSTMORTEM_WEBHOOK_SECRET"):
        build_sink(webhook, tmp_path, none, None)
    built = build_sink(webhook, tmp_path, LearningSecrets.model_construct(postmortem_webhook_secret=SecretStr("s")),
                       None)
    assert isinstance(built, WebhookSink)
    github = SinkConfig(kind="github", github=GitHubSinkConfig(repo="acme/postmortems"))
    with pytest.raises(ConfigError, match="INCIDENTFLOW_GITHUB_TOKEN"):
        build_sink(github, tmp_path, none, None)
    assert build_sink(github, tmp_path, LearningSecrets.model_construct(github_token=SecretStr("t")),
                      None).kind == "github"


def test_build_tracker_picks_the_configured_tracker_and_names_missing_secrets() -> None:
    none = LearningSecrets.model_construct()
    assert build_tracker(TrackerConfig(), none, None) is None
    jira = TrackerConfig(kind="jira", jira=JiraConfig(url="https://acme.atlassian.net", project="OPS"))
    with pytest.raises(ConfigError, match="INCIDENTFLOW_JIRA_EMAIL"):
        build_tracker(jira, none, None)
    with pytest.raises(ConfigError, match="INCIDENTFLOW_JIRA_API_TOKEN"):
        build_tracker(jira, LearningSecrets.model_construct(jira_email="bot@acme.com"), None)
    built = build_tracker(jira, LearningSecrets.model_construct(jira_email="bot@acme.com",
                                                                jira_api_token=SecretStr("tok")), None)
    assert isinstance(built, JiraTracker) and built.kind == "jira"
    github = TrackerConfig(kind="github", github=GitHubIssuesConfig(repo="acme/app"))
    with pytest.raises(ConfigError, match="INCIDENTFLOW_GITHUB_TOKEN"):
        build_tracker(github, none, None)
    tracker = build_tracker(github, LearningSecrets.model_construct(github_token=SecretStr("t")), None)
    assert tracker is not None and tracker.kind == "github"


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"INCIDENTFLOW_JIRA_EMAIL": "bot@acme.com", "INCIDENTFLOW_JIRA_API_TOKEN": "tok-9f3a",
           "INCIDENTFLOW_JIRA_WEBHOOK_SECRET": "wh-21b0", "INCIDENTFLOW_POSTMORTEM_WEBHOOK_SECRET": "pm-77c1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    secrets = LearningSecrets()
    assert secrets.jira_email == "bot@acme.com" and secrets.jira_webhook_secret is not None
    tracker = build_tracker(TrackerConfig(kind="jira", jira=JiraConfig(url="https://acme.atlassian.net",
                                                                        project="OPS")), secrets, None)
    assert isinstance(tracker, JiraTracker)
    sink = build_sink(SinkConfig(kind="webhook", webhook=WebhookSinkConfig(url="https://docs.example/h")),
                      Path("."), secrets, None)
    assert isinstance(sink, WebhookSink)
    assert not any(v in repr(secrets) for v in ("tok-9f3a", "wh-21b0", "pm-77c1"))
