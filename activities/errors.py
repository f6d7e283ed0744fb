"""Vendor failures → `ApplicationError`, classified once for every adapter.

Temporal retries an activity on any exception unless it is a non-retryable `ApplicationError`, so the
split lives here: rate limits (429), vendor outages (5xx, 408) and transport failures (timeouts, refused
connections) retry — honouring the vendor's Retry-After through `next_retry_delay` — while a request
the vendor rejected (400–404, other 4xx) fails at once: sending it again would be rejected again.

Messages name the vendor, the status and the vendor's own error text, and never a secret: adapters
pass their keys to `redact` before building `detail`, and the text is truncated.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from temporalio.exceptions import ApplicationError

RATE_LIMITED = "VendorRateLimited"  # 429: retry, after Retry-After when given
UNAVAILABLE = "VendorUnavailable"  # 5xx, 408, timeouts, connection errors: retry
REJECTED = "VendorRejected"  # other 4xx: the request itself is wrong; never retried
NOT_CONFIGURED = "VendorNotConfigured"  # no key/URL for this target; never retried
NON_RETRYABLE_TYPES = (REJECTED, NOT_CONFIGURED)  # for RetryPolicy.non_retryable_error_types

MAX_RETRY_AFTER = timedelta(minutes=10)  # a vendor asking for longer is clamped; the policy caps attempts
_MAX_DETAIL = 500


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


def classify_http(status: int, retry_after: str | None, vendor: str, detail: str) -> ApplicationError:
    """The `ApplicationError` to raise for a non-2xx response. `detail` must already be redacted."""
    said = f": {detail}" if detail else ""
    if status == 429:
        return ApplicationError(f"{vendor} rate limited the request (HTTP 429){said}", type=RATE_LIMITED,
                                next_retry_delay=parse_retry_after(retry_after))
    if status >= 500 or status == 408:
        return ApplicationError(f"{vendor} is unavailable (HTTP {status}){said}", type=UNAVAILABLE,
                                next_retry_delay=parse_retry_after(retry_after))
    return ApplicationError(f"{vendor} rejected the request (HTTP {status}){said}", type=REJECTED,
                            non_retryable=True)


def from_transport_error(exc: httpx.HTTPError, vendor: str) -> ApplicationError:
    """A request that got no HTTP response: a timeout or connection failure retries.

    The request may have reached the vendor (a read timeout), so adapters must make the retry
    idempotent — PagerDuty dedups on `dedup_key`, webhooks carry `Idempotency-Key`.
    """
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
