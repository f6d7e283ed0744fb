"""Runbook models: parameters, typed steps and the checks that span fields.

Pure (no I/O, no clock), so workflow code may import it. `loader.py` reads the YAML files and turns
errors into `file:line: field: problem`; `render.py` fills the `{{ parameter }}` templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
    SECRET,
    TEMPLATE,
    Loc,
    PositiveDuration,
    Problem,
    _num,
    single_template,
    template_problems,
    template_refs,
)
from domain.runbooks.hosts import (
    HostPattern,
    Target,
    allowed,
    listed,
    parse_patterns,
    pattern_for,
    refusal,
    url_target,
)
from domain.runbooks.steps import HttpRequestStep, Step

# ---------------------------------------------------------------- parameters and the runbook

_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean (true/false)",
    "url": "a URL",
}


class ParamSpec(_Strict):
    """One `--param name=value`: its type, default and bounds."""

    type: Literal["string", "integer", "number", "boolean", "url"] = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None  # a regex the value must contain a match of (anchor it with ^…$)
    # type url: where the value may point, as host patterns (domain/runbooks/hosts.py); required for url
    allowed_hosts: list[str] | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            parse_patterns(v)  # ValueError names the bad pattern
        return v

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
            "url": isinstance(value, str),
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
        if self.type in ("string", "url") and self.pattern is not None and not re.search(self.pattern, value):
            return f"{value!r} does not match the pattern {self.pattern}"
        if self.type == "url":
            return _url_problem(value, self.allowed_hosts or [])
        return None


def _url_problem(value: str, allowed_hosts: list[str]) -> str | None:
    try:
        target = url_target(value)
    except ValueError as exc:
        return str(exc)
    patterns = parse_patterns(allowed_hosts)
    if not allowed(target, patterns):
        return (f"host {target} is not allowed (allowed_hosts: {listed(patterns)}); to allow it, add "
                f'"{pattern_for(target)}" to the parameter\'s allowed_hosts in the runbook')
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

    def url_params(self) -> set[str]:
        """Parameters that become (part of) a URL: `type: url` ones and those in an http.request url.
        An alert-triggered run never takes them from alert labels."""
        names = {name for name, spec in self.parameters.items() if spec.type == "url"}
        for step in self.steps:
            if isinstance(step, HttpRequestStep):
                names.update(ref for ref in template_refs(step.url) if ref in self.parameters)
        return names

    def secret_problems(self, secret_hosts: Mapping[str, Sequence[str]]) -> list[Problem]:
        """Secrets used where their hosts (the worker's INCIDENTFLOW_RUNBOOK_SECRETS) do not allow: a
        literal URL host, or any host a `type: url` parameter allows, not covered by the secret's hosts."""
        found: list[Problem] = []
        for i, step in enumerate(self.steps):
            if not isinstance(step, HttpRequestStep):
                continue
            dests = _destinations(step.url, self.parameters)
            for header, value in step.headers.items():
                for name in dict.fromkeys(SECRET.findall(value)):
                    where: Loc = ("steps", i, "headers", header)
                    if name not in secret_hosts:
                        found.append(Problem(where, f"secret {name!r} is not configured here "
                                                    "(INCIDENTFLOW_RUNBOOK_SECRETS)"))
                        continue
                    hosts = parse_patterns(secret_hosts[name])
                    found += [Problem(where, refusal(name, dest, hosts, via))
                              for dest, via in dests if not any(h.covers(dest) for h in hosts)]
        return found

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
            if isinstance(step, HttpRequestStep):
                found += [Problem(("steps", i, "url"), msg) for msg in _url_problems(step.url, self.parameters)]
            for field, pattern in _K8S_NAMES.items():
                value = getattr(step, field, None)
                if isinstance(value, str) and "{{" not in value and not pattern.match(value):
                    found.append(Problem(("steps", i, field), f"{value!r} is not a valid Kubernetes name"))
        return found


_K8S_NAMES = {
    "namespace": DNS_LABEL, "deployment": DNS_SUBDOMAIN, "pod": DNS_SUBDOMAIN, "container": DNS_LABEL,
}


def _url_problems(url: str, params: Mapping[str, ParamSpec]) -> list[str]:
    """A URL's scheme and host come from the runbook, or from one `type: url` parameter that starts it;
    never from another value (a label, a string parameter, an incident built-in)."""
    lead = TEMPLATE.match(url)
    if lead:
        ref = lead.group(1).strip()
        if ref not in params and not ref.startswith("incident."):
            return []  # an unknown parameter: template_problems reports it
        if params.get(ref) is None or params[ref].type != "url":
            return [f"the URL starts with {{{{ {ref} }}}}, which is not a `type: url` parameter: declare it "
                    "`type: url` with allowed_hosts, so no value can send the request to another host"]
        if url[lead.end():][:1] not in ("", "/", "?", "#"):
            return [f"{{{{ {ref} }}}} must be followed by '/', '?' or '#': the host comes from {ref} alone"]
        return []
    start = url.find("://") + 3 if "://" in url else 0
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    if "{{" in url[:min(ends, default=len(url))]:
        return ["the URL's host may not come from a template: put the base URL in one `type: url` parameter "
                'with allowed_hosts, e.g. url: "{{ base_url }}/path"']
    return []


def _destinations(url: str, params: Mapping[str, ParamSpec]) -> list[tuple[Target | HostPattern, str]]:
    """Where an http.request url may go: its literal target, or each host its url parameter allows."""
    lead = TEMPLATE.match(url)
    if lead:
        ref = lead.group(1).strip()
        spec = params.get(ref)
        if spec is None or spec.type != "url":
            return []  # a problem of its own (see _url_problems)
        return [(p, f", a host parameter {ref!r} allows") for p in parse_patterns(spec.allowed_hosts or [])]
    try:
        return [(url_target(TEMPLATE.sub("x", url)), "")]
    except ValueError:
        return []


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
    if spec.pattern is not None and spec.type not in ("string", "url"):
        found.append((("pattern",), "pattern applies to string and url parameters only"))
    if spec.allowed_hosts is not None and spec.type != "url":
        found.append((("allowed_hosts",), "allowed_hosts applies to url parameters only"))
    elif spec.type == "url" and not spec.allowed_hosts:
        found.append(((), "a url parameter needs allowed_hosts: the hosts its value may point at, e.g. "
                          "[flags.internal, \"*.flags.example.com\"]"))
    if spec.default is not None:
        if spec.required:
            found.append((("default",), "a required parameter has no default "
                                        "(drop one of required, default)"))
        problem = spec.check(spec.default)
        if problem:
            found.append((("default",), f"default {problem}"))
    return found
