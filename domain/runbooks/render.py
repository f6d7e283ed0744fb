"""Parameters in, concrete steps out: `coerce_params` types the CLI's strings, `render_steps` fills the
templates and gives each step a typed `args` dict and a human title.

Pure and JSON-only output: `RenderedStep`s go into workflow inputs. Secrets stay `${secret:NAME}`
placeholders (the worker resolves them in header values when it sends the request).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from domain.models.runbook import RenderedStep  # defined with the run models (workflow inputs)
from domain.runbooks.fields import BUILTINS, DNS_LABEL, DNS_SUBDOMAIN, SECRET, TEMPLATE, single_template
from domain.runbooks.hosts import allowed, listed, parse_patterns, refusal, url_target
from domain.runbooks.model import ParamSpec, Runbook
from domain.runbooks.params import ParamError as ParamError
from domain.runbooks.params import coerce_params as coerce_params
from domain.runbooks.params import usage as usage
from domain.runbooks.steps import (
    ApprovalStep,
    HttpRequestStep,
    LogsStep,
    NotifyStep,
    PodsStep,
    PrometheusQueryStep,
    RestartStep,
    RolloutStatusStep,
    RolloutUndoStep,
    ScaleStep,
    StepBase,
    WaitStep,
)

UNSET = "(not set)"  # how an unset parameter reads in human text (titles, prompts, notify text)


class RenderError(ValueError):
    """A step that cannot be rendered with these values; one problem per line, naming step and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def render_steps(runbook: Runbook, params: Mapping[str, Any],
                 incident: Mapping[str, str | None] | None = None,
                 secret_hosts: Mapping[str, Sequence[str]] | None = None) -> list[RenderedStep]:
    """The runbook's steps with templates filled from params (pass coerce_params' result; a parameter
    missing from it takes its default) and the incident (`id`, `service`, `severity` for the
    `{{ incident.* }}` built-ins). RenderError lists every step field that cannot be rendered.

    Every http.request URL is checked: a valid http(s) URL without user info, its host allowed by the
    `type: url` parameter that starts it. With `secret_hosts` (Settings.runbook_secret_hosts()), a
    secret in a header must be bound to the URL's host too; secrets not listed are left to the worker,
    which checks every request again before sending it.

    `args` per kind (durations in float seconds):
      kubernetes.rollout_undo    namespace, deployment, to_revision (int | None = the previous revision)
      kubernetes.scale           namespace, deployment, replicas (int | None), factor (float | None),
                                 max_replicas (int)
      kubernetes.restart         namespace, deployment
      kubernetes.rollout_status  namespace, deployment, timeout_s
      kubernetes.pods            namespace, selector
      kubernetes.logs            namespace, pod (str | None), selector (str | None), container (str | None),
                                 tail_lines, max_bytes
      http.request               method, url, headers (`${secret:NAME}` kept literal), json (Any | None),
                                 body (str | None), expect_status (list[int]), timeout_s
      prometheus.query           query, until ({"op": "<", "threshold": 0.01} | None), timeout_s, interval_s
      approval                   prompt
      notify                     text
      wait                       duration_s
    """
    values: dict[str, Any] = {name: params.get(name, spec.default)
                              for name, spec in runbook.parameters.items()}
    incident = incident or {}
    for builtin in BUILTINS:
        values[builtin] = incident.get(builtin.split(".", 1)[1])
    rendered: list[RenderedStep] = []
    problems: list[str] = []
    for index, (step, name) in enumerate(zip(runbook.steps, runbook.step_names)):
        r = _Renderer(index, name, values, runbook.parameters, secret_hosts)
        args, title = _render(step, r)
        if step.title is not None:
            title = r.human("title", step.title)
        problems += r.problems
        rendered.append(RenderedStep(index=index, name=name, kind=step.kind, title=title,
                                     destructive=step.destructive, diagnostic=step.diagnostic,
                                     continue_on_error=step.continue_on_error, args=args))
    if problems:
        raise RenderError(problems)
    return rendered


