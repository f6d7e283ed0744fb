"""Vendor failures → `ApplicationError`, classified once for every adapter.

Temporal retries an activity on any exception unless it is a non-retryable `ApplicationError`, so the
split lives here, and only here: rate limits (429), vendor outages (5xx, 408) and transport failures
(timeouts, refused connections) retry — honouring the vendor's Retry-After through `next_retry_delay` —
while a request the vendor rejected (400–404, other 4xx) fails at once: sending it again would be
rejected again. Adapters only extract the status, the vendor's own text and Retry-After from their
client's exceptions, and call one of the functions below.

Every type raised with `non_retryable=True` is in `NON_RETRYABLE_TYPES`, which the workflows' retry
policies name (workflows/options.py), so a refusal never retries whoever raised it.

Messages name the vendor, the status and the vendor's own error text, and never a secret: adapters
pass their keys to `redact` before building `detail`, and the text is truncated.

This module is imported by workflow code (through workflows/options.py): stdlib and temporalio only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TYPE_CHECKING

from temporalio.exceptions import ApplicationError

if TYPE_CHECKING:
    import httpx

# Retryable.
RATE_LIMITED = "VendorRateLimited"  # 429: retry, after Retry-After when given
UNAVAILABLE = "VendorUnavailable"  # 5xx, 408, timeouts, connection errors: retry
KUBE_UNAVAILABLE = "KubernetesUnavailable"  # 5xx, 429, 408, timeouts, connection errors, repeated 409s
# Never retried.
REJECTED = "VendorRejected"  # other 4xx: the request itself is wrong
NOT_CONFIGURED = "VendorNotConfigured"  # no key/URL/cluster for this target
KUBE_REJECTED = "KubernetesRejected"  # 4xx (400/401/403/404/422, …) from the API server, or a refused plan
ROLLOUT_TIMEOUT = "RolloutTimeout"  # rollout_status gave up (timeout or ProgressDeadlineExceeded)
SLACK_REJECTED = "SlackRejected"  # Slack answered ok:false with a permanent error
UNEXPECTED_STATUS = "UnexpectedStatus"  # an http.request step got a 4xx it did not expect
PROMQL_ERROR = "PromQLError"  # Prometheus rejected the query (HTTP 400)
VERIFY_FAILED = "VerificationFailed"  # a `prometheus.query … until` that never held
UNKNOWN_STEP = "UnknownStep"  # a step kind this worker cannot run
BAD_STEP = "BadStep"  # a step whose arguments or plan do not fit its kind
MISSING_PLAN = "MissingPlan"  # an apply step without the plan it needs
SECRET_REFUSED = "SecretHostRefused"  # a step would send a secret to a host it is not bound to

NON_RETRYABLE_TYPES = (REJECTED, NOT_CONFIGURED, KUBE_REJECTED, ROLLOUT_TIMEOUT, SLACK_REJECTED,
                       UNEXPECTED_STATUS, PROMQL_ERROR, VERIFY_FAILED, UNKNOWN_STEP, BAD_STEP, MISSING_PLAN,
                       SECRET_REFUSED)

MAX_RETRY_AFTER = timedelta(minutes=10)  # a vendor asking for longer is clamped; the policy caps attempts
_MAX_DETAIL = 500


class Verdict(Enum):
    """What an HTTP status says about sending the same request again."""

    RATE_LIMITED = "rate limited"  # 429
    UNAVAILABLE = "unavailable"  # 5xx, 408
    REJECTED = "rejected"  # every other non-2xx


def verdict(status: int) -> Verdict:
    """The one split of HTTP statuses into retryable and final."""
    if status == 429:
        return Verdict.RATE_LIMITED
    if status >= 500 or status == 408:
        return Verdict.UNAVAILABLE
    return Verdict.REJECTED


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """Retry-After as delta-seconds ("120") or an HTTP-date; None when absent, unparsable or past."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        delay = timedelta(seconds=float(text))
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - (now or datetime.now(UTC))
    if delay <= timedelta(0):
        return None
    return min(delay, MAX_RETRY_AFTER)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret (a vendor may echo the request back) and truncate."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


