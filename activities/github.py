"""GitHub adapters: postmortems as pull requests (`PostmortemSink`) and action items as issues (`Tracker`).

Both speak the REST API through `GitHubApi` (activities/github_api.py: the token, its host, the errors).

The sink keeps each postmortem at `<directory>/<incident_id>.md` on the branch `<branch_prefix><incident_id>`
(made from `base_branch`), with one pull request "Postmortem: <title>" from it. People edit the document in
that pull request; `read` returns the branch's text while the pull request is open and the base branch's
once it is merged (the merged text is final). Writing the same text again commits nothing, and a write
never overwrites what people changed on the branch since incidentflow last wrote it (`SinkRef.digest`):
it fails with error code `edited_in_sink` instead, because the document now lives in the pull request.

The tracker creates one issue per action item, idempotently: the issue's body ends with the item's marker
(domain/github_webhook.marker), and `create` first lists the repository's issues with the configured
labels (state=all, newest first: the list is consistent, unlike the search API) and adopts the one that
carries it — so an attempt whose answer was lost (the worker or the network died after GitHub created the
issue) is found by the retry instead of being created twice.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.errors import REJECTED, UNAVAILABLE
from activities.github_api import VENDOR, GitHubApi, Json, log, segments
from domain.actions.models import TicketChange, TicketInput, TicketRef
from domain.github_webhook import TRACKER, aids_in, marker
from domain.postmortem.config import GitHubIssuesConfig, GitHubSinkConfig
from domain.postmortem.models import SinkRef, WriteInput

KIND = "github"
EDITED = "edited_in_sink"  # the error code (details["error"]) of a write that would overwrite people's edits
_PER_PAGE = 100
_MAX_PAGES = 5  # a lookup reads the newest 500 issues with our labels
_MAX_TITLE = 256
_MAX_BODY = 60_000  # GitHub's limit is 65,536 characters
_COMMENT_WINDOW = timedelta(days=1)  # a retried change finds its own comment among the last day's
_NUMBER = re.compile(r"^[1-9][0-9]{0,9}$")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class GitHubPullRequestSink:
    """PostmortemSink over a GitHub repository. Build once per worker."""

    kind = KIND

    def __init__(self, config: GitHubSinkConfig, token: SecretStr | str,
                 client: httpx.AsyncClient | None = None) -> None:
        self._cfg = config
        for name in ("base_branch", "directory", "branch_prefix"):
            value = getattr(config, name)
            if value.strip("/") and any(p in ("", ".", "..") for p in value.strip("/").split("/")):
                raise ValueError(f"postmortem.sink.github.{name}: {value!r} has empty, '.' or '..' path segments")
        if not config.base_branch.strip("/"):
            raise ValueError("postmortem.sink.github.base_branch: empty")
        self._api = GitHubApi(config, token, client)

    async def aclose(self) -> None:
        """Closes the HTTP client only when the adapter made it (none was passed)."""
        await self._api.aclose()

    def locate(self, incident_id: str) -> tuple[str, str]:
        """(branch, path) of an incident's document."""
        directory = self._cfg.directory.strip("/")
        path = f"{directory}/{incident_id}.md" if directory else f"{incident_id}.md"
        return f"{self._cfg.branch_prefix}{incident_id}", path

    async def write(self, doc: WriteInput) -> SinkRef:
        branch, path = self.locate(doc.incident_id)
        await self._ensure_branch(branch)
        current = await self._file(path, branch)
        if current is None or current[0] != doc.markdown:
            self._keep_edits(doc, f"{branch}:{path}", current)
            await self._put(doc, branch, path, current[1] if current else None)
        pull = await self._pull_request(branch, f"Postmortem: {doc.title}"[:_MAX_TITLE], doc.incident_id)
        return SinkRef(sink=KIND, link=str(pull["html_url"]), ref=f"{branch}:{path}", digest=digest(doc.markdown))

    async def read(self, ref: SinkRef) -> str:
        branch, _, path = ref.ref.partition(":")
        if ref.sink != KIND or not branch or not path:
            raise ApplicationError(f"{VENDOR}: {ref.ref!r} is not a GitHub sink reference (branch:path)",
                                   type=REJECTED, non_retryable=True)
        pulls = await self._pulls(branch, "all")
        merged = not any(p.get("state") == "open" for p in pulls) and any(p.get("merged_at") for p in pulls)
        found = await self._file(path, self._cfg.base_branch if merged else branch)
        if found is None and not merged:  # no pull request left and the branch is gone: the base has it, if any
            found = await self._file(path, self._cfg.base_branch)
        if found is None:
            raise ApplicationError(f"{VENDOR}: {path} is on neither {branch} nor {self._cfg.base_branch} of "
                                   f"{self._api.repo}", type=REJECTED, non_retryable=True)
        return found[0]

    # ------------------------------------------------------------------------------- steps

    async def _ensure_branch(self, branch: str) -> None:
        status, _ = await self._api.call("GET", self._api.url("git", "ref", "heads", *segments(branch)),
                                         f"read branch {branch}", allow=(404,))
        if status != 404:
            return
        base = self._cfg.base_branch
        _, head = await self._api.call("GET", self._api.url("git", "ref", "heads", *segments(base)),
                                       f"read the base branch {base}")
        commit = head.get("object") if isinstance(head, dict) else None
        sha = commit.get("sha") if isinstance(commit, dict) else None
        if not isinstance(sha, str):
            raise ApplicationError(f"{VENDOR} answered without the commit of {base}", type=UNAVAILABLE)
        status, answer = await self._api.call("POST", self._api.url("git", "refs"), f"create branch {branch}",
                                              {"ref": f"refs/heads/{branch}", "sha": sha}, allow=(422,))
        if status == 422 and "already exists" not in self._api.words(answer):  # exists: an earlier attempt made it
            raise ApplicationError(f"{VENDOR} refused to create branch {branch}: {self._api.words(answer)}",
                                   type=REJECTED, non_retryable=True)

    async def _file(self, path: str, ref: str) -> tuple[str, str] | None:
        """(text, blob sha) of a file on a branch; None when it is not there."""
        status, data = await self._api.call("GET", self._api.url("contents", *segments(path)), f"read {path}",
                                            params={"ref": ref}, allow=(404,))
        if status == 404:
            return None
        if not isinstance(data, dict) or data.get("type") != "file" or data.get("encoding") != "base64":
            raise ApplicationError(f"{VENDOR}: {path} on {ref} is not a file of at most 1 MB", type=REJECTED,
                                   non_retryable=True)
        text = base64.b64decode(str(data.get("content") or "")).decode("utf-8", errors="replace")
        return text, str(data.get("sha"))

    def _keep_edits(self, doc: WriteInput, where: str, current: tuple[str, str] | None) -> None:
        earlier = doc.ref
        if current is None or earlier is None or earlier.sink != KIND or earlier.ref != where or not earlier.digest:
            return
        if digest(current[0]) != earlier.digest:
            raise ApplicationError(
                f"{VENDOR}: {where.replace(':', ' on ', 1)} was changed on GitHub since incidentflow last wrote it; "
                "not overwritten (edit the document in its pull request)",
                {"error": EDITED}, type=REJECTED, non_retryable=True)

    async def _put(self, doc: WriteInput, branch: str, path: str, sha: str | None) -> None:
        body: Json = {"message": f"Postmortem of {doc.incident_id} ({doc.status.value})", "branch": branch,
                      "content": base64.b64encode(doc.markdown.encode()).decode()}
        if sha:
            body["sha"] = sha
        status, answer = await self._api.call("PUT", self._api.url("contents", *segments(path)), f"write {path}",
                                              body, allow=(422,))
        if status == 422:
            text = self._api.words(answer)
            if "sha" in text:  # someone wrote the file between our read and write: retry from the read
                raise ApplicationError(f"{VENDOR}: {path} changed while writing it: {text}", type=UNAVAILABLE)
            raise ApplicationError(f"{VENDOR} refused to write {path}: {text}", type=REJECTED, non_retryable=True)
        log.info("GitHub: wrote %s on %s", path, branch)

    async def _pulls(self, branch: str, state: str) -> list[Json]:
        _, listed = await self._api.call(
            "GET", self._api.url("pulls"), f"list pull requests of {branch}",
            params={"head": f"{self._api.owner}:{branch}", "state": state, "sort": "created", "direction": "desc",
                    "per_page": _PER_PAGE})
        return [p for p in listed or [] if isinstance(p, dict) and isinstance(p.get("html_url"), str)]

    async def _pull_request(self, branch: str, title: str, incident_id: str) -> Json:
        """The open pull request of the branch (its title kept current), else a new one."""
        open_ = await self._pulls(branch, "open")
        if open_:
            pull = open_[0]
            if pull.get("title") != title and isinstance(pull.get("number"), int):
                await self._api.call("PATCH", self._api.url("pulls", str(pull["number"])), "retitle the pull request",
                                     {"title": title})
            return pull
        status, made = await self._api.call(
            "POST", self._api.url("pulls"), f"open a pull request for {branch}",
            {"title": title, "head": branch, "base": self._cfg.base_branch,
             "body": f"The postmortem of {incident_id}, drafted by incidentflow. Edit the document here: "
                     "publishing reads the text back (the base branch's once this is merged)."}, allow=(422,))
        if status != 422 and isinstance(made, dict) and isinstance(made.get("html_url"), str):
            log.info("GitHub: opened %s", made["html_url"])
            return made
        # "already exists" (an earlier attempt opened it) or "No commits between" (already merged)
        found = await self._pulls(branch, "open") or await self._pulls(branch, "all")
        if not found:
            raise ApplicationError(f"{VENDOR} refused to open a pull request for {branch}: {self._api.words(made)}",
                                   type=REJECTED, non_retryable=True)
        return found[0]


