"""Runbook step kinds: one typed model per step, discriminated by `kind` (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from domain.models.base import _Strict
from domain.runbooks.fields import (
    SECRET,
    SECRET_NAME,
    STEP_NAME,
    Condition,
    Loc,
    OptionalIntOrTemplate,
    OptionalNumberOrTemplate,
    PositiveDuration,
    _condition,
    _conflict,
)


class StepBase(_Strict):
    """Fields every step has. Subclasses set `kind` (the discriminator) and the classification."""

    kind: str
    name: str | None = Field(None, pattern=STEP_NAME, max_length=63)
    title: str | None = None
    continue_on_error: bool = False

    TEMPLATED: ClassVar[tuple[str, ...]] = ()  # string fields that may hold {{ templates }} (and title)
    INT_FIELDS: ClassVar[tuple[str, ...]] = ()  # int-or-template fields (a template must render to an int)
    NUMBER_FIELDS: ClassVar[tuple[str, ...]] = ()
    DESTRUCTIVE: ClassVar[bool] = False
    DIAGNOSTIC: ClassVar[bool] = False

    @property
    def destructive(self) -> bool:
        """Changes something (needs approval unless the runbook auto-runs all)."""
        return self.DESTRUCTIVE

    @property
    def diagnostic(self) -> bool:
        """Safe to run automatically when an alert matches (auto_run: diagnostics)."""
        return self.DIAGNOSTIC

    def template_texts(self) -> Iterator[tuple[Loc, str]]:
        """Every string that may contain templates, with its location relative to the step."""
        if self.title is not None:
            yield ("title",), self.title
        for field in (*self.TEMPLATED, *self.INT_FIELDS, *self.NUMBER_FIELDS):
            value = getattr(self, field)
            if isinstance(value, str):
                yield (field,), value


class _Deployment(StepBase):
    namespace: str = "default"
    deployment: str

    TEMPLATED: ClassVar[tuple[str, ...]] = ("namespace", "deployment")
    DESTRUCTIVE: ClassVar[bool] = True


class RolloutUndoStep(_Deployment):
    """`kubectl rollout undo`: to `to_revision`, or to the previous revision when it is None."""

    kind: Literal["kubernetes.rollout_undo"] = "kubernetes.rollout_undo"
    to_revision: OptionalIntOrTemplate = None

    INT_FIELDS: ClassVar[tuple[str, ...]] = ("to_revision",)

    @model_validator(mode="after")
    def _check(self) -> RolloutUndoStep:
        if isinstance(self.to_revision, int) and self.to_revision < 1:
            raise _conflict("to_revision must be >= 1 (leave it out for the previous revision)",
                            "to_revision")
        return self


class ScaleStep(_Deployment):
    """Set the replica count (`replicas`) or multiply it (`factor`, rounded up); never above max_replicas."""

    kind: Literal["kubernetes.scale"] = "kubernetes.scale"
    replicas: OptionalIntOrTemplate = None
    factor: OptionalNumberOrTemplate = None
    max_replicas: int = Field(100, ge=1, le=10_000)

    INT_FIELDS: ClassVar[tuple[str, ...]] = ("replicas",)
    NUMBER_FIELDS: ClassVar[tuple[str, ...]] = ("factor",)

    @model_validator(mode="after")
    def _check(self) -> ScaleStep:
        if self.replicas is not None and self.factor is not None:
            raise _conflict("use either replicas or factor, not both", "factor")
        if self.replicas is None and self.factor is None:
            raise _conflict("set replicas (a count) or factor (a multiplier)")
        if isinstance(self.replicas, int) and not 0 <= self.replicas <= self.max_replicas:
            raise _conflict(f"replicas must be between 0 and max_replicas ({self.max_replicas})", "replicas")
        if isinstance(self.factor, float) and self.factor <= 0:
            raise _conflict("factor must be greater than 0", "factor")
        return self


class RestartStep(_Deployment):
    """`kubectl rollout restart`."""

    kind: Literal["kubernetes.restart"] = "kubernetes.restart"


class RolloutStatusStep(_Deployment):
    """Wait until the deployment's rollout completes (fails after `timeout`)."""

    kind: Literal["kubernetes.rollout_status"] = "kubernetes.rollout_status"
    timeout: PositiveDuration = timedelta(minutes=10)

    DESTRUCTIVE: ClassVar[bool] = False
    DIAGNOSTIC: ClassVar[bool] = True


class PodsStep(StepBase):
    """List the pods that match a label selector, with their status and restarts."""

    kind: Literal["kubernetes.pods"] = "kubernetes.pods"
    namespace: str = "default"
    selector: str = Field(..., min_length=1)

    TEMPLATED: ClassVar[tuple[str, ...]] = ("namespace", "selector")
    DIAGNOSTIC: ClassVar[bool] = True


