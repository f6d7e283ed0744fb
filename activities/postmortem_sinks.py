"""Postmortem sinks (a directory, a signed webhook; GitHub pull requests live in github.py) and the
builders that pick the sink and the ticket tracker from the config.

Directory (the default): one file per incident, `<dir>/<incident_id>.md`, written atomically (a temporary
file in the same directory, fsynced, then renamed over the old one), so a reader or a crash never sees
half a document. A text equal to the file's is not written again. People may edit the file: publishing
reads it back (whether a new draft may replace people's edits is the postmortem activity's call: it reads
first and compares digests).

Webhook: the draft is POSTed as JSON `{incident_id, title, status, markdown, digest}` (digest: sha256 hex of
the markdown) to the configured url; the receiver may answer `{"url": link, "id": document id}`. Publishing
reads the final text back with `GET <url>?incident_id=…[&id=…]`, answered `{"markdown": "…"}` or as
text/markdown. A text already delivered (same digest) is not sent again.

Every request is signed with the shared secret (INCIDENTFLOW_POSTMORTEM_WEBHOOK_SECRET):
    X-Incidentflow-Timestamp: <unix seconds>
    X-Incidentflow-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>\\n<METHOD>\\n<raw query>\\n" + body)>
The raw query is the URL's query string exactly as sent (empty for a POST to a url without one); the body
is the raw request body (empty for GET). Receivers should compare in constant time and refuse timestamps
more than 5 minutes old. Requests go only to the configured url (its query extended for reads), redirects
are never followed, and the secret itself never travels. 429, 5xx and transport failures retry; other 4xx
fail at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.errors import REJECTED, UNAVAILABLE, classify_http, from_transport_error, redact
from activities.jira import JiraTracker
from activities.ports import PostmortemSink, Tracker
from domain.config import ConfigError
from domain.postmortem.config import LearningSecrets, SinkConfig, TrackerConfig, WebhookSinkConfig
from domain.postmortem.models import SinkRef, WriteInput

SIGNATURE_HEADER = "X-Incidentflow-Signature"
TIMESTAMP_HEADER = "X-Incidentflow-Timestamp"
VENDOR = "Postmortem webhook"
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_TIMEOUT = httpx.Timeout(30.0)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def signature(secret: str, timestamp: str, method: str, query: str, body: bytes) -> str:
    """The `X-Incidentflow-Signature` value (receivers compute the same and compare)."""
    message = f"{timestamp}\n{method.upper()}\n{query}\n".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type=REJECTED, non_retryable=True)


# ------------------------------------------------------------------------------- directory


class DirectorySink:
    """Postmortems as Markdown files in one directory (a shared volume, a docs checkout, a wiki's folder)."""

    kind = "directory"

    def __init__(self, directory: Path, link_base: str | None = None) -> None:
        self._dir = directory
        self._link_base = link_base.rstrip("/") if link_base else None

    async def write(self, doc: WriteInput) -> SinkRef:
        return await asyncio.to_thread(self._write, doc)

    async def read(self, ref: SinkRef) -> str:
        path = self._inside(Path(ref.ref))
        try:
            return await asyncio.to_thread(path.read_text, encoding="utf-8")
        except FileNotFoundError:
            raise _rejected(f"the postmortem file {path} is gone (moved or deleted?)") from None

    def _write(self, doc: WriteInput) -> SinkRef:
        path = self._path(doc.incident_id)
        if _read_or_none(path) != doc.markdown:
            atomic_write(path, doc.markdown)
        link = f"{self._link_base}/{quote(path.name)}" if self._link_base else str(path)
        return SinkRef(sink=self.kind, link=link, ref=str(path), digest=digest(doc.markdown))

    def _path(self, incident_id: str) -> Path:
        if not _FILE_NAME.match(incident_id) or ".." in incident_id:
            raise _rejected(f"incident id {incident_id!r} cannot name a file")
        self._dir.mkdir(parents=True, exist_ok=True)
        return self._dir.resolve() / f"{incident_id}.md"

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved.parent != self._dir.resolve() or resolved.suffix != ".md":
            raise _rejected(f"{path} is not a postmortem file in {self._dir}")
        return resolved


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def atomic_write(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part: write a sibling, fsync, rename over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------- webhook


def webhook_url(value: str) -> httpx.URL:
    url = httpx.URL(value)
    if url.scheme not in ("http", "https") or not url.host or url.userinfo or url.fragment:
        raise ValueError(f"postmortem.sink.webhook.url: {value!r} is not a plain http(s)://host/path URL")
    return url


class WebhookSink:
    """Postmortems handed to a receiver of the team's own (a docs service, a wiki bridge) over signed HTTP."""

    kind = "webhook"

    def __init__(self, config: WebhookSinkConfig, secret: SecretStr | str, http: httpx.AsyncClient, *,
                 clock: Callable[[], float] = time.time) -> None:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not value:
            raise ValueError("postmortem webhook: INCIDENTFLOW_POSTMORTEM_WEBHOOK_SECRET is empty")
        self._url = webhook_url(config.url)
        self._secret = value
        self._http = http
        self._clock = clock

    async def write(self, doc: WriteInput) -> SinkRef:
        text_digest = digest(doc.markdown)
        if doc.ref is not None and doc.ref.sink == self.kind and doc.ref.digest == text_digest:
            return doc.ref  # delivered already (a retry, or a draft that did not change)
        body = json.dumps({"incident_id": doc.incident_id, "title": doc.title, "status": doc.status.value,
                           "markdown": doc.markdown, "digest": text_digest}, ensure_ascii=False).encode()
        answer = _json_or_empty(await self._send("POST", self._url, body))
        link, doc_id = answer.get("url"), answer.get("id")
        if not (isinstance(link, str) and link.startswith(("https://", "http://"))):
            link = str(self._read_url(doc.incident_id, ""))
        ref = doc.incident_id + (f"/{doc_id}" if isinstance(doc_id, str | int) and str(doc_id) else "")
        return SinkRef(sink=self.kind, link=link, ref=ref, digest=text_digest)

    async def read(self, ref: SinkRef) -> str:
        incident_id, _, doc_id = ref.ref.partition("/")
        response = await self._send("GET", self._read_url(incident_id, doc_id), b"")
        if "json" in response.headers.get("content-type", ""):
            markdown = _json_or_empty(response).get("markdown")
            if not isinstance(markdown, str):
                raise _rejected(f"{VENDOR} answered the read of {incident_id} without a markdown string")
            return markdown
        return response.text

    def _read_url(self, incident_id: str, doc_id: str) -> httpx.URL:
        params = {"incident_id": incident_id, **({"id": doc_id} if doc_id else {})}
        return self._url.copy_merge_params(params)

    async def _send(self, method: str, url: httpx.URL, body: bytes) -> httpx.Response:
        if (url.scheme, url.host, url.port, url.path) != (self._url.scheme, self._url.host, self._url.port,
                                                           self._url.path):
            raise _rejected(f"{VENDOR}: refused to sign a request to {url.host!r}")  # unreachable by design
        timestamp = str(int(self._clock()))
        headers = {TIMESTAMP_HEADER: timestamp, "Accept": "application/json, text/markdown;q=0.9",
                   SIGNATURE_HEADER: signature(self._secret, timestamp, method, url.query.decode(), body)}
        if body:
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            response = await self._http.request(method, url, content=body or None, headers=headers,
                                                follow_redirects=False)
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, VENDOR) from None
        if response.is_success:
            return response
        detail = redact(response.text.strip()[:300] or response.reason_phrase, [self._secret])
        if response.is_redirect:
            detail = f"redirect not followed (requests go to {self._url.host} only)"
        raise classify_http(response.status_code, response.headers.get("Retry-After"), VENDOR, detail)


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        if "json" in response.headers.get("content-type", ""):
            raise ApplicationError(f"{VENDOR} answered HTTP {response.status_code} with broken JSON",
                                   type=UNAVAILABLE) from None
        return {}
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------------------- builders


def _needs(secret: SecretStr | None, env: str, what: str) -> SecretStr:
    if secret is None or not secret.get_secret_value().strip():
        raise ConfigError(f"{what} needs the environment variable {env}")
    return secret


def build_sink(config: SinkConfig, data_dir: Path, secrets: LearningSecrets,
               http: httpx.AsyncClient | None) -> PostmortemSink:
    """The configured postmortem sink (`postmortem.sink`); secrets come from the environment."""
    if config.kind == "webhook" and config.webhook is not None:
        secret = _needs(secrets.postmortem_webhook_secret, "INCIDENTFLOW_POSTMORTEM_WEBHOOK_SECRET",
                        "postmortem.sink.kind webhook")
        return WebhookSink(config.webhook, secret, http or httpx.AsyncClient(timeout=_TIMEOUT))
    if config.kind == "github" and config.github is not None:
        from activities.github import GitHubPullRequestSink  # only workers that use it load it

        token = _needs(secrets.github_token, "INCIDENTFLOW_GITHUB_TOKEN", "postmortem.sink.kind github")
        return GitHubPullRequestSink(config.github, token, http)
    directory = Path(config.directory).expanduser() if config.directory else Path(data_dir) / "postmortems"
    return DirectorySink(directory, config.link_base)


def build_tracker(config: TrackerConfig, secrets: LearningSecrets, http: httpx.AsyncClient | None) -> Tracker | None:
    """The configured ticket tracker (`action_items.tracker`), or None when items live only here."""
    if config.kind == "github" and config.github is not None:
        from activities.github import GitHubIssues

        token = _needs(secrets.github_token, "INCIDENTFLOW_GITHUB_TOKEN", "action_items.tracker.kind github")
        return GitHubIssues(config.github, token, http)
    if config.kind == "jira" and config.jira is not None:
        what = "action_items.tracker.kind jira"
        if not (secrets.jira_email or "").strip():
            raise ConfigError(f"{what} needs the environment variable INCIDENTFLOW_JIRA_EMAIL")
        token = _needs(secrets.jira_api_token, "INCIDENTFLOW_JIRA_API_TOKEN", what)
        return JiraTracker(config.jira, secrets.jira_email or "", token, http or httpx.AsyncClient(timeout=_TIMEOUT))
    return None