class GitHubIssues:
    """Tracker over GitHub Issues. Build once per worker."""

    kind = KIND

    def __init__(self, config: GitHubIssuesConfig, token: SecretStr | str,
                 client: httpx.AsyncClient | None = None) -> None:
        self._cfg = config
        self._api = GitHubApi(config, token, client)

    async def aclose(self) -> None:
        await self._api.aclose()

    async def create(self, ticket: TicketInput) -> TicketRef:
        found = await self._find(ticket.aid)
        if found is not None:
            log.info("GitHub: issue #%s of %s found by its marker", found.key, ticket.aid)
            return found
        labels = list(dict.fromkeys([*self._cfg.labels, ticket.priority.value, ticket.kind.value, *ticket.labels]))
        body: Json = {"title": ticket.title[:_MAX_TITLE], "labels": labels,
                      "body": f"{ticket.body[:_MAX_BODY]}\n\n{marker(ticket.aid)}"}
        if ticket.owner_handle:
            body["assignees"] = [ticket.owner_handle]
        status, made = await self._api.call("POST", self._api.url("issues"), f"create an issue in {self._api.repo}",
                                            body, allow=(422,))
        if status == 422 and "assignees" in body and "assignee" in self._api.words(made):
            # the owner's login cannot be assigned here (not a collaborator): the issue matters more
            log.info("GitHub: %s cannot be assigned in %s; creating the issue unassigned", ticket.owner_handle,
                     self._api.repo)
            del body["assignees"]
            status, made = await self._api.call("POST", self._api.url("issues"),
                                                f"create an issue in {self._api.repo}", body, allow=(422,))
        if status == 422:
            raise ApplicationError(f"{VENDOR} refused to create the issue: {self._api.words(made)}", type=REJECTED,
                                   non_retryable=True)
        ref = _ticket(made)
        log.info("GitHub: created issue #%s for %s", ref.key, ticket.aid)
        return ref

    async def change(self, change: TicketChange) -> None:
        key = change.ticket.key
        if not _NUMBER.match(key):
            raise ApplicationError(f"{VENDOR}: {key!r} is not an issue number", type=REJECTED, non_retryable=True)
        state = {"state": "closed", "state_reason": "completed"} if change.close else {
            "state": "open", "state_reason": "reopened"}
        await self._api.call("PATCH", self._api.url("issues", key), f"{'close' if change.close else 'reopen'} "
                             f"issue #{key}", state)
        if change.comment.strip():
            await self._comment(key, change.comment, state["state"])

    async def _comment(self, key: str, text: str, state: str) -> None:
        """Once: a retry whose comment already went out (its answer lost) finds it by its tag."""
        tag = f"<!-- incidentflow:comment:{digest(state + chr(31) + text)[:16]} -->"
        since = (datetime.now(UTC) - _COMMENT_WINDOW).isoformat(timespec="seconds").replace("+00:00", "Z")
        _, recent = await self._api.call("GET", self._api.url("issues", key, "comments"),
                                         f"read the comments of issue #{key}",
                                         params={"since": since, "per_page": _PER_PAGE})
        if any(isinstance(c, dict) and tag in str(c.get("body") or "") for c in recent or []):
            return
        await self._api.call("POST", self._api.url("issues", key, "comments"), f"comment on issue #{key}",
                             {"body": f"{text[:_MAX_BODY]}\n\n{tag}"})

    async def _find(self, aid: str) -> TicketRef | None:
        params: dict[str, str | int] = {"state": "all", "sort": "created", "direction": "desc",
                                        "per_page": _PER_PAGE}
        if self._cfg.labels:
            params["labels"] = ",".join(self._cfg.labels)
        for page in range(1, _MAX_PAGES + 1):
            _, listed = await self._api.call("GET", self._api.url("issues"), f"list issues of {self._api.repo}",
                                             params={**params, "page": page})
            rows = listed if isinstance(listed, list) else []
            for issue in rows:
                if isinstance(issue, dict) and "pull_request" not in issue and aid in aids_in(_text(issue)):
                    return _ticket(issue)
            if len(rows) < _PER_PAGE:
                break
        return None


def _text(issue: Json) -> str:
    body = issue.get("body")
    return body if isinstance(body, str) else ""


def _ticket(issue: Any) -> TicketRef:
    number = issue.get("number") if isinstance(issue, dict) else None
    url = issue.get("html_url") if isinstance(issue, dict) else None
    if not isinstance(number, int) or not isinstance(url, str):
        raise ApplicationError(f"{VENDOR} answered without an issue number and URL", type=UNAVAILABLE)
    return TicketRef(tracker=TRACKER, key=str(number), url=url)