class _Renderer:
    """Fills one step's fields, collecting problems instead of stopping at the first."""

    def __init__(self, index: int, name: str, values: Mapping[str, Any], params: Mapping[str, ParamSpec],
                 secret_hosts: Mapping[str, Sequence[str]] | None = None) -> None:
        self.index, self.name, self.values = index, name, values
        self.params, self.secret_hosts = params, secret_hosts
        self.problems: list[str] = []

    def fail(self, field: str, problem: str) -> None:
        self.problems.append(f"step {self.name!r} (steps.{self.index}) {field}: {problem}")

    def _fill(self, field: str, text: str, unset: str | None) -> str:
        def sub(match: re.Match[str]) -> str:
            ref = match.group(1).strip()
            if ref not in self.values:
                self.fail(field, f"unknown parameter {ref!r}")
                return ""
            value = self.values[ref]
            if value is None:
                if unset is None:
                    self.fail(field, f"{ref!r} has no value (pass --param {ref}=…)"
                              if not ref.startswith("incident.") else f"{ref!r} is unknown (no incident)")
                    return ""
                return unset
            out = ("true" if value else "false") if isinstance(value, bool) else str(value)
            if "${" in out:
                self.fail(field, f"the value of {ref!r} may not contain '${{' (secret placeholders belong in "
                                 "the runbook)")
                return ""
            return out

        return TEMPLATE.sub(sub, text)

    def text(self, field: str, text: str) -> str:
        """A required string field: every template must have a value."""
        return self._fill(field, text, None)

    def human(self, field: str, text: str) -> str:
        """Human text (titles, prompts, notify): an unset value reads '(not set)'."""
        return self._fill(field, text, UNSET)

    def optional(self, field: str, text: str | None) -> str | None:
        """An optional string field: exactly `{{ x }}` with x unset gives None."""
        if text is None:
            return None
        ref = single_template(text)
        if ref is not None and self.values.get(ref) is None and ref in self.values:
            return None
        return self.text(field, text)

    def value(self, field: str, text: str) -> Any:
        """A JSON value: exactly `{{ x }}` keeps x's type (int, bool, None…); otherwise text."""
        ref = single_template(text)
        if ref is not None and ref in self.values:
            value = self.values[ref]
            return self.text(field, text) if isinstance(value, str) else value
        return self.text(field, text)

    def json(self, field: str, value: Any) -> Any:
        if isinstance(value, str):
            return self.value(field, value)
        if isinstance(value, dict):
            return {k: self.json(f"{field}.{k}", v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(f"{field}.{i}", v) for i, v in enumerate(value)]
        return value

    def integer(self, field: str, raw: int | str | None) -> int | None:
        if raw is None or isinstance(raw, int):
            return raw
        before = len(self.problems)
        value = self.value(field, raw)
        if value is None or len(self.problems) > before:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        self.fail(field, f"{raw!r} rendered {value!r}, not an integer")
        return None

    def number(self, field: str, raw: float | str | None) -> float | None:
        if raw is None or isinstance(raw, float):
            return raw
        before = len(self.problems)
        value = self.value(field, raw)
        if value is None or len(self.problems) > before:
            return None
        if not isinstance(value, bool):
            try:
                number = float(value)
                if math.isfinite(number):
                    return number
            except (TypeError, ValueError):
                pass
        self.fail(field, f"{raw!r} rendered {value!r}, not a number")
        return None

    def k8s_name(self, field: str, text: str) -> str:
        """A namespace (DNS label), deployment or pod (DNS subdomain), or container (DNS label)."""
        before = len(self.problems)
        value = self.text(field, text)
        self._k8s_check(field, value, before)
        return value

    def k8s_optional(self, field: str, text: str | None) -> str | None:
        before = len(self.problems)
        value = self.optional(field, text)
        self._k8s_check(field, value, before)
        return value

    def _k8s_check(self, field: str, value: str | None, before: int) -> None:
        pattern = DNS_LABEL if field in ("namespace", "container") else DNS_SUBDOMAIN
        if value is not None and len(self.problems) == before and not pattern.match(value):
            self.fail(field, f"{value!r} is not a valid Kubernetes name")


def _seconds(d: timedelta) -> float:
    return d.total_seconds()


def fmt_duration(d: timedelta) -> str:
    """600 s → '10m', 5400 s → '1h30m', 0.25 s → '0.25s'."""
    total = d.total_seconds()
    if not total.is_integer():
        return f"{total:g}s"
    rest, parts = int(total), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


Rendered = tuple[dict[str, Any], str]  # (the step's arguments, its one-line description)


def _render_deployment(step: RolloutUndoStep | ScaleStep | RestartStep | RolloutStatusStep,
                       r: _Renderer) -> Rendered:
    ns, dep = r.k8s_name("namespace", step.namespace), r.k8s_name("deployment", step.deployment)
    target = f"{ns}/{dep}"
    args: dict[str, Any] = {"namespace": ns, "deployment": dep}
    if isinstance(step, RolloutUndoStep):
        revision = r.integer("to_revision", step.to_revision)
        if revision is not None and revision < 1:
            r.fail("to_revision", f"must be >= 1, got {revision}")
        args["to_revision"] = revision
        to = "the previous revision" if revision is None else f"revision {revision}"
        return args, f"Roll back {target} to {to}"
    if isinstance(step, ScaleStep):
        return _render_scale(step, r, args, target)
    if isinstance(step, RestartStep):
        return args, f"Restart {target}"
    args["timeout_s"] = _seconds(step.timeout)
    return args, f"Wait for the rollout of {target} (timeout {fmt_duration(step.timeout)})"


def _render_scale(step: ScaleStep, r: _Renderer, args: dict[str, Any], target: str) -> Rendered:
    replicas, factor = r.integer("replicas", step.replicas), r.number("factor", step.factor)
    if replicas is not None and not 0 <= replicas <= step.max_replicas:
        r.fail("replicas",
               f"must be between 0 and max_replicas ({step.max_replicas}), got {replicas}")
    if factor is not None and factor <= 0:
        r.fail("factor", f"must be greater than 0, got {_num(factor)}")
    if replicas is None and factor is None and not r.problems:
        r.fail("replicas", "neither replicas nor factor has a value")
    args.update(replicas=replicas, factor=factor, max_replicas=step.max_replicas)
    if factor is not None:
        return args, f"Scale {target} ×{_num(factor)} (max {step.max_replicas})"
    return args, f"Scale {target} to {replicas} replica{'' if replicas == 1 else 's'}"


def _render_pods(step: PodsStep, r: _Renderer) -> Rendered:
    ns, selector = r.k8s_name("namespace", step.namespace), r.text("selector", step.selector)
    return {"namespace": ns, "selector": selector}, f"List pods {selector} in {ns}"


def _render_logs(step: LogsStep, r: _Renderer) -> Rendered:
    ns = r.k8s_name("namespace", step.namespace)
    pod = r.k8s_optional("pod", step.pod)
    pods = r.optional("selector", step.selector)
    container = r.k8s_optional("container", step.container)
    if pod is None and pods is None and not r.problems:
        r.fail("pod" if step.pod is not None else "selector",
               "rendered no value: name a pod or a selector")
    args = {"namespace": ns, "pod": pod, "selector": pods, "container": container,
            "tail_lines": step.tail_lines, "max_bytes": step.max_bytes}
    of = f"pod {pod}" if pod is not None else f"pods {pods}"
    where = f" (container {container})" if container else ""
    return args, f"Logs of {of}{where} in {ns}, last {step.tail_lines} lines"


def _render_http(step: HttpRequestStep, r: _Renderer) -> Rendered:
    url = r.text("url", step.url)
    headers = {k: r.text(f"headers.{k}", v) for k, v in step.headers.items()}
    if not r.problems:
        _check_destination(step.url, url, headers, r)
    args = {"method": step.method, "url": url, "headers": headers,
            "json": r.json("json", step.json_body), "body": r.optional("body", step.body),
            "expect_status": list(step.expect_status), "timeout_s": _seconds(step.timeout)}
    return args, f"{step.method} {url}"


def _check_destination(template: str, url: str, headers: Mapping[str, str], r: _Renderer) -> None:
    """The rendered URL's host: allowed by the url parameter that starts it, and by each secret it gets."""
    try:
        target = url_target(url)
    except ValueError as exc:
        r.fail("url", str(exc))
        return
    lead = TEMPLATE.match(template)
    spec = r.params.get(lead.group(1).strip()) if lead else None
    if lead and spec is not None and spec.type == "url":
        patterns = parse_patterns(spec.allowed_hosts or [])
        if not allowed(target, patterns):
            r.fail("url", f"host {target} is not in the allowed_hosts of parameter "
                          f"{lead.group(1).strip()!r} ({listed(patterns)})")
    for header, value in headers.items():
        for secret in dict.fromkeys(SECRET.findall(value)):
            hosts = (r.secret_hosts or {}).get(secret)
            if hosts is not None and not allowed(target, patterns := parse_patterns(hosts)):
                r.fail(f"headers.{header}", refusal(secret, target, patterns))


def _render_prometheus(step: PrometheusQueryStep, r: _Renderer) -> Rendered:
    query = r.text("query", step.query)
    until = step.until.model_dump() if step.until is not None else None
    args = {"query": query, "until": until, "timeout_s": _seconds(step.timeout),
            "interval_s": _seconds(step.interval)}
    condition = f" until {step.until}" if step.until is not None else ""
    return args, f"Query Prometheus{condition}: {_short(query, 60)}"


def _render_approval(step: ApprovalStep, r: _Renderer) -> Rendered:
    prompt = r.human("prompt", step.prompt)
    return {"prompt": prompt}, f"Approval: {_short(prompt, 100)}"


def _render_notify(step: NotifyStep, r: _Renderer) -> Rendered:
    text = r.human("text", step.text)
    return {"text": text}, f"Notify: {_short(text, 100)}"


def _render_wait(step: WaitStep, r: _Renderer) -> Rendered:
    return {"duration_s": _seconds(step.duration)}, f"Wait {fmt_duration(step.duration)}"


_RENDERERS: dict[type[StepBase], Callable[[Any, _Renderer], Rendered]] = {
    RolloutUndoStep: _render_deployment, ScaleStep: _render_deployment, RestartStep: _render_deployment,
    RolloutStatusStep: _render_deployment, PodsStep: _render_pods, LogsStep: _render_logs,
    HttpRequestStep: _render_http, PrometheusQueryStep: _render_prometheus, ApprovalStep: _render_approval,
    NotifyStep: _render_notify, WaitStep: _render_wait,
}


def _render(step: StepBase, r: _Renderer) -> Rendered:
    renderer = _RENDERERS.get(type(step))
    if renderer is None:  # pragma: no cover - STEP_KINDS is closed
        raise TypeError(f"no renderer for step kind {step.kind!r}")
    return renderer(step, r)
