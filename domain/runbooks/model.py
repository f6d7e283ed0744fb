"""Runbook models: parameters, typed steps and the checks that span fields.

Pure (no I/O, no clock), so workflow code may import it. `loader.py` reads the YAML files and turns
errors into `file:line: field: problem`; `render.py` fills the `{{ parameter }}` templates.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from domain.models.base import _Strict, parse_duration
from domain.routing import Matcher, parse_matchers

RUNBOOK_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
STEP_NAME = r"^[a-z0-9_-]+$"
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUILTINS = ("incident.id", "incident.service", "incident.severity")
TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
SECRET = re.compile(r"\$\{secret:([^}]*)\}")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # namespaces, containers
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # deployments, pods
_PERSON = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_APPROVER = re.compile(rf"^(ic|group:{_PERSON}|{_PERSON})$")
_SERVICE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

Loc = tuple[str | int, ...]


class Problem(NamedTuple):
    """A cross-field problem: where (a pydantic-style location, e.g. ('steps', 2, 'selector')) and what."""

    loc: Loc
    message: str


# ---------------------------------------------------------------- templates

def template_refs(text: str) -> list[str]:
    """The names inside `{{ … }}` in text, stripped (`{{ deployment }}` → 'deployment')."""
    return [m.group(1).strip() for m in TEMPLATE.finditer(text)]


def single_template(text: str) -> str | None:
    """The name when text is exactly one template (`"{{ replicas }}"`), else None."""
    found = TEMPLATE.fullmatch(text.strip())
    return found.group(1).strip() if found else None


def template_problems(text: str, declared: Mapping[str, Any]) -> list[str]:
    """What is wrong with the templates in text: syntax, unknown parameters, unknown built-ins."""
    found: list[str] = []
    rest = TEMPLATE.sub("", text)
    if "{{" in rest or "}}" in rest:
        found.append("unbalanced '{{' / '}}': write templates as {{ parameter }}")
    for ref in template_refs(text):
        if ref.startswith("incident."):
            if ref not in BUILTINS:
                found.append(f"unknown built-in '{ref}' (built-ins: {', '.join(BUILTINS)})")
        elif not PARAM_NAME.match(ref):
            found.append(f"templates take a parameter name only, got '{{{{ {ref} }}}}'")
        elif ref not in declared:
            found.append(f"unknown parameter '{ref}' (declared: {', '.join(declared) or 'none'})")
    return found


# ---------------------------------------------------------------- field types

def _duration(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").upper().startswith("P"):
        return value  # ISO 8601, as pydantic serialises a timedelta: let pydantic parse it
    return parse_duration(value)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration, e.g. 30s, 5m")
    return value


PositiveDuration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]

_TEMPLATE_HINT = "{{ parameter }} template"


def _int_or_template(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        if "{{" in value:
            return value
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer or a {_TEMPLATE_HINT}, got {value!r}")


def _optional_int_or_template(value: Any) -> int | str | None:
    return None if value is None else _int_or_template(value)


def _number_or_template(value: Any) -> float | str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str):
        if "{{" in value:
            return value
        try:
            return _number_or_template(float(value.strip()))
        except ValueError:
            pass
    raise ValueError(f"expected a number or a {_TEMPLATE_HINT}, got {value!r}")


def _optional_number_or_template(value: Any) -> float | str | None:
    return None if value is None else _number_or_template(value)


IntOrTemplate = Annotated[int | str, PlainValidator(_int_or_template)]
OptionalIntOrTemplate = Annotated[int | str | None, PlainValidator(_optional_int_or_template)]
OptionalNumberOrTemplate = Annotated[float | str | None, PlainValidator(_optional_number_or_template)]


def _num(x: float) -> str:
    """0.01 → '0.01', 5.0 → '5', 2.5 → '2.5'."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


# ---------------------------------------------------------------- conditions

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


