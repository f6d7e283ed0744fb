"""A fake GitHub REST API: real HTTP on a loopback port, one repository, stateful (tests/fakes/github_repo.py).

    with FakeGitHub(repo="acme/ops") as gh:
        sink = GitHubPullRequestSink(GitHubSinkConfig(api_url=gh.base_url, repo=gh.repo), gh.token, http)
        gh.fail_next(2, 502, method="POST", path="/issues")  # the next 2 POST …/issues answer 502, change nothing
        gh.lose_next("POST", "/issues")                      # the next one is applied, then the connection drops
        gh.fail_next(1, 504, method="POST", applied=True)    # applied, then answered 504
        gh.rate_limit_next(1)                                # 403 + x-ratelimit-remaining: 0 + x-ratelimit-reset
        gh.edit_file("postmortem/x", "postmortems/x.md", "…", by="carol")  # a person commits on the branch
        gh.merge(1, by="carol")                              # … and merges the pull request
        payload = gh.close_issue(3, by="carol")              # closed on GitHub: the `issues` webhook payload
        send_webhook(url, secret, "issues", payload)         # delivered and signed as GitHub does

Wire format as GitHub documents it: `Authorization: Bearer <token>` (or `token <token>`; 401 "Requires
authentication" / "Bad credentials" otherwise), `X-GitHub-Api-Version` other than 2022-11-28 → 400, errors as
{"message", "errors": [{resource, field, code[, message]}]}. Served under /repos/{owner}/{name}/: GET
git/ref/heads/{branch}, POST git/refs, GET/PUT contents/{path} (?ref=; 422 without the sha of an existing
file, 409 on a stale one), POST/GET pulls (head=owner:branch, state, direction), GET/PATCH pulls/{n},
POST/GET issues (labels, state, sort, direction, per_page, page), GET/PATCH issues/{n}, POST/GET
issues/{n}/comments (since). Another repository is 404, as GitHub answers for one the token cannot see.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.github_repo import NOT_FOUND, FakeRepo, Reply
from tests.fakes.threaded import ThreadedServer

API_VERSION = "2022-11-28"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any
    status: int  # what the fake answered; 0: applied, the answer dropped
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Fault:
    method: str | None
    path: str | None  # the request path ends with it
    status: int = 0  # 0: apply the request, then drop the connection
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    applied: bool = False  # apply the request, then answer `status` anyway (a proxy timing out behind GitHub)
    hold: threading.Event | None = None  # status 0: keep the answer back until this is set (a worker dies meanwhile)

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and (self.path is None or path.endswith(self.path))


class FakeGitHub(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, repo: str = "acme/ops", token: str | None = None,
                 default_branch: str = "main", login: str = "incidentflow-bot") -> None:
        self.token = token or "ghp_" + secrets.token_hex(18)
        self.state = FakeRepo(repo, default_branch, login, "https://github.example")
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._redirect: str | None = None
        self._holds: dict[int, threading.Event] = {}  # handler thread -> the event its answer waits for
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def repo(self) -> str:
        return self.state.full_name

    # ------------------------------------------------------------------------------- faults

    def fail_next(self, n: int, status: int = 502, *, method: str | None = None, path: str | None = None,
                  headers: dict[str, str] | None = None, body: Any = None, applied: bool = False) -> None:
        """The next `n` requests matching (method, path suffix) answer `status` and change nothing — or,
        with `applied`, are carried out first (GitHub created the issue, the gateway answered 502)."""
        with self._lock:
            self._faults += [_Fault(method, path, status, dict(headers or {}), body or {"message": "Server Error"},
                                    applied) for _ in range(n)]

    def rate_limit_next(self, n: int = 1, *, reset_in: int = 1, method: str | None = None,
                        path: str | None = None) -> None:
        """GitHub's primary rate limit: 403 with x-ratelimit-remaining 0 and the reset time (epoch seconds)."""
        reset = str(int(time.time()) + reset_in)
        self.fail_next(n, 403, method=method, path=path, body={"message": "API rate limit exceeded for user."},
                       headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                                "x-ratelimit-reset": reset})

    def lose_next(self, method: str | None = None, path: str | None = None) -> None:
        """The next matching request is applied, then the connection drops without an answer."""
        with self._lock:
            self._faults.append(_Fault(method, path))

    def hold_next(self, method: str | None = None, path: str | None = None) -> threading.Event:
        """The next matching request is applied, and its answer held until the returned event is set, then dropped:
        the caller (a worker about to be killed) never hears that GitHub did it."""
        release = threading.Event()
        with self._lock:
            self._faults.append(_Fault(method, path, hold=release))
        return release

    def redirect_all(self, location: str | None) -> None:
        """Answer every request 307 to `location` + the path (None: stop)."""
        with self._lock:
            self._redirect = location

    # ------------------------------------------------------------------------------- what people do

    def edit_file(self, branch: str, path: str, text: str, by: str = "carol") -> None:
        """A commit on `branch` made in GitHub's editor."""
        with self._lock:
            self.state.write(branch, path, text.encode())

    def merge(self, number: int, by: str = "carol", delete_branch: bool = False) -> None:
        with self._lock:
            self.state.merge(number, by)
            if delete_branch:
                self.state.branches.pop(self.state.pulls[number]["head"]["ref"])

    def close_issue(self, number: int, by: str = "carol", reason: str = "completed") -> dict[str, Any]:
        """Closed on GitHub by a person: returns the `issues` webhook payload GitHub would send."""
        with self._lock:
            self.state.set_state(number, "closed", reason)
            return self.issue_payload(number, "closed", by)

    def reopen_issue(self, number: int, by: str = "carol") -> dict[str, Any]:
        with self._lock:
            self.state.set_state(number, "open", "reopened")
            return self.issue_payload(number, "reopened", by)

    def issue_payload(self, number: int, action: str, sender: str) -> dict[str, Any]:
        issue = json.loads(json.dumps(self.state.issues[number]))
        return {"action": action, "issue": issue, "sender": {"login": sender, "type": "User"},
                "repository": {"full_name": self.repo, "name": self.repo.split("/")[1],
                               "owner": {"login": self.state.owner}, "private": True}}

    # ------------------------------------------------------------------------------- inspection

    def file_text(self, branch: str, path: str) -> str | None:
        with self._lock:
            files = self.state.files(branch)
            return None if files is None or path not in files else files[path].decode()

    @property
    def issues(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(list(self.state.issues.values())))

    @property
    def pulls(self) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(list(self.state.pulls.values())))

    def comments(self, number: int) -> list[str]:
        with self._lock:
            return [c["body"] for c in self.state.comments[number]]

    def writes(self, method: str | None = None) -> list[RecordedRequest]:
        """Requests that changed something (or may have: a dropped answer), optionally of one method."""
        return [r for r in self.requests if r.method != "GET" and method in (None, r.method)
                and (r.status == 0 or 200 <= r.status < 300)]

    # ------------------------------------------------------------------------------- serving

    def _answer(self, method: str, target: str, headers: dict[str, str], raw: bytes,
                ) -> tuple[int, Any, dict[str, str], bool]:
        """(status, body, extra headers, drop the answer) — under the lock, recorded."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            status, reply, extra, lose = self._serve(method, parts.path, query, headers, body)
            self.requests.append(RecordedRequest(method, parts.path, query, headers, body, 0 if lose else status))
        return status, reply, extra, lose

    def _serve(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: Any) -> tuple[int, Any, dict[str, str], bool]:
        if self._redirect:
            return 307, {"message": "Moved"}, {"Location": self._redirect + path}, False
        fault = next((f for f in self._faults if f.matches(method, path)), None)
        if fault is not None:
            self._faults.remove(fault)
            if fault.hold is not None:
                self._holds[threading.get_ident()] = fault.hold
            if fault.status and not fault.applied:
                return fault.status, fault.body, fault.headers, False
        status, reply = self._authorized(headers) or self._version(headers) or self._route(method, path, query, body)
        if fault is not None and fault.status:
            return fault.status, fault.body, fault.headers, False
        return status, reply, {}, fault is not None

    def _authorized(self, headers: dict[str, str]) -> Reply | None:
        given = headers.get("authorization")
        if given is None:
            return 401, {"message": "Requires authentication"}
        scheme, _, value = given.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not hmac.compare_digest(value, self.token):
            return 401, {"message": "Bad credentials"}
        return None

    def _version(self, headers: dict[str, str]) -> Reply | None:
        version = headers.get("x-github-api-version", API_VERSION)
        return None if version == API_VERSION else (400, {"message": f"API version {version} is not supported."})

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) < 3 or parts[0] != "repos" or "/".join(parts[1:3]).lower() != self.repo.lower():
            return NOT_FOUND
        return self.state.route(method, parts[3:], query, body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra, lose = server._answer(self.command, self.path, headers, raw)
                if lose:
                    held = server._holds.pop(threading.get_ident(), None)
                    if held is not None:
                        held.wait(120)
                    self.close_connection = True  # applied, but the client never hears of it
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-GitHub-Request-Id", uuid.uuid4().hex[:16].upper())
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # `requests` holds everything

        return Handler


def send_webhook(url: str, secret: str, event: str, payload: dict[str, Any],
                 delivery: str | None = None) -> tuple[int, bytes]:
    """POST a webhook delivery as GitHub does: the JSON body signed with HMAC-SHA256 (X-Hub-Signature-256)
    and SHA-1 (the legacy X-Hub-Signature), X-GitHub-Event, X-GitHub-Delivery. Returns (status, body)."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/fake",
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1", "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback in tests
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
