"""Kubernetes side effects of runbook steps, with the official `kubernetes` client.

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

The client is blocking: every call runs in `asyncio.to_thread` with `_request_timeout`, so a hung API
server cannot hang the activity. Errors become classified `ApplicationError`s: a request the API server
rejected (400/401/403/404/422 and other 4xx) is non-retryable `KubernetesRejected`; 429, 5xx, 408,
timeouts and connection failures are retryable `KubernetesUnavailable` (Retry-After → next_retry_delay).
Messages carry the API server's Status message, never the bearer token. Nothing here needs a Temporal
activity context: long waits report through a `heartbeat` callback.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes
import urllib3
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from temporalio.exceptions import ApplicationError

from activities.errors import not_configured, parse_retry_after, redact
from domain.models.runbook import StepOutcome, StepPlan

KUBE_REJECTED = "KubernetesRejected"  # 4xx (400/401/403/404/422, …): non-retryable
KUBE_UNAVAILABLE = "KubernetesUnavailable"  # 5xx, 429, 408, timeouts, connection errors, repeated 409s
ROLLOUT_TIMEOUT = "RolloutTimeout"  # rollout_status gave up (timeout or ProgressDeadlineExceeded)
UNKNOWN_STEP = "UnknownStep"
NON_RETRYABLE_TYPES = (KUBE_REJECTED, ROLLOUT_TIMEOUT)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"

CONFLICT_ATTEMPTS = 5  # writes tried on 409 Conflict (re-reading before each) before giving up
LOG_PODS = 3  # pods read by a `logs` step with a selector
MAX_CHANGES = 25  # lines in a plan's `changes`
TRUNCATED = "… truncated"

_T = TypeVar("_T")
_KEYED_LISTS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
                "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort",
                "imagePullSecrets": "name"}
_SECRET_LEAF = re.compile(r"\.env\[[^\]]*\]\.value$")


class _Conflict(Exception):
    """A 409 on a write the caller retries after re-reading."""


@dataclass
class _NoLogs:
    reason: str  # the API server's message for a 400 on pods/log


# ---------------------------------------------------------------------------------------------- errors


def _status_of(exc: ApiException) -> tuple[str, str]:
    """(reason, message) from the API server's `Status` body, else the HTTP reason and the body text."""
    reason = str(exc.reason or "").strip()
    message = ""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            reason = str(parsed.get("reason") or reason)
            message = str(parsed.get("message") or "")
        else:
            message = body.strip()
    return reason, message


def _retry_after(exc: ApiException) -> str | None:
    headers = exc.headers
    if not headers:
        return None
    try:
        value = headers.get("Retry-After")
    except AttributeError:
        return None
    return None if value is None else str(value)


def classify_api_exception(exc: ApiException, what: str, secrets: list[str]) -> ApplicationError:
    """The `ApplicationError` for an API server answer. `what`: "patch deployments/x in ns"."""
    status = int(exc.status or 0)
    reason, message = _status_of(exc)
    said = f"{status} {reason}" if reason else str(status)
    if message and message != reason:
        said += f": {message}"
    said = redact(said, secrets)
    if status == 0:  # TLS failures and the like, raised by the client before any answer
        return ApplicationError(f"Kubernetes API could not be reached to {what}: {said}", type=KUBE_UNAVAILABLE)
    if status == 429:
        return ApplicationError(f"Kubernetes API rate limited the request to {what}: {said}",
                                type=KUBE_UNAVAILABLE, next_retry_delay=parse_retry_after(_retry_after(exc)))
    if status >= 500 or status == 408:
        return ApplicationError(f"Kubernetes API is unavailable to {what}: {said}", type=KUBE_UNAVAILABLE,
                                next_retry_delay=parse_retry_after(_retry_after(exc)))
    if status == 409:
        return ApplicationError(f"Kubernetes reported a conflict trying to {what}: {said}", type=KUBE_UNAVAILABLE,
                                next_retry_delay=parse_retry_after(_retry_after(exc)))
    hint = ""
    if status == 401:
        hint = " (the kubeconfig or service-account credentials were not accepted)"
    return ApplicationError(f"Kubernetes refused to {what}: {said}{hint}", type=KUBE_REJECTED, non_retryable=True)


