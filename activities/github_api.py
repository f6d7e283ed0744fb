"""GitHub REST API over httpx: the one place the GitHub token is used (activities/github.py builds on it).

Every request carries `Authorization: Bearer <token>`, `Accept: application/vnd.github+json` and
`X-GitHub-Api-Version: 2022-11-28`, and goes only to the configured `api_url` (https://api.github.com, or
https://HOST/api/v3 for GitHub Enterprise): URLs are built from it with quoted path segments, the host is
checked before each request, and redirects are never followed (a 3xx is a refusal, e.g. a renamed repo).
The token never enters a log line, an error message or workflow history (`errors.redact` on all GitHub says).

Failures (errors.py decides retryable vs not): 5xx, 408 and transport errors retry; 429, and 403 with
`x-ratelimit-remaining: 0` or Retry-After (primary and secondary rate limits), retry after Retry-After or
`x-ratelimit-reset`; 409 (a file changed under us) retries, the retry re-reads; every other 4xx fails at
once with GitHub's own words and a hint (401: the token; 403: its permissions; 404: the repo or path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities.errors import (
    RATE_LIMITED,
    REJECTED,
    UNAVAILABLE,
    classify_http,
    from_transport_error,
    parse_retry_after,
    redact,
    secret_refused,
)
from domain.postmortem.config import GitHubRepo

VENDOR = "GitHub"
API_VERSION = "2022-11-28"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_HINTS = {401: "the token was not accepted: check INCIDENTFLOW_GITHUB_TOKEN",
          403: "the token lacks a permission for this (contents, pull requests or issues: write)",
          404: "not found, or the token cannot see the repository"}

log = logging.getLogger("incidentflow.github")

Json = dict[str, Any]


def base_url(value: str) -> httpx.URL:
    """The configured API base: https, or http on loopback only (tests, a local proxy); nothing to smuggle."""
    url = httpx.URL(value.rstrip("/"))
    if not url.host or url.userinfo or url.query or url.fragment:
        raise ValueError(f"api_url: {value!r} is not a plain https://host[/path] URL")
    if url.scheme != "https" and not (url.scheme == "http" and url.host in _LOOPBACK):
        raise ValueError(f"api_url: {value!r} must use https (the GitHub token travels with every request)")
    return url


def segments(text: str) -> list[str]:
    """A slash-separated path (a branch, a file path) as URL segments; '.', '..' and empty ones refused."""
    parts = text.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ApplicationError(f"{VENDOR}: refused the path {text!r} (empty, '.' or '..' segments)",
                               type=REJECTED, non_retryable=True)
    return parts


def said(data: Any) -> str:
    """GitHub answers errors as {"message": …, "errors": [{"message"|"code"/"field": …}]}."""
    if not isinstance(data, dict):
        return ""
    words = [str(data.get("message") or "")]
    for e in data.get("errors") or []:
        if isinstance(e, dict):
            words.append(str(e.get("message") or f"{e.get('field', '')} {e.get('code', '')}".strip()))
        else:
            words.append(str(e))
    return "; ".join(w for w in words if w)


class GitHubApi:
    """One repository's REST API with the token. `client`: shared by the worker (tests pass theirs)."""

    def __init__(self, config: GitHubRepo, token: SecretStr | str, client: httpx.AsyncClient | None = None) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not value or not value.strip():
            raise ValueError("INCIDENTFLOW_GITHUB_TOKEN: empty (a GitHub sink or tracker needs a token)")
        self._token = value.strip()
        self._base = base_url(config.api_url)
        self.repo = config.repo
        self.owner = config.repo.split("/", 1)[0]
        self._owned = client is None
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()

    def url(self, *parts: str) -> httpx.URL:
        """repos/{owner}/{name}/<parts>, each part quoted (a '/' in a part cannot add a segment)."""
        path = "/".join(quote(p, safe="") for p in ("repos", *self.repo.split("/", 1), *parts))
        url = httpx.URL(f"{self._base}/{path}")
        if (url.scheme, url.host, url.port) != (self._base.scheme, self._base.host, self._base.port):
            # unreachable with quoted segments; kept as the last word before the token leaves
            raise secret_refused(f"{VENDOR}: refused to send the token to {url.host!r}")
        return url

    def words(self, data: Any) -> str:
        """What GitHub said in an answer we read ourselves (an allowed status), the token redacted."""
        return redact(said(data), [self._token])

    async def call(self, method: str, url: httpx.URL, what: str, body: Json | None = None,
                   params: Mapping[str, str | int] | None = None, allow: tuple[int, ...] = ()) -> tuple[int, Any]:
        """(status, JSON) of a 2xx answer or of a status in `allow`; any other answer raises (see module doc).
        `what` names the request in errors: "create an issue in acme/ops"."""
        try:
            response = await self._client.request(
                method, url, json=body, params=params, follow_redirects=False,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                         "X-GitHub-Api-Version": API_VERSION})
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, VENDOR) from None
        if not response.is_success and response.status_code not in allow:
            raise self._failure(response, what)
        if not response.content:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError:
            raise ApplicationError(f"{VENDOR} answered HTTP {response.status_code} to {what} with a body that is "
                                   "not JSON", type=UNAVAILABLE) from None

    def _failure(self, response: httpx.Response, what: str) -> ApplicationError:
        status = response.status_code
        try:
            detail = said(response.json())
        except ValueError:
            detail = response.text.strip()[:300] or response.reason_phrase
        detail = redact(detail, [self._token])
        vendor = f"{VENDOR} ({what})"
        wait = _wait(response.headers)
        if status == 429 or (status == 403 and (wait is not None or "rate limit" in detail.lower())):
            return ApplicationError(f"{vendor} rate limited the request (HTTP {status}): {detail}",
                                    type=RATE_LIMITED, next_retry_delay=parse_retry_after(wait))
        if status == 409:  # a file or ref changed between our read and our write: the retry re-reads
            return ApplicationError(f"{vendor} reported a conflict (HTTP 409): {detail}", type=UNAVAILABLE)
        if response.is_redirect:
            detail = (f"redirect not followed (the token goes to {self._base.host} only; a moved or renamed "
                      "repository needs its new name in the config)")
        elif status in _HINTS:
            detail = f"{detail} ({_HINTS[status]})" if detail else _HINTS[status]
        return classify_http(status, response.headers.get("Retry-After"), vendor, detail)


def _wait(headers: httpx.Headers) -> str | None:
    """How long GitHub asks us to wait: Retry-After, else until x-ratelimit-reset when none remain."""
    if headers.get("Retry-After"):
        return headers["Retry-After"]
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
        return str(max(1, int(headers["x-ratelimit-reset"]) - int(time.time())))
    return None