class LogsStep(StepBase):
    """The last lines of one pod's logs, or of every pod matching a selector."""

    kind: Literal["kubernetes.logs"] = "kubernetes.logs"
    namespace: str = "default"
    pod: str | None = None
    selector: str | None = None
    container: str | None = None
    tail_lines: int = Field(100, ge=1, le=5000)
    max_bytes: int = Field(8000, ge=1, le=1_000_000)

    TEMPLATED: ClassVar[tuple[str, ...]] = ("namespace", "pod", "selector", "container")
    DIAGNOSTIC: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self) -> LogsStep:
        if self.pod is not None and self.selector is not None:
            raise _conflict("use either pod or selector, not both", "selector")
        if self.pod is None and self.selector is None:
            raise _conflict("set pod (a pod name) or selector (a label selector)")
        return self


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _json_strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _json_strings(v, (*loc, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, (*loc, i))


class HttpRequestStep(StepBase):
    """An HTTP call (feature flags, load balancers, status pages). Header values may hold
    `${secret:NAME}`: the worker resolves it when it sends the request; it is never resolved here."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    kind: Literal["http.request"] = "http.request"
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_upper)] = "GET"
    url: str = Field(..., min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200, 201, 202, 204], min_length=1)
    timeout: PositiveDuration = timedelta(seconds=30)

    TEMPLATED: ClassVar[tuple[str, ...]] = ("url", "body")

    @property
    def destructive(self) -> bool:
        return self.method != "GET"

    @property
    def diagnostic(self) -> bool:
        return self.method == "GET"

    def template_texts(self) -> Iterator[tuple[Loc, str]]:
        yield from super().template_texts()
        for key, value in self.headers.items():
            yield ("headers", key), value
        yield from _json_strings(self.json_body, ("json",))

    @model_validator(mode="after")
    def _check(self) -> HttpRequestStep:
        if self.json_body is not None and self.body is not None:
            raise _conflict("use either json or body, not both", "body")
        if not self.url.startswith(("http://", "https://", "{{")):
            raise _conflict(f"url must start with http:// or https:// (or a template), got {self.url!r}",
                            "url")
        for key, value in self.headers.items():
            for name in SECRET.findall(value):
                if not SECRET_NAME.match(name):
                    raise _conflict(f"header {key!r}: invalid secret name {name!r} in ${{secret:{name}}} "
                                    "(letters, digits, '_', '.', '-')", "headers")
        texts: list[tuple[Loc, str | None]] = [(("url",), self.url), (("body",), self.body)]
        for loc, text in texts + list(_json_strings(self.json_body, ("json",))):
            if text is not None and "${secret:" in text:
                raise _conflict("${secret:…} is only resolved in header values", str(loc[0]))
        return self


class PrometheusQueryStep(StepBase):
    """Run a PromQL query once, or every `interval` until its value meets `until` (failing at `timeout`)."""

    kind: Literal["prometheus.query"] = "prometheus.query"
    query: str = Field(..., min_length=1)
    until: Annotated[Condition | None, BeforeValidator(_condition)] = None
    timeout: PositiveDuration = timedelta(minutes=10)
    interval: PositiveDuration = timedelta(seconds=30)

    TEMPLATED: ClassVar[tuple[str, ...]] = ("query",)
    DIAGNOSTIC: ClassVar[bool] = True


class ApprovalStep(StepBase):
    """Pause until one of the runbook's approvers approves (or `approval_timeout` passes)."""

    kind: Literal["approval"] = "approval"
    prompt: str = "Approve the next steps?"

    TEMPLATED: ClassVar[tuple[str, ...]] = ("prompt",)


class NotifyStep(StepBase):
    """Post a message to the incident (timeline and channel)."""

    kind: Literal["notify"] = "notify"
    text: str = Field(..., min_length=1)

    TEMPLATED: ClassVar[tuple[str, ...]] = ("text",)
    DIAGNOSTIC: ClassVar[bool] = True


class WaitStep(StepBase):
    """Sleep (a durable timer), e.g. to let a change take effect before verifying."""

    kind: Literal["wait"] = "wait"
    duration: PositiveDuration

    DIAGNOSTIC: ClassVar[bool] = True


Step = Annotated[
    RolloutUndoStep | ScaleStep | RestartStep | RolloutStatusStep | PodsStep | LogsStep | HttpRequestStep
    | PrometheusQueryStep | ApprovalStep | NotifyStep | WaitStep,
    Field(discriminator="kind"),
]

STEP_KINDS: dict[str, type[StepBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (RolloutUndoStep, ScaleStep, RestartStep, RolloutStatusStep, PodsStep, LogsStep,
                HttpRequestStep, PrometheusQueryStep, ApprovalStep, NotifyStep, WaitStep)
}
