"""Slack request signatures (https://api.slack.com/authentication/verifying-requests-from-slack).

`X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:{X-Slack-Request-Timestamp}:{raw body}")>`.
A timestamp more than 5 minutes from now is refused (a captured request cannot be replayed later),
and an exact request seen before within that window is refused too (nor replayed sooner).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict

MAX_SKEW_SECONDS = 300


class SignatureError(Exception):
    """Why a request was refused (the HTTP layer answers 401 with this text)."""


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackVerifier:
    def __init__(self, secret: str, max_skew: int = MAX_SKEW_SECONDS, remember: int = 10_000) -> None:
        self._secret = secret
        self.max_skew = max_skew
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._remember = remember

    def verify(self, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not timestamp or not signature:
            raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature")
        try:
            ts = int(timestamp)
        except ValueError:
            raise SignatureError("X-Slack-Request-Timestamp is not a number") from None
        if abs(now - ts) > self.max_skew:
            raise SignatureError(f"stale request: timestamp is {int(now - ts)} s from now (limit {self.max_skew} s)")
        if not hmac.compare_digest(sign(self._secret, timestamp, body), signature):
            raise SignatureError("invalid X-Slack-Signature")
        self._forget(now)
        if signature in self._seen:
            raise SignatureError("replayed request: this signature was already used")
        self._seen[signature] = float(ts)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    def _forget(self, now: float) -> None:
        while self._seen:
            sig, ts = next(iter(self._seen.items()))
            if now - ts <= self.max_skew:
                break
            del self._seen[sig]
