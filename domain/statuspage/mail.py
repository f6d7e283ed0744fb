"""Status mail to public subscribers: the messages that cross Temporal, and the rules for addresses.

Tokens (confirm, unsubscribe) are secrets: they travel only inside mails. What crosses Temporal (and so
lands in workflow history) is an address, a component list or a token's *digest* — the door hashes the
token it got from the link with `token_digest`, and the store looks the digest up."""

from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_validator

from domain.statuspage.models import COMPONENT_ID
from domain.text import MultiLine, SingleLine

# The HTTP routes the links in mails point at (under the public base URL): the API serves them.
# GET shows a page with a button (link scanners fetch GETs); POST acts — for unsubscribe also the
# RFC 8058 one-click POST mail clients send, with the body `List-Unsubscribe=One-Click`.
CONFIRM_PATH = "/status/confirm"
UNSUBSCRIBE_PATH = "/status/unsubscribe"
MAX_EMAIL = 254  # RFC 5321's path limit, less the angle brackets
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_COMPONENT = re.compile(COMPONENT_ID)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def normalize_email(value: str) -> str:
    """The address as it is stored and mailed (trimmed), or ValueError naming what is wrong.

    Deliberately narrow: an ASCII dot-atom local part and a dotted host name. Quoted local parts,
    IP literals and internationalized addresses are refused rather than risk a header that breaks."""
    email = value.strip()
    if not email or len(email) > MAX_EMAIL:
        raise ValueError(f"email: must be 1–{MAX_EMAIL} characters")
    local, at, host = email.rpartition("@")
    if not at or not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError("email: not an address (expected name@example.com)")
    labels = host.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise ValueError("email: the part after @ must be a host name such as example.com")
    return email


def email_key(email: str) -> str:
    """What makes two addresses the same subscriber: case never matters (Alice@X.com is alice@x.com)."""
    return email.strip().lower()


def token_digest(token: str) -> str:
    """The SHA-256 hex digest the store keeps instead of a token (and the only form that crosses Temporal)."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def _components(value: list[str]) -> list[str]:
    bad = [c for c in value if not _COMPONENT.match(c)]
    if bad:
        raise ValueError(f"components: not a component id: {', '.join(bad[:5])}")
    return sorted(set(value))


ComponentIds = Annotated[list[str], AfterValidator(_components)]


class NotificationKind(str, Enum):
    """Why subscribers get the mail (the issue: a new incident, each update, resolution, maintenance steps)."""

    incident = "incident"
    update = "update"
    resolution = "resolution"
    maintenance = "maintenance"


class Notification(BaseModel):
    """One mail to every confirmed subscriber whose components match (no components: everyone).

    `notification_id` must be stable across retries and replays (e.g. `<incident>:public:<update id>`):
    the deliveries ledger is keyed by it, so the same id is never mailed to a subscriber twice."""

    notification_id: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9:._@/-]+$")
    kind: NotificationKind
    subject: SingleLine = Field(..., min_length=1, max_length=200)
    text: MultiLine = Field(..., min_length=1, max_length=20_000)
    components: ComponentIds = Field(default_factory=list)
    url: str | None = Field(None, max_length=2000)  # the incident or maintenance on the public page



class SubscriptionRequest(BaseModel):
    """`POST /status/subscribe`: an address and the components it wants (empty: all)."""

    email: str
    components: ComponentIds = Field(default_factory=list)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return normalize_email(v)



class TokenInput(BaseModel):
    """A confirm or unsubscribe link's token, as its digest (`token_digest`): never the token itself."""

    digest: str

    @field_validator("digest")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not _DIGEST.match(v):
            raise ValueError("digest: expected the 64 hex characters of token_digest(token)")
        return v


class SubscriptionOutcome(str, Enum):
    confirmation_sent = "confirmation_sent"  # a mail with the confirm link went out
    confirmed = "confirmed"
    unsubscribed = "unsubscribed"
    unknown_token = "unknown_token"  # wrong, expired, superseded or already used: the page says so, vaguely


class SubscriptionResult(BaseModel):
    """What the door tells the person; never says whether some other address is subscribed."""

    outcome: SubscriptionOutcome
    components: list[str] = Field(default_factory=list)  # after a confirm: what they now get (empty: all)


class FanoutResult(BaseModel):
    """Counts only: addresses stay out of workflow history."""

    notification_id: str
    sent: int = 0  # mailed by this attempt
    already_sent: int = 0  # recorded by an earlier attempt: skipped
    refused: int = 0  # the mail server refused the address for good (recorded; not retried)
    not_configured: bool = False  # no SMTP server on this worker: nothing was sent