class Condition(BaseModel):
    """`until: "< 0.01"`: a comparison of a query's value against a threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["<", "<=", ">", ">=", "==", "!="]
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        found = _CONDITION.match(text)
        threshold = math.nan
        if found:
            try:
                threshold = float(found.group(2))
            except ValueError:
                pass
        if not found or not math.isfinite(threshold):
            raise ValueError(f'invalid condition {text!r}: use an operator (<, <=, >, >=, ==, !=) '
                             f'and a number, e.g. "< 0.01" (quote it in YAML: until: "> 0")')
        return cls(op=found.group(1), threshold=threshold)  # type: ignore[arg-type]

    def holds(self, value: float) -> bool:
        """Whether value satisfies the condition (never for NaN: an empty or broken query is not 'fixed')."""
        if math.isnan(value):
            return False
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op} {_num(self.threshold)}"


def _condition(value: Any) -> Any:
    if value is None or isinstance(value, (Condition, dict)):
        return value
    if isinstance(value, str):
        return Condition.parse(value)
    raise ValueError(f'invalid condition {value!r}: use an operator and a number, e.g. "< 0.01" '
                     f'(quote it in YAML: until: "> 0")')


# ---------------------------------------------------------------- steps

def _conflict(message: str, at: str | None = None) -> PydanticCustomError:
    """A step-level error; `at` names the field the loader should point the line at."""
    return PydanticCustomError("step_fields", message, {"at": at} if at else None)


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


# ---------------------------------------------------------------- parameters and the runbook

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean (true/false)",
}


class ParamSpec(_Strict):
    """One `--param name=value`: its type, default and bounds."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None  # a regex the value must contain a match of (anchor it with ^…$)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regex {v!r}: {exc}") from None
        return v

    def check(self, value: Any) -> str | None:
        """What is wrong with an already typed value (type, min, max, pattern), or None."""
        if value is None:
            return None
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[self.type]
        if not ok:
            return f"expected {_TYPE_NAMES[self.type]}, got {value!r}"
        if self.type in ("integer", "number"):
            if self.min is not None and value < self.min:
                return f"must be >= {_num(self.min)}, got {_num(value)}"
            if self.max is not None and value > self.max:
                return f"must be <= {_num(self.max)}, got {_num(value)}"
        if self.type == "string" and self.pattern is not None and not re.search(self.pattern, value):
            return f"{value!r} does not match the pattern {self.pattern}"
        return None


def _service(value: str) -> str:
    if not re.match(_SERVICE, value):
        raise ValueError(f"invalid service name {value!r}")
    return value


def _matcher(value: str) -> str:
    if not parse_matchers(value):
        raise ValueError("empty matcher: use label=\"value\", !=, =~ \"regex\" or !~ \"regex\"")
    return value


def _approver(value: str) -> str:
    if not _APPROVER.match(value):
        raise ValueError(f'invalid approver {value!r}: use "ic" (the incident commander), a person id '
                         f'or "group:<name>"')
    return value


