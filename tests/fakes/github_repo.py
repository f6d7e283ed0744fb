"""The state and REST routes of one fake GitHub repository (served by tests/fakes/github.py).

Pure Python, no HTTP: `route(method, parts, query, body)` answers (status, JSON) the way GitHub's REST API
does for the calls incidentflow makes. Not thread-safe by itself: the server holds its lock around it.

Git is modelled as snapshots: a commit is {path: bytes}, a branch names a commit, a file's `sha` is its git
blob sha1 (so an unchanged file keeps its sha, as on GitHub). Pull requests and issues share one number
sequence, and the issues list includes pull requests (with a `pull_request` key), as GitHub's does.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

Reply = tuple[int, Any]
NOT_FOUND: Reply = (404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _invalid(what: str) -> Reply:
    return 422, {"message": f"Invalid request.\n\n{what}", "documentation_url": "https://docs.github.com/rest"}


def _failed(resource: str, field: str, code: str = "invalid", message: str | None = None, value: Any = None) -> Reply:
    error: dict[str, Any] = {"resource": resource, "field": field, "code": code}
    if message:
        error["message"] = message
    if value is not None:
        error["value"] = value
    return 422, {"message": "Validation Failed", "errors": [error]}


class FakeRepo:
    def __init__(self, full_name: str, default_branch: str, login: str, html_base: str) -> None:
        self.full_name, self.owner = full_name, full_name.split("/")[0]
        self.default_branch, self.login, self.html = default_branch, login, f"{html_base}/{full_name}"
        self.commits: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, str] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.collaborators: set[str] | None = None  # None: anyone can be assigned
        self._number = 0
        self.branches[default_branch] = self.commit({"README.md": b"# postmortems\n"})

    # ------------------------------------------------------------------------------- git

    def commit(self, files: dict[str, bytes]) -> str:
        sha = secrets.token_hex(20)
        self.commits[sha] = dict(files)
        return sha

    def files(self, branch: str) -> dict[str, bytes] | None:
        sha = self.branches.get(branch)
        return None if sha is None else self.commits[sha]

    def write(self, branch: str, path: str, data: bytes) -> None:
        self.branches[branch] = self.commit({**self.commits[self.branches[branch]], path: data})

    def _ref(self, branch: str) -> dict[str, Any]:
        sha = self.branches[branch]
        return {"ref": f"refs/heads/{branch}", "node_id": "REF_" + sha[:8], "object": {"sha": sha, "type": "commit"}}

    def _create_ref(self, body: Any) -> Reply:
        ref, sha = (body.get("ref"), body.get("sha")) if isinstance(body, dict) else (None, None)
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            return 422, {"message": "Reference name must start with 'refs/' and have at least two slashes."}
        if sha not in self.commits:
            return 422, {"message": "Object does not exist"}
        branch = ref.removeprefix("refs/heads/")
        if branch in self.branches:
            return 422, {"message": "Reference already exists"}
        self.branches[branch] = sha
        return 201, self._ref(branch)

    def _content(self, path: str, query: dict[str, str]) -> Reply:
        branch = query.get("ref") or self.default_branch
        files = self.files(branch) if branch in self.branches else self.commits.get(branch)
        if files is None:
            return 404, {"message": f"No commit found for the ref {branch}"}
        if path not in files:
            return NOT_FOUND
        data = files[path]
        return 200, {"type": "file", "encoding": "base64", "size": len(data), "name": path.rsplit("/", 1)[-1],
                     "path": path, "sha": blob_sha(data), "content": base64.encodebytes(data).decode(),
                     "html_url": f"{self.html}/blob/{branch}/{path}"}

    def _put_content(self, path: str, body: Any) -> Reply:
        if not isinstance(body, dict) or not body.get("message"):
            return _invalid('"message" wasn\'t supplied.')
        try:
            data = base64.b64decode(str(body.get("content")), validate=True)
        except (binascii.Error, ValueError):
            return _invalid("content is not valid Base64")
        branch = body.get("branch") or self.default_branch
        files = self.files(branch)
        if files is None:
            return 404, {"message": f"Branch {branch} not found"}
        if path in files and not body.get("sha"):
            return _invalid('"sha" wasn\'t supplied.')
        if path in files and body["sha"] != blob_sha(files[path]):
            return 409, {"message": f"{path} does not match {body['sha']}"}
        created = path not in files
        self.write(branch, path, data)
        return (201 if created else 200), {
            "content": {"name": path.rsplit("/", 1)[-1], "path": path, "sha": blob_sha(data), "type": "file"},
            "commit": {"sha": self.branches[branch], "message": body["message"]}}

    # ------------------------------------------------------------------------------- pull requests

    def _next(self) -> int:
        self._number += 1
        return self._number

    def _open_pull(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not body.get("title"):
            return _failed("PullRequest", "title", "missing_field")
        head = str(body.get("head") or "").split(":")[-1]
        base = str(body.get("base") or "")
        if head not in self.branches:
            return _failed("PullRequest", "head")
        if base not in self.branches:
            return _failed("PullRequest", "base")
        if any(p["head"]["ref"] == head and p["base"]["ref"] == base and p["state"] == "open"
               for p in self.pulls.values()):
            return _failed("PullRequest", "", "custom", f"A pull request already exists for {self.owner}:{head}.")
        if self.files(head) == self.files(base):
            return _failed("PullRequest", "", "custom", f"No commits between {base} and {head}")
        number = self._next()
        self.pulls[number] = {
            "id": 2_000_000 + number, "number": number, "state": "open", "title": body["title"],
            "body": body.get("body"), "html_url": f"{self.html}/pull/{number}", "user": {"login": self.login},
            "head": {"ref": head, "label": f"{self.owner}:{head}", "sha": self.branches[head]},
            "base": {"ref": base, "label": f"{self.owner}:{base}"}, "merged": False, "merged_at": None,
            "draft": bool(body.get("draft")), "created_at": now(), "updated_at": now(), "closed_at": None}
        return 201, copy.deepcopy(self.pulls[number])

    def _list_pulls(self, query: dict[str, str]) -> Reply:
        state = query.get("state", "open")
        rows = [p for p in self.pulls.values() if state == "all" or p["state"] == state]
        if "head" in query:
            rows = [p for p in rows if p["head"]["label"] == query["head"]]
        if "base" in query:
            rows = [p for p in rows if p["base"]["ref"] == query["base"]]
        return 200, self._page(rows, query, newest_first=query.get("direction", "desc") == "desc")

    def merge(self, number: int, by: str) -> None:
        pull = self.pulls[number]
        base, head = pull["base"]["ref"], pull["head"]["ref"]
        self.branches[base] = self.commit({**self.commits[self.branches[base]], **self.commits[self.branches[head]]})
        pull.update(state="closed", merged=True, merged_at=now(), closed_at=now(), updated_at=now(),
                    merged_by={"login": by})

    # ------------------------------------------------------------------------------- issues

    def _create_issue(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not str(body.get("title") or "").strip():
            return _failed("Issue", "title", "missing_field")
        assignees = [str(a) for a in body.get("assignees") or []]
        if self.collaborators is not None:
            for login in assignees:
                if login not in self.collaborators:
                    return _failed("Issue", "assignees", value=login)
        number = self._next()
        self.issues[number] = {
            "id": 1_000_000 + number, "node_id": f"I_{number}", "number": number, "title": body["title"],
            "body": body.get("body"), "state": "open", "state_reason": None, "user": {"login": self.login},
            "labels": [{"name": str(n)} for n in dict.fromkeys(body.get("labels") or [])],
            "assignees": [{"login": a} for a in assignees], "assignee": {"login": assignees[0]} if assignees else None,
            "html_url": f"{self.html}/issues/{number}", "comments": 0, "created_at": now(), "updated_at": now(),
            "closed_at": None}
        self.comments[number] = []
        return 201, copy.deepcopy(self.issues[number])

    def _list_issues(self, query: dict[str, str]) -> Reply:
        state = query.get("state", "open")
        wanted = [w.strip() for w in query.get("labels", "").split(",") if w.strip()]
        rows = [i for i in [*self.issues.values(), *map(self._pull_as_issue, self.pulls.values())]
                if (state == "all" or i["state"] == state) and all(
                    w in [label["name"] for label in i.get("labels", [])] for w in wanted)]
        key = {"created": "created_at", "updated": "updated_at", "comments": "comments"}.get(query.get("sort", ""),
                                                                                            "created_at")
        rows.sort(key=lambda i: (i[key], i["number"]))  # same-second creations: by number, as GitHub's ids
        return 200, self._page(rows, query, newest_first=query.get("direction", "desc") == "desc")

    def _pull_as_issue(self, pull: dict[str, Any]) -> dict[str, Any]:
        return {"number": pull["number"], "title": pull["title"], "body": pull["body"], "state": pull["state"],
                "labels": [], "html_url": pull["html_url"], "created_at": pull["created_at"],
                "updated_at": pull["updated_at"], "comments": 0, "pull_request": {"html_url": pull["html_url"]}}

    def set_state(self, number: int, state: str, reason: str | None) -> Reply:
        issue = self.issues[number]
        if state not in ("open", "closed"):
            return _failed("Issue", "state", value=state)
        allowed = ("completed", "not_planned", None) if state == "closed" else ("reopened", None)
        if reason not in allowed:
            return _failed("Issue", "state_reason", value=reason)
        if issue["state"] != state:
            issue.update(state=state, updated_at=now(), closed_at=now() if state == "closed" else None,
                         state_reason=reason or ("completed" if state == "closed" else "reopened"))
        return 200, copy.deepcopy(issue)

    def _patch_issue(self, number: int, body: Any) -> Reply:
        if not isinstance(body, dict):
            return _invalid("body is not an object")
        for key in ("title", "body"):
            if key in body:
                self.issues[number].update({key: body[key], "updated_at": now()})
        if "state" in body:
            return self.set_state(number, str(body["state"]), body.get("state_reason"))
        return 200, copy.deepcopy(self.issues[number])

    def _comment(self, number: int, body: Any) -> Reply:
        if not isinstance(body, dict) or not body.get("body"):
            return _failed("IssueComment", "body", "missing_field")
        comment = {"id": 3_000_000 + sum(map(len, self.comments.values())), "body": body["body"],
                   "user": {"login": self.login}, "created_at": now(), "updated_at": now(),
                   "html_url": f"{self.html}/issues/{number}#issuecomment"}
        self.comments[number].append(comment)
        self.issues[number]["comments"] = len(self.comments[number])
        return 201, copy.deepcopy(comment)

    def _comments(self, number: int, query: dict[str, str]) -> Reply:
        since = query.get("since", "")
        rows = [c for c in self.comments[number] if c["updated_at"] >= since]
        return 200, self._page(rows, query, newest_first=False)

    # ------------------------------------------------------------------------------- routing

    def _page(self, rows: list[dict[str, Any]], query: dict[str, str], *, newest_first: bool) -> list[dict[str, Any]]:
        per_page, page = min(int(query.get("per_page", 30)), 100), int(query.get("page", 1))
        ordered = rows[::-1] if newest_first else rows
        return copy.deepcopy(ordered[(page - 1) * per_page: page * per_page])

    def route(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:
        """`parts`: the unquoted path segments after /repos/{owner}/{name}/."""
        match (method, parts):
            case ("GET", ["git", "ref", "heads", *branch]) if "/".join(branch) in self.branches:
                return 200, self._ref("/".join(branch))
            case ("POST", ["git", "refs"]):
                return self._create_ref(body)
            case ("GET", ["contents", *path]) if path:
                return self._content("/".join(path), query)
            case ("PUT", ["contents", *path]) if path:
                return self._put_content("/".join(path), body)
            case ("POST", ["pulls"]):
                return self._open_pull(body)
            case ("GET", ["pulls"]):
                return self._list_pulls(query)
            case ("GET", ["pulls", n]) if n.isdigit() and int(n) in self.pulls:
                return 200, copy.deepcopy(self.pulls[int(n)])
            case ("PATCH", ["pulls", n]) if n.isdigit() and int(n) in self.pulls and isinstance(body, dict):
                self.pulls[int(n)].update({k: body[k] for k in ("title", "body") if k in body}, updated_at=now())
                return 200, copy.deepcopy(self.pulls[int(n)])
            case ("POST", ["issues"]):
                return self._create_issue(body)
            case ("GET", ["issues"]):
                return self._list_issues(query)
        return self._route_issue(method, parts, query, body)

    def _route_issue(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:
        if len(parts) < 2 or parts[0] != "issues" or not parts[1].isdigit() or int(parts[1]) not in self.issues:
            return NOT_FOUND
        number = int(parts[1])
        match (method, parts[2:]):
            case ("GET", []):
                return 200, copy.deepcopy(self.issues[number])
            case ("PATCH", []):
                return self._patch_issue(number, body)
            case ("POST", ["comments"]):
                return self._comment(number, body)
            case ("GET", ["comments"]):
                return self._comments(number, query)
        return NOT_FOUND

