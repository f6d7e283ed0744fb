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


class InlineEscalation(BaseModel):
    """An escalation run inside its incident (code level 3; before, an EscalationWorkflow child ran it): where it
    stands, kept in the incident's state so a continue-as-new resumes it (the wait counts from `level_started`)."""

    number: int  # the incident's escalation count when it started (1: at declaration)
    start_level: int = Field(1, ge=1)
    plan: EscalationPlan | None = None  # None until the first step has read the policy
    index: int = 0  # the level being paged or waited on (0-based)
    round: int = 1
    level_started: datetime | None = None  # when this level's paging began: its wait counts from here
    paged: bool = False  # this level's pages are done (a resumed run waits; else it pages the level)
    stopped_by: str | None = None  # acknowledged (or resolved) by: no more pages
    jump: int | None = None  # `/incident escalate N` while it runs: go to level N (1-based) next
    finished: str = ""  # acknowledged | exhausted | no policy | paging not configured | failed


class EscalationStep(BaseModel):
    """One step of an inline escalation, a single activity: read the policy when the plan is not known yet, then
    resolve who is on call for a level at `at` and page them all (`level` 0 with `fallback`: the fallback)."""

    start: EscalationStart  # the incident as the pages name it (and as the policy is chosen for)
    plan: EscalationPlan | None = None
    level: int = Field(1, ge=0)  # 1-based, clamped to the policy's levels
    fallback: bool = False
    round: int = 1
    number: int = 1  # the incident's escalation (a restart is 2, …): in the dedup key, so a restart pages again
    at: datetime


class PagedResponder(BaseModel):
    responder: Responder
    result: PageResult


class EscalationStepResult(BaseModel):
    plan: EscalationPlan  # as given, or as read now
    level: int = 0  # the level paged (1-based; 0: nothing paged, or the fallback)
    label: str = ""  # "L1" … or "fallback"
    pages: list[PagedResponder] = Field(default_factory=list)
