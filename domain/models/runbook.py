"""Runbook runs: what the incident asks for, what each step decided and did.

Rendered steps come from `domain.runbooks.render` (templates filled, values typed, secrets still
`${secret:NAME}` placeholders: the worker resolves them, so they never enter history).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from domain.models.common import Phase
from domain.text import SingleLine

ACTOR_FIELD = Field(..., min_length=1, max_length=128)


class RenderedStep(BaseModel):
    """One step with its templates filled: what the runbook workflow executes and shows."""

    index: int  # position in runbook.steps (0-based, as in `steps.N` of check errors)
    name: str  # the step's name, or "<index>-<kind>"
    kind: str
    title: str  # human summary, e.g. "Scale payments/checkout-service to 6 replicas"
    destructive: bool
    diagnostic: bool
    continue_on_error: bool = False
    args: dict[str, Any] = Field(default_factory=dict)  # typed, JSON-safe; keys per kind: see render_steps


# ------------------------------------------------------------------------------- typed step arguments
# `RenderedStep.args` stays a JSON object in history; the worker reads it through the model of its kind.


class StepArgs(BaseModel):
    """The arguments of one step kind. An unset (None) value takes the field's default."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _unset_is_default(cls, data: object) -> object:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class DeploymentArgs(StepArgs):
    namespace: str
    deployment: str


class RolloutUndoArgs(DeploymentArgs):
    kind: ClassVar[str] = "kubernetes.rollout_undo"
    to_revision: int | None = None  # None: the highest revision below the current one


class ScaleArgs(DeploymentArgs):
    kind: ClassVar[str] = "kubernetes.scale"
    replicas: int | None = None
    factor: float | None = None
    max_replicas: int = 100


class RestartArgs(DeploymentArgs):
    kind: ClassVar[str] = "kubernetes.restart"
    restarted_at: str = ""  # decided once by the workflow (workflow.now()); empty: the plan decides


class RolloutStatusArgs(DeploymentArgs):
    kind: ClassVar[str] = "kubernetes.rollout_status"
    timeout_s: float = 600


class PodsArgs(StepArgs):
    kind: ClassVar[str] = "kubernetes.pods"
    namespace: str = "default"
    selector: str


class LogsArgs(StepArgs):
    kind: ClassVar[str] = "kubernetes.logs"
    namespace: str = "default"
    pod: str | None = None
    selector: str | None = None  # one of pod and selector
    container: str | None = None
    tail_lines: int = 100
    max_bytes: int = 8000


class HttpRequestArgs(StepArgs):
    kind: ClassVar[str] = "http.request"
    method: str = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)  # values may hold ${secret:NAME}
    json_body: JsonValue = Field(None, alias="json")
    body: str | None = None
    expect_status: list[int] = Field(default_factory=list)  # empty: any 2xx the probe accepts by default
    timeout_s: float = 30


class Until(BaseModel):
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    threshold: float


class PrometheusQueryArgs(StepArgs):
    kind: ClassVar[str] = "prometheus.query"
    query: str
    until: Until | None = None  # None: one query, its value reported
    timeout_s: float = 600
    interval_s: float = 30


class ApprovalArgs(StepArgs):
    kind: ClassVar[str] = "approval"
    prompt: str = ""


class NotifyArgs(StepArgs):
    kind: ClassVar[str] = "notify"
    text: str = ""


class WaitArgs(StepArgs):
    kind: ClassVar[str] = "wait"
    duration_s: float = 0


KubeReadArgs = RolloutStatusArgs | PodsArgs | LogsArgs  # the Kubernetes steps that only read


class RunStatus(str, Enum):
    running = "running"
    awaiting_approval = "awaiting_approval"
    succeeded = "succeeded"
    failed = "failed"
    denied = "denied"  # an approval was refused (or timed out with on_approval_timeout: deny)


class RunbookRequest(BaseModel):
    """Start a runbook on an incident (an update on the incident: it starts the child)."""

    runbook: str
    title: SingleLine
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[RenderedStep]
    approvers: list[str] = Field(default_factory=lambda: ["ic"])  # "ic", person ids (groups resolved)
    approval_timeout: timedelta = timedelta(minutes=15)
    on_approval_timeout: Literal["deny", "approve"] = "deny"
    auto: bool = False  # started by an alert: destructive steps are skipped unless `all_steps`
    all_steps: bool = False  # the runbook's auto_run: all
    by: SingleLine = ACTOR_FIELD
    likely_causes: list[str] = Field(default_factory=list)
    escalation: str = ""

    def changes(self) -> list[RenderedStep]:
        """The steps this run would let change something (an automatic run skips them unless `all_steps`)."""
        if self.auto and not self.all_steps:
            return []
        return [step for step in self.steps if step.destructive]