def classify_transport_error(exc: BaseException, what: str, timeout: float) -> ApplicationError:
    """No answer: a timeout or a connection failure (retryable). Only the class name: no URL, no headers."""
    inner = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(inner, urllib3.exceptions.NewConnectionError):  # (a ConnectTimeoutError subclass)
        text = f"Kubernetes API could not be reached to {what}"
    elif isinstance(inner, urllib3.exceptions.TimeoutError | TimeoutError):
        text = f"Kubernetes API did not answer within {_fmt_duration(timeout)} to {what}"
    else:
        text = f"Kubernetes API could not be reached to {what}"
    name = type(inner).__name__ if inner is not None else type(exc).__name__
    return ApplicationError(f"{text}: {name}", type=KUBE_UNAVAILABLE)


def _rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type=KUBE_REJECTED, non_retryable=True)


# ------------------------------------------------------------------------------------------- helpers


def _fmt_duration(seconds: float) -> str:
    """600 → "10m", 90 → "1m30s", 3900 → "1h5m", 0.5 → "0.5s"."""
    if seconds < 60:
        return f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return out or "0s"


def _age(since: str | None, now: datetime | None = None) -> str:
    """kubectl's human duration for a timestamp ("45s", "5m12s", "3h", "4d2h", "12d", "1y")."""
    if not since:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    s = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _revision(obj: dict[str, Any]) -> int:
    return _int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION))


def _history(obj: dict[str, Any]) -> list[int]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_HISTORY) or ""
    return [int(x) for x in str(raw).split(",") if x.strip().isdigit()]


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    """The pod template without the controller's `pod-template-hash` label (what kubectl copies)."""
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def _same_template(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _prune(_strip_hash(a)) == _prune(_strip_hash(b))


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


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(item, list) and _KEYED_LISTS.get(key) and all(
                    isinstance(i, dict) and _KEYED_LISTS[key] in i for i in item):
                for element in item:
                    _flatten(element, f"{child}[{element[_KEYED_LISTS[key]]}]", out)
            else:
                _flatten(item, child, out)
    elif isinstance(value, list):
        out[path] = json.dumps(value, sort_keys=True)
    else:
        out[path] = value


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:119] + "…"


