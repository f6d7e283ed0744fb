"""A fake Jira Cloud REST API v3: real HTTP on a loopback port, stateful, with fault injection.

A stdlib `ThreadingHTTPServer` in a daemon thread, like the other fakes, so async adapters, Temporal
workers and plain clients in the same process all reach it. State is guarded by one lock.

    with FakeJira(project="OPS") as jira:
        tracker = JiraTracker(JiraConfig(url=jira.base_url, project="OPS"), jira.email, jira.api_token, http)
        jira.fail_next(2, status=503)              # the next 2 requests: 503, nothing applied
        jira.lose_next("POST", "/issue")           # apply the next create, then drop the connection
        jira.hang_next("POST", "/issue")           # apply it, then hold the answer until stop() (kill a worker)
        jira.search_lag = 0.5                      # JQL sees an issue only 0.5 s after its creation
        payload = jira.set_status("OPS-1", "Done", by="Alice Example")   # a person closes it in Jira
        jira.send_webhook(url, secret, payload)    # delivered the way Jira signs it (X-Hub-Signature)

Served, with Jira's shapes: POST `/rest/api/3/issue` (201 `{id, key, self}`; 400 `{"errorMessages": [...],
"errors": {field: message}}` for a missing summary, an unknown project, issue type or assignee, labels
with spaces, a bad duedate or a description that is not an Atlassian Document), GET `/issue/{key}`
(`fields=` honoured), POST `/search/jql` (JQL subset: `labels = "x"`, `project = X`, joined by AND, with
ORDER BY created ASC|DESC), GET/POST `/issue/{key}/transitions` (204; the transitions to every other
status), GET/POST `/issue/{key}/comment`. Every request needs `Authorization: Basic base64(email:token)`
(401 otherwise). Each status change is also recorded in `events` as the `jira:issue_updated` payload
Jira would send. Simplifications: one project and workflow, no screens, no pagination tokens.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from tests.fakes.threaded import ThreadedServer

STATUSES = {"To Do": ("10000", "new", "To Do"), "In Progress": ("3", "indeterminate", "In Progress"),
            "Done": ("10001", "done", "Done")}
TRANSITIONS = {"11": "To Do", "21": "In Progress", "31": "Done"}  # transition id -> target status
ISSUE_TYPES = ("Task", "Bug", "Story")
_ADF_NODES = {"doc", "paragraph", "text", "hardBreak", "heading", "bulletList", "listItem", "codeBlock"}
_CLAUSE = re.compile(r'^\s*(labels|project)\s*=\s*"?([^"\s]+)"?\s*$', re.IGNORECASE)
_Reply = tuple[int, Any]
API = "/rest/api/3/"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "+0000")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any
    status: int  # 0: applied, the answer dropped
    at: float = field(default_factory=time.monotonic)


class FakeJira(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, project: str = "OPS",
                 email: str = "bot@example.com", api_token: str | None = None) -> None:
        self.project = project
        self.email = email
        self.api_token = api_token or secrets.token_urlsafe(24)
        self.users: dict[str, str] = {}  # accountId -> displayName
        self.issues: list[dict[str, Any]] = []  # oldest first
        self.requests: list[RecordedRequest] = []
        self.events: list[dict[str, Any]] = []  # jira:issue_updated payloads, one per status change
        self.transition_names = dict(TRANSITIONS)  # transition id -> its name (rename or drop to vary the workflow)
        self.search_lag = 0.0  # seconds before a new issue is searchable (JQL is eventually consistent)
        self._lock = threading.Lock()
        self._fail_next: list[tuple[int, str | None]] = []
        self._lose: list[tuple[str | None, str]] = []
        self._hang: list[tuple[str | None, str]] = []
        self._released = threading.Event()
        self._redirect: str | None = None
        self._changelog = 10000
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------------------- set-up and faults

    def add_user(self, display_name: str) -> str:
        account_id = "712020:" + secrets.token_hex(8)
        with self._lock:
            self.users[account_id] = display_name
        return account_id

    def fail_next(self, n: int, status: int = 503, retry_after: str | int | None = None) -> None:
        """The next n requests are answered `status` and change nothing."""
        with self._lock:
            self._fail_next += [(status, None if retry_after is None else str(retry_after))] * n

    def lose_next(self, method: str | None = None, path_part: str = "") -> None:
        """The next matching request is applied, then the connection drops without an answer."""
        with self._lock:
            self._lose.append((method, path_part))

    def hang_next(self, method: str | None = None, path_part: str = "") -> None:
        """The next matching request is applied, then its answer is held until `stop()` (kill the worker
        meanwhile: Jira did the work, the caller never hears of it)."""
        with self._lock:
            self._hang.append((method, path_part))

    def stop(self) -> None:
        self._released.set()
        super().stop()

    def redirect_all(self, location: str | None) -> None:
        with self._lock:
            self._redirect = location

    # ------------------------------------------------------------------------------- inspection and people

    def issue(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._issue(key))

    def status_of(self, key: str) -> str:
        found = self.issue(key)
        assert found is not None, key
        return str(found["fields"]["status"]["name"])

    def set_status(self, key: str, status: str, by: str = "Alice Example") -> dict[str, Any]:
        """A person moves the issue in Jira; returns the webhook payload Jira sends for it."""
        with self._lock:
            issue = self._issue(key)
            assert issue is not None, key
            return self._move(issue, status, {"accountId": "557058:person", "displayName": by})

    def send_webhook(self, url: str, secret: str | None, payload: dict[str, Any]) -> httpx.Response:
        """POST `payload` the way Jira delivers a webhook registered with `secret` (None: unsigned)."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": secrets.token_hex(8)}
        if secret is not None:
            headers["X-Hub-Signature"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return httpx.post(url, content=body, headers=headers, timeout=10)

    # ------------------------------------------------------------------------------- serving

    def _answer(self, method: str, target: str, headers: dict[str, str], raw: bytes,
                ) -> tuple[int, Any, dict[str, str], bool]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            lose, hang, extra = False, False, {}
            if self._redirect:
                status, reply, extra = 307, {"errorMessages": ["moved"]}, {"Location": self._redirect + target}
            elif self._fail_next:
                status, retry_after = self._fail_next.pop(0)
                reply = {"errorMessages": ["Rate limit exceeded" if status == 429 else "Internal server error"]}
                extra = {"Retry-After": retry_after} if retry_after else {}
            else:
                status, reply = self._authorized(headers) or self._route(method, parts.path, query, body)
                if status < 400 and _take(self._hang, method, parts.path):
                    lose = hang = True
                elif status < 400 and _take(self._lose, method, parts.path):
                    lose = True
            self.requests.append(RecordedRequest(method, parts.path, query, headers, body, 0 if lose else status))
        if hang:
            self._released.wait(60)  # outside the lock: the fake keeps serving others meanwhile
        return status, reply, extra, lose

    def _authorized(self, headers: dict[str, str]) -> _Reply | None:
        expected = base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 401, {"errorMessages": ["You are not authenticated. Authentication required to perform this "
                                           "operation."], "errors": {}}
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> _Reply:
        if not path.startswith(API):
            return 404, {"errorMessages": ["Not found"], "errors": {}}
        segments = [unquote(s) for s in path[len(API):].strip("/").split("/")]
        match (method, segments):
            case ("POST", ["issue"]):
                return self._create(body)
            case ("POST", ["search", "jql"]):
                return self._search(body)
            case (_, ["issue", key, *_]) if self._issue(key) is None:
                return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
                             "errors": {}}
            case ("GET", ["issue", key]):
                return 200, self._view(self._issue(key), query.get("fields"))
            case ("GET", ["issue", key, "transitions"]):
                return 200, {"expand": "transitions", "transitions": self._available(key)}
            case ("POST", ["issue", key, "transitions"]):
                return self._transition(key, body)
            case ("GET", ["issue", key, "comment"]):
                return 200, self._comments(key, query)
            case ("POST", ["issue", key, "comment"]):
                return self._comment(key, body)
        return 404, {"errorMessages": ["Not found"], "errors": {}}

    # ------------------------------------------------------------------------------- behaviour

    def _issue(self, key: str) -> dict[str, Any] | None:
        return next((i for i in self.issues if key in (i["key"], i["id"])), None)

    def _view(self, issue: Any, fields: str | list[str] | None) -> dict[str, Any]:
        wanted = fields.split(",") if isinstance(fields, str) else fields
        shown = issue["fields"] if not wanted or "*all" in wanted else {
            k: v for k, v in issue["fields"].items() if k in wanted}
        return copy.deepcopy({"id": issue["id"], "key": issue["key"], "self": issue["self"], "fields": shown})

    def _create(self, body: Any) -> _Reply:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["Can not deserialize instance of fields"], "errors": {}}
        errors = _field_errors(fields, self.project, self.users)
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        number = len(self.issues) + 1
        issue_id, key = str(10000 + number), f"{self.project}-{number}"
        account = (fields.get("assignee") or {}).get("accountId")
        issue = {"id": issue_id, "key": key, "self": f"{self.base_url}{API}issue/{issue_id}", "created": time.time(),
                 "comments": [], "fields": {
                     "summary": fields["summary"], "description": fields.get("description"),
                     "labels": list(fields.get("labels") or []), "duedate": fields.get("duedate"),
                     "issuetype": {"name": fields["issuetype"]["name"]}, "project": {"key": self.project},
                     "assignee": {"accountId": account, "displayName": self.users[account]} if account else None,
                     "status": _status("To Do"), "created": _now(), "updated": _now()}}
        self.issues.append(issue)
        return 201, {"id": issue_id, "key": key, "self": issue["self"]}

    def _search(self, body: Any) -> _Reply:
        jql = body.get("jql") if isinstance(body, dict) else None
        if not isinstance(jql, str):
            return 400, {"errorMessages": ["The JQL query is missing."], "errors": {}}
        where, *order_by = re.split(r"\s+ORDER\s+BY\s+", jql, maxsplit=1, flags=re.IGNORECASE)
        order = order_by[0] if order_by else ""
        rows = [i for i in self.issues if time.time() - i["created"] >= self.search_lag]
        for clause in filter(None, re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE)):
            matched = _CLAUSE.match(clause)
            if not matched:
                return 400, {"errorMessages": [f"Error in the JQL Query: {clause!r} is not supported here"],
                             "errors": {}}
            name, value = matched.group(1).lower(), matched.group(2)
            rows = [i for i in rows if (value in i["fields"]["labels"] if name == "labels"
                                        else i["fields"]["project"]["key"] == value)]
        if order.strip().lower().endswith("desc"):
            rows = rows[::-1]
        limit = int(body.get("maxResults") or 50)
        return 200, {"issues": [self._view(i, body.get("fields")) for i in rows[:limit]], "isLast": True}

    def _available(self, key: str) -> list[dict[str, Any]]:
        current = self._issue(key)["fields"]["status"]["name"]  # type: ignore[index]
        return [{"id": tid, "name": name, "to": _status(TRANSITIONS[tid]), "hasScreen": False, "isGlobal": True}
                for tid, name in self.transition_names.items() if TRANSITIONS[tid] != current]

    def _transition(self, key: str, body: Any) -> _Reply:
        tid = str(((body or {}).get("transition") or {}).get("id", "")) if isinstance(body, dict) else ""
        if tid not in {t["id"] for t in self._available(key)}:
            return 400, {"errorMessages": [f"Transition id '{tid}' is not valid for this issue."], "errors": {}}
        self._move(self._issue(key), TRANSITIONS[tid], {"accountId": "557058:bot", "displayName": "incidentflow"})
        return 204, None

    def _move(self, issue: Any, status: str, user: dict[str, str]) -> dict[str, Any]:
        before = issue["fields"]["status"]
        issue["fields"]["status"], issue["fields"]["updated"] = _status(status), _now()
        self._changelog += 1
        payload = {"timestamp": int(time.time() * 1000), "webhookEvent": "jira:issue_updated",
                   "issue_event_type_name": "issue_generic", "user": user,
                   "issue": self._view(issue, None),
                   "changelog": {"id": str(self._changelog), "items": [{
                       "field": "status", "fieldtype": "jira", "fieldId": "status", "from": before["id"],
                       "fromString": before["name"], "to": issue["fields"]["status"]["id"], "toString": status}]}}
        self.events.append(payload)
        return copy.deepcopy(payload)

    def _comments(self, key: str, query: dict[str, str]) -> dict[str, Any]:
        rows = self._issue(key)["comments"]  # type: ignore[index]
        rows = rows[::-1] if query.get("orderBy") == "-created" else rows
        limit = int(query.get("maxResults", 50))
        return {"comments": copy.deepcopy(rows[:limit]), "startAt": 0, "maxResults": limit, "total": len(rows)}

    def _comment(self, key: str, body: Any) -> _Reply:
        doc = body.get("body") if isinstance(body, dict) else None
        if not _adf_ok(doc):
            return 400, {"errorMessages": [], "errors": {"comment": "Comment body is not valid!"}}
        issue = self._issue(key)
        comment = {"id": str(20000 + sum(len(i["comments"]) for i in self.issues)), "body": doc,
                   "author": {"displayName": "incidentflow"}, "created": _now()}
        issue["comments"].append(comment)  # type: ignore[index]
        return 201, copy.deepcopy(comment)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra, lose = server._answer(self.command, self.path, headers, raw)
                if lose:
                    self.close_connection = True  # applied, but the client never hears of it
                    return
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # `requests` holds everything

        return Handler


