"""A fake Kubernetes API server for the official `kubernetes` client: real HTTP on a loopback port.

Like the PagerDuty fake it runs a stdlib `ThreadingHTTPServer` in a daemon thread (sync code, async tests
and Temporal workers in the same process all reach it), guards its state with a lock, records every
request and injects faults. It speaks the real wire format: JSON objects as the apiserver returns them,
errors as `Status` objects (so `ApiException.status`/`.body` are what a cluster would give), the three
PATCH flavours, resourceVersion preconditions, and a tiny deployment controller (ReplicaSet revisions,
pods, rollout status) so rollback, scale, restart and "wait for rollout" run end to end.

    with FakeKubernetes() as k8s:
        k8s.add_deployment("shop", "checkout", "registry/checkout:v3", replicas=3, revisions=3)
        api = k8s.api_client()                      # or k8s.write_kubeconfig(path) + new_client_from_config
        apps = kubernetes.client.AppsV1Api(api)
        apps.patch_namespaced_deployment_scale("checkout", "shop", {"spec": {"replicas": 5}})
        k8s.rollout_delay = 0.3                     # status lags: a wait-for-rollout loop polls
        k8s.fail_next(1, 503, method="PATCH")       # the next PATCH answers 503 without applying
        assert k8s.deployment("shop", "checkout")["status"]["readyReplicas"] == 5
        assert [r.method for r in k8s.writes()] == ["PATCH"]

Controller model (documented because tests depend on it):
- A Deployment owns ReplicaSets (ownerReferences); the one with the highest
  `deployment.kubernetes.io/revision` is active. When spec.template changes (PUT, any PATCH flavour), an
  RS whose template equals the new one (ignoring `pod-template-hash`) is reused and gets revision max+1
  (its old number goes to `deployment.kubernetes.io/revision-history`), else a new RS `<deploy>-<hash>`
  is created with revision max+1. metadata.generation bumps on every spec change; status.observedGeneration
  follows at once.
- Pods `<rs>-<5 chars>` belong to RSs. Old pods are removed once the active RS is fully available; pods of a
  superseded RS that were not ready are removed at once. `rollout_delay` seconds: new pods appear (ready)
  and scaled-down pods vanish only after the delay, so status.updatedReplicas/availableReplicas lag.
  `stall_rollouts = True`: new pods stay Pending (ContainerCreating) and scaled-down pods stay, until it is
  set back to False. `break_image(image)`: pods running that image crash-loop (or ImagePullBackOff) and
  never become ready, so the rollout is stuck while the old pods keep serving; a rollback then completes.
- Status ints follow the API's `omitempty`: a Deployment scaled to 0 has no `status.replicas`,
  `readyReplicas` etc. (the python client gives None). `resourceVersion` changes only on writes
  (the fake has no controller writes of status). `spec.paused` holds template rollouts back.
- `add_deployment` and its history are always immediate (setup ignores rollout_delay/stall_rollouts).

RBAC mode (optional): `bind_token(rules)` / `bind_service_account(manifests, ns, name)` give a second token
that may do only what its rules allow (tests/fakes/kube_rbac.py); anything else answers 403 Forbidden with
the real Status message (`deployments.apps "x" is forbidden: User "system:serviceaccount:ns:sa" cannot patch
resource "deployments/scale" in API group "apps" in the namespace "shop"`). The fake's own `token` stays
unrestricted, so tests that never bind a token see no change. Discovery is open to every known token.

    token = k8s.bind_service_account(role_yaml, "incidentflow", "incidentflow-worker")
    k8s.write_kubeconfig(path, token=token)                 # a client limited to those rules
    k8s.access(k8s.requests[-1])   # ("patch", "apps", "deployments/scale", "shop", "checkout")

Endpoints (a known bearer token required everywhere, else 401; then `forbid` rules and the token's RBAC
rules, 403; then 404/405):
    GET  /version, /api, /api/v1, /apis, /apis/apps, /apis/apps/v1          discovery
    GET  /apis/apps/v1[/namespaces/{ns}]/deployments                         ?labelSelector, fieldSelector
    POST /apis/apps/v1/namespaces/{ns}/deployments                           201; 409 AlreadyExists
    GET|PUT|PATCH .../deployments/{name}   GET .../deployments/{name}/status
    GET|PUT|PATCH .../deployments/{name}/scale                               autoscaling/v1 Scale
    GET  /apis/apps/v1[/namespaces/{ns}]/replicasets[/{name}]
    GET  /api/v1[/namespaces/{ns}]/pods[/{name}[/status]]   DELETE .../pods/{name} (replaced by its RS)
    GET  /api/v1/namespaces/{ns}/pods/{name}/log                            ?container, tailLines, previous,
                                                                             timestamps, limitBytes
PUT: a stale metadata.resourceVersion -> 409 Conflict; none -> unconditional, like the real apiserver
(`require_resource_version = True` makes that a 422). PATCH: strategic-merge (default of the python
client for dict bodies), merge-patch, json-patch (list bodies); a resourceVersion in the patch is a
precondition. `?dryRun=All` validates without applying. `watch=true` -> 400 (not supported).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import re
import secrets
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.fakes.kube_rbac import Grant, RbacRule, service_account_rules
from tests.fakes.threaded import ThreadedServer

# --------------------------------------------------------------------------------------------------------
# Shared HTTP plumbing (also used by tests/fakes/prometheus.py and tests/fakes/flags.py)
# --------------------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str  # URL-decoded path, without the query string
    query: dict[str, str]  # last value per name
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    status: int = 0  # what the fake answered
    at: float = field(default_factory=time.monotonic)

    @property
    def body(self) -> Any:
        """The JSON body, or None when empty or not JSON."""
        try:
            return json.loads(self.raw) if self.raw else None
        except ValueError:
            return None

    @property
    def json(self) -> Any:
        return self.body

    @property
    def form(self) -> dict[str, str]:
        """An `application/x-www-form-urlencoded` body, last value per name."""
        pairs = parse_qs(self.raw.decode(errors="replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in pairs.items()}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class Reply:
    status: int
    body: Any  # dict/list -> JSON; str/bytes -> sent as is
    content_type: str | None = None  # default: application/json, or text/plain for str bodies
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


@dataclass
class _Rule:
    remaining: int
    path_contains: str | None
    method: str | None
    status: int = 0
    reason: str | None = None
    message: str | None = None
    retry_after: str | None = None
    seconds: float = 0.0

    def matches(self, req: RecordedRequest) -> bool:
        return ((self.method is None or self.method.upper() == req.method)
                and (self.path_contains is None or self.path_contains in req.path))


class HttpFake(ThreadedServer):
    """Thread, recording, fault and delay injection shared by the fakes. Subclasses implement `handle`
    (called under the lock) and `fault_reply` (the body of an injected failure)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def fail_next(self, n: int = 1, status: int = 500, reason: str | None = None, message: str | None = None,
                  *, path_contains: str | None = None, method: str | None = None,
                  retry_after: str | int | None = None) -> None:
        """The next `n` matching requests get `status` (with Retry-After when given) and are not applied.
        Checked before auth and validation; the first matching rule (in the order added) is consumed.
        Note: the kubernetes client itself retries GETs answered 429/5xx *with* a Retry-After header."""
        with self._lock:
            self._faults.append(_Rule(n, path_contains, method, status, reason, message,
                                      None if retry_after is None else str(retry_after)))

    def delay_next(self, seconds: float, n: int = 1, *, path_contains: str | None = None,
                   method: str | None = None) -> None:
        """The next `n` matching requests wait `seconds` before being handled (the request still applies
        afterwards, like a slow apiserver whose client timed out)."""
        with self._lock:
            self._delays.append(_Rule(n, path_contains, method, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def writes(self) -> list[RecordedRequest]:
        """Successful mutating requests (POST/PUT/PATCH/DELETE answered 2xx), in order."""
        with self._lock:
            return [r for r in self.requests
                    if r.method in ("POST", "PUT", "PATCH", "DELETE") and 200 <= r.status < 300]

    def stop(self) -> None:
        """Idempotent; wakes delayed requests."""
        self._stopping.set()
        super().stop()

    # hooks -----------------------------------------------------------------------------------------
    def handle(self, req: RecordedRequest) -> Reply:
        raise NotImplementedError

    def fault_reply(self, req: RecordedRequest, status: int, reason: str | None,
                    message: str | None) -> Reply:
        return Reply(status, {"error": message or reason or "injected failure"})

    # internals -------------------------------------------------------------------------------------
    @staticmethod
    def _take(rules: list[_Rule], req: RecordedRequest) -> _Rule | None:
        for rule in rules:
            if rule.matches(req):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
                return rule
        return None

    def _dispatch(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        req = RecordedRequest(method, unquote(parts.path), query, headers, raw)
        with self._lock:
            delay = self._take(self._delays, req)
        if delay is not None:
            self._stopping.wait(delay.seconds)
        with self._lock:
            fault = self._take(self._faults, req)
            if fault is not None:
                reply = self.fault_reply(req, fault.status, fault.reason, fault.message)
                if fault.retry_after is not None:
                    reply.headers["Retry-After"] = fault.retry_after
            else:
                try:
                    reply = self.handle(req)
                except Exception as exc:  # a bug in the fake: answer 500 and keep serving
                    reply = self.fault_reply(req, 500, "InternalError", f"fake crashed: {exc!r}")
            req.status = reply.status
            req.at = time.monotonic()
            self.requests.append(req)
        return reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK cost 40 ms each
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server._dispatch(self.command, self.path, headers, raw)
                data, content_type = reply.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; `requests` holds everything

        return Handler


# --------------------------------------------------------------------------------------------------------
# Kubernetes helpers: Status objects, selectors, patches, defaults
# --------------------------------------------------------------------------------------------------------

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
HASH_LABEL = "pod-template-hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s rand.SafeEncodeString alphabet
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
            422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}
_MESSAGES = {429: "Too many requests, please try again later.",
             500: "Internal error occurred: injected failure",
             503: "the server is currently unable to handle the request",
             504: "Timeout: request did not complete within requested timeout"}
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json")
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
               "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
               "ports": "containerPort", "imagePullSecrets": "name", "conditions": "type",
               "hostAliases": "ip", "ownerReferences": "uid"}


class ApiError(Exception):
    """Raised inside the fake; becomes a Status reply."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details

    def reply(self) -> Reply:
        return Reply(self.code, status_object(self.code, self.message, self.reason, self.details))


def status_object(code: int, message: str, reason: str | None = None,
                  details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `Status` (kind Status, apiVersion v1) as the apiserver sends for errors."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason or _REASONS.get(code, "Unknown")}
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


class _PatchError(Exception):
    pass


def _strategic_merge(orig: Any, patch: Any) -> Any:
    """Strategic merge patch: maps merge recursively (null deletes), lists are replaced except the
    well-known keyed lists (containers/env/volumes by name, ...) which merge by key; `$patch` directives
    (replace/delete) are honoured, `$setElementOrder/...`, `$retainKeys` are ignored."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return None
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and key in _MERGE_KEYS:
            result[key] = _merge_keyed_list(result.get(key), value, _MERGE_KEYS[key])
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_keyed_list(orig: Any, patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" and len(i) == 1 for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    out = copy.deepcopy(orig) if isinstance(orig, list) else []
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(copy.deepcopy(item))
            continue
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is not None:
            out[idx] = _strategic_merge(out[idx], item)
        else:
            out.append(_strategic_merge({}, item))
    return out


def _merge_patch(orig: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError(f"invalid JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test, move, copy."""
    if not isinstance(ops, list):
        raise _PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)

    def parent(tokens: list[str], op: str, path: str) -> tuple[Any, str]:
        node = doc
        for t in tokens[:-1]:
            if isinstance(node, dict) and t in node:
                node = node[t]
            elif isinstance(node, list) and t.isdigit() and int(t) < len(node):
                node = node[int(t)]
            else:
                raise _PatchError(f"jsonpatch {op} operation does not apply: doc is missing path: \"{path}\"")
        return node, tokens[-1]

    def get(path: str, op: str) -> Any:
        node = doc
        for t in _pointer(path):
            if isinstance(node, dict) and t in node:
                node = node[t]
            elif isinstance(node, list) and t.isdigit() and int(t) < len(node):
                node = node[int(t)]
            else:
                raise _PatchError(f"jsonpatch {op} operation does not apply: doc is missing key: {path}")
        return node

    def remove(path: str, op: str) -> Any:
        tokens = _pointer(path)
        if not tokens:
            raise _PatchError("jsonpatch remove of the whole document")
        node, last = parent(tokens, op, path)
        if isinstance(node, dict) and last in node:
            return node.pop(last)
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            return node.pop(int(last))
        raise _PatchError(f"jsonpatch {op} operation does not apply: doc is missing key: {path}")

    def add(path: str, value: Any, op: str, replace: bool = False) -> None:
        nonlocal doc
        tokens = _pointer(path)
        if not tokens:
            doc = value
            return
        node, last = parent(tokens, op, path)
        if isinstance(node, dict):
            if replace and last not in node:
                raise _PatchError(f"jsonpatch replace operation does not apply: doc is missing key: {path}")
            node[last] = value
        elif isinstance(node, list):
            if last == "-" and not replace:
                node.append(value)
            elif last.isdigit() and int(last) <= len(node) - (1 if replace else 0):
                if replace:
                    node[int(last)] = value
                else:
                    node.insert(int(last), value)
            else:
                raise _PatchError(f"jsonpatch {op} operation does not apply: index out of range: {path}")
        else:
            raise _PatchError(f"jsonpatch {op} operation does not apply: doc is missing path: \"{path}\"")

    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _PatchError("json patch operations need \"op\" and \"path\"")
        kind, path = op["op"], op["path"]
        if kind == "add":
            add(path, copy.deepcopy(op.get("value")), kind)
        elif kind == "replace":
            add(path, copy.deepcopy(op.get("value")), kind, replace=True)
        elif kind == "remove":
            remove(path, kind)
        elif kind == "test":
            if get(path, kind) != op.get("value"):
                raise _PatchError(f"testing value {path} failed: test failed")
        elif kind == "move":
            add(path, remove(op.get("from", ""), kind), kind)
        elif kind == "copy":
            add(path, copy.deepcopy(get(op.get("from", ""), kind)), kind)
        else:
            raise _PatchError(f"Unexpected kind: {kind}")
    return doc


_TERM_SET = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_TERM_EQ = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)\s*$")
_TERM_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")


def parse_selector(selector: str | dict[str, str] | None) -> Callable[[dict[str, str]], bool]:
    """A label selector (`app=checkout,tier!=db`, `env in (a,b)`, `!canary`, `app`) or a dict, as a
    predicate on a labels dict."""
    if not selector:
        return lambda labels: True
    if isinstance(selector, dict):
        wanted = dict(selector)
        return lambda labels: all(labels.get(k) == v for k, v in wanted.items())
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    reqs: list[tuple[str, str, frozenset[str]]] = []  # key, op (in/notin/exists/!exists), values
    for term in terms:
        if m := _TERM_SET.match(term):
            values = frozenset(x.strip() for x in m.group(3).split(",") if x.strip())
            reqs.append((m.group(1), m.group(2), values))
        elif m := _TERM_EQ.match(term):
            reqs.append((m.group(1), "notin" if m.group(2) == "!=" else "in", frozenset([m.group(3)])))
        elif m := _TERM_EXISTS.match(term):
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", frozenset()))
        else:
            raise ApiError(400, f"unable to parse requirement: found '{term.strip()}', expected: "
                                "identifier, '=', '==', '!=', 'in', 'notin'")

    def matches(labels: dict[str, str]) -> bool:
        for key, op, values in reqs:
            ok = {"in": key in labels and labels[key] in values, "notin": labels.get(key) not in values,
                  "exists": key in labels, "!exists": key not in labels}[op]
            if not ok:
                return False
        return True

    return matches


def _selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _ts(wall: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if wall is None else wall))


def _prune(value: Any) -> Any:
    """Drop None and empty maps/lists, for comparing templates as the apiserver would store them."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _default_template(template: dict[str, Any]) -> dict[str, Any]:
    """The pod-template defaults the apiserver fills in."""
    template.setdefault("metadata", {})
    spec = template.setdefault("spec", {})
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            image = str(c.get("image") or "")
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest and "@" not in tag else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    return template


def _norm_template(template: Any) -> str:
    t = _default_template(copy.deepcopy(template) if isinstance(template, dict) else {})
    labels = t.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return json.dumps(_prune(t), sort_keys=True)


def _template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(_norm_template(template).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def _go_type(value: Any) -> str:
    return {"str": "string", "float": "number", "bool": "bool", "list": "array", "dict": "object",
            "NoneType": "null"}.get(type(value).__name__, type(value).__name__)


def _percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


# --------------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Deployment:
    obj: dict[str, Any]  # apiVersion, kind, metadata, spec (status is computed)
    rollout_started: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, str]:
        return self.obj["metadata"]["namespace"], self.obj["metadata"]["name"]

    @property
    def uid(self) -> str:
        return self.obj["metadata"]["uid"]


@dataclass
class _ReplicaSet:
    obj: dict[str, Any]
    owner_uid: str

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def revision(self) -> int:
        return int(self.obj["metadata"]["annotations"].get(REVISION, "0"))


@dataclass
class _Pod:
    obj: dict[str, Any]  # apiVersion, kind, metadata, spec (status is computed)
    rs: str  # owning ReplicaSet name
    appear_at: float
    gone_at: float | None = None  # math.inf: held by stall_rollouts
    stalled: bool = False
    started_wall: float = field(default_factory=time.time)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    def visible(self, now: float) -> bool:
        return self.appear_at <= now and (self.gone_at is None or now < self.gone_at)


@dataclass
class _Breakage:
    reason: str
    message: str | None
    restarts: int
    exit_code: int
    last_reason: str


_DEFAULT_LOG = """\
{ts} INFO  starting {container} image={image}
{ts} INFO  loaded configuration from /etc/{container}/config.yaml
{ts} INFO  connected to database pool size=10
{ts} INFO  listening on :8080
{ts} INFO  ready to serve traffic pod={pod}
{ts} INFO  GET /healthz 200 1ms
{ts} INFO  GET /healthz 200 1ms
{ts} INFO  GET /healthz 200 1ms
"""
_CRASH_LOG = """\
{ts} INFO  starting {container} image={image}
{ts} ERROR failed to initialise: {reason}
{ts} FATAL exiting with code {exit_code}
"""


class FakeKubernetes(HttpFake):
    """Kubernetes apiserver subset: apps/v1 deployments (+scale, +status), replicasets; v1 pods (+log);
    discovery and /version. Bearer-token auth; `forbid` for RBAC denials."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
                 user: str = "incidentflow", version: str = "v1.30.2", seed: int | None = None) -> None:
        super().__init__(host, port)
        self.token = token or secrets.token_urlsafe(24)
        self.user = user
        self.version = version
        self.rollout_delay = 0.0
        self.stall_rollouts = False
        self.progress_deadline: float | None = None  # overrides spec.progressDeadlineSeconds when set
        self.require_resource_version = False  # True: PUT without metadata.resourceVersion -> 422
        self._rand = random.Random(seed)
        self._rv = 1000
        self._deployments: dict[tuple[str, str], _Deployment] = {}
        self._replicasets: dict[tuple[str, str], _ReplicaSet] = {}
        self._pods: dict[tuple[str, str], _Pod] = {}
        self._forbidden: list[tuple[str, str, str | None, str | None]] = []
        self._grants: dict[str, Grant] = {}  # RBAC mode: bound tokens and what each may do
        self._logs: list[tuple[str, str, str | None, bool, str]] = []
        self._broken: dict[str, _Breakage] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> FakeKubernetes:
        self.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------------------------- kubeconfig
    def kubeconfig(self, context: str = "fake", namespace: str = "default", *,
                   token: str | None = None) -> dict[str, Any]:
        """A kubeconfig for the fake's own token, or for a token given to `bind_token`."""
        user = self._grants[token].user if token is not None and token in self._grants else self.user
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.base_url}}],
            "users": [{"name": user, "user": {"token": token or self.token}}],
            "contexts": [{"name": context,
                          "context": {"cluster": context, "user": user, "namespace": namespace}}],
            "current-context": context,
        }

    def write_kubeconfig(self, path: str | Path, context: str = "fake", namespace: str = "default", *,
                         token: str | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(context, namespace, token=token), sort_keys=False))
        return path

    def api_client(self, context: str = "fake", namespace: str = "default", *, token: str | None = None) -> Any:
        """A `kubernetes.client.ApiClient` loaded from a kubeconfig written by the fake (close it, or use
        it as a context manager)."""
        from kubernetes import config

        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-kube-")
        name = f"{context}-{namespace}{'-' + hashlib.sha256(token.encode()).hexdigest()[:8] if token else ''}"
        path = self.write_kubeconfig(Path(self._tmp.name) / f"{name}.yaml", context, namespace, token=token)
        return config.new_client_from_config(config_file=str(path), context=context, persist_config=False)

    # --------------------------------------------------------------------------------- configuration
    def forbid(self, verb: str, resource: str, namespace: str | None = None, name: str | None = None) -> None:
        """Deny `verb` (get/list/create/update/patch/delete or "*") on `resource` ("deployments",
        "deployments/scale", "pods", "pods/log", "replicasets" or "*") with a 403 Status."""
        with self._lock:
            self._forbidden.append((verb, resource, namespace, name))

    def clear_forbidden(self) -> None:
        with self._lock:
            self._forbidden.clear()

    def bind_token(self, rules: Iterable[RbacRule], *, user: str = "system:serviceaccount:default:default",
                   token: str | None = None) -> str:
        """RBAC mode for one (new) token: its requests are allowed only by `rules`, else 403 Forbidden naming
        `user`, the verb, the resource and the namespace. The fake's own token is not affected. Returns it."""
        token = token or secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = Grant(user, list(rules))
        return token

    def bind_service_account(self, manifests: str | Iterable[dict[str, Any]], namespace: str, name: str) -> str:
        """A token for the service account `namespace/name`, limited to what the Roles/ClusterRoles and
        their bindings in `manifests` (YAML text or parsed documents) give it, like a real cluster."""
        return self.bind_token(service_account_rules(manifests, namespace, name),
                               user=f"system:serviceaccount:{namespace}:{name}")

    def access(self, req: RecordedRequest) -> tuple[str, str, str, str | None, str | None] | None:
        """(verb, API group, resource with its subresource, namespace, name) that RBAC decides a recorded
        request on; None for discovery and paths the fake does not serve."""
        route = self._route(req.path)
        verb = self._verb(req.method, route) if route is not None else None
        if route is None or verb is None:
            return None
        return verb, route["group"], self._resource(route), route["ns"], route["name"]

    def set_logs(self, namespace: str, pod_or_prefix: str, text: str, *, container: str | None = None,
                 previous: bool = False) -> None:
        """Log text for pods whose name starts with `pod_or_prefix` (also pods created later, e.g. after a
        rollout); the latest matching call wins. `previous=True` sets the `?previous=true` logs."""
        with self._lock:
            self._logs.append((namespace, pod_or_prefix, container, previous, text))

    def break_image(self, image: str, reason: str = "CrashLoopBackOff", *, message: str | None = None,
                    restarts: int = 5, exit_code: int = 1, last_reason: str = "Error") -> None:
        """Pods running `image` never become ready: CrashLoopBackOff (phase Running, restartCount, lastState
        terminated `last_reason`/`exit_code`, e.g. "OOMKilled"/137) or ImagePullBackOff/ErrImagePull
        (phase Pending)."""
        with self._lock:
            self._broken[image] = _Breakage(reason, message, restarts, exit_code, last_reason)

    def fix_image(self, image: str) -> None:
        with self._lock:
            self._broken.pop(image, None)

    def set_pod_state(self, namespace: str, pod_or_prefix: str, *, phase: str | None = None,
                      ready: bool | None = None, restart_count: int | None = None,
                      waiting_reason: str | None = None, waiting_message: str | None = None,
                      last_terminated_reason: str | None = None, exit_code: int | None = None) -> list[str]:
        """Override the status of the pods that exist now and whose names start with `pod_or_prefix`.
        Returns their names. A `waiting_reason` makes the pod not ready unless `ready` says otherwise."""
        given = {"phase": phase, "ready": ready, "restart_count": restart_count,
                 "waiting_reason": waiting_reason, "waiting_message": waiting_message,
                 "last_terminated_reason": last_terminated_reason, "exit_code": exit_code}
        with self._lock:
            names = []
            for (ns, name), pod in self._pods.items():
                if ns == namespace and name.startswith(pod_or_prefix):
                    pod.overrides.update({k: v for k, v in given.items() if v is not None})
                    names.append(name)
            return names

    # ---------------------------------------------------------------------------------------- seeding
    def add_deployment(self, namespace: str, name: str, image: str, replicas: int = 3,
                       labels: dict[str, str] | None = None, revisions: int = 1, *,
                       container: str | None = None, history: list[str] | None = None,
                       annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """Create a ready Deployment with `revisions` ReplicaSets (older images `history`, default
        `<repo>:v1..v<N-1>`; the last revision runs `image`) and `replicas` Running pods. Returns it."""
        labels = dict(labels or {"app": name})
        if history is None:
            repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
            history = [f"{repo}:v{i}" if f"{repo}:v{i}" != image else f"{repo}:v{i}-prev"
                       for i in range(1, revisions)]
        images = [*history, image]
        now = time.time()
        obj: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                         "creationTimestamp": _ts(now - 3600 * len(images)), "generation": 1,
                         "labels": dict(labels), "annotations": dict(annotations or {})},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"containers": [{"name": container or name, "image": images[0]}]}}},
        }
        with self._lock:
            if (namespace, name) in self._deployments:
                raise ValueError(f"deployment {namespace}/{name} exists")
            self._default_deployment(obj)
            dep = _Deployment(obj)
            self._deployments[dep.key] = dep
            for i, img in enumerate(images):
                if i:
                    obj["spec"]["template"]["spec"]["containers"][0]["image"] = img
                    obj["metadata"]["generation"] += 1
                self._reconcile(dep, None, immediate=True, wall=now - 3600 * (len(images) - i))
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._tick()
            return self._render_deployment(dep)

    def set_image(self, namespace: str, name: str, image: str,
                  container: str | None = None) -> dict[str, Any]:
        """Server-side "someone deployed `image`" (not recorded as a request); honours rollout_delay,
        stall_rollouts and broken images."""
        with self._lock:
            dep = self._deployments[(namespace, name)]
            new = copy.deepcopy(dep.obj)
            containers = new["spec"]["template"]["spec"]["containers"]
            target = next((c for c in containers if c["name"] == container), containers[0])
            target["image"] = image
            self._update_deployment(dep, new, dry_run=False)
            return self._render_deployment(dep)

    # ------------------------------------------------------------------------------------- inspection
    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._tick()
            return self._render_deployment(self._deployments[(namespace, name)])

    def deployments(self, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            self._tick()
            return [self._render_deployment(d) for k, d in sorted(self._deployments.items())
                    if namespace is None or k[0] == namespace]

    def revision(self, namespace: str, name: str) -> int:
        return int(self.deployment(namespace, name)["metadata"]["annotations"][REVISION])

    def replicasets(self, namespace: str, deployment: str | None = None) -> list[dict[str, Any]]:
        """ReplicaSets (of `deployment` when given), oldest revision first."""
        with self._lock:
            self._tick()
            dep = self._deployments.get((namespace, deployment)) if deployment else None
            if deployment and dep is None:
                raise KeyError(f"deployment {namespace}/{deployment}")
            sets = [rs for (ns, _), rs in self._replicasets.items()
                    if ns == namespace and (dep is None or rs.owner_uid == dep.uid)]
            return [self._render_rs(rs) for rs in sorted(sets, key=lambda r: (r.revision, r.name))]

    def pods(self, namespace: str, selector: str | dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Visible pods (the API's view), optionally filtered by a label selector string or dict."""
        with self._lock:
            self._tick()
            match = parse_selector(selector)
            now = time.monotonic()
            return [self._render_pod(p, now) for (ns, _), p in sorted(self._pods.items())
                    if ns == namespace and p.visible(now) and match(p.obj["metadata"].get("labels", {}))]

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._tick()
            return self._render_pod(self._pods[(namespace, name)], time.monotonic())

    # ========================================================================================= HTTP
    def fault_reply(self, req: RecordedRequest, status: int, reason: str | None,
                    message: str | None) -> Reply:
        route = self._route(req.path)
        details: dict[str, Any] | None = None
        if message is None and status == 409 and route and route.get("name"):
            message = self._conflict_message(route)
        elif message is None and status == 404 and route and route.get("name"):
            message = f'{self._plural(route)} "{route["name"]}" not found'
        if route and route.get("name"):
            details = {"name": route["name"], "group": route["group"], "kind": route["res"]}
            if not route["group"]:
                details.pop("group")
        message = message or _MESSAGES.get(status, f"injected failure {status}")
        return Reply(status, status_object(status, message, reason, details))

    def handle(self, req: RecordedRequest) -> Reply:
        try:
            return self._handle(req)
        except ApiError as err:
            return err.reply()

    def _handle(self, req: RecordedRequest) -> Reply:
        self._tick()
        auth = req.headers.get("authorization", "")
        grant = self._grants.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if auth != f"Bearer {self.token}" and grant is None:
            return Reply(401, status_object(401, "Unauthorized", "Unauthorized"))
        path = req.path.rstrip("/") or "/"
        discovery = self._discovery(path)
        if discovery is not None:
            if req.method != "GET":
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return Reply(200, discovery)
        route = self._route(req.path)
        if route is None:
            raise ApiError(404, "the server could not find the requested resource", details={})
        verb = self._verb(req.method, route)
        if verb is None:
            raise ApiError(405, "the server does not allow this method on the requested resource",
                           details={})
        self._authorize(verb, route, grant)
        if req.query.get("watch") in ("true", "1"):
            raise ApiError(400, "watch is not supported by the fake apiserver")
        res, sub = route["res"], route["sub"]
        handler = getattr(self, f"_{res}_{sub or ('item' if route['name'] else 'collection')}_{verb}")
        reply: Reply = handler(req, route)
        return reply

    # ----------------------------------------------------------------------------------------- routing
    _ROUTES = (
        (re.compile(r"^/apis/apps/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>deployments|replicasets)"
                    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>scale|status))?)?/?$"), "apps"),
        (re.compile(r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>pods)"
                    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>log|status))?)?/?$"), ""),
    )
    _ALLOWED = {
        ("deployments", None, False): {"GET": "list", "POST": "create"},
        ("deployments", None, True): {"GET": "get", "PUT": "update", "PATCH": "patch"},
        ("deployments", "scale", True): {"GET": "get", "PUT": "update", "PATCH": "patch"},
        ("deployments", "status", True): {"GET": "get"},
        ("replicasets", None, False): {"GET": "list"},
        ("replicasets", None, True): {"GET": "get"},
        ("pods", None, False): {"GET": "list"},
        ("pods", None, True): {"GET": "get", "DELETE": "delete"},
        ("pods", "log", True): {"GET": "get"},
        ("pods", "status", True): {"GET": "get"},
    }

    def _route(self, path: str) -> dict[str, Any] | None:
        for pattern, group in self._ROUTES:
            m = pattern.match(path)
            if m:
                route = {**m.groupdict(), "group": group}
                if route["name"] and route["ns"] is None:
                    return None
                return route
        return None

    def _verb(self, method: str, route: dict[str, Any]) -> str | None:
        allowed = self._ALLOWED.get((route["res"], route["sub"], bool(route["name"])), {})
        verb = allowed.get(method)
        if verb in ("create",) and route["ns"] is None:
            return None
        return verb

    @staticmethod
    def _plural(route: dict[str, Any]) -> str:
        return f'{route["res"]}.{route["group"]}' if route["group"] else route["res"]

    @staticmethod
    def _resource(route: dict[str, Any]) -> str:
        return str(route["res"]) + (f'/{route["sub"]}' if route["sub"] else "")

    def _authorize(self, verb: str, route: dict[str, Any], grant: Grant | None = None) -> None:
        """`forbid` rules deny whoever asks; a bound token (RBAC mode) is allowed only by its rules."""
        resource = self._resource(route)
        denied = any(f_verb in ("*", verb) and f_res in ("*", resource) and f_ns in (None, route["ns"])
                     and f_name in (None, route["name"]) for f_verb, f_res, f_ns, f_name in self._forbidden)
        if grant is not None and not grant.allows(verb, route["group"], resource, route["ns"], route["name"]):
            denied = True
        if denied:
            who = f'{self._plural(route)} "{route["name"]}"' if route["name"] else self._plural(route)
            scope = (f'in the namespace "{route["ns"]}"' if route["ns"] else "at the cluster scope")
            details: dict[str, Any] = {"group": route["group"], "kind": route["res"]}
            if route["name"]:
                details = {"name": route["name"], **details}
            user = grant.user if grant is not None else self.user
            raise ApiError(403, f'{who} is forbidden: User "{user}" cannot {verb} resource '
                                f'"{resource}" in API group "{route["group"]}" {scope}',
                           details=details)

    def _conflict_message(self, route: dict[str, Any]) -> str:
        return (f'Operation cannot be fulfilled on {self._plural(route)} "{route["name"]}": the object has '
                "been modified; please apply your changes to the latest version and try again")

    def _not_found(self, route: dict[str, Any]) -> ApiError:
        details = {"name": route["name"], "group": route["group"], "kind": route["res"]}
        if not route["group"]:
            details.pop("group")
        return ApiError(404, f'{self._plural(route)} "{route["name"]}" not found', details=details)

    def _discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/version":
            major, minor = self.version.lstrip("v").split(".")[:2]
            return {"major": major, "minor": minor, "gitVersion": self.version,
                    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.0", "compiler": "gc",
                    "platform": "linux/amd64"}
        cidrs = [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.base_url.removeprefix("http://")}]
        apps = {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [apps]}
        if path == "/apis/apps":
            return {"kind": "APIGroup", "apiVersion": "v1", **apps}

        def res(name: str, kind: str, verbs: list[str], singular: str = "", **extra: Any) -> dict[str, Any]:
            return {"name": name, "singularName": singular, "namespaced": True, "kind": kind, "verbs": verbs,
                    **extra}

        if path == "/api/v1":
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                res("pods", "Pod", ["delete", "get", "list"], "pod", shortNames=["po"]),
                res("pods/log", "Pod", ["get"]), res("pods/status", "Pod", ["get"])]}
        if path == "/apis/apps/v1":
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
                res("deployments", "Deployment", ["create", "get", "list", "patch", "update"], "deployment",
                    shortNames=["deploy"]),
                res("deployments/scale", "Scale", ["get", "patch", "update"], group="autoscaling",
                    version="v1"),
                res("deployments/status", "Deployment", ["get"]),
                res("replicasets", "ReplicaSet", ["get", "list"], "replicaset", shortNames=["rs"])]}
        return None

    # -------------------------------------------------------------------------------------- lists
    @staticmethod
    def _field_selector(query: dict[str, str], supported: Iterable[str]) -> Callable[[dict[str, Any]], bool]:
        raw = query.get("fieldSelector")
        if not raw:
            return lambda obj: True
        terms = []
        for term in raw.split(","):
            m = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
            if not m or m.group(1) not in supported:
                raise ApiError(400, f'field label not supported: {term.split("=")[0].rstrip("!").strip()}')
            terms.append(m.groups())

        def value(obj: dict[str, Any], dotted: str) -> Any:
            node: Any = obj
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            return "" if node is None else str(node)

        return lambda obj: all((value(obj, f) != v) if op == "!=" else (value(obj, f) == v)
                               for f, op, v in terms)

    def _list(self, kind: str, api_version: str, items: list[dict[str, Any]],
              query: dict[str, str], fields: Iterable[str]) -> Reply:
        labels = parse_selector(query.get("labelSelector"))
        by_field = self._field_selector(query, fields)
        out = []
        for item in items:
            if labels(item["metadata"].get("labels") or {}) and by_field(item):
                item.pop("kind", None)
                item.pop("apiVersion", None)
                out.append(item)
        if query.get("limit", "").isdigit() and int(query["limit"]) > 0:
            out = out[:int(query["limit"])]
        return Reply(200, {"kind": kind, "apiVersion": api_version,
                           "metadata": {"resourceVersion": str(self._rv)}, "items": out})

    # ------------------------------------------------------------------------------------ deployments
    def _get_deployment(self, route: dict[str, Any]) -> _Deployment:
        dep = self._deployments.get((route["ns"], route["name"]))
        if dep is None:
            raise self._not_found(route)
        return dep

    def _deployments_collection_list(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        items = [self._render_deployment(d) for k, d in sorted(self._deployments.items())
                 if route["ns"] is None or k[0] == route["ns"]]
        return self._list("DeploymentList", "apps/v1", items, req.query,
                          ("metadata.name", "metadata.namespace"))

    def _deployments_item_get(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        return Reply(200, self._render_deployment(self._get_deployment(route)))

    _deployments_status_get = _deployments_item_get

    def _deployments_collection_create(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        body = self._json_body(req)
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Deployment.apps \"\" is invalid: metadata.name: Required value: name or "
                                "generateName is required", "Invalid",
                           {"kind": "Deployment", "group": "apps",
                            "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or "
                                        "generateName is required", "field": "metadata.name"}]})
        if meta.get("namespace") not in (None, route["ns"]):
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                "the request")
        if (route["ns"], name) in self._deployments:
            raise ApiError(409, f'deployments.apps "{name}" already exists', "AlreadyExists",
                           {"name": name, "group": "apps", "kind": "deployments"})
        obj: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {**{k: v for k, v in meta.items() if k in ("labels", "annotations")},
                            "name": name, "namespace": route["ns"], "uid": str(uuid.uuid4()),
                            "creationTimestamp": _ts(), "generation": 1},
               "spec": copy.deepcopy(body.get("spec") or {})}
        obj["metadata"].setdefault("annotations", {})
        self._default_deployment(obj)
        self._validate_deployment(name, obj["spec"], None)
        if req.query.get("dryRun"):
            return Reply(201, obj)
        dep = _Deployment(obj)
        self._deployments[dep.key] = dep
        self._reconcile(dep, None)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._tick()
        return Reply(201, self._render_deployment(dep))

    def _deployments_item_update(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        dep = self._get_deployment(route)
        body = self._json_body(req)
        if body.get("kind") not in (None, "Deployment") or body.get("apiVersion") not in (None, "apps/v1"):
            raise ApiError(400, f'the API version in the data ({body.get("apiVersion")}) does not match the '
                                "expected API version (apps/v1)")
        meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        self._check_identity(meta, route)
        rv = meta.get("resourceVersion")
        if rv is None and self.require_resource_version:
            raise self._invalid("Deployment", "apps", route["name"], "metadata.resourceVersion",
                                "Invalid value: 0x0: must be specified for an update")
        if rv is not None and rv != dep.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, self._conflict_message(route), "Conflict",
                           {"name": route["name"], "group": "apps", "kind": "deployments"})
        return Reply(200, self._update_deployment(dep, body, bool(req.query.get("dryRun"))))

    def _deployments_item_patch(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        dep = self._get_deployment(route)
        current = self._render_deployment(dep)
        patched = self._apply_patch(req, current, route)
        return Reply(200, self._update_deployment(dep, patched, bool(req.query.get("dryRun"))))

    def _apply_patch(self, req: RecordedRequest, current: dict[str, Any], route: dict[str, Any]) -> Any:
        ctype = req.content_type
        if ctype not in _PATCH_TYPES:
            raise ApiError(415, "the body of the request was in an unknown format - accepted media types "
                                "include: " + ", ".join(_PATCH_TYPES), "UnsupportedMediaType")
        try:
            patch = json.loads(req.raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"error decoding patch: {exc}") from None
        try:
            if ctype == "application/json-patch+json":
                patched = _json_patch(current, patch)
            elif not isinstance(patch, dict):
                raise ApiError(400, "error decoding patch: patch must be a JSON object")
            elif ctype == "application/merge-patch+json":
                patched = _merge_patch(current, patch)
            else:
                patched = _strategic_merge(current, patch)
        except _PatchError as exc:
            raise ApiError(422, str(exc), "Invalid") from None
        if not isinstance(patched, dict):
            raise ApiError(400, "patched object is not a JSON object")
        meta: dict[str, Any] = patched["metadata"] if isinstance(patched.get("metadata"), dict) else {}
        rv = meta.get("resourceVersion")
        if rv is not None and rv != current["metadata"].get("resourceVersion"):
            raise ApiError(409, self._conflict_message(route), "Conflict",
                           {"name": route["name"], "group": route["group"], "kind": route["res"]})
        self._check_identity(meta, route)
        return patched

    @staticmethod
    def _check_identity(meta: dict[str, Any], route: dict[str, Any]) -> None:
        if meta.get("name") not in (None, route["name"]):
            raise ApiError(400, f'the name of the object ({meta["name"]}) does not match the name on the URL '
                                f'({route["name"]})')
        if meta.get("namespace") not in (None, route["ns"]):
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                "the request")

    @staticmethod
    def _json_body(req: RecordedRequest) -> dict[str, Any]:
        try:
            body = json.loads(req.raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"couldn't get version/kind; json parse error: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "couldn't get version/kind; json parse error: expected an object")
        return body

    @staticmethod
    def _invalid(kind: str, group: str, name: str, fld: str, message: str,
                 reason: str = "FieldValueInvalid") -> ApiError:
        return ApiError(422, f'{kind}.{group} "{name}" is invalid: {fld}: {message}', "Invalid",
                        {"name": name, "group": group, "kind": kind,
                         "causes": [{"reason": reason, "message": message, "field": fld}]})

    def _default_deployment(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if isinstance(strategy, dict) and strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        if isinstance(spec.get("template"), dict):
            _default_template(spec["template"])

    def _validate_deployment(self, name: str, spec: Any, current: _Deployment | None) -> None:
        if not isinstance(spec, dict):
            raise ApiError(400, "json: cannot unmarshal into Go struct field Deployment.spec of type "
                                "v1.DeploymentSpec")
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise ApiError(400, f"json: cannot unmarshal {_go_type(replicas)} into Go struct field "
                                "DeploymentSpec.spec.replicas of type int32")
        if replicas < 0:
            raise self._invalid("Deployment", "apps", name, "spec.replicas",
                                f"Invalid value: {replicas}: must be greater than or equal to 0")
        selector = spec.get("selector")
        if current is not None and selector != current.obj["spec"]["selector"]:
            raise self._invalid("Deployment", "apps", name, "spec.selector",
                                f"Invalid value: {json.dumps(selector)}: field is immutable")
        match = (selector or {}).get("matchLabels") if isinstance(selector, dict) else None
        if not match:
            raise self._invalid("Deployment", "apps", name, "spec.selector", "Required value",
                                "FieldValueRequired")
        template: dict[str, Any] = spec["template"] if isinstance(spec.get("template"), dict) else {}
        tlabels = (template.get("metadata") or {}).get("labels") or {}
        if not parse_selector(match)(tlabels):
            raise self._invalid("Deployment", "apps", name, "spec.template.metadata.labels",
                                f"Invalid value: {json.dumps(tlabels)}: `selector` does not match template "
                                "`labels`")
        containers = (template.get("spec") or {}).get("containers")
        if not containers:
            raise self._invalid("Deployment", "apps", name, "spec.template.spec.containers", "Required value",
                                "FieldValueRequired")
        for i, c in enumerate(containers):
            for key in ("name", "image"):
                if not isinstance(c, dict) or not c.get(key):
                    raise self._invalid("Deployment", "apps", name,
                                        f"spec.template.spec.containers[{i}].{key}", "Required value",
                                        "FieldValueRequired")

    def _update_deployment(self, dep: _Deployment, new: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        name = dep.obj["metadata"]["name"]
        new = copy.deepcopy(new)
        spec = new.get("spec")
        if isinstance(spec, dict):
            self._default_deployment(new)
        self._validate_deployment(name, spec, dep)
        assert isinstance(spec, dict)
        meta: dict[str, Any] = new["metadata"] if isinstance(new.get("metadata"), dict) else {}
        old_spec = dep.obj["spec"]
        target = copy.deepcopy(dep.obj) if dry_run else dep.obj
        for key in ("labels", "annotations"):
            if isinstance(meta.get(key), dict):
                target["metadata"][key] = dict(meta[key])
            else:
                target["metadata"].pop(key, None)
        target["metadata"].setdefault("annotations", {})
        changed = _prune(spec) != _prune(old_spec)
        target["spec"] = spec
        if changed:
            target["metadata"]["generation"] += 1
        if dry_run:
            current = dep.obj["metadata"]["annotations"].get(REVISION, "1")
            target["metadata"]["annotations"][REVISION] = current
            return {**target, "status": self._render_deployment(dep)["status"]}
        self._reconcile(dep, old_spec)
        dep.obj["metadata"]["resourceVersion"] = self._next_rv()
        self._tick()
        return self._render_deployment(dep)

    # ------------------------------------------------------------------------------------------ scale
    def _scale_object(self, dep: _Deployment) -> dict[str, Any]:
        rendered = self._render_deployment(dep)
        meta = rendered["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp")},
                "spec": {"replicas": rendered["spec"]["replicas"]},
                "status": {"replicas": rendered["status"].get("replicas", 0),
                           "selector": _selector_string(rendered["spec"]["selector"]["matchLabels"])}}

    def _deployments_scale_get(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        return Reply(200, self._scale_object(self._get_deployment(route)))

    def _deployments_scale_update(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        dep = self._get_deployment(route)
        body = self._json_body(req)
        meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        self._check_identity(meta, route)
        rv = meta.get("resourceVersion")
        if rv is not None and rv != dep.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, self._conflict_message(route), "Conflict",
                           {"name": route["name"], "group": "apps", "kind": "deployments"})
        return self._apply_scale(req, dep, body)

    def _deployments_scale_patch(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        dep = self._get_deployment(route)
        patched = self._apply_patch(req, self._scale_object(dep), route)
        return self._apply_scale(req, dep, patched)

    def _apply_scale(self, req: RecordedRequest, dep: _Deployment, scale: dict[str, Any]) -> Reply:
        name = dep.obj["metadata"]["name"]
        replicas = (scale.get("spec") or {}).get("replicas", 0) if isinstance(scale.get("spec"), dict) else 0
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise ApiError(400, f"json: cannot unmarshal {_go_type(replicas)} into Go struct field "
                                "ScaleSpec.spec.replicas of type int32")
        if replicas < 0:
            raise self._invalid("Scale", "autoscaling", name, "spec.replicas",
                                f"Invalid value: {replicas}: must be greater than or equal to 0")
        new = copy.deepcopy(dep.obj)
        new["spec"]["replicas"] = replicas
        dry_run = bool(req.query.get("dryRun"))
        self._update_deployment(dep, new, dry_run)
        obj = self._scale_object(dep)
        obj["spec"]["replicas"] = replicas  # already so unless dry-run
        return Reply(200, obj)

    # ------------------------------------------------------------------------------------ replicasets
    def _replicasets_collection_list(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        items = [self._render_rs(rs) for (ns, _), rs in sorted(self._replicasets.items())
                 if route["ns"] is None or ns == route["ns"]]
        return self._list("ReplicaSetList", "apps/v1", items, req.query,
                          ("metadata.name", "metadata.namespace"))

    def _replicasets_item_get(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        rs = self._replicasets.get((route["ns"], route["name"]))
        if rs is None:
            raise self._not_found(route)
        return Reply(200, self._render_rs(rs))

    # ------------------------------------------------------------------------------------------- pods
    def _get_pod(self, route: dict[str, Any], now: float) -> _Pod:
        pod = self._pods.get((route["ns"], route["name"]))
        if pod is None or not pod.visible(now):
            raise self._not_found(route)
        return pod

    def _pods_collection_list(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        now = time.monotonic()
        items = [self._render_pod(p, now) for (ns, _), p in sorted(self._pods.items())
                 if (route["ns"] is None or ns == route["ns"]) and p.visible(now)]
        return self._list("PodList", "v1", items, req.query,
                          ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"))

    def _pods_item_get(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        now = time.monotonic()
        return Reply(200, self._render_pod(self._get_pod(route, now), now))

    _pods_status_get = _pods_item_get

    def _pods_item_delete(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        now = time.monotonic()
        pod = self._get_pod(route, now)
        rendered = self._render_pod(pod, now)
        rendered["metadata"]["deletionTimestamp"] = _ts()
        rendered["metadata"]["deletionGracePeriodSeconds"] = 30
        del self._pods[(route["ns"], route["name"])]
        self._next_rv()
        rs = self._replicasets.get((route["ns"], pod.rs))
        if rs is not None and self._is_active(rs):
            self._scale_rs(rs, rs.obj["spec"]["replicas"])
        self._tick()
        return Reply(200, rendered)

    def _pods_log_get(self, req: RecordedRequest, route: dict[str, Any]) -> Reply:
        now = time.monotonic()
        pod = self._get_pod(route, now)
        names = [c["name"] for c in pod.obj["spec"]["containers"]]
        container = req.query.get("container")
        if container is None:
            if len(names) > 1:
                raise ApiError(400, f"a container name must be specified for pod {pod.name}, choose one of: "
                                    f"[{' '.join(names)}]")
            container = names[0]
        if container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {pod.name}")
        status = self._pod_status(pod, now)
        cstatus = next(c for c in status["containerStatuses"] if c["name"] == container)
        previous = req.query.get("previous") in ("true", "1")
        waiting = cstatus["state"].get("waiting")
        image = next(c["image"] for c in pod.obj["spec"]["containers"] if c["name"] == container)
        if previous:
            text = self._log_text(route["ns"], pod.name, container, True)
            if text is None:
                if cstatus["restartCount"] == 0:
                    raise ApiError(400, f'previous terminated container "{container}" in pod "{pod.name}" '
                                        "not found")
                term = cstatus.get("lastState", {}).get("terminated", {})
                text = _CRASH_LOG.format(ts=_ts(pod.started_wall), container=container, image=image,
                                         reason=term.get("reason", "Error"),
                                         exit_code=term.get("exitCode", 1))
        else:
            if waiting and waiting.get("reason") != "CrashLoopBackOff":
                why = ("trying and failing to pull image" if "Image" in waiting.get("reason", "")
                       else waiting.get("reason"))
                raise ApiError(400, f'container "{container}" in pod "{pod.name}" is waiting to start: {why}')
            text = self._log_text(route["ns"], pod.name, container, False)
            if text is None:
                broken = self._broken.get(image)
                if broken is not None and broken.reason == "CrashLoopBackOff":
                    text = _CRASH_LOG.format(ts=_ts(pod.started_wall), container=container, image=image,
                                             reason=broken.message or "boom", exit_code=broken.exit_code)
                else:
                    text = _DEFAULT_LOG.format(ts=_ts(pod.started_wall), container=container, image=image,
                                               pod=pod.name)
        lines = text.splitlines(keepends=True)
        if req.query.get("tailLines", "").lstrip("-").isdigit():
            n = int(req.query["tailLines"])
            lines = lines[-n:] if n > 0 else []
        if req.query.get("timestamps") in ("true", "1"):
            lines = [f"{_ts(pod.started_wall)} {line}" for line in lines]
        out = "".join(lines)
        if req.query.get("limitBytes", "").isdigit():
            out = out.encode()[:int(req.query["limitBytes"])].decode(errors="ignore")
        return Reply(200, out, "text/plain")

    def _log_text(self, namespace: str, pod: str, container: str, previous: bool) -> str | None:
        for ns, prefix, cont, prev, text in reversed(self._logs):
            if ns == namespace and pod.startswith(prefix) and cont in (None, container) and prev == previous:
                return text
        return None

    # ===================================================================================== controller
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _owned(self, dep: _Deployment) -> list[_ReplicaSet]:
        ns = dep.key[0]
        return sorted((rs for (rns, _), rs in self._replicasets.items()
                       if rns == ns and rs.owner_uid == dep.uid), key=lambda r: r.revision)

    def _active(self, dep: _Deployment) -> _ReplicaSet | None:
        owned = self._owned(dep)
        return owned[-1] if owned else None

    def _is_active(self, rs: _ReplicaSet) -> bool:
        dep = next((d for d in self._deployments.values() if d.uid == rs.owner_uid), None)
        return dep is not None and self._active(dep) is rs

    def _reconcile(self, dep: _Deployment, old_spec: dict[str, Any] | None, *, immediate: bool = False,
                   wall: float | None = None) -> None:
        spec = dep.obj["spec"]
        active = self._active(dep)
        replicas_changed = old_spec is None or old_spec.get("replicas") != spec["replicas"]
        template_changed = active is None or (_norm_template(active.obj["spec"]["template"])
                                              != _norm_template(spec["template"]))
        if template_changed and not spec.get("paused"):
            owned = self._owned(dep)
            revision = max((rs.revision for rs in owned), default=0) + 1
            target = _norm_template(spec["template"])
            match = next((rs for rs in owned if _norm_template(rs.obj["spec"]["template"]) == target), None)
            if match is None:
                match = self._create_rs(dep, revision, wall)
            else:
                ann = match.obj["metadata"]["annotations"]
                history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
                ann[REVISION_HISTORY] = ",".join([*history, str(match.revision)])
                ann[REVISION] = str(revision)
                match.obj["metadata"]["resourceVersion"] = self._next_rv()
            dep.rollout_started = time.monotonic()
            now = time.monotonic()
            for rs in owned:
                if rs is match:
                    continue
                self._set_rs_replicas(rs, 0)
                for key, pod in list(self._pods.items()):
                    if pod.rs == rs.name and key[0] == dep.key[0] and not (pod.visible(now)
                                                                           and self._pod_ready(pod, now)):
                        del self._pods[key]
            self._scale_rs(match, spec["replicas"], immediate=immediate, wall=wall)
            self._prune_history(dep)
        elif replicas_changed and active is not None:
            dep.rollout_started = time.monotonic()
            self._scale_rs(active, spec["replicas"], immediate=immediate, wall=wall)
        active = self._active(dep)
        if active is not None:
            dep.obj["metadata"].setdefault("annotations", {})[REVISION] = str(active.revision)

    def _create_rs(self, dep: _Deployment, revision: int, wall: float | None) -> _ReplicaSet:
        ns, dname = dep.key
        template = _default_template(copy.deepcopy(dep.obj["spec"]["template"]))
        pod_hash = _template_hash(template)
        template["metadata"].setdefault("labels", {})[HASH_LABEL] = pod_hash
        labels = dict(template["metadata"]["labels"])
        obj: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{dname}-{pod_hash}", "namespace": ns, "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_rv(), "generation": 1, "creationTimestamp": _ts(wall),
                "labels": labels,
                "annotations": {REVISION: str(revision),
                                DESIRED_REPLICAS: str(dep.obj["spec"]["replicas"]),
                                "deployment.kubernetes.io/max-replicas": str(
                                    dep.obj["spec"]["replicas"] + _percent("25%", dep.obj["spec"]["replicas"],
                                                                           True))},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": dname,
                                     "uid": dep.uid, "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {"replicas": 0,
                     "selector": {"matchLabels": {**dep.obj["spec"]["selector"]["matchLabels"],
                                                  HASH_LABEL: pod_hash}},
                     "template": template},
        }
        rs = _ReplicaSet(obj, dep.uid)
        self._replicasets[(ns, obj["metadata"]["name"])] = rs
        return rs

    def _set_rs_replicas(self, rs: _ReplicaSet, replicas: int) -> None:
        if rs.obj["spec"]["replicas"] != replicas:
            rs.obj["spec"]["replicas"] = replicas
            rs.obj["metadata"]["generation"] += 1
            rs.obj["metadata"]["resourceVersion"] = self._next_rv()
        if replicas:
            rs.obj["metadata"]["annotations"][DESIRED_REPLICAS] = str(replicas)

    def _scale_rs(self, rs: _ReplicaSet, replicas: int, *, immediate: bool = False,
                  wall: float | None = None) -> None:
        self._set_rs_replicas(rs, replicas)
        ns = rs.obj["metadata"]["namespace"]
        now = time.monotonic()
        delay = 0.0 if immediate else self.rollout_delay
        stall = self.stall_rollouts and not immediate
        live = [p for (pns, _), p in self._pods.items()
                if pns == ns and p.rs == rs.name and p.gone_at is None]
        for _ in range(replicas - len(live)):
            self._create_pod(rs, appear_at=now if stall else now + delay, stalled=stall, wall=wall)
        if len(live) > replicas:
            live.sort(key=lambda p: (p.visible(now) and self._pod_ready(p, now), -p.appear_at))
            for pod in live[:len(live) - replicas]:
                if not pod.visible(now) or not self._pod_ready(pod, now) or (delay == 0 and not stall):
                    del self._pods[(ns, pod.name)]
                else:
                    pod.gone_at = math.inf if stall else now + delay
            self._next_rv()

    def _create_pod(self, rs: _ReplicaSet, *, appear_at: float, stalled: bool, wall: float | None) -> None:
        ns, rs_name = rs.obj["metadata"]["namespace"], rs.name
        while True:
            name = f"{rs_name}-{''.join(self._rand.choice(_SAFE) for _ in range(5))}"
            if (ns, name) not in self._pods:
                break
        template = rs.obj["spec"]["template"]
        node = self._rand.randint(1, 3)
        obj: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "generateName": f"{rs_name}-", "namespace": ns, "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_rv(), "creationTimestamp": _ts(wall),
                "labels": dict(template["metadata"].get("labels") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                     "uid": rs.obj["metadata"]["uid"], "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": {**copy.deepcopy(template["spec"]), "nodeName": f"fake-node-{node}"},
        }
        if template["metadata"].get("annotations"):
            obj["metadata"]["annotations"] = dict(template["metadata"]["annotations"])
        self._pods[(ns, name)] = _Pod(obj, rs_name, appear_at, stalled=stalled,
                                      started_wall=time.time() if wall is None else wall)

    def _prune_history(self, dep: _Deployment) -> None:
        limit = dep.obj["spec"].get("revisionHistoryLimit", 10)
        owned = self._owned(dep)
        old = [rs for rs in owned[:-1] if not any(p.rs == rs.name for p in self._pods.values())]
        for rs in old[:max(0, len(old) - limit)]:
            del self._replicasets[(dep.key[0], rs.name)]

    def _tick(self) -> None:
        """Advance time-driven state: delayed pods appear/vanish, stalls lift, rollouts finish."""
        now = time.monotonic()
        for key, pod in list(self._pods.items()):
            if not self.stall_rollouts:
                if pod.stalled:
                    pod.stalled = False
                    pod.appear_at = min(pod.appear_at, now)
                if pod.gone_at == math.inf:
                    pod.gone_at = now
            if pod.gone_at is not None and pod.gone_at <= now:
                del self._pods[key]
        for dep in self._deployments.values():
            active = self._active(dep)
            if active is None:
                continue
            ns = dep.key[0]
            mine = [p for (pns, _), p in self._pods.items() if pns == ns and p.rs == active.name]
            ready = sum(1 for p in mine if p.visible(now) and p.gone_at is None and self._pod_ready(p, now))
            if ready >= active.obj["spec"]["replicas"]:
                names = {rs.name for rs in self._owned(dep) if rs is not active}
                for key, pod in list(self._pods.items()):
                    if key[0] == ns and pod.rs in names:
                        del self._pods[key]

    # ========================================================================================== render
    def _pod_ready(self, pod: _Pod, now: float) -> bool:
        return bool(self._pod_status(pod, now)["_ready"])

    def _pod_status(self, pod: _Pod, now: float) -> dict[str, Any]:
        started = _ts(pod.started_wall)
        phase, statuses, all_ready = "Running", [], True
        for i, c in enumerate(pod.obj["spec"]["containers"]):
            image = c.get("image", "")
            digest = hashlib.sha256(image.encode()).hexdigest()
            cid = hashlib.sha256(f"{pod.name}/{c['name']}".encode()).hexdigest()
            st: dict[str, Any] = {"name": c["name"], "image": image,
                                  "imageID": f"{image.split(':')[0]}@sha256:{digest}",
                                  "containerID": f"containerd://{cid}", "ready": True, "started": True,
                                  "restartCount": 0, "lastState": {},
                                  "state": {"running": {"startedAt": started}}}
            broken = self._broken.get(image)
            if broken is not None:
                st.update(ready=False, started=False)
                if broken.reason == "CrashLoopBackOff":
                    st["restartCount"] = broken.restarts
                    st["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": broken.message or
                                               f"back-off 5m0s restarting failed container={c['name']} "
                                               f"pod={pod.name}_{pod.obj['metadata']['namespace']}"}}
                    st["lastState"] = {"terminated": {"exitCode": broken.exit_code,
                                                      "reason": broken.last_reason, "startedAt": started,
                                                      "finishedAt": started, "containerID": f"containerd://{cid}"}}
                else:
                    phase = "Pending"
                    st.pop("containerID")
                    st["imageID"] = ""
                    st["state"] = {"waiting": {"reason": broken.reason, "message": broken.message or
                                               f'Back-off pulling image "{image}"'}}
            elif pod.stalled and self.stall_rollouts:
                phase = "Pending"
                st.update(ready=False, started=False, imageID="")
                st.pop("containerID")
                st["state"] = {"waiting": {"reason": "ContainerCreating"}}
            o = pod.overrides
            if i == 0 and o:
                if o.get("restart_count") is not None:
                    st["restartCount"] = o["restart_count"]
                if o.get("last_terminated_reason"):
                    code = o.get("exit_code", 137 if o["last_terminated_reason"] == "OOMKilled" else 1)
                    st["lastState"] = {"terminated": {"exitCode": code, "reason": o["last_terminated_reason"],
                                                      "startedAt": started, "finishedAt": started}}
                if o.get("waiting_reason"):
                    st["state"] = {"waiting": {"reason": o["waiting_reason"],
                                               **({"message": o["waiting_message"]}
                                                  if o.get("waiting_message") else {})}}
                    st.update(ready=False, started=False)
                    if o["waiting_reason"] in ("ContainerCreating", "ErrImagePull", "ImagePullBackOff",
                                               "CreateContainerConfigError"):
                        phase = "Pending"
                if o.get("ready") is not None:
                    st["ready"] = o["ready"]
                if o.get("phase"):
                    phase = o["phase"]
            all_ready = all_ready and st["ready"]
            statuses.append(st)
        unready = [s["name"] for s in statuses if not s["ready"]]
        not_ready = {"status": "False", "reason": "ContainersNotReady",
                     "message": f"containers with unready status: [{' '.join(unready)}]"}
        conditions = [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "Ready", **({"status": "True"} if all_ready else not_ready),
             "lastTransitionTime": started},
            {"type": "ContainersReady", **({"status": "True"} if all_ready else not_ready),
             "lastTransitionTime": started},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
        ]
        node = int(pod.obj["spec"]["nodeName"].rsplit("-", 1)[-1])
        octet = int(hashlib.sha256(pod.name.encode()).hexdigest()[:2], 16)
        return {"_ready": all_ready and phase == "Running", "phase": phase, "conditions": conditions,
                "hostIP": f"10.0.0.{node}", "podIP": f"10.244.{node}.{octet}",
                "podIPs": [{"ip": f"10.244.{node}.{octet}"}], "startTime": started, "qosClass": "BestEffort",
                "containerStatuses": statuses}

    def _render_pod(self, pod: _Pod, now: float) -> dict[str, Any]:
        obj = copy.deepcopy(pod.obj)
        status = self._pod_status(pod, now)
        status.pop("_ready")
        obj["status"] = status
        if pod.gone_at is not None:
            obj["metadata"]["deletionTimestamp"] = _ts()
            obj["metadata"]["deletionGracePeriodSeconds"] = 30
        return obj

    def _render_rs(self, rs: _ReplicaSet) -> dict[str, Any]:
        now = time.monotonic()
        obj = copy.deepcopy(rs.obj)
        ns = rs.obj["metadata"]["namespace"]
        pods = [p for (pns, _), p in self._pods.items() if pns == ns and p.rs == rs.name and p.visible(now)]
        ready = sum(1 for p in pods if self._pod_ready(p, now))
        status: dict[str, Any] = {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                                  "readyReplicas": ready, "availableReplicas": ready,
                                  "observedGeneration": rs.obj["metadata"]["generation"]}
        obj["status"] = {k: v for k, v in status.items() if v or k == "replicas"}
        return obj

    def _render_deployment(self, dep: _Deployment) -> dict[str, Any]:
        now = time.monotonic()
        obj = copy.deepcopy(dep.obj)
        spec, ns = dep.obj["spec"], dep.key[0]
        active = self._active(dep)
        names = {rs.name for rs in self._owned(dep)}
        pods = [p for (pns, _), p in self._pods.items() if pns == ns and p.rs in names and p.visible(now)]
        replicas = len(pods)
        updated = sum(1 for p in pods if active is not None and p.rs == active.name)
        ready = sum(1 for p in pods if self._pod_ready(p, now))
        want = spec["replicas"]
        complete = updated == want and replicas == want and ready == want
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _percent(ru.get("maxUnavailable", "25%"), want, False)
        started = _ts(time.time() - (now - dep.rollout_started))
        if ready >= want - max_unavailable:
            available = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                         "message": "Deployment has minimum availability."}
        else:
            available = {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                         "message": "Deployment does not have minimum availability."}
        rs_name = active.name if active is not None else dep.key[1]
        deadline = self.progress_deadline
        if deadline is None:
            deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            progressing = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                           "message": f'ReplicaSet "{rs_name}" has successfully progressed.'}
        elif now - dep.rollout_started > deadline:
            progressing = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                           "message": f'ReplicaSet "{rs_name}" has timed out progressing.'}
        else:
            progressing = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                           "message": f'ReplicaSet "{rs_name}" is progressing.'}
        for cond in (available, progressing):
            cond.update(lastUpdateTime=_ts(), lastTransitionTime=started)
        counts = {"replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
                  "availableReplicas": ready, "unavailableReplicas": max(0, want - ready)}
        obj["status"] = {"observedGeneration": dep.obj["metadata"]["generation"],
                         **{k: v for k, v in counts.items() if v}, "conditions": [available, progressing]}
        return obj