def template_changes(current: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Field-level differences between two pod templates: images first ("container web: image a → b"),
    containers added/removed, then every other leaf by path. Plain env values are not shown."""
    cur, new = _prune(_strip_hash(current)), _prune(_strip_hash(target))
    changes: list[str] = []
    cur_containers = {c.get("name"): c for c in (cur.get("spec") or {}).get("containers") or []}
    new_containers = {c.get("name"): c for c in (new.get("spec") or {}).get("containers") or []}
    whole: set[str] = set()
    for name in [*cur_containers, *[n for n in new_containers if n not in cur_containers]]:
        before, after = cur_containers.get(name), new_containers.get(name)
        if before is not None and after is not None:
            if before.get("image") != after.get("image"):
                changes.append(f"container {name}: image {_show(before.get('image'))} → {_show(after.get('image'))}")
        elif after is None:
            changes.append(f"container {name}: removed (image {_show(before and before.get('image'))})")
            whole.add(f"spec.containers[{name}]")
        else:
            changes.append(f"container {name}: added (image {_show(after.get('image'))})")
            whole.add(f"spec.containers[{name}]")
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(cur, "", a)
    _flatten(new, "", b)
    for path in sorted(set(a) | set(b)):
        if a.get(path) == b.get(path) or any(path.startswith(w + ".") for w in whole):
            continue
        if re.fullmatch(r"spec\.containers\[[^\]]*\]\.image", path):
            continue
        if _SECRET_LEAF.search(path):
            changes.append(f"spec.template.{path}: changed (value not shown)")
        else:
            changes.append(f"spec.template.{path}: {_show(a.get(path))} → {_show(b.get(path))}")
    if len(changes) > MAX_CHANGES:
        changes = [*changes[:MAX_CHANGES - 1], f"… and {len(changes) - MAX_CHANGES + 1} more changes"]
    return changes


def _fit(text: str, max_bytes: int) -> str:
    """At most `max_bytes` UTF-8 bytes of the start of `text` (no broken characters)."""
    data = text.encode()
    return text if len(data) <= max_bytes else data[:max(0, max_bytes)].decode(errors="ignore")


def _tail(text: str, max_bytes: int) -> tuple[str, bool]:
    """The end of `text` in at most `max_bytes` bytes, starting at a line boundary, after a marker."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    marker = f"{TRUNCATED}: earlier lines omitted\n".encode()
    room = max_bytes - len(marker)
    if room <= 0:
        return _fit(marker.decode(), max_bytes), True
    start = len(data) - room
    tail = data[start:]
    if data[start - 1:start] != b"\n":  # mid-line: drop the partial line when a whole one follows
        cut = tail.find(b"\n")
        if 0 <= cut < len(tail) - 1:
            tail = tail[cut + 1:]
    return marker.decode() + tail.decode(errors="ignore"), True


# ------------------------------------------------------------------------------------------- pods


def _pod_status(pod: dict[str, Any]) -> str:
    """kubectl get pods' STATUS column."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    spec = pod.get("spec") or {}
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, c in enumerate(init_statuses):
        state = c.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                                       else f"ExitCode:{term.get('exitCode')}"))
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or init_statuses)}"
        initializing = True
        break
    if not initializing:
        running = False
        for c in reversed(status.get("containerStatuses") or []):
            state = c.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            elif state.get("running") and c.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def _pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(c.get("ready") for c in statuses)


def _restarts(pod: dict[str, Any]) -> tuple[int, str | None]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = sum(_int(c.get("restartCount")) for c in statuses)
    last = max((str(((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt") or "")
                for c in statuses), default="")
    return total, last or None


def _pod_row(pod: dict[str, Any], now: datetime) -> list[str]:
    meta = pod.get("metadata") or {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or statuses)
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts, last = _restarts(pod)
    shown = f"{restarts} ({_age(last, now)} ago)" if restarts and last else str(restarts)
    return [str(meta.get("name", "")), f"{ready}/{total}", _pod_status(pod), shown,
            _age(meta.get("creationTimestamp"), now)]


def pods_table(pods: list[dict[str, Any]], max_bytes: int, now: datetime | None = None) -> tuple[str, bool]:
    """`kubectl get pods` as text, whole rows only, with a marker when rows were left out."""
    now = now or datetime.now(UTC)
    rows = [["NAME", "READY", "STATUS", "RESTARTS", "AGE"], *(_pod_row(p, now) for p in pods)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() + "\n" for r in rows]
    text = "".join(lines)
    if len(text.encode()) <= max_bytes:
        return text, False
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        marker = f"{TRUNCATED} ({len(lines) - i} more pods)\n"
        if used + len(line.encode()) + len(marker.encode()) > max_bytes:
            return _fit("".join(out) + marker, max_bytes), True
        out.append(line)
        used += len(line.encode())
    return _fit("".join(out), max_bytes), True  # pragma: no cover - the full text fitted above


def join_logs(sections: list[tuple[str, str]], max_bytes: int) -> tuple[str, bool]:
    """"==> name <==" sections in at most `max_bytes` bytes: the budget is shared fairly (a short log
    leaves its unused share to the others) and each cut log keeps its END, after a marker."""
    heads = [f"==> {name} <==\n" for name, _ in sections]
    bodies = [body if not body or body.endswith("\n") else body + "\n" for _, body in sections]
    fixed = sum(len(h.encode()) for h in heads) + max(0, len(sections) - 1)  # blank line between sections
    budget = max(0, max_bytes - fixed)
    alloc = [0] * len(sections)
    order = sorted(range(len(sections)), key=lambda i: len(bodies[i].encode()))
    remaining = budget
    for k, i in enumerate(order):
        alloc[i] = min(len(bodies[i].encode()), remaining // (len(order) - k))
        remaining -= alloc[i]
    truncated = False
    parts = []
    for i, head in enumerate(heads):
        body, cut = _tail(bodies[i], alloc[i])
        truncated = truncated or cut
        parts.append(head + body)
    text = "\n".join(parts)
    if len(text.encode()) > max_bytes:
        text, truncated = _fit(text, max_bytes), True
    return text, truncated


# ------------------------------------------------------------------------------------------- config


def load_api_client(kubeconfig: str | None, context: str | None) -> ApiClient:
    """An ApiClient from `kubeconfig` (else $KUBECONFIG, else ~/.kube/config) and `context`, or the
    in-cluster service account when no kubeconfig exists. Raises a non-retryable NOT_CONFIGURED error."""
    source = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    paths = [Path(p).expanduser() for p in source.split(os.pathsep) if p]
    if kubeconfig and not any(p.exists() for p in paths):
        raise not_configured(f"kubeconfig {kubeconfig} not found")
    if any(p.exists() for p in paths):
        try:
            return kubernetes.config.new_client_from_config(config_file=source, context=context or None,
                                                            persist_config=False)
        except (ConfigException, OSError, ValueError) as exc:
            raise not_configured(f"cannot load kubeconfig {source}"
                                 f"{f' (context {context})' if context else ''}: {redact(str(exc), [])}") from None
    if context:
        raise not_configured(f"Kubernetes context {context!r} is set but no kubeconfig was found ({source})")
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise not_configured(f"no kubeconfig ({source} does not exist) and not running in a cluster "
                             f"({exc}): set INCIDENTFLOW_KUBECONFIG or KUBECONFIG") from None
    return ApiClient(configuration)


# ------------------------------------------------------------------------------------------- steps


class KubeSteps:
    """The Kubernetes steps. Thread-safe; the ApiClient is created lazily, once, and reused."""

    def __init__(self, api_client_factory: Callable[[], ApiClient], request_timeout: float = 10.0,
                 poll_interval: float = 2.0) -> None:
        self._factory = api_client_factory
        self._api: ApiClient | None = None
        self._lock = threading.Lock()
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval

    @classmethod
    def from_settings(cls, kubeconfig: str | None, context: str | None, *, request_timeout: float = 10.0,
                      poll_interval: float = 2.0) -> KubeSteps:
        """From INCIDENTFLOW_KUBECONFIG / INCIDENTFLOW_KUBE_CONTEXT (nothing is read until the first call)."""
        return cls(lambda: load_api_client(kubeconfig, context), request_timeout, poll_interval)

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # ---------------------------------------------------------------------------------- plumbing
    def _client(self) -> ApiClient:
        with self._lock:
            if self._api is None:
                try:
                    self._api = self._factory()
                except ConfigException as exc:
                    raise not_configured(f"Kubernetes client not configured: {exc}") from None
            return self._api

    def _secrets(self) -> list[str]:
        api = self._api
        if api is None:
            return []
        keys = getattr(api.configuration, "api_key", None) or {}
        out: list[str] = []
        for value in keys.values():
            if value:
                out += [str(value), str(value).removeprefix("Bearer ").strip()]
        return out

    async def _call(self, what: str, fn: Callable[[ApiClient], _T], *, conflict: bool = False) -> _T:
        """Run `fn(api)` in a thread; API and transport errors become classified ApplicationErrors."""
        try:
            return await asyncio.to_thread(lambda: fn(self._client()))
        except ApiException as exc:
            if conflict and exc.status == 409:
                raise _Conflict(what) from None
            raise classify_api_exception(exc, what, self._secrets()) from None
        except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as exc:
            raise classify_transport_error(exc, what, self.request_timeout) from None

    async def _json(self, what: str, fn: Callable[[ApiClient], Any], *, conflict: bool = False) -> Any:
        """Like `_call` for a call made with `_preload_content=False`: the object exactly as the API server
        sent it (no round trip through the client's models, which would drop fields they do not know)."""
        def run(api: ApiClient) -> Any:
            response = fn(api)
            return json.loads(response.data or b"null")
        return await self._call(what, run, conflict=conflict)

    def _kw(self) -> dict[str, Any]:
        return {"_request_timeout": self.request_timeout, "_preload_content": False}

    def _replace(self, namespace: str, name: str, body: dict[str, Any], api: ApiClient) -> Any:
        return AppsV1Api(api).replace_namespaced_deployment(name, namespace, cast(Any, body), **self._kw())

    async def _deployment(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self._json(
            f"get deployments/{name} in {namespace}",
            lambda api: AppsV1Api(api).read_namespaced_deployment(name, namespace, **self._kw()))
        return obj

    async def _history(self, namespace: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The Deployment and the ReplicaSets it controls, lowest revision first."""
        dep = await self._deployment(namespace, name)
        selector = selector_string((dep.get("spec") or {}).get("selector"))
        listed = await self._json(
            f"list replicasets in {namespace}",
            lambda api: AppsV1Api(api).list_namespaced_replica_set(namespace, label_selector=selector,
                                                                   **self._kw()))
        uid = dep["metadata"].get("uid")
        owned = [rs for rs in listed.get("items") or []
                 if any(o.get("uid") == uid and o.get("controller")
                        for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]
        owned.sort(key=lambda rs: (_revision(rs), rs["metadata"].get("name", "")))
        return dep, owned

    @staticmethod
    def _current_revision(dep: dict[str, Any], owned: list[dict[str, Any]]) -> int:
        current = _revision(dep)
        if current:
            return current
        matching = [rs for rs in owned if _same_template(rs["spec"]["template"], dep["spec"]["template"])]
        return _revision(matching[-1]) if matching else max((_revision(rs) for rs in owned), default=0)

    @staticmethod
    def _paused(dep: dict[str, Any], ref: str, action: str) -> None:
        if (dep.get("spec") or {}).get("paused"):
            raise _rejected(f"cannot {action} {ref}: the deployment is paused (kubectl rollout resume it first)")

    # ---------------------------------------------------------------------------------- rollback
    async def plan_rollout_undo(self, namespace: str, deployment: str, to_revision: int | None) -> StepPlan:
        """Decide the target revision (once): `to_revision`, else the highest revision below the current.

        data: {"target_revision", "from_revision", "target_replicaset"}; noop when the Deployment already
        has the target's pod template."""
        ref = f"{namespace}/{deployment}"
        dep, owned = await self._history(namespace, deployment)
        current = self._current_revision(dep, owned)
        available = ", ".join(str(_revision(rs)) for rs in owned) or "none"
        if to_revision is not None:
            target = next((rs for rs in owned if _revision(rs) == to_revision), None) or next(
                (rs for rs in owned if to_revision in _history(rs)), None)
            if target is None:
                raise _rejected(f"cannot roll back {ref}: revision {to_revision} not found; available: {available}")
        else:
            older = [rs for rs in owned if 0 < _revision(rs) < current]
            if not older:
                raise _rejected(f"cannot roll back {ref}: no previous revision to roll back to "
                                f"(current revision {current}; available: {available})")
            target = older[-1]
        target_revision = to_revision if to_revision is not None else _revision(target)
        data = {"target_revision": target_revision, "from_revision": current,
                "target_replicaset": target["metadata"]["name"]}
        if _same_template(dep["spec"]["template"], target["spec"]["template"]):
            return StepPlan(summary=f"{ref} already runs the template of revision {target_revision} "
                                    "(nothing to roll back)", data=data, noop=True)
        self._paused(dep, ref, "roll back")
        return StepPlan(summary=f"Roll back {ref} from revision {current} to revision {target_revision}",
                        changes=template_changes(dep["spec"]["template"], target["spec"]["template"]),
                        data=data)

    async def rollout_undo(self, namespace: str, deployment: str, target_revision: int,
                           from_revision: int | None = None) -> StepOutcome:
        """Copy the pod template of `target_revision` (found by revision or revision history) into the
        Deployment with a resourceVersion-checked PUT; nothing is written when it is already there.

        data: {"changed", "target_revision", "from_revision", "revision", "replicaset"}."""
        ref = f"{namespace}/{deployment}"
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            dep, owned = await self._history(namespace, deployment)
            target = next((rs for rs in owned if _revision(rs) == target_revision), None) or next(
                (rs for rs in owned if target_revision in _history(rs)), None)
            if target is None:
                available = ", ".join(str(_revision(rs)) for rs in owned) or "none"
                raise _rejected(f"cannot roll back {ref}: revision {target_revision} not found; "
                                f"available: {available}")
            current = self._current_revision(dep, owned)
            data: dict[str, Any] = {"target_revision": target_revision, "from_revision": from_revision,
                                    "replicaset": target["metadata"]["name"]}
            if _same_template(dep["spec"]["template"], target["spec"]["template"]):
                return StepOutcome(summary=f"{ref} already at the template of revision {target_revision} "
                                           f"(nothing to do)",
                                   data={**data, "changed": False, "revision": current})
            self._paused(dep, ref, "roll back")
            changes = template_changes(dep["spec"]["template"], target["spec"]["template"])
            body = copy.deepcopy(dep)
            body.pop("status", None)
            body["spec"]["template"] = _strip_hash(target["spec"]["template"])
            try:
                written = await self._json(
                    f"update deployments/{deployment} in {namespace}",
                    partial(self._replace, namespace, deployment, body),
                    conflict=True)
            except _Conflict:
                await asyncio.sleep(min(0.05 * attempt, 0.5))
                continue
            revision = _revision(written) or None
            drift = ("" if from_revision is None or current == from_revision
                     else f"; it was at revision {current}, not {from_revision} as planned")
            now = f" (now revision {revision})" if revision else ""
            return StepOutcome(
                summary=f"Rolled back {ref} from revision {current} to the template of revision "
                        f"{target_revision}{now}{drift}",
                output="\n".join(changes),
                data={**data, "changed": True, "revision": revision, "previous_revision": current})
        raise ApplicationError(f"cannot roll back {ref}: the deployment kept changing under us "
                               f"(409 Conflict {CONFLICT_ATTEMPTS} times)", type=KUBE_UNAVAILABLE)

    # ---------------------------------------------------------------------------------- scale
    async def _replicas(self, namespace: str, deployment: str) -> int:
        scale = await self._json(
            f"get deployments/{deployment}/scale in {namespace}",
            lambda api: AppsV1Api(api).read_namespaced_deployment_scale(deployment, namespace, **self._kw()))
        return _int((scale.get("spec") or {}).get("replicas"))

    async def plan_scale(self, namespace: str, deployment: str, replicas: int | None, factor: float | None,
                         max_replicas: int) -> StepPlan:
        """The absolute target: `replicas`, or ceil(current × factor) (at least current+1 when factor > 1,
        never below current when factor ≥ 1), capped at `max_replicas`.

        data: {"previous_replicas", "replicas", "capped"}; noop when already there."""
        ref = f"{namespace}/{deployment}"
        if replicas is None and factor is None:
            raise _rejected(f"cannot scale {ref}: set replicas or factor")
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
            raise _rejected(f"cannot scale {ref} to {target} replicas")
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
        value = (meta.get("annotations") or {}).get(RESTARTED_AT)
        return None if value is None else str(value)

    async def plan_restart(self, namespace: str, deployment: str, restarted_at: str) -> StepPlan:
        """`kubectl rollout restart`: set the pod template's restartedAt annotation. An empty
        `restarted_at` is decided here (UTC now, RFC 3339) — apply with `data["restarted_at"]`.

        data: {"restarted_at", "previous_restarted_at", "replicas"}; noop when already that value."""
        ref = f"{namespace}/{deployment}"
        value = restarted_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        dep = await self._deployment(namespace, deployment)
        previous = self._restarted_at(dep)
        replicas = _int((dep.get("spec") or {}).get("replicas"))
        data = {"restarted_at": value, "previous_restarted_at": previous, "replicas": replicas}
        if previous == value:
            return StepPlan(summary=f"{ref} was already restarted at {value} (nothing to do)", data=data,
                            noop=True)
        self._paused(dep, ref, "restart")
        return StepPlan(summary=f"Restart {ref} (rolling restart of {replicas} pods)",
                        changes=[f'spec.template.metadata.annotations["{RESTARTED_AT}"]: '
                                 f"{previous or '(unset)'} → {value}"],
                        data=data)

    async def restart(self, namespace: str, deployment: str, restarted_at: str) -> StepOutcome:
        """Patch restartedAt to `restarted_at` unless it already is. data: {"changed", "restarted_at",
        "revision"}."""
        ref = f"{namespace}/{deployment}"
        if not restarted_at:
            raise _rejected(f"cannot restart {ref}: restarted_at must be decided by the plan")
        dep = await self._deployment(namespace, deployment)
        if self._restarted_at(dep) == restarted_at:
            return StepOutcome(summary=f"{ref} was already restarted at {restarted_at} (nothing to do)",
                               data={"changed": False, "restarted_at": restarted_at,
                                     "revision": _revision(dep) or None})
        self._paused(dep, ref, "restart")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}}
        written = await self._json(
            f"patch deployments/{deployment} in {namespace}",
            lambda api: AppsV1Api(api).patch_namespaced_deployment(deployment, namespace, patch, **self._kw()))
        revision = _revision(written) or None
        now = f" (now revision {revision})" if revision else ""
        return StepOutcome(summary=f"Restarted {ref}: new pods roll out{now}",
                           data={"changed": True, "restarted_at": restarted_at, "revision": revision})

    # ---------------------------------------------------------------------------------- rollout status
    @staticmethod
    def _progress(dep: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        """(complete, "2 of 6 updated, 1 available", counts), like `kubectl rollout status`."""
        meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
        want = _int(spec.get("replicas")) if spec.get("replicas") is not None else 1
        updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
        total, unavailable = _int(status.get("replicas")), _int(status.get("unavailableReplicas"))
        observed = _int(status.get("observedGeneration")) >= _int(meta.get("generation"))
        counts = {"replicas": want, "updated_replicas": updated, "available_replicas": available,
                  "revision": _revision(dep) or None}
        text = f"{updated} of {want} updated, {available} available"
        if total > updated:
            text += f", {total - updated} old pending termination"
        if not observed:
            text += " (waiting for the spec update to be observed)"
        complete = (observed and updated == want and available == want and total == updated
                    and unavailable == 0)
        return complete, text, counts

    async def rollout_status(self, namespace: str, deployment: str, timeout_s: float,
                             heartbeat: Callable[[str], None] = lambda _: None) -> StepOutcome:
        """Poll every `poll_interval` until the rollout completes; `heartbeat(progress)` on every poll.
        ProgressDeadlineExceeded or `timeout_s` → non-retryable ROLLOUT_TIMEOUT. A poll the API server
        could not answer (5xx, timeout) is retried until the deadline. data: {"revision", "replicas",
        "updated_replicas", "available_replicas", "waited_s", "polls"}."""
        ref = f"{namespace}/{deployment}"
        started = time.monotonic()
        deadline = started + max(0.0, timeout_s)
        polls, text, unavailable = 0, "", None
        while True:
            polls += 1
            try:
                dep = await self._deployment(namespace, deployment)
            except ApplicationError as err:
                if err.type != KUBE_UNAVAILABLE:
                    raise
                unavailable = err
                heartbeat(f"rollout of {ref}: {text or 'no status yet'} (last poll failed: {err.message})")
            else:
                unavailable = None
                complete, text, counts = self._progress(dep)
                heartbeat(f"rollout of {ref}: {text}")
                waited = round(time.monotonic() - started, 3)
                if complete:
                    rev = f" (revision {counts['revision']})" if counts["revision"] else ""
                    return StepOutcome(
                        summary=f"Rollout of {ref} complete{rev}: {counts['updated_replicas']} of "
                                f"{counts['replicas']} updated and available",
                        data={**counts, "waited_s": waited, "polls": polls})
                meta, status = dep.get("metadata") or {}, dep.get("status") or {}
                if _int(status.get("observedGeneration")) >= _int(meta.get("generation")):
                    for cond in status.get("conditions") or []:
                        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                            raise ApplicationError(
                                f"rollout of {ref} exceeded its progress deadline: {cond.get('message') or ''} "
                                f"({text})", type=ROLLOUT_TIMEOUT, non_retryable=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if unavailable is not None and not text:
                    raise unavailable
                failed = f" (last poll failed: {unavailable.message})" if unavailable is not None else ""
                raise ApplicationError(f"rollout of {ref} not complete after {_fmt_duration(timeout_s)}: "
                                       f"{text}{failed}", type=ROLLOUT_TIMEOUT, non_retryable=True)
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
                               output=_fit(f"No resources found in {namespace} namespace.\n", max_bytes),
                               data={"pods": 0, "ready": 0, "statuses": {}, "restarts": 0, "not_ready": [],
                                     "truncated": False})
        ready = [p for p in pods if _pod_ready(p)]
        statuses = Counter(_pod_status(p) for p in pods)
        not_ready = [p["metadata"]["name"] for p in pods if not _pod_ready(p)]
        table, truncated = pods_table(pods, max_bytes)
        trouble = ", ".join(f"{n} {s}" for s, n in statuses.most_common() if s != "Running")
        noun = "pod" if len(pods) == 1 else "pods"
        return StepOutcome(
            summary=f"{len(pods)} {noun} ({len(ready)} ready) for {selector} in {namespace}"
                    + (f": {trouble}" if trouble else ""),
            output=table,
            data={"pods": len(pods), "ready": len(ready), "statuses": dict(statuses),
                  "restarts": sum(_restarts(p)[0] for p in pods), "not_ready": not_ready[:10],
                  "truncated": truncated})

    async def logs(self, namespace: str, pod: str | None, selector: str | None, container: str | None,
                   tail_lines: int, max_bytes: int) -> StepOutcome:
        """The last `tail_lines` lines of `pod`, or of up to 3 pods matching `selector` (not-ready and
        restarting pods first), as "==> pod <==" sections in at most `max_bytes` bytes (each log keeps its
        end). A pod whose container cannot give logs (400: waiting to start, …) gets a note instead.
        data: {"pods" (names read), "matched", "truncated", "bytes"}."""
        if pod is None and not selector:
            raise _rejected(f"cannot read logs in {namespace}: give a pod or a selector")
        if pod is not None:
            names, matched = [pod], 1
        else:
            assert selector is not None
            listed = await self._list_pods(namespace, selector)
            listed.sort(key=lambda p: (_pod_ready(p), -_restarts(p)[0], p["metadata"]["name"]))
            names, matched = [p["metadata"]["name"] for p in listed[:LOG_PODS]], len(listed)
        if not names:
            return StepOutcome(summary=f"no pods for {selector} in {namespace} (no logs)",
                               data={"pods": [], "matched": 0, "truncated": False, "bytes": 0})
        kwargs: dict[str, Any] = {"tail_lines": tail_lines, "_request_timeout": self.request_timeout}
        if container:
            kwargs["container"] = container
        def read(api: ApiClient, name: str) -> str | _NoLogs:
            try:
                return str(CoreV1Api(api).read_namespaced_pod_log(name, namespace, **kwargs) or "")
            except ApiException as exc:
                if exc.status != 400:  # "waiting to start", "a container name must be specified", …
                    raise
                return _NoLogs(_status_of(exc)[1] or "400 Bad Request")

        sections: list[tuple[str, str]] = []
        notes = 0
        for name in names:
            got = await self._call(f"get pods/{name}/log in {namespace}", partial(read, name=name))
            if isinstance(got, _NoLogs):
                notes += 1
                got = f"(no logs: {redact(got.reason, self._secrets())})\n"
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

    async def plan_readonly(self, kind: str, args: dict[str, Any]) -> StepPlan:
        """A dry run of rollout_status/pods/logs: what would be read; no API call. data: {"reads": [...]}
        (the API reads the step makes); noop is False (the step must still run)."""
        short = kind.removeprefix("kubernetes.")
        ns = args.get("namespace") or "default"
        if short == "rollout_status":
            dep = args.get("deployment")
            timeout = float(args.get("timeout_s") or 600)
            return StepPlan(summary=f"Wait up to {_fmt_duration(timeout)} for the rollout of {ns}/{dep} to "
                                    f"complete (reading the deployment every {_fmt_duration(self.poll_interval)})",
                            data={"reads": [f"get deployments/{dep} in {ns}"]})
        if short == "pods":
            sel = args.get("selector")
            return StepPlan(summary=f"List the pods for {sel} in {ns} (ready, status, restarts, age)",
                            data={"reads": [f"list pods in {ns} ({sel})"]})
        if short == "logs":
            pod, sel, cont = args.get("pod"), args.get("selector"), args.get("container")
            tail = int(args.get("tail_lines") or 100)
            limit = int(args.get("max_bytes") or 8000)
            where = f"pod {pod}" if pod else f"up to {LOG_PODS} pods for {sel}"
            reads = ([f"get pods/{pod}/log in {ns}"] if pod
                     else [f"list pods in {ns} ({sel})", f"get pods/<pod>/log in {ns} (up to {LOG_PODS})"])
            return StepPlan(summary=f"Read the last {tail} log lines of {where} in {ns}"
                                    f"{f' (container {cont})' if cont else ''}, at most {limit} bytes",
                            data={"reads": reads})
        raise ApplicationError(f"{kind!r} is not a read-only Kubernetes step", type=UNKNOWN_STEP,
                               non_retryable=True)