def _take(pending: list[tuple[str | None, str]], method: str, path: str) -> bool:
    """Remove and report the first pending fault that matches this request."""
    hit = next((i for i, (m, p) in enumerate(pending) if m in (None, method) and p in path), None)
    if hit is not None:
        pending.pop(hit)
    return hit is not None


def _status(name: str) -> dict[str, Any]:
    sid, category, category_name = STATUSES[name]
    return {"id": sid, "name": name, "statusCategory": {"key": category, "name": category_name}}


def _field_errors(fields: dict[str, Any], project: str, users: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if (fields.get("project") or {}).get("key") != project:
        errors["project"] = "valid project is required"
    if (fields.get("issuetype") or {}).get("name") not in ISSUE_TYPES:
        errors["issuetype"] = "valid issue type is required"
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip() or len(summary) > 255 or "\n" in summary:
        errors["summary"] = "You must specify a summary of the issue."
    if "description" in fields and not _adf_ok(fields["description"]):
        errors["description"] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    bad = [label for label in fields.get("labels") or [] if not isinstance(label, str) or " " in label or not label]
    if bad:
        errors["labels"] = f"The label '{bad[0]}' contains spaces which is invalid."
    if fields.get("duedate") is not None:
        try:
            date.fromisoformat(fields["duedate"])
        except (TypeError, ValueError):
            errors["duedate"] = f"Error parsing date string: {fields['duedate']}"
    account = (fields.get("assignee") or {}).get("accountId")
    if "assignee" in fields and account not in users:
        errors["assignee"] = "Specified user does not exist or you do not have required permissions"
    return errors


def _adf_ok(node: Any, top: bool = True) -> bool:
    """An Atlassian Document: {type: doc, version: 1, content: [...]}, known nodes, no empty text nodes."""
    if not isinstance(node, dict) or node.get("type") not in _ADF_NODES:
        return False
    if top and (node.get("type") != "doc" or node.get("version") != 1):
        return False
    if node["type"] == "text":
        return isinstance(node.get("text"), str) and bool(node["text"])
    return all(_adf_ok(child, False) for child in node.get("content") or [])
