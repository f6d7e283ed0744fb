"""Kubernetes changes of runbook steps: rollback, scale, restart — each planned first.

Every change is planned first (reads only) and the plan's decisions are what the apply step gets, so a
retried or replayed step works toward the same target:
- rollback works like `kubectl rollout undo`: the pod template of the target ReplicaSet revision is
  copied into the Deployment. The target revision is decided once, in `plan_rollout_undo`; the apply
  step finds that ReplicaSet again by its revision *or* its revision history (the controller renumbers
  a reused ReplicaSet to max+1), and when the Deployment already carries that template it writes
  nothing — a retry after success can never undo the undo;
- scale sets an absolute count (decided by the plan from `replicas` or `factor`);
- restart sets `kubectl.kubernetes.io/restartedAt` to a value decided once; the same value again is a
  no-op.
"""

from __future__ import annotations

import asyncio
import copy
import math
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from kubernetes.client import ApiClient, AppsV1Api

from activities import errors
from activities import kube_templates as tpl
from activities.kube_api import Conflict, KubeApi
from activities.kube_text import as_int
from domain.models.runbook import StepOutcome, StepPlan

CONFLICT_ATTEMPTS = 5  # writes tried on 409 Conflict (re-reading before each) before giving up


def _find(owned: list[dict[str, Any]], revision: int) -> dict[str, Any] | None:
    """The ReplicaSet of `revision`, by its number or, once reused and renumbered, by its history."""
    return next((rs for rs in owned if tpl.revision(rs) == revision), None) or next(
        (rs for rs in owned if revision in tpl.revision_history(rs)), None)