class AppliesTo(_Strict):
    """Which incidents the runbook is for: the service is one of `services` (when listed) and every
    matcher in `alerts` matches the alert's labels."""

    services: list[Annotated[str, AfterValidator(_service)]] = Field(default_factory=list)
    alerts: list[Annotated[str, AfterValidator(_matcher)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> AppliesTo:
        if not self.services and not self.alerts:
            raise ValueError("applies_to needs services, alerts or both "
                             "(leave it out if the runbook is manual)")
        return self

    def matchers(self) -> list[Matcher]:
        return [m for text in self.alerts for m in parse_matchers(text)]

    def matches(self, labels: Mapping[str, str], service: str | None) -> bool:
        if self.services and service not in self.services:
            return False
        return all(m.matches(labels) for m in self.matchers())


class Runbook(_Strict):
    """One runbook file."""

    name: str = Field(..., pattern=RUNBOOK_NAME)
    title: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    applies_to: AppliesTo | None = None
    likely_causes: list[str] = Field(default_factory=list)
    investigation: list[str] = Field(default_factory=list)
    escalation: str = ""
    approvers: list[Annotated[str, AfterValidator(_approver)]] = Field(
        default_factory=lambda: ["ic"], min_length=1)
    approval_timeout: PositiveDuration = timedelta(minutes=15)
    on_approval_timeout: Literal["deny", "approve"] = "deny"
    auto_run: Literal["none", "diagnostics", "all"] = "diagnostics"
    parameters: dict[str, ParamSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(..., min_length=1)

    @property
    def step_names(self) -> list[str]:
        """Each step's name: its `name`, or `<index>-<kind>` (0-based index, e.g. '2-kubernetes.scale')."""
        return [s.name or f"{i}-{s.kind}" for i, s in enumerate(self.steps)]

    def applies(self, labels: Mapping[str, str], service: str | None = None) -> bool:
        """Whether an alert (its labels) on a service should get this runbook. Never without applies_to."""
        return self.applies_to is not None and self.applies_to.matches(labels, service)

    def problems(self) -> list[Problem]:
        """Cross-field problems pydantic cannot see: parameter defaults, templates, duplicate step names."""
        found: list[Problem] = []
        for name, spec in self.parameters.items():
            found += [Problem(("parameters", name, *loc), msg) for loc, msg in _param_problems(name, spec)]
        seen: dict[str, int] = {}
        for i, (step, name) in enumerate(zip(self.steps, self.step_names)):
            if name in seen:
                where: Loc = ("steps", i, "name") if step.name else ("steps", i)
                found.append(Problem(where, f"duplicate step name {name!r} (also steps.{seen[name]})"))
            seen.setdefault(name, i)
            for loc, text in step.template_texts():
                found += [Problem(("steps", i, *loc), msg)
                          for msg in template_problems(text, self.parameters)]
            for field in (*step.INT_FIELDS, *step.NUMBER_FIELDS):
                raw = getattr(step, field)
                ref = single_template(raw) if isinstance(raw, str) else None
                target = self.parameters.get(ref) if ref else None
                integer = field in step.INT_FIELDS
                wanted = ("integer", "string") if integer else ("integer", "number", "string")
                if target is not None and target.type not in wanted:
                    needs = "an integer" if integer else "a number"
                    found.append(Problem(("steps", i, field), f"{field} needs {needs} but parameter "
                                                              f"'{ref}' is {_TYPE_NAMES[target.type]}"))
            for field, pattern in _K8S_NAMES.items():
                value = getattr(step, field, None)
                if isinstance(value, str) and "{{" not in value and not pattern.match(value):
                    found.append(Problem(("steps", i, field), f"{value!r} is not a valid Kubernetes name"))
        return found


_K8S_NAMES = {
    "namespace": DNS_LABEL, "deployment": DNS_SUBDOMAIN, "pod": DNS_SUBDOMAIN, "container": DNS_LABEL,
}


def _param_problems(name: str, spec: ParamSpec) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    if not PARAM_NAME.match(name):
        found.append(((), f"invalid parameter name {name!r}: letters, digits and '_' "
                          f"(it is used as {{{{ {name} }}}})"))
    if name == "incident":
        found.append(((), "'incident' is reserved for the built-ins incident.id, incident.service, "
                          "incident.severity"))
    if spec.type not in ("integer", "number"):
        found += [((bound,), f"{bound} applies to integer and number parameters only")
                  for bound in ("min", "max") if getattr(spec, bound) is not None]
    elif spec.min is not None and spec.max is not None and spec.min > spec.max:
        found.append((("max",), f"max ({_num(spec.max)}) is below min ({_num(spec.min)})"))
    if spec.pattern is not None and spec.type != "string":
        found.append((("pattern",), "pattern applies to string parameters only"))
    if spec.default is not None:
        if spec.required:
            found.append((("default",), "a required parameter has no default "
                                        "(drop one of required, default)"))
        problem = spec.check(spec.default)
        if problem:
            found.append((("default",), f"default {problem}"))
    return found