class RunbookStart(BaseModel):
    run_id: str
    incident_id: str
    request: RunbookRequest
    commander: str | None = None  # the IC at start; role changes are forwarded
    incident_phase: Phase | None = None  # the incident's phase at start (None: started before it was sent)


class IncidentPhaseChanged(BaseModel):
    """Incident → runbook run: the incident left (or came back to) the phases where it is worked. A run
    applies no change while its incident is resolved or ended."""

    phase: Phase


class StepPlan(BaseModel):
    """What a step will do, decided before it changes anything (kept in history: replays reuse it)."""

    summary: str  # "Roll back payments/checkout-service from revision 43 to revision 41"
    changes: list[str] = Field(default_factory=list)  # exact changes, for dry runs and the timeline
    data: dict[str, Any] = Field(default_factory=dict)  # decided values the apply step needs
    noop: bool = False  # already in the desired state


class StepOutcome(BaseModel):
    ok: bool = True
    summary: str  # one line for the timeline
    output: str = ""  # diagnostics (pods, logs, HTTP body, query values), truncated
    data: dict[str, Any] = Field(default_factory=dict)


class StepInput(BaseModel):
    run_id: str
    incident_id: str
    step: RenderedStep
    plan: StepPlan | None = None  # for apply steps: what plan_step decided


class StepRecord(BaseModel):
    index: int
    name: str
    kind: str
    title: str
    status: Literal["ok", "failed", "skipped", "denied"]
    summary: str = ""
    output: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Approval(BaseModel):
    step: int
    prompt: str
    requested_at: datetime
    deadline: datetime
    covers: list[int] = Field(default_factory=list)  # step indexes this approval lets run


class Decision(BaseModel):
    approve: bool = True
    by: SingleLine = ACTOR_FIELD
    comment: SingleLine = Field("", max_length=1000)


class RunbookState(BaseModel):
    run_id: str
    incident_id: str
    runbook: str
    title: str
    status: RunStatus = RunStatus.running
    started_by: str
    started_at: datetime
    ended_at: datetime | None = None
    commander: str | None = None
    approvers: list[str] = Field(default_factory=list)
    steps: list[RenderedStep] = Field(default_factory=list)
    results: list[StepRecord] = Field(default_factory=list)
    pending: Approval | None = None
    decisions: list[str] = Field(default_factory=list)  # "approved by alice at 08:15 UTC: step 3 (…)"
    auto: bool = False
    incident_phase: Phase | None = None  # as last told by the incident (None: being worked)


class RunbookProgress(BaseModel):
    """Child → incident: a timeline line, and the run's status for the incident's list of runs."""

    run_id: str
    status: RunStatus
    text: str
    kind: str = "action"  # an EventKind value
    awaiting: str | None = None  # the approval prompt while waiting
    verified: bool = False  # a verification step passed: suggest monitoring
    changed: bool = False  # a step changed something: the first change moves the incident to mitigating
    approvers: list[str] = Field(default_factory=list)  # with an approval request: who may decide (mentioned)


class RunbookRun(BaseModel):
    """The incident's view of one run."""

    run_id: str
    runbook: str
    title: str
    status: RunStatus = RunStatus.running
    by: str
    started_at: datetime
    awaiting: str | None = None
    auto: bool = False
    incident_active: bool = True  # what the run was last told: may it change things (the incident is worked)


class MatchInput(BaseModel):
    """Which runbooks an incident's new alert matches (auto-run)."""

    incident_id: str
    service: str | None = None
    severity: str = "SEV3"
    labels: dict[str, str] = Field(default_factory=dict)
    already: list[str] = Field(default_factory=list)  # runbooks already run on this incident


class TriggersInput(BaseModel):
    """Which auto-run runbooks could apply to an incident (its service): `RunbookActivities.runbook_triggers`."""

    incident_id: str
    service: str | None = None


class RunbookTrigger(BaseModel):
    runbook: str
    alerts: list[str] = Field(default_factory=list)  # its applies_to matchers: every one must match the alert


class RunbookTriggers(BaseModel):
    """The auto-run runbooks that could apply to an incident's service, as the worker had them at `at` (code level
    3): the incident checks a new alert's labels against them itself, and asks `match_runbooks` only on a hit."""

    triggers: list[RunbookTrigger] = Field(default_factory=list)
    at: datetime | None = None  # when the incident asked (its workflow time): asked again after TRIGGERS_FRESH
