"""RBAC for the fake Kubernetes API server: a token bound to rules, decided as the real authorizer does.

A rule allows a request when its namespace matches (None: every namespace, like a ClusterRoleBinding), and
one of its apiGroups, one of its resources (subresources spelled "deployments/scale", "pods/log") and one of
its verbs match, and its resourceNames (when it has any) name the object. "*" matches anything, as in real
RBAC. Rules can be read from Role/ClusterRole and RoleBinding/ClusterRoleBinding manifests, for a service
account subject, so a test can hand the fake exactly the YAML a cluster would get.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class RbacRule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    namespace: str | None = None  # None: every namespace and the cluster scope
    resource_names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, api_groups: Iterable[str], resources: Iterable[str], verbs: Iterable[str],
           namespace: str | None = None, resource_names: Iterable[str] = ()) -> RbacRule:
        return cls(frozenset(api_groups), frozenset(resources), frozenset(verbs), namespace,
                   frozenset(resource_names))

    def allows(self, verb: str, group: str, resource: str, namespace: str | None, name: str | None) -> bool:
        def has(values: frozenset[str], value: str) -> bool:
            return "*" in values or value in values

        if self.namespace is not None and self.namespace != namespace:
            return False  # a RoleBinding never grants at the cluster scope or in another namespace
        if self.resource_names and (name is None or name not in self.resource_names):
            return False
        return has(self.api_groups, group) and has(self.resources, resource) and has(self.verbs, verb)


@dataclass
class Grant:
    """What one bearer token may do, and the user the API server names in a refusal."""

    user: str
    rules: list[RbacRule] = field(default_factory=list)

    def allows(self, verb: str, group: str, resource: str, namespace: str | None, name: str | None) -> bool:
        return any(rule.allows(verb, group, resource, namespace, name) for rule in self.rules)


def _documents(manifests: str | Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(manifests) if isinstance(manifests, str) else manifests
    return [d for d in docs if isinstance(d, dict)]


def service_account_rules(manifests: str | Iterable[dict[str, Any]], namespace: str, name: str) -> list[RbacRule]:
    """The rules the bindings in `manifests` give the service account `namespace/name`. A binding to a role
    that is not in the manifests grants nothing (the real API server behaves the same)."""
    docs = _documents(manifests)
    roles: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
    for doc in docs:
        if doc.get("kind") in ("Role", "ClusterRole"):
            meta = doc.get("metadata") or {}
            scope = meta.get("namespace") if doc["kind"] == "Role" else None
            roles[(doc["kind"], scope, meta["name"])] = list(doc.get("rules") or [])
    subject = {"kind": "ServiceAccount", "name": name, "namespace": namespace}
    out: list[RbacRule] = []
    for doc in docs:
        if doc.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any({k: s.get(k) for k in subject} == subject for s in doc.get("subjects") or []):
            continue
        bound_ns = (doc.get("metadata") or {}).get("namespace") if doc["kind"] == "RoleBinding" else None
        ref = doc.get("roleRef") or {}
        role_ns = bound_ns if ref.get("kind") == "Role" else None
        for rule in roles.get((str(ref.get("kind")), role_ns, str(ref.get("name"))), []):
            out.append(RbacRule.of(rule.get("apiGroups") or [], rule.get("resources") or [], rule.get("verbs") or [],
                                   bound_ns, rule.get("resourceNames") or []))
    return out
