"""Probe adapters: HTTP requests (feature flags, rate-limit endpoints) and Prometheus queries, with httpx.

Secrets: a rendered step names them as `${secret:NAME}` in header values; they are resolved here, from
the worker's INCIDENTFLOW_RUNBOOK_SECRETS, and masked in every summary, output and error. Each secret is
bound to host patterns (`hosts`, domain/runbooks/hosts.py): before anything is sent, and when a step is
planned (dry runs), the URL as httpx parses it — the very object that is then sent — must match a host
of every secret the step uses, or the step is refused (non-retryable). Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Mapping

import httpx

from activities import errors
from activities.ports import Heartbeat, no_heartbeat
from domain.config import RunbookSecret
from domain.models.runbook import HttpRequestArgs, PrometheusQueryArgs, StepOutcome, StepPlan
from domain.runbooks.fields import Condition
from domain.runbooks.hosts import DEFAULT_PORTS, HostPattern, Target, allowed, parse_patterns, refusal

_SECRET = re.compile(r"\$\{secret:([A-Za-z0-9_.-]+)\}")
DEFAULT_EXPECT = (200, 201, 202, 204)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 14] + "\n… truncated"


class HttpProbe:
    """The `RequestProbe` port over one shared httpx client. `secrets`: name → RunbookSecret (value and
    hosts); a plain string is the old unbound form, kept only to refuse it with a clear message."""

    def __init__(self, http: httpx.AsyncClient, secrets: Mapping[str, RunbookSecret | str]) -> None:
        self.http = http
        bound = {name: RunbookSecret.model_validate(s) for name, s in secrets.items()}
        self.secrets = {name: s.value.get_secret_value() for name, s in bound.items()}
        self.hosts: dict[str, list[HostPattern]] = {name: parse_patterns(s.hosts) for name, s in bound.items()}

    def _resolve(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {name: _SECRET.sub(lambda m: self.secrets[m.group(1)], value) for name, value in headers.items()}

    def _authorize(self, args: HttpRequestArgs) -> httpx.URL:
        """The URL to send, once every secret the headers name is known and bound to its host."""
        try:
            url = httpx.URL(args.url)
        except httpx.InvalidURL as exc:
            raise errors.bad_step(f"invalid URL {args.url!r}: {exc}") from None
        used = dict.fromkeys(name for value in args.headers.values() for name in _SECRET.findall(value))
        if not used:
            return url
        scheme = url.scheme.lower()
        plain = scheme in DEFAULT_PORTS and not url.userinfo and bool(url.raw_host)
        target = Target.of(scheme, url.raw_host.decode("ascii"), url.port) if plain else None
        for name in used:
            if name not in self.secrets:
                raise errors.not_configured(
                    f"secret {name!r} is not configured on the worker (INCIDENTFLOW_RUNBOOK_SECRETS; "
                    f"known: {', '.join(sorted(self.secrets)) or 'none'})")
            refused = f"{args.method.upper()} {args.url} refused before sending: "
            if target is None:
                raise errors.secret_refused(
                    refused + f"secret {name!r} may not be sent to a URL with user info (user@host) or without an "
                    "http(s) host (INCIDENTFLOW_RUNBOOK_SECRETS binds it to its hosts)")
            if not allowed(target, self.hosts[name]):
                raise errors.secret_refused(refused + refusal(name, target, self.hosts[name]))
        return url

    def plan_request(self, args: HttpRequestArgs) -> StepPlan:
        self._authorize(args)  # a dry run shows a refused host before anything runs
        method, url = args.method.upper(), args.url
        changes = [f"{method} {url}"]
        for name, value in args.headers.items():
            changes.append(f"header {name}: {_SECRET.sub(lambda m: f'<secret {m.group(1)}>', value)}")
        if args.json_body is not None:
            changes.append(f"JSON body: {json.dumps(args.json_body, sort_keys=True)[:500]}")
        elif args.body:
            changes.append(f"body: {args.body[:500]}")
        changes.append(f"expect HTTP {', '.join(str(s) for s in args.expect_status or [200])}")
        return StepPlan(summary=f"{method} {url}", changes=changes)

    async def request(self, args: HttpRequestArgs, idempotency_key: str | None = None) -> StepOutcome:
        method, url = args.method.upper(), args.url
        checked = self._authorize(args)  # before anything is resolved or sent
        headers = self._resolve(args.headers)
        if idempotency_key and method != "GET":
            headers.setdefault("Idempotency-Key", idempotency_key)  # a retried POST is the same request
        expect = args.expect_status or list(DEFAULT_EXPECT)
        try:
            # the checked URL object itself, and no redirects: a 30x must not carry a secret elsewhere
            response = await self.http.request(method, checked, headers=headers, json=args.json_body,
                                               content=args.body if args.json_body is None else None,
                                               timeout=args.timeout_s or 30, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise errors.from_transport_error(exc, f"{method} {url}") from None
        body = errors.redact(response.text, self.secrets.values())
        if response.status_code not in expect:
            raise errors.unexpected_status(response.status_code, response.headers.get("retry-after"),
                                           f"{method} {url}", expect, body)
        return StepOutcome(summary=f"{method} {url} → HTTP {response.status_code}", output=_truncate(body, 2000),
                           data={"status": response.status_code})


class PrometheusProbe:
    """The `MetricsProbe` port: instant queries against the Prometheus HTTP API."""

    def __init__(self, http: httpx.AsyncClient, base_url: str | None, token: str | None = None) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None
        self.token = token

    async def value(self, query: str) -> float | None:
        """The first sample of an instant query (a scalar, or the first series of a vector); None if empty."""
        if not self.base_url:
            raise errors.not_configured("no Prometheus configured: set INCIDENTFLOW_PROMETHEUS_URL on the worker")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.http.get(f"{self.base_url}/api/v1/query", params={"query": query}, headers=headers,
                                           timeout=15)
        except httpx.HTTPError as exc:
            raise errors.from_transport_error(exc, "Prometheus") from None
        if response.status_code != 200:
            detail = errors.redact(response.text, [self.token])
            raise errors.prometheus_error(response.status_code, response.headers.get("retry-after"), detail)
        data = response.json().get("data") or {}
        result = data.get("result")
        if data.get("resultType") == "scalar" and isinstance(result, list):
            return float(result[1])
        if isinstance(result, list) and result:
            return float(result[0]["value"][1])
        return None

    async def query(self, args: PrometheusQueryArgs, heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        if args.until is None:
            value = await self.value(args.query)
            return StepOutcome(summary=f"= {_fmt(value)}", output=f"{args.query}\n= {_fmt(value)}",
                               data={"value": value})
        condition = Condition(op=args.until.op, threshold=args.until.threshold)
        timeout_s, interval_s = args.timeout_s or 600, args.interval_s or 30
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while True:
            value = await self.value(args.query)
            seen.append(_fmt(value))
            if value is not None and condition.holds(value):
                return StepOutcome(summary=f"verified: {_fmt(value)} {condition} (after {len(seen)} queries)",
                                   output=f"{args.query}\nvalues: {', '.join(seen[-20:])}",
                                   data={"value": value, "verified": True, "queries": len(seen)})
            heartbeat(f"{_fmt(value)} (want {condition})")
            if time.monotonic() + interval_s > deadline:
                raise errors.verification_failed(
                    f"not verified: the value stayed {_fmt(value)}, wanted {condition}, for "
                    f"{int(timeout_s)} s ({len(seen)} queries; last values {', '.join(seen[-5:])})")
            await asyncio.sleep(interval_s)


def _fmt(value: float | None) -> str:
    if value is None:
        return "no data"
    if math.isnan(value):
        return "NaN"
    return f"{value:.6g}"
