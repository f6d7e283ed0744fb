"""HTTP requests (feature flags, rate-limit endpoints) and Prometheus queries for runbook steps.

Secrets: a rendered step names them as `${secret:NAME}` in header values; they are resolved here, from
the worker's INCIDENTFLOW_RUNBOOK_SECRETS, and masked in every summary, output and error.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.errors import NOT_CONFIGURED, classify_http, from_transport_error, redact
from domain.models.runbook import StepOutcome, StepPlan
from domain.runbooks.fields import Condition

_SECRET = re.compile(r"\$\{secret:([A-Za-z0-9_.-]+)\}")
VERIFY_FAILED = "VerificationFailed"  # a `prometheus.query … until` that never held: not retried
UNEXPECTED_STATUS = "UnexpectedStatus"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 14] + "\n… truncated"


class HttpSteps:
    def __init__(self, http: httpx.AsyncClient, secrets: Mapping[str, str]) -> None:
        self.http = http
        self.secrets = dict(secrets)

    def _resolve(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            def sub(m: re.Match[str]) -> str:
                key = m.group(1)
                if key not in self.secrets:
                    raise ApplicationError(
                        f"secret {key!r} is not configured on the worker (INCIDENTFLOW_RUNBOOK_SECRETS; "
                        f"known: {', '.join(sorted(self.secrets)) or 'none'})", type=NOT_CONFIGURED, non_retryable=True)
                return self.secrets[key]
            out[name] = _SECRET.sub(sub, value)
        return out

    def plan(self, args: Mapping[str, Any]) -> StepPlan:
        method, url = str(args.get("method", "GET")).upper(), str(args["url"])
        changes = [f"{method} {url}"]
        for name, value in (args.get("headers") or {}).items():
            changes.append(f"header {name}: {_SECRET.sub(lambda m: f'<secret {m.group(1)}>', str(value))}")
        if args.get("json") is not None:
            changes.append(f"JSON body: {json.dumps(args['json'], sort_keys=True)[:500]}")
        elif args.get("body"):
            changes.append(f"body: {str(args['body'])[:500]}")
        changes.append(f"expect HTTP {', '.join(str(s) for s in args.get('expect_status') or [200])}")
        return StepPlan(summary=f"{method} {url}", changes=changes)

    async def request(self, args: Mapping[str, Any], idempotency_key: str | None = None) -> StepOutcome:
        method, url = str(args.get("method", "GET")).upper(), str(args["url"])
        headers = self._resolve(args.get("headers") or {})
        if idempotency_key and method != "GET":
            headers.setdefault("Idempotency-Key", idempotency_key)  # a retried POST is the same request
        expect = [int(s) for s in (args.get("expect_status") or [200, 201, 202, 204])]
        secrets = list(self.secrets.values())
        try:
            response = await self.http.request(method, url, headers=headers, json=args.get("json"),
                                               content=args.get("body") if args.get("json") is None else None,
                                               timeout=float(args.get("timeout_s") or 30))
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, f"{method} {url}") from None
        body = redact(response.text, secrets)
        if response.status_code not in expect:
            if response.status_code == 429 or response.status_code >= 500:
                raise classify_http(response.status_code, response.headers.get("retry-after"), f"{method} {url}", body)
            raise ApplicationError(f"{method} {url} answered HTTP {response.status_code}, expected "
                                   f"{', '.join(map(str, expect))}: {body[:300]}", type=UNEXPECTED_STATUS,
                                   non_retryable=True)
        return StepOutcome(summary=f"{method} {url} → HTTP {response.status_code}", output=_truncate(body, 2000),
                           data={"status": response.status_code})


class PrometheusSteps:
    def __init__(self, http: httpx.AsyncClient, base_url: str | None, token: str | None = None) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token = token

    async def value(self, query: str) -> float | None:
        """The first sample of an instant query (a scalar, or the first series of a vector); None if empty."""
        if not self.base_url:
            raise ApplicationError("no Prometheus configured: set INCIDENTFLOW_PROMETHEUS_URL on the worker",
                                   type=NOT_CONFIGURED, non_retryable=True)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.get(f"{self.base_url}/api/v1/query", params={"query": query}, headers=headers,
                                           timeout=15)
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, "Prometheus") from None
        if response.status_code != 200:
            detail = redact(response.text, [self.token])
            if response.status_code == 400:
                raise ApplicationError(f"Prometheus rejected the query: {detail[:300]}", type="PromQLError",
                                       non_retryable=True)
            raise classify_http(response.status_code, response.headers.get("retry-after"), "Prometheus", detail)
        data = response.json().get("data") or {}
        result = data.get("result")
        if data.get("resultType") == "scalar" and isinstance(result, list):
            return float(result[1])
        if isinstance(result, list) and result:
            return float(result[0]["value"][1])
        return None

    async def check(self, query: str, until: Mapping[str, Any] | None, timeout_s: float, interval_s: float,
                    heartbeat: Callable[[str], None] = lambda _: None) -> StepOutcome:
        if until is None:
            value = await self.value(query)
            return StepOutcome(summary=f"= {_fmt(value)}", output=f"{query}\n= {_fmt(value)}", data={"value": value})
        condition = Condition(op=until["op"], threshold=float(until["threshold"]))
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while True:
            value = await self.value(query)
            seen.append(_fmt(value))
            if value is not None and condition.holds(value):
                return StepOutcome(summary=f"verified: {_fmt(value)} {condition} (after {len(seen)} queries)",
                                   output=f"{query}\nvalues: {', '.join(seen[-20:])}",
                                   data={"value": value, "verified": True, "queries": len(seen)})
            heartbeat(f"{_fmt(value)} (want {condition})")
            if time.monotonic() + interval_s > deadline:
                raise ApplicationError(
                    f"not verified: the value stayed {_fmt(value)}, wanted {condition}, for "
                    f"{int(timeout_s)} s ({len(seen)} queries; last values {', '.join(seen[-5:])})",
                    type=VERIFY_FAILED, non_retryable=True)
            await asyncio.sleep(interval_s)


def _fmt(value: float | None) -> str:
    if value is None:
        return "no data"
    if math.isnan(value):
        return "NaN"
    return f"{value:.6g}"
