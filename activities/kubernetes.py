"""The Kubernetes adapter of the `Cluster` port, with the official `kubernetes` client.

`KubernetesCluster` = the plumbing (activities/kube_api.py: client, threads, error classification
through activities/errors.py) + the changes (activities/kube_changes.py: rollback, scale, restart,
each planned first) + the reads here (rollout status, pods, logs). kubectl-style text is built by the
pure functions of activities/kube_text.py and activities/kube_templates.py.

Nothing here needs a Temporal activity context: long waits report through a `heartbeat` callback.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError

from activities import errors
from activities import kube_templates as tpl
from activities.kube_api import load_api_client, status_of
from activities.kube_changes import KubeChanges
from activities.kube_text import (
    as_int,
    fit,
    fmt_duration,
    join_logs,
    pod_ready,
    pod_restarts,
    pod_status,
    pods_table,
)
from activities.ports import Heartbeat, no_heartbeat
from domain.models.runbook import KubeReadArgs, LogsArgs, PodsArgs, RolloutStatusArgs, StepOutcome, StepPlan

LOG_PODS = 3  # pods read by a `logs` step with a selector


@dataclass
class _NoLogs:
    reason: str  # the API server's message for a 400 on pods/log


def _progress(dep: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    """(complete, "2 of 6 updated, 1 available", counts), like `kubectl rollout status`."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    want = as_int(spec.get("replicas")) if spec.get("replicas") is not None else 1
    updated, available = as_int(status.get("updatedReplicas")), as_int(status.get("availableReplicas"))
    total, unavailable = as_int(status.get("replicas")), as_int(status.get("unavailableReplicas"))
    observed = as_int(status.get("observedGeneration")) >= as_int(meta.get("generation"))
    counts = {"replicas": want, "updated_replicas": updated, "available_replicas": available,
              "revision": tpl.revision(dep) or None}
    text = f"{updated} of {want} updated, {available} available"
    if total > updated:
        text += f", {total - updated} old pending termination"
    if not observed:
        text += " (waiting for the spec update to be observed)"
    complete = (observed and updated == want and available == want and total == updated
                and unavailable == 0)
    return complete, text, counts


def _deadline_exceeded(dep: dict[str, Any], ref: str, text: str) -> ApplicationError | None:
    """The controller gave up on the rollout (its progressDeadlineSeconds passed): no point waiting."""
    meta, status = dep.get("metadata") or {}, dep.get("status") or {}
    if as_int(status.get("observedGeneration")) < as_int(meta.get("generation")):
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return errors.rollout_timeout(f"rollout of {ref} exceeded its progress deadline: "
                                          f"{cond.get('message') or ''} ({text})")
    return None


