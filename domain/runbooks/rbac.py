"""Least privilege for runbooks: the Kubernetes RBAC rules exactly the runbooks' steps need (pure).

`API_CALLS` lists, per step kind, every API call the Kubernetes adapter makes for it, its plan and its
apply together (activities/kubernetes.py, kube_api.py, kube_changes.py). It is written down here rather
than read from the adapter so that `incidentflow runbook rbac` runs without the `kubernetes` package;
tests/test_runbook_rbac.py runs every shipped runbook against the fake API server with a token limited to
exactly these rules, so the table cannot drift from the adapter unnoticed.

Rules are only ever namespaced (one Role per namespace, never a ClusterRole), name no `*` and no secrets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from domain.runbooks.fields import DNS_LABEL, DNS_SUBDOMAIN, TEMPLATE, template_refs
from domain.runbooks.model import Runbook
from domain.runbooks.steps import LogsStep, StepBase

ROLE_NAME = "incidentflow-runbooks"
SERVICE_ACCOUNT = "incidentflow-worker"
SA_NAMESPACE = "incidentflow"
LABELS = {"app.kubernetes.io/name": "incidentflow", "app.kubernetes.io/component": "runbooks"}
RBAC_API = "rbac.authorization.k8s.io"


@dataclass(frozen=True, order=True)
class ApiCall:
    """One kind of request: `verb` on `resource` (with its subresource: "deployments/scale")."""

    group: str  # "" is the core group (pods)
    resource: str
    verb: str


_GET_DEPLOYMENT = ApiCall("apps", "deployments", "get")
_LIST_PODS = ApiCall("", "pods", "list")
_GET_LOG = ApiCall("", "pods/log", "get")

API_CALLS: dict[str, tuple[ApiCall, ...]] = {
    # `kubectl rollout undo`: the Deployment and its ReplicaSets (the revision history), then a PUT of the
    # target revision's pod template (resourceVersion-checked)
    "kubernetes.rollout_undo": (_GET_DEPLOYMENT, ApiCall("apps", "replicasets", "list"),
                                ApiCall("apps", "deployments", "update")),
    # through the scale subresource only: read the count, patch it
    "kubernetes.scale": (ApiCall("apps", "deployments/scale", "get"), ApiCall("apps", "deployments/scale", "patch")),
    # read the restartedAt stamp, patch it into the pod template
    "kubernetes.restart": (_GET_DEPLOYMENT, ApiCall("apps", "deployments", "patch")),
    "kubernetes.rollout_status": (_GET_DEPLOYMENT,),
    "kubernetes.pods": (_LIST_PODS,),
    "kubernetes.logs": (_LIST_PODS, _GET_LOG),  # a step naming its pod reads pods/log only
}


class RbacError(ValueError):
    """Namespaces that cannot be known: one problem per line, naming the runbook, step and parameter."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RuleSpec:
    """One rule of a Role: a resource of an API group, its verbs, and the steps that need each verb."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    needed_by: tuple[tuple[str, tuple[str, ...]], ...]  # (verb, ("runbook/step", …)), both sorted


@dataclass(frozen=True)
class RoleSpec:
    """The Role of one namespace (sorted rules) and the runbooks that act there."""

    namespace: str
    rules: tuple[RuleSpec, ...]
    runbooks: tuple[str, ...]


def calls_of(step: StepBase) -> tuple[ApiCall, ...]:
    """The API calls a step makes; () for steps that do not touch Kubernetes."""
    if isinstance(step, LogsStep) and step.pod is not None:
        return (_GET_LOG,)
    return API_CALLS.get(step.kind, ())


def namespace_problem(name: str) -> str | None:
    """Why `name` cannot be a namespace, or None."""
    if DNS_LABEL.match(name):
        return None
    return f"{name!r} is not a valid Kubernetes namespace (lowercase letters, digits and '-', at most 63)"


def step_namespaces(runbook: Runbook, step: StepBase, given: Sequence[str]) -> tuple[list[str], str | None]:
    """Where a step may act: its literal namespace; for a templated one, the value its parameters'
    defaults give plus every namespace in `given` (the values only a run knows). A problem when none."""
    text = str(getattr(step, "namespace", "default"))
    if not template_refs(text):
        return [text], None
    refs = template_refs(text)
    defaults = {ref: runbook.parameters[ref].default for ref in refs if ref in runbook.parameters}
    found = list(given)
    if all(defaults.get(ref) is not None for ref in refs):
        default = TEMPLATE.sub(lambda m: str(defaults[m.group(1).strip()]), text)
        if (problem := namespace_problem(default)) is not None:
            return found, f"namespace {text!r} gives {problem} with the parameters' defaults"
        found.insert(0, default)
    if not found:
        missing = ", ".join(repr(ref) for ref in refs if defaults.get(ref) is None)
        return [], (f"namespace {text!r} comes from {missing} (no default): name the namespaces it may act "
                    "in with --namespace")
    return found, None


def rules_for(runbooks: Iterable[Runbook], namespaces: Sequence[str] = ()) -> list[RoleSpec]:
    """One RoleSpec per namespace the runbooks' Kubernetes steps may act in (sorted by namespace), with
    exactly the calls of those steps. `namespaces`: where templated namespaces may point at run time.
    RbacError names every step whose namespace cannot be known, and every invalid given namespace."""
    problems = [f"--namespace {p}" for name in namespaces if (p := namespace_problem(name)) is not None]
    given = sorted(set(namespaces))
    needs: dict[str, dict[ApiCall, set[str]]] = {}
    acting: dict[str, set[str]] = {}
    for runbook in runbooks:
        for step, name in zip(runbook.steps, runbook.step_names):
            calls = calls_of(step)
            if not calls:
                continue
            where, problem = step_namespaces(runbook, step, given)
            if problem is not None:
                problems.append(f"runbook {runbook.name!r} step {name!r}: {problem}")
            for ns in where:
                acting.setdefault(ns, set()).add(runbook.name)
                for call in calls:
                    needs.setdefault(ns, {}).setdefault(call, set()).add(f"{runbook.name}/{name}")
    if problems:
        raise RbacError(problems)
    return [RoleSpec(ns, _rules(needs[ns]), tuple(sorted(acting[ns]))) for ns in sorted(needs)]


def _rules(calls: Mapping[ApiCall, set[str]]) -> tuple[RuleSpec, ...]:
    by_resource: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
    for call in sorted(calls):
        by_resource.setdefault((call.group, call.resource), {})[call.verb] = tuple(sorted(calls[call]))
    return tuple(RuleSpec(group, resource, tuple(sorted(verbs)), tuple(sorted(verbs.items())))
                 for (group, resource), verbs in sorted(by_resource.items()))


# ---------------------------------------------------------------------------------------- YAML


def account_problem(service_account: str, sa_namespace: str) -> str | None:
    if not DNS_SUBDOMAIN.match(service_account):
        return f"--service-account {service_account!r} is not a valid service account name"
    if (problem := namespace_problem(sa_namespace)) is not None:
        return f"--sa-namespace {problem}"
    return None


def _role(spec: RoleSpec) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC_API}/v1", "kind": "Role",
            "metadata": {"name": ROLE_NAME, "namespace": spec.namespace, "labels": dict(LABELS)},
            "rules": [{"apiGroups": [r.group], "resources": [r.resource], "verbs": list(r.verbs)}
                      for r in spec.rules]}


def _binding(spec: RoleSpec, service_account: str, sa_namespace: str) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC_API}/v1", "kind": "RoleBinding",
            "metadata": {"name": ROLE_NAME, "namespace": spec.namespace, "labels": dict(LABELS)},
            "roleRef": {"apiGroup": RBAC_API, "kind": "Role", "name": ROLE_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": sa_namespace}]}


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"#{' ' if line else ''}{line}" for line in
            textwrap.wrap(text, 104, initial_indent=indent, subsequent_indent=indent + "    ",
                          break_on_hyphens=False, break_long_words=False)]


def _role_header(spec: RoleSpec) -> list[str]:
    lines = _comment(f'Namespace "{spec.namespace}" (runbooks {", ".join(spec.runbooks)}). '
                     "Each rule, and the runbook steps that need it:")
    for rule in spec.rules:
        group = rule.group or "core"
        for verb, steps in rule.needed_by:
            lines += _comment(f"{verb} {rule.resource} ({group}): {', '.join(steps)}", "  ")
    return lines


def render_rbac(roles: Sequence[RoleSpec], runbooks: Sequence[str], *, service_account: str = SERVICE_ACCOUNT,
                sa_namespace: str = SA_NAMESPACE, command: str = "incidentflow runbook rbac") -> str:
    """The manifests: a header, then per namespace a Role and a RoleBinding of the worker's service
    account. Deterministic for the same input (sorted; no time, no paths)."""
    lines = _comment(
        f"Kubernetes RBAC for incidentflow's runbook steps: a Role and a RoleBinding in each namespace the "
        f"runbooks act in, for the worker's service account {sa_namespace}/{service_account}. Namespaced "
        "only: no ClusterRole, no '*', no secrets.")
    lines += _comment(f"Generated from the runbooks {', '.join(sorted(runbooks)) or '(none)'} (do not edit; "
                      "regenerate it when they change) by:")
    lines.append(f"#   {command}")
    lines += _comment("A namespace a run only learns at run time (from an alert label or --param namespace=…) "
                      "is covered only when given with --namespace: elsewhere the step is refused (403 "
                      "Forbidden) and its run stops there.")
    if not roles:
        lines += _comment("No runbook has a Kubernetes step: nothing to grant.")
    for spec in roles:
        lines += ["---", *_role_header(spec)]
        lines.append(yaml.safe_dump(_role(spec), sort_keys=False, default_flow_style=False).rstrip("\n"))
        lines.append("---")
        lines.append(yaml.safe_dump(_binding(spec, service_account, sa_namespace), sort_keys=False,
                                    default_flow_style=False).rstrip("\n"))
    return "\n".join(lines) + "\n"