# ------------------------------------------------------------------------------------- HTTP vendors


def classify_http(status: int, retry_after: str | None, vendor: str, detail: str) -> ApplicationError:
    """The `ApplicationError` to raise for a non-2xx response. `detail` must already be redacted."""
    said = f": {detail}" if detail else ""
    match verdict(status):
        case Verdict.RATE_LIMITED:
            return ApplicationError(f"{vendor} rate limited the request (HTTP 429){said}", type=RATE_LIMITED,
                                    next_retry_delay=parse_retry_after(retry_after))
        case Verdict.UNAVAILABLE:
            return ApplicationError(f"{vendor} is unavailable (HTTP {status}){said}", type=UNAVAILABLE,
                                    next_retry_delay=parse_retry_after(retry_after))
    return ApplicationError(f"{vendor} rejected the request (HTTP {status}){said}", type=REJECTED,
                            non_retryable=True)


def from_transport_error(exc: httpx.HTTPError, vendor: str) -> ApplicationError:
    """A request that got no HTTP response: a timeout or connection failure retries.

    The request may have reached the vendor (a read timeout), so adapters must make the retry
    idempotent — PagerDuty dedups on `dedup_key`, webhooks carry `Idempotency-Key`.
    """
    import httpx  # the caller already loaded it; workflow code importing this module does not

    if isinstance(exc, httpx.TimeoutException):
        what = "timed out"
    elif isinstance(exc, httpx.TransportError):
        what = "could not be reached"
    else:
        what = "failed"
    # Only the class name: httpx's text can carry the URL, and a webhook URL may embed a token.
    return ApplicationError(f"{vendor} {what}: {type(exc).__name__}", type=UNAVAILABLE)


def not_configured(message: str) -> ApplicationError:
    return ApplicationError(message, type=NOT_CONFIGURED, non_retryable=True)


def unexpected_status(status: int, retry_after: str | None, request: str, expected: Iterable[int],
                      body: str) -> ApplicationError:
    """An http.request step answered outside `expected`: 429 and 5xx retry like any vendor; a 4xx is an
    answer the runbook did not expect (e.g. a flag already gone), so the step fails at once."""
    if status == 429 or status >= 500:
        return classify_http(status, retry_after, request, body)
    return ApplicationError(f"{request} answered HTTP {status}, expected {', '.join(map(str, expected))}: "
                            f"{body[:300]}", type=UNEXPECTED_STATUS, non_retryable=True)


def prometheus_error(status: int, retry_after: str | None, detail: str) -> ApplicationError:
    if status == 400:
        return ApplicationError(f"Prometheus rejected the query: {detail[:300]}", type=PROMQL_ERROR,
                                non_retryable=True)
    return classify_http(status, retry_after, "Prometheus", detail)


def verification_failed(message: str) -> ApplicationError:
    return ApplicationError(message, type=VERIFY_FAILED, non_retryable=True)


# ------------------------------------------------------------------------------------- Kubernetes


def kubernetes_error(status: int, said: str, what: str, retry_after: str | None) -> ApplicationError:
    """An API server answer. `said`: "403 Forbidden: <Status message>", already redacted;
    `what`: "patch deployments/x in ns". A 409 (someone else wrote first) retries after a re-read."""
    if status == 0:  # TLS failures and the like, raised by the client before any answer
        return ApplicationError(f"Kubernetes API could not be reached to {what}: {said}", type=KUBE_UNAVAILABLE)
    delay = parse_retry_after(retry_after)
    match verdict(status):
        case Verdict.RATE_LIMITED:
            return ApplicationError(f"Kubernetes API rate limited the request to {what}: {said}",
                                    type=KUBE_UNAVAILABLE, next_retry_delay=delay)
        case Verdict.UNAVAILABLE:
            return ApplicationError(f"Kubernetes API is unavailable to {what}: {said}", type=KUBE_UNAVAILABLE,
                                    next_retry_delay=delay)
    if status == 409:
        return ApplicationError(f"Kubernetes reported a conflict trying to {what}: {said}", type=KUBE_UNAVAILABLE,
                                next_retry_delay=delay)
    hint = " (the kubeconfig or service-account credentials were not accepted)" if status == 401 else ""
    return kubernetes_rejected(f"Kubernetes refused to {what}: {said}{hint}")