class KubernetesCluster(KubeChanges):
    """The `Cluster` port. Thread-safe; build once per worker (nothing is read until the first call)."""

    @classmethod
    def from_settings(cls, kubeconfig: str | None, context: str | None, *, request_timeout: float = 10.0,
                      poll_interval: float = 2.0) -> KubernetesCluster:
        """From INCIDENTFLOW_KUBECONFIG / INCIDENTFLOW_KUBE_CONTEXT."""
        return cls(lambda: load_api_client(kubeconfig, context), request_timeout, poll_interval)

    # ---------------------------------------------------------------------------------- rollout status
    async def _poll(self, namespace: str, deployment: str) -> tuple[dict[str, Any] | None, ApplicationError | None]:
        """The deployment, or the retryable error of a poll the API server could not answer."""
        try:
            return await self._deployment(namespace, deployment), None
        except ApplicationError as err:
            if err.non_retryable:
                raise
            return None, err

    async def rollout_status(self, namespace: str, deployment: str, timeout_s: float,
                             heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        """Poll every `poll_interval` until the rollout completes; `heartbeat(progress)` on every poll.
        ProgressDeadlineExceeded or `timeout_s` → non-retryable ROLLOUT_TIMEOUT. A poll the API server
        could not answer (5xx, timeout) is retried until the deadline. data: {"revision", "replicas",
        "updated_replicas", "available_replicas", "waited_s", "polls"}."""
        ref = f"{namespace}/{deployment}"
        started = time.monotonic()
        deadline = started + max(0.0, timeout_s)
        polls, text = 0, ""
        while True:
            polls += 1
            dep, unavailable = await self._poll(namespace, deployment)
            if dep is None:
                failed = unavailable.message if unavailable is not None else ""
                heartbeat(f"rollout of {ref}: {text or 'no status yet'} (last poll failed: {failed})")
            else:
                complete, text, counts = _progress(dep)
                heartbeat(f"rollout of {ref}: {text}")
                if complete:
                    rev = f" (revision {counts['revision']})" if counts["revision"] else ""
                    return StepOutcome(
                        summary=f"Rollout of {ref} complete{rev}: {counts['updated_replicas']} of "
                                f"{counts['replicas']} updated and available",
                        data={**counts, "waited_s": round(time.monotonic() - started, 3), "polls": polls})
                if (gave_up := _deadline_exceeded(dep, ref, text)) is not None:
                    raise gave_up
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if unavailable is not None and not text:
                    raise unavailable
                failed = f" (last poll failed: {unavailable.message})" if unavailable is not None else ""
                raise errors.rollout_timeout(f"rollout of {ref} not complete after {fmt_duration(timeout_s)}: "
                                             f"{text}{failed}")
            await asyncio.sleep(min(self.poll_interval, remaining))

    # ---------------------------------------------------------------------------------- diagnostics
    async def _list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        listed = await self._json(
            f"list pods in {namespace} ({selector})",
            lambda api: CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector, **self._kw()))
        pods: list[dict[str, Any]] = listed.get("items") or []
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", "")))

    async def pods(self, namespace: str, selector: str, max_bytes: int = 4000) -> StepOutcome:
        """`kubectl get pods -l selector`: output is the table (NAME READY STATUS RESTARTS AGE), truncated to
        `max_bytes`. data: {"pods", "ready", "statuses" ({STATUS: count}), "restarts", "not_ready"
        (up to 10 names), "truncated"}."""
        pods = await self._list_pods(namespace, selector)
        if not pods:
            return StepOutcome(summary=f"no pods for {selector} in {namespace}",
                               output=fit(f"No resources found in {namespace} namespace.\n", max_bytes),
                               data={"pods": 0, "ready": 0, "statuses": {}, "restarts": 0, "not_ready": [],
                                     "truncated": False})
        ready = [p for p in pods if pod_ready(p)]
        statuses = Counter(pod_status(p) for p in pods)
        not_ready = [p["metadata"]["name"] for p in pods if not pod_ready(p)]
        table, truncated = pods_table(pods, max_bytes)
        trouble = ", ".join(f"{n} {s}" for s, n in statuses.most_common() if s != "Running")
        noun = "pod" if len(pods) == 1 else "pods"
        return StepOutcome(
            summary=f"{len(pods)} {noun} ({len(ready)} ready) for {selector} in {namespace}"
                    + (f": {trouble}" if trouble else ""),
            output=table,
            data={"pods": len(pods), "ready": len(ready), "statuses": dict(statuses),
                  "restarts": sum(pod_restarts(p)[0] for p in pods), "not_ready": not_ready[:10],
                  "truncated": truncated})

    async def _log_pods(self, namespace: str, pod: str | None, selector: str | None) -> tuple[list[str], int]:
        """(pods to read, pods matched): the named pod, or up to 3 for the selector, troubled ones first."""
        if pod is not None:
            return [pod], 1
        if not selector:
            raise errors.kubernetes_rejected(f"cannot read logs in {namespace}: give a pod or a selector")
        listed = await self._list_pods(namespace, selector)
        listed.sort(key=lambda p: (pod_ready(p), -pod_restarts(p)[0], p["metadata"]["name"]))
        return [p["metadata"]["name"] for p in listed[:LOG_PODS]], len(listed)

    async def _read_log(self, namespace: str, name: str, container: str | None, tail_lines: int) -> str | _NoLogs:
        kwargs: dict[str, Any] = {"tail_lines": tail_lines, "_request_timeout": self.request_timeout}
        if container:
            kwargs["container"] = container

        def read(api: ApiClient) -> str | _NoLogs:
            try:
                return str(CoreV1Api(api).read_namespaced_pod_log(name, namespace, **kwargs) or "")
            except ApiException as exc:
                if exc.status != 400:  # "waiting to start", "a container name must be specified", …
                    raise
                return _NoLogs(status_of(exc)[1] or "400 Bad Request")
        return await self._call(f"get pods/{name}/log in {namespace}", read)

    async def logs(self, namespace: str, pod: str | None, selector: str | None, container: str | None,
                   tail_lines: int, max_bytes: int) -> StepOutcome:
        """The last `tail_lines` lines of `pod`, or of up to 3 pods matching `selector` (not-ready and
        restarting pods first), as "==> pod <==" sections in at most `max_bytes` bytes (each log keeps its
        end). A pod whose container cannot give logs (400: waiting to start, …) gets a note instead.
        data: {"pods" (names read), "matched", "truncated", "bytes"}."""
        names, matched = await self._log_pods(namespace, pod, selector)
        if not names:
            return StepOutcome(summary=f"no pods for {selector} in {namespace} (no logs)",
                               data={"pods": [], "matched": 0, "truncated": False, "bytes": 0})
        sections: list[tuple[str, str]] = []
        notes = 0
        for name in names:
            got = await self._read_log(namespace, name, container, tail_lines)
            if isinstance(got, _NoLogs):
                notes += 1
                got = f"(no logs: {errors.redact(got.reason, self._secrets())})\n"
            sections.append((name, got))
        output, truncated = join_logs(sections, max_bytes)
        where = f"pod {pod}" if pod is not None else (
            f"{len(names)} of {matched} pods for {selector}" if matched > len(names)
            else f"{len(names)} pod{'s' if len(names) != 1 else ''} for {selector}")
        extra = (f" (container {container})" if container else "") + (
            f", truncated to {max_bytes} bytes" if truncated else "") + (
            f", {notes} without logs" if notes else "")
        return StepOutcome(summary=f"Last {tail_lines} log lines of {where} in {namespace}{extra}",
                           output=output,
                           data={"pods": names, "matched": matched, "truncated": truncated,
                                 "bytes": len(output.encode())})

    async def plan_read(self, args: KubeReadArgs) -> StepPlan:
        """A dry run of rollout_status/pods/logs: what would be read; no API call. data: {"reads": [...]}
        (the API reads the step makes); noop is False (the step must still run)."""
        ns = args.namespace or "default"
        if isinstance(args, RolloutStatusArgs):
            dep = args.deployment
            return StepPlan(summary=f"Wait up to {fmt_duration(args.timeout_s or 600)} for the rollout of {ns}/{dep} "
                                    f"to complete (reading the deployment every {fmt_duration(self.poll_interval)})",
                            data={"reads": [f"get deployments/{dep} in {ns}"]})
        if isinstance(args, PodsArgs):
            return StepPlan(summary=f"List the pods for {args.selector} in {ns} (ready, status, restarts, age)",
                            data={"reads": [f"list pods in {ns} ({args.selector})"]})
        if isinstance(args, LogsArgs):
            pod, sel, cont = args.pod, args.selector, args.container
            tail, limit = args.tail_lines or 100, args.max_bytes or 8000
            where = f"pod {pod}" if pod else f"up to {LOG_PODS} pods for {sel}"
            reads = ([f"get pods/{pod}/log in {ns}"] if pod
                     else [f"list pods in {ns} ({sel})", f"get pods/<pod>/log in {ns} (up to {LOG_PODS})"])
            return StepPlan(summary=f"Read the last {tail} log lines of {where} in {ns}"
                                    f"{f' (container {cont})' if cont else ''}, at most {limit} bytes",
                            data={"reads": reads})
        raise errors.unknown_step(f"{getattr(args, 'kind', type(args).__name__)!r} is not a read-only "
                                  "Kubernetes step")
