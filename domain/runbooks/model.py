"""Runbook models: parameters, typed steps and the checks that span fields.

Pure (no I/O, no clock), so workflow code may import it. `loader.py` reads the YAML files and turns
errors into `file:line: field: problem`; `render.py` fills the `{{ parameter }}` templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from domain.models.base import _Strict
from domain.routing import Matcher, parse_matchers
from domain.runbooks.fields import (
    _APPROVER,
    _SERVICE,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    PARAM_NAME,
    RUNBOOK_NAME,
    Loc,
    PositiveDuration,
    Problem,
    _num,
    single_template,
    template_problems,
)
from domain.runbooks.steps import Step

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