def kubernetes_unreachable(text: str) -> ApplicationError:
    """No answer from the API server (timeout, refused connection), or a write that kept conflicting."""
    return ApplicationError(text, type=KUBE_UNAVAILABLE)


def kubernetes_rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type=KUBE_REJECTED, non_retryable=True)


def rollout_timeout(message: str) -> ApplicationError:
    return ApplicationError(message, type=ROLLOUT_TIMEOUT, non_retryable=True)


# ------------------------------------------------------------------------------------- Slack

# The channel or the token is unusable: stop chat updates for this incident (and say so on the timeline).
SLACK_FATAL = frozenset({"channel_not_found", "not_in_channel", "invalid_auth", "not_authed", "account_inactive",
                         "token_revoked", "token_expired", "is_archived", "missing_scope", "no_permission",
                         "org_login_required", "ekm_access_denied", "team_access_not_granted"})
# Slack-side trouble worth another attempt (Slack answers most errors with HTTP 200 and ok:false).
SLACK_RETRYABLE = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                             "request_timeout", "team_added_to_org"})


def slack_error(method: str, status: int, code: str, retry_after: str | None) -> ApplicationError:
    """A Slack answer: 429 and transient errors retry; everything else is permanent. The details carry
    the error code, and `fatal` when the channel or token is unusable (the chat pump stops)."""
    if status == 429 or code == "ratelimited":
        return ApplicationError(f"Slack rate limited {method} (HTTP 429)", {"error": "ratelimited"},
                                type=RATE_LIMITED, next_retry_delay=parse_retry_after(retry_after))
    if verdict(status) == Verdict.UNAVAILABLE or code in SLACK_RETRYABLE:
        return ApplicationError(f"Slack {method} failed: {code} (HTTP {status})", {"error": code}, type=UNAVAILABLE)
    return slack_rejected(f"Slack {method} failed: {code}", code, fatal=code in SLACK_FATAL)


def slack_rejected(message: str, code: str, *, fatal: bool) -> ApplicationError:
    return ApplicationError(message, {"error": code, "fatal": fatal}, type=SLACK_REJECTED, non_retryable=True)


def slack_unreachable(method: str, exc: BaseException) -> ApplicationError:
    return ApplicationError(f"Slack {method} could not be reached: {type(exc).__name__}", type=UNAVAILABLE)


def error_code(exc: ApplicationError) -> str | None:
    """The vendor's error code carried in the details (Slack's `error`), if any."""
    details = exc.details[0] if exc.details else None
    return str(details.get("error")) if isinstance(details, dict) and details.get("error") else None


# ------------------------------------------------------------------------------------- runbook steps


def unknown_step(message: str) -> ApplicationError:
    return ApplicationError(message, type=UNKNOWN_STEP, non_retryable=True)


def bad_step(message: str) -> ApplicationError:
    return ApplicationError(message, type=BAD_STEP, non_retryable=True)


def missing_plan(step: str) -> ApplicationError:
    return ApplicationError(f"step {step} needs its plan", type=MISSING_PLAN, non_retryable=True)


def secret_refused(message: str) -> ApplicationError:
    """Refused before any request: the message names the secret and the host, never the value."""
    return ApplicationError(message, type=SECRET_REFUSED, non_retryable=True)
