"""The plumbing under the Kubernetes adapter: loading the client, calling it off the event loop, and
turning its exceptions into the classified errors of activities/errors.py.

The client is blocking: every call runs in `asyncio.to_thread` with `_request_timeout`, so a hung API
server cannot hang the activity. Calls use `_preload_content=False` and read the JSON exactly as the API
server sent it (the client's models would drop fields they do not know). Messages carry the API
server's Status message, never the bearer token.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import kubernetes
import urllib3
from kubernetes.client import ApiClient, AppsV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException
from temporalio.exceptions import ApplicationError

from activities import errors
from activities import kube_templates as tpl
from activities.kube_text import fmt_duration

_T = TypeVar("_T")
# Untyped in the client; these are the signatures we rely on.
_new_client_from_config = cast(Callable[..., ApiClient], kubernetes.config.new_client_from_config)
_load_incluster_config = cast(Callable[..., None], kubernetes.config.load_incluster_config)


class Conflict(Exception):
    """A 409 on a write the caller retries after re-reading."""


def status_of(exc: ApiException) -> tuple[str, str]:
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
    reason, message = status_of(exc)
    said = f"{status} {reason}" if reason else str(status)
    if message and message != reason:
        said += f": {message}"
    return errors.kubernetes_error(status, errors.redact(said, secrets), what, _retry_after(exc))


def classify_transport_error(exc: BaseException, what: str, timeout: float) -> ApplicationError:
    """No answer: a timeout or a connection failure (retryable). Only the class name: no URL, no headers."""
    inner = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(inner, urllib3.exceptions.NewConnectionError):  # (a ConnectTimeoutError subclass)
        text = f"Kubernetes API could not be reached to {what}"
    elif isinstance(inner, urllib3.exceptions.TimeoutError | TimeoutError):
        text = f"Kubernetes API did not answer within {fmt_duration(timeout)} to {what}"
    else:
        text = f"Kubernetes API could not be reached to {what}"
    name = type(inner).__name__ if inner is not None else type(exc).__name__
    return errors.kubernetes_unreachable(f"{text}: {name}")


def load_api_client(kubeconfig: str | None, context: str | None) -> ApiClient:
    """An ApiClient from `kubeconfig` (else $KUBECONFIG, else ~/.kube/config) and `context`, or the
    in-cluster service account when no kubeconfig exists. Raises a non-retryable NOT_CONFIGURED error."""
    source = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    paths = [Path(p).expanduser() for p in source.split(os.pathsep) if p]
    if kubeconfig and not any(p.exists() for p in paths):
        raise errors.not_configured(f"kubeconfig {kubeconfig} not found")
    if any(p.exists() for p in paths):
        try:
            return _new_client_from_config(config_file=source, context=context or None, persist_config=False)
        except (ConfigException, OSError, ValueError) as exc:
            raise errors.not_configured(f"cannot load kubeconfig {source}"
                                        f"{f' (context {context})' if context else ''}: "
                                        f"{errors.redact(str(exc), [])}") from None
    if context:
        raise errors.not_configured(f"Kubernetes context {context!r} is set but no kubeconfig was found ({source})")
    configuration = kubernetes.client.Configuration()
    try:
        _load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise errors.not_configured(f"no kubeconfig ({source} does not exist) and not running in a cluster "
                                    f"({exc}): set INCIDENTFLOW_KUBECONFIG or KUBECONFIG") from None
    return ApiClient(configuration)


class KubeApi:
    """Thread-safe access to one API server; the ApiClient is created lazily, once, and reused."""

    def __init__(self, api_client_factory: Callable[[], ApiClient], request_timeout: float = 10.0,
                 poll_interval: float = 2.0) -> None:
        self._factory = api_client_factory
        self._api: ApiClient | None = None
        self._lock = threading.Lock()
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval

    def warm(self) -> None:
        """Create the ApiClient now (reads the kubeconfig; blocking). A config that does not load is left
        for the first call to report, as a classified error."""
        try:
            self._client()
        except ApplicationError:
            pass

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                cast(Callable[[], None], self._api.close)()
                self._api = None

    def _client(self) -> ApiClient:
        with self._lock:
            if self._api is None:
                try:
                    self._api = self._factory()
                except ConfigException as exc:
                    raise errors.not_configured(f"Kubernetes client not configured: {exc}") from None
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
                raise Conflict(what) from None
            raise classify_api_exception(exc, what, self._secrets()) from None
        except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as exc:
            raise classify_transport_error(exc, what, self.request_timeout) from None

    async def _json(self, what: str, fn: Callable[[ApiClient], Any], *, conflict: bool = False) -> dict[str, Any]:
        """Like `_call` for a call made with `_kw()`: the object exactly as the API server sent it."""
        def run(api: ApiClient) -> dict[str, Any]:
            parsed = json.loads(fn(api).data or b"null")
            return parsed if isinstance(parsed, dict) else {}
        return await self._call(what, run, conflict=conflict)

    def _kw(self) -> dict[str, Any]:
        return {"_request_timeout": self.request_timeout, "_preload_content": False}

    async def _deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._json(
            f"get deployments/{name} in {namespace}",
            lambda api: AppsV1Api(api).read_namespaced_deployment(name, namespace, **self._kw()))

    async def _history(self, namespace: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The Deployment and the ReplicaSets it controls, lowest revision first."""
        dep = await self._deployment(namespace, name)
        selector = tpl.selector_string((dep.get("spec") or {}).get("selector"))
        listed = await self._json(
            f"list replicasets in {namespace}",
            lambda api: AppsV1Api(api).list_namespaced_replica_set(namespace, label_selector=selector,
                                                                   **self._kw()))
        uid = dep["metadata"].get("uid")
        owned = [rs for rs in listed.get("items") or []
                 if any(o.get("uid") == uid and o.get("controller")
                        for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]
        owned.sort(key=lambda rs: (tpl.revision(rs), rs["metadata"].get("name", "")))
        return dep, owned

    @staticmethod
    def _current_revision(dep: dict[str, Any], owned: list[dict[str, Any]]) -> int:
        current = tpl.revision(dep)
        if current:
            return current
        matching = [rs for rs in owned if tpl.same_template(rs["spec"]["template"], dep["spec"]["template"])]
        return tpl.revision(matching[-1]) if matching else max((tpl.revision(rs) for rs in owned), default=0)

    @staticmethod
    def _paused(dep: dict[str, Any], ref: str, action: str) -> None:
        if (dep.get("spec") or {}).get("paused"):
            raise errors.kubernetes_rejected(
                f"cannot {action} {ref}: the deployment is paused (kubectl rollout resume it first)")
