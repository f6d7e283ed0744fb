"""Paging: what the escalation asks a pager to deliver, and what came back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from domain.models.chat import ChannelLink, SentMessage
from domain.models.common import Severity

PageAction = Literal["trigger", "acknowledge", "resolve"]


class PageRequest(BaseModel):
    """One page to one person (or a team channel). Never carries secrets: adapters hold those."""

    incident_id: str
    dedup_key: str = Field(..., description="stable per page (incident, round, level, target): retries never page twice")
    incident_key: str | None = Field(None, description="stable per incident: vendors that keep one incident "
                                                       "per key (PagerDuty dedup_key) use this")
    target: str = Field(..., description="person id, or a team channel name")
    level: int = Field(0, ge=0, description="escalation level (1-based); 0 for a manual page")
    reason: str = ""  # e.g. "L1 primary of checkout-primary"
    summary: str  # "[SEV2] Checkout failing"
    severity: Severity
    service: str | None = None
    action: PageAction = "trigger"
    # Links put in the page: the Temporal UI (filled in by the page activity from the worker's Settings)
    # and the incident channel (from the workflow, once the channel exists).
    incident_url: str | None = None
    channel: ChannelLink | None = None


class PageResult(BaseModel):
    channel: str  # pagerduty | webhook | log | …
    delivered: bool = True
    detail: str = ""  # e.g. the PagerDuty dedup_key and status message
    messages: list[SentMessage] = Field(default_factory=list)  # messages with buttons (a Slack DM)


class EscalationStart(BaseModel):
    """Workflow argument of EscalationWorkflow (a child of the incident)."""

    code_level: int = 0  # the incident's (domain.models.incident.CODE_LEVEL): 1 reads config in local activities

    incident_id: str
    summary: str
    severity: Severity
    service: str | None = None
    # The policy the alert's routing rule named (`routing.rules[].escalation_policy`), used over the service's;
    # None (a declaration by a person, a rule naming none): the service's policy.
    escalation_policy: str | None = None
    incident_url: str | None = None
    channel: ChannelLink | None = None  # the incident channel, when it was open before the escalation
    start_level: int = Field(1, ge=1)
    reason: str = "declared"


class LevelPlan(BaseModel):
    targets: list[dict[str, str]]  # Target specs as in the config ({schedule, layer} | {person} | {channel})
    wait: float  # seconds before the next level
    name: str = ""


class EscalationPlan(BaseModel):
    """The policy as the worker's config had it when the escalation started (recorded in history)."""

    policy: str
    levels: list[LevelPlan]
    repeat: int = 0
    fallback: list[dict[str, str]] = Field(default_factory=list)
    warning: str | None = None  # the policy the incident named is not defined: it follows `policy` instead


class ResolveRequest(BaseModel):
    targets: list[dict[str, str]]
    at: datetime


class Responder(BaseModel):
    kind: Literal["person", "channel"]
    id: str
    via: str = ""  # "primary of checkout-oncall"


class EscalationState(BaseModel):
    incident_id: str
    policy: str = ""
    level: int = 0
    round: int = 0
    acknowledged_by: str | None = None
    pages: int = 0
    finished: str = ""  # acknowledged | exhausted | cancelled