class KubeChanges(KubeApi):
    """The changes; `KubernetesCluster` adds the reads."""

    def _replace(self, namespace: str, name: str, body: dict[str, Any], api: ApiClient) -> Any:
        # The client types the body as V1Deployment but sends a dict as is: we PUT the object the API
        # server gave us (a model round trip would drop the fields the client does not know).
        return AppsV1Api(api).replace_namespaced_deployment(name, namespace, cast(Any, body), **self._kw())

    # ---------------------------------------------------------------------------------- rollback
    async def plan_rollout_undo(self, namespace: str, deployment: str, to_revision: int | None) -> StepPlan:
        """Decide the target revision (once): `to_revision`, else the highest revision below the current.

        data: {"target_revision", "from_revision", "target_replicaset"}; noop when the Deployment already
        has the target's pod template."""
        ref = f"{namespace}/{deployment}"
        dep, owned = await self._history(namespace, deployment)
        current = self._current_revision(dep, owned)
        available = ", ".join(str(tpl.revision(rs)) for rs in owned) or "none"
        if to_revision is not None:
            target = _find(owned, to_revision)
            if target is None:
                raise errors.kubernetes_rejected(f"cannot roll back {ref}: revision {to_revision} not found; "
                                                 f"available: {available}")
        else:
            older = [rs for rs in owned if 0 < tpl.revision(rs) < current]
            if not older:
                raise errors.kubernetes_rejected(f"cannot roll back {ref}: no previous revision to roll back to "
                                                 f"(current revision {current}; available: {available})")
            target = older[-1]
        target_revision = to_revision if to_revision is not None else tpl.revision(target)
        data = {"target_revision": target_revision, "from_revision": current,
                "target_replicaset": target["metadata"]["name"]}
        if tpl.same_template(dep["spec"]["template"], target["spec"]["template"]):
            return StepPlan(summary=f"{ref} already runs the template of revision {target_revision} "
                                    "(nothing to roll back)", data=data, noop=True)
        self._paused(dep, ref, "roll back")
        return StepPlan(summary=f"Roll back {ref} from revision {current} to revision {target_revision}",
                        changes=tpl.template_changes(dep["spec"]["template"], target["spec"]["template"]),
                        data=data)

    async def rollout_undo(self, namespace: str, deployment: str, target_revision: int,
                           from_revision: int | None = None) -> StepOutcome:
        """Copy the pod template of `target_revision` (found by revision or revision history) into the
        Deployment with a resourceVersion-checked PUT; nothing is written when it is already there.

        data: {"changed", "target_revision", "from_revision", "revision", "replicaset"}."""
        ref = f"{namespace}/{deployment}"
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            dep, owned = await self._history(namespace, deployment)
            target = _find(owned, target_revision)
            if target is None:
                available = ", ".join(str(tpl.revision(rs)) for rs in owned) or "none"
                raise errors.kubernetes_rejected(f"cannot roll back {ref}: revision {target_revision} not found; "
                                                 f"available: {available}")
            current = self._current_revision(dep, owned)
            data: dict[str, Any] = {"target_revision": target_revision, "from_revision": from_revision,
                                    "replicaset": target["metadata"]["name"]}
            if tpl.same_template(dep["spec"]["template"], target["spec"]["template"]):
                return StepOutcome(summary=f"{ref} already at the template of revision {target_revision} "
                                           f"(nothing to do)",
                                   data={**data, "changed": False, "revision": current})
            self._paused(dep, ref, "roll back")
            changes = tpl.template_changes(dep["spec"]["template"], target["spec"]["template"])
            body = copy.deepcopy(dep)
            body.pop("status", None)
            body["spec"]["template"] = tpl.strip_hash(target["spec"]["template"])
            try:
                written = await self._json(
                    f"update deployments/{deployment} in {namespace}",
                    partial(self._replace, namespace, deployment, body),
                    conflict=True)
            except Conflict:
                await asyncio.sleep(min(0.05 * attempt, 0.5))
                continue
            revision = tpl.revision(written) or None
            drift = ("" if from_revision is None or current == from_revision
                     else f"; it was at revision {current}, not {from_revision} as planned")
            now = f" (now revision {revision})" if revision else ""
            return StepOutcome(
                summary=f"Rolled back {ref} from revision {current} to the template of revision "
                        f"{target_revision}{now}{drift}",
                output="\n".join(changes),
                data={**data, "changed": True, "revision": revision, "previous_revision": current})
        raise errors.kubernetes_unreachable(f"cannot roll back {ref}: the deployment kept changing under us "
                                           f"(409 Conflict {CONFLICT_ATTEMPTS} times)")

    # ---------------------------------------------------------------------------------- scale
    async def _replicas(self, namespace: str, deployment: str) -> int:
        scale = await self._json(
            f"get deployments/{deployment}/scale in {namespace}",
            lambda api: AppsV1Api(api).read_namespaced_deployment_scale(deployment, namespace, **self._kw()))
        return as_int((scale.get("spec") or {}).get("replicas"))

    async def plan_scale(self, namespace: str, deployment: str, replicas: int | None, factor: float | None,
                         max_replicas: int) -> StepPlan:
        """The absolute target: `replicas`, or ceil(current × factor) (at least current+1 when factor > 1,
        never below current when factor ≥ 1), capped at `max_replicas`.

        data: {"previous_replicas", "replicas", "capped"}; noop when already there."""
        ref = f"{namespace}/{deployment}"
        if replicas is None and factor is None:
            raise errors.kubernetes_rejected(f"cannot scale {ref}: set replicas or factor")
        current = await self._replicas(namespace, deployment)
        if replicas is not None:
            wanted = int(replicas)
        else:
            assert factor is not None
            wanted = math.ceil(round(current * float(factor), 9))
            if factor > 1:
                wanted = max(wanted, current + 1)
        target = min(wanted, max_replicas)
        if factor is not None and factor >= 1:
            target = max(target, current)  # a scale-up never scales down, even above the cap
        if target < 0:
            raise errors.kubernetes_rejected(f"cannot scale {ref} to {target} replicas")
        capped = target < wanted
        data = {"previous_replicas": current, "replicas": target, "capped": capped}
        if target == current:
            return StepPlan(summary=f"{ref} already has {current} replicas (nothing to scale)"
                                    + (f" (max_replicas {max_replicas})" if capped else ""),
                            data=data, noop=True)
        cap = f" (capped at max_replicas {max_replicas})" if capped else ""
        return StepPlan(summary=f"Scale {ref} from {current} to {target} replicas{cap}",
                        changes=[f"spec.replicas: {current} → {target}"], data=data)

    async def scale(self, namespace: str, deployment: str, replicas: int) -> StepOutcome:
        """Set the absolute count through the scale subresource (a retry sets the same count; no write when
        it is already so). data: {"previous_replicas", "replicas", "changed"}."""
        ref = f"{namespace}/{deployment}"
        current = await self._replicas(namespace, deployment)
        if current == replicas:
            return StepOutcome(summary=f"{ref} already has {replicas} replicas (nothing to do)",
                               data={"previous_replicas": current, "replicas": replicas, "changed": False})
        await self._json(
            f"patch deployments/{deployment}/scale in {namespace}",
            lambda api: AppsV1Api(api).patch_namespaced_deployment_scale(
                deployment, namespace, {"spec": {"replicas": replicas}}, **self._kw()))
        return StepOutcome(summary=f"Scaled {ref} from {current} to {replicas} replicas",
                           data={"previous_replicas": current, "replicas": replicas, "changed": True})

    # ---------------------------------------------------------------------------------- restart
    @staticmethod
    def _restarted_at(dep: dict[str, Any]) -> str | None:
        meta = ((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}
        value = (meta.get("annotations") or {}).get(tpl.RESTARTED_AT)
        return None if value is None else str(value)

    async def plan_restart(self, namespace: str, deployment: str, restarted_at: str) -> StepPlan:
        """`kubectl rollout restart`: set the pod template's restartedAt annotation. An empty
        `restarted_at` is decided here (UTC now, RFC 3339) — apply with `data["restarted_at"]`.

        data: {"restarted_at", "previous_restarted_at", "replicas"}; noop when already that value."""
        ref = f"{namespace}/{deployment}"
        value = restarted_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        dep = await self._deployment(namespace, deployment)
        previous = self._restarted_at(dep)
        replicas = as_int((dep.get("spec") or {}).get("replicas"))
        data = {"restarted_at": value, "previous_restarted_at": previous, "replicas": replicas}
        if previous == value:
            return StepPlan(summary=f"{ref} was already restarted at {value} (nothing to do)", data=data,
                            noop=True)
        self._paused(dep, ref, "restart")
        return StepPlan(summary=f"Restart {ref} (rolling restart of {replicas} pods)",
                        changes=[f'spec.template.metadata.annotations["{tpl.RESTARTED_AT}"]: '
                                 f"{previous or '(unset)'} → {value}"],
                        data=data)

    async def restart(self, namespace: str, deployment: str, restarted_at: str) -> StepOutcome:
        """Patch restartedAt to `restarted_at` unless it already is. data: {"changed", "restarted_at",
        "revision"}."""
        ref = f"{namespace}/{deployment}"
        if not restarted_at:
            raise errors.kubernetes_rejected(f"cannot restart {ref}: restarted_at must be decided by the plan")
        dep = await self._deployment(namespace, deployment)
        if self._restarted_at(dep) == restarted_at:
            return StepOutcome(summary=f"{ref} was already restarted at {restarted_at} (nothing to do)",
                               data={"changed": False, "restarted_at": restarted_at,
                                     "revision": tpl.revision(dep) or None})
        self._paused(dep, ref, "restart")
        patch = {"spec": {"template": {"metadata": {"annotations": {tpl.RESTARTED_AT: restarted_at}}}}}
        written = await self._json(
            f"patch deployments/{deployment} in {namespace}",
            lambda api: AppsV1Api(api).patch_namespaced_deployment(deployment, namespace, patch, **self._kw()))
        revision = tpl.revision(written) or None
        now = f" (now revision {revision})" if revision else ""
        return StepOutcome(summary=f"Restarted {ref}: new pods roll out{now}",
                           data={"changed": True, "restarted_at": restarted_at, "revision": revision})
