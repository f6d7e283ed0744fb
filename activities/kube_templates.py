"""Deployment revisions and pod templates: what `kubectl rollout undo` compares and copies. Pure functions."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from activities.kube_text import as_int

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"
MAX_CHANGES = 25  # lines in a plan's `changes`

_KEYED_LISTS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
                "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort",
                "imagePullSecrets": "name"}
_SECRET_LEAF = re.compile(r"\.env\[[^\]]*\]\.value$")


def revision(obj: dict[str, Any]) -> int:
    return as_int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION))


def revision_history(obj: dict[str, Any]) -> list[int]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_HISTORY) or ""
    return [int(x) for x in str(raw).split(",") if x.strip().isdigit()]


def prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    """The pod template without the controller's `pod-template-hash` label (what kubectl copies)."""
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def same_template(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(prune(strip_hash(a)) == prune(strip_hash(b)))


def selector_string(selector: dict[str, Any] | None) -> str:
    """A LabelSelector (matchLabels + matchExpressions) as a label-selector query string."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(item, list) and _KEYED_LISTS.get(key) and all(
                    isinstance(i, dict) and _KEYED_LISTS[key] in i for i in item):
                for element in item:
                    flatten(element, f"{child}[{element[_KEYED_LISTS[key]]}]", out)
            else:
                flatten(item, child, out)
    elif isinstance(value, list):
        out[path] = json.dumps(value, sort_keys=True)
    else:
        out[path] = value


def show(value: Any) -> str:
    if value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:119] + "…"


def template_changes(current: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Field-level differences between two pod templates: images first ("container web: image a → b"),
    containers added/removed, then every other leaf by path. Plain env values are not shown."""
    cur, new = prune(strip_hash(current)), prune(strip_hash(target))
    changes: list[str] = []
    cur_containers = {c.get("name"): c for c in (cur.get("spec") or {}).get("containers") or []}
    new_containers = {c.get("name"): c for c in (new.get("spec") or {}).get("containers") or []}
    whole: set[str] = set()
    for name in [*cur_containers, *[n for n in new_containers if n not in cur_containers]]:
        before, after = cur_containers.get(name), new_containers.get(name)
        if before is not None and after is not None:
            if before.get("image") != after.get("image"):
                changes.append(f"container {name}: image {show(before.get('image'))} → {show(after.get('image'))}")
        elif after is None:
            changes.append(f"container {name}: removed (image {show(before and before.get('image'))})")
            whole.add(f"spec.containers[{name}]")
        else:
            changes.append(f"container {name}: added (image {show(after.get('image'))})")
            whole.add(f"spec.containers[{name}]")
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    flatten(cur, "", a)
    flatten(new, "", b)
    for path in sorted(set(a) | set(b)):
        if a.get(path) == b.get(path) or any(path.startswith(w + ".") for w in whole):
            continue
        if re.fullmatch(r"spec\.containers\[[^\]]*\]\.image", path):
            continue
        if _SECRET_LEAF.search(path):
            changes.append(f"spec.template.{path}: changed (value not shown)")
        else:
            changes.append(f"spec.template.{path}: {show(a.get(path))} → {show(b.get(path))}")
    if len(changes) > MAX_CHANGES:
        changes = [*changes[:MAX_CHANGES - 1], f"… and {len(changes) - MAX_CHANGES + 1} more changes"]
    return changes
