"""The fault suite's load (bench/faults.py), over the HTTP API only.

- The storm: Alertmanager v4 webhooks, each alert group's alerts a few per notification, with an HA pair's
  duplicate of some notifications, later re-sends of others (Alertmanager's repeat, or a retry after an
  answer was lost), repeats of alerts still firing, and real retries after 429/5xx/transport errors
  (Retry-After honoured, like Alertmanager).
- The people: once a group's incident shows up in `GET /v1/incidents`, alice takes the IC role, starts a
  runbook (a rollback on even groups, a scale on odd ones) and approves it when it asks; on every other
  group bob acknowledges a few seconds after level 2 paged; at the end alice resolves every incident.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from faults_stack import LEVELS, NAMESPACE, ROOT, runbook_for, service

ALERTNAME = "FaultSuiteErrorRate"
FIXTURE = ROOT / "tests/fixtures/alertmanager-firing.json"
RETRYABLE = (429, 500, 502, 503, 504)


# ---------------------------------------------------------------------------- the HTTP client
class Api:
    """httpx against our API with the admin token; retries 429/5xx and transport errors until `patience`
    seconds have passed, honouring Retry-After. Counts every answer by route and status."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30.0, headers={"authorization": f"Bearer {token}"},
                                      limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self.answers: Counter[str] = Counter()  # "POST alerts 202", "POST acknowledge transport"

    async def close(self) -> None:
        await self.http.aclose()

    async def once(self, method: str, path: str, route: str, **kwargs: Any) -> httpx.Response | None:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError:
            self.answers[f"{method} {route} transport error"] += 1
            return None
        self.answers[f"{method} {route} {response.status_code}"] += 1
        return response

    async def call(self, method: str, path: str, route: str, patience: float = 180.0,
                   retry: Callable[[httpx.Response | None], bool] | None = None, **kwargs: Any) -> httpx.Response | None:
        """The first answer that is not retryable (or the last one after `patience` s). `retry` decides
        whether to send again (default: no answer, 429 or 5xx)."""
        deadline = time.monotonic() + patience
        while True:
            response = await self.once(method, path, route, **kwargs)
            again = retry(response) if retry else (response is None or response.status_code in RETRYABLE)
            if not again or time.monotonic() > deadline:
                return response
            await asyncio.sleep(retry_after(response))


def retry_after(response: httpx.Response | None) -> float:
    if response is None:
        return 1.0
    try:
        return min(10.0, max(0.2, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


# ---------------------------------------------------------------------------- the storm
@dataclass
class Notification:
    group: int
    alerts: list[int]  # alert indexes; the first ones are new, a trailing one may be a repeat
    at: float  # seconds after the start
    copies: int  # 2: an Alertmanager HA pair sends it twice, at the same moment
    resend: float | None  # sent once more this many seconds later


def plan_storm(groups: int, alerts: int, seconds: float, rng: random.Random, dup: float = 0.25,
               resend: float = 0.1, repeat: float = 0.3) -> list[Notification]:
    """Alert i belongs to group i % groups. A group's first notification comes in the first tenth of the
    storm (so incidents open early and their escalations run under the chaos); the rest spread out."""
    out: list[Notification] = []
    for g in range(groups):
        mine = list(range(g, alerts, groups))
        chunks: list[list[int]] = []
        while mine:
            k = rng.randint(1, 3)
            chunks.append(mine[:k])
            mine = mine[k:]
        first = rng.uniform(0, max(1.0, seconds / 10))
        times = sorted(rng.uniform(first, seconds) for _ in chunks[1:])
        sent: list[int] = []
        for chunk, at in zip(chunks, [first, *times]):
            extra = [rng.choice(sent)] if sent and rng.random() < repeat else []
            out.append(Notification(g, chunk + extra, at, 2 if rng.random() < dup else 1,
                                    rng.uniform(2, 10) if rng.random() < resend else None))
            sent += chunk
    return sorted(out, key=lambda n: n.at)


def fingerprint(i: int, tag: str) -> str:
    return hashlib.sha256(f"{tag}:{i}".encode()).hexdigest()[:16]


class Storm:
    """Builds the Alertmanager v4 bodies: one group per service, `groupKey` as Alertmanager writes it."""

    def __init__(self, groups: int, tag: str) -> None:
        self.fixture = json.loads(FIXTURE.read_text())
        self.tag = tag
        self.started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.groups = groups

    def body(self, n: Notification) -> bytes:
        svc = service(n.group)
        p = copy.deepcopy(self.fixture)
        template = p["alerts"][0]
        common = {"alertname": ALERTNAME, "service": svc, "severity": "critical"}
        alerts = []
        for i in n.alerts:
            a = copy.deepcopy(template)
            a.update(labels={**common, "instance": f"web-{i}"}, fingerprint=fingerprint(i, self.tag),
                     annotations={"summary": f"5xx ratio above 5% on {svc} web-{i}"}, startsAt=self.started)
            alerts.append(a)
        p.update(alerts=alerts, groupKey=f'{{}}:{{alertname="{ALERTNAME}", service="{svc}"}}',
                 groupLabels={"alertname": ALERTNAME, "service": svc}, commonLabels=common,
                 commonAnnotations={"summary": f"5xx ratio above 5% on {svc}"})
        return json.dumps(p).encode()


@dataclass
class StormStats:
    notifications: int = 0
    posts: int = 0  # requests started: notifications × copies + re-sends (retries not counted)
    attempts: int = 0  # every HTTP attempt, retries included
    retries: int = 0
    accepted_posts: int = 0
    failed_posts: int = 0  # never answered 2xx within the patience
    answers: Counter[str] = field(default_factory=Counter)  # 202, 503, transport error …
    accepted: set[int] = field(default_factory=set)  # alert indexes accepted at least once
    sent: set[int] = field(default_factory=set)  # alert indexes sent at least once
    deliveries_accepted: int = 0  # alerts in 2xx answers (what Temporal must count at least)
    deliveries_possible: int = 0  # alerts in every attempt that may have reached Temporal (2xx, 5xx, no answer)
    group_ids: dict[int, str] = field(default_factory=dict)  # group → AlertGroupWorkflow id (from the 202)
    seconds: float = 0.0


async def run_storm(api: Api, storm: Storm, plan: list[Notification], t0: float, stats: StormStats,
                    patience: float) -> None:
    stats.notifications = len(plan)

    async def post(n: Notification, body: bytes, delay: float) -> None:
        await asyncio.sleep(max(0.0, t0 + n.at + delay - time.time()))
        stats.posts += 1
        stats.sent.update(n.alerts)
        deadline = time.monotonic() + patience
        while True:
            stats.attempts += 1
            r = await api.once("POST", "/v1/alerts/alertmanager", "alerts", content=body,
                               headers={"content-type": "application/json"})
            stats.answers["transport error" if r is None else str(r.status_code)] += 1
            if r is None or r.status_code >= 500 or 200 <= r.status_code < 300:
                stats.deliveries_possible += len(n.alerts)
            if r is not None and 200 <= r.status_code < 300:
                stats.accepted_posts += 1
                stats.accepted.update(n.alerts)
                stats.deliveries_accepted += len(n.alerts)
                gid = r.json().get("group_id")
                if gid:
                    stats.group_ids.setdefault(n.group, gid)
                return
            if (r is not None and r.status_code not in RETRYABLE) or time.monotonic() > deadline:
                stats.failed_posts += 1
                return
            stats.retries += 1
            await asyncio.sleep(retry_after(r))

    tasks = []
    for n in plan:
        body = storm.body(n)
        tasks += [post(n, body, 0.0) for _ in range(n.copies)]
        if n.resend is not None:
            tasks.append(post(n, body, n.resend))
    start = time.time()
    await asyncio.gather(*tasks)
    stats.seconds = time.time() - start


# ---------------------------------------------------------------------------- the people
@dataclass
class GroupLog:
    """What the people did for one group (times are time.time())."""

    incident: str | None = None
    seen_at: float | None = None
    ic: str | None = None
    runbook: str | None = None
    run_id: str | None = None
    approved_at: float | None = None
    acked_at: float | None = None
    resolve_sent: float | None = None
    errors: list[str] = field(default_factory=list)


class People:
    def __init__(self, api: Api, pd: Any, groups: int, ack_groups: set[int], rng: random.Random) -> None:
        self.api, self.pd, self.groups, self.ack_groups, self.rng = api, pd, groups, ack_groups, rng
        self.log = {g: GroupLog() for g in range(groups)}
        self.duplicates: Counter[str] = Counter()  # services listed with more than one incident
        self.found = asyncio.Event()
        self._pd_read = 0  # PagerDuty requests already looked at
        self._pd_paged: set[tuple[str, int]] = set()  # (incident, level) accepted by PagerDuty

    async def discover(self, stop: asyncio.Event) -> None:
        """Maps each service to its incident from `GET /v1/incidents` (visibility), every 2 s."""
        index = {service(g): g for g in range(self.groups)}
        while not stop.is_set():
            r = await self.api.once("GET", "/v1/incidents", "list", params={"limit": 1000})
            if r is not None and r.status_code == 200:
                per: Counter[str] = Counter(row.get("service") for row in r.json())
                for row in r.json():
                    g = index.get(row.get("service"))
                    if g is not None and self.log[g].incident is None:
                        self.log[g].incident, self.log[g].seen_at = row["id"], time.time()
                self.duplicates = Counter({s: c for s, c in per.items() if c > 1 and s in index})
                if all(lg.incident for lg in self.log.values()):
                    self.found.set()
            try:
                await asyncio.wait_for(stop.wait(), 2.0)
            except TimeoutError:
                pass

    async def incident(self, g: int, stop: asyncio.Event) -> str | None:
        while self.log[g].incident is None and not stop.is_set():
            await asyncio.sleep(0.5)
        return self.log[g].incident

    async def state(self, iid: str) -> dict[str, Any] | None:
        r = await self.api.call("GET", f"/v1/incidents/{iid}", "show", patience=60)
        return r.json() if r is not None and r.status_code == 200 else None

    async def act(self, g: int, stop: asyncio.Event) -> None:
        try:
            await self._act(g, stop)
        except Exception as exc:  # noqa: BLE001 - a driver bug must show in the report, not stop the run
            self.log[g].errors.append(f"{type(exc).__name__}: {exc}"[:300])

    async def _act(self, g: int, stop: asyncio.Event) -> None:
        iid = await self.incident(g, stop)
        if iid is None:
            self.log[g].errors.append("incident never listed")
            return
        flows = [self._runbook(g, iid)]
        if g in self.ack_groups:
            flows.append(self._ack_after_level_2(g, iid, stop))
        await asyncio.gather(*flows)

    async def _runbook(self, g: int, iid: str) -> None:
        lg = self.log[g]
        r = await self.api.call("POST", f"/v1/incidents/{iid}/roles", "roles",
                                json={"role": "ic", "person": "alice", "by": "alice"})
        if r is None or r.status_code not in (200, 202, 409):
            lg.errors.append(f"roles: {r.status_code if r is not None else 'no answer'}")
        state = await self.state(iid)
        lg.ic = ((state or {}).get("roles") or {}).get("ic") or "alice"
        lg.runbook = runbook_for(g)
        lg.run_id = await self._start_runbook(iid, lg.runbook, service(g))
        if lg.run_id is None:
            lg.errors.append("runbook not started")
            return
        await self._approve(lg)

    async def _start_runbook(self, iid: str, name: str, deployment: str) -> str | None:
        """POST …/runbooks once; after an answer that may hide a start (no answer, 5xx), look for the run on
        the incident before sending again, so a client retry never starts a second run."""
        key = str(uuid.uuid4())
        for _ in range(60):
            r = await self.api.once("POST", f"/v1/incidents/{iid}/runbooks", "runbooks",
                                    json={"name": name, "params": {"deployment": deployment, "namespace": NAMESPACE},
                                          "by": "alice"}, headers={"Idempotency-Key": key})
            if r is not None and 200 <= r.status_code < 300:
                return str(r.json().get("ref"))
            if r is not None and r.status_code not in RETRYABLE:
                return None
            await asyncio.sleep(retry_after(r))
            state = await self.state(iid)
            runs = [run for run in (state or {}).get("runbooks", []) if run.get("runbook") == name]
            if runs:
                return str(runs[0]["run_id"])
        return None

    async def _approve(self, lg: GroupLog) -> None:
        for _ in range(600):
            r = await self.api.call("GET", f"/v1/runbook-runs/{lg.run_id}", "run", patience=60)
            run = r.json() if r is not None and r.status_code == 200 else {}
            status = run.get("status")
            if status in ("succeeded", "failed", "denied"):
                return
            if status == "awaiting_approval" and run.get("pending"):
                a = await self.api.call("POST", f"/v1/runbook-runs/{lg.run_id}/approve", "approve",
                                        json={"by": lg.ic, "comment": "fault suite"})
                if a is not None and 200 <= a.status_code < 300:
                    lg.approved_at = lg.approved_at or time.time()
            await asyncio.sleep(2.0)
        lg.errors.append("runbook run did not end within 20 min")

    def _paged(self, iid: str, level: int) -> bool:
        requests = self.pd.requests
        for req in requests[self._pd_read:len(requests)]:
            self._pd_read += 1
            if req.status == 202:
                details = ((req.json.get("payload") or {}).get("custom_details") or {})
                self._pd_paged.add((details.get("incident_id"), details.get("level")))
        return (iid, level) in self._pd_paged

    async def _ack_after_level_2(self, g: int, iid: str, stop: asyncio.Event) -> None:
        while not self._paged(iid, 2) and not stop.is_set():
            await asyncio.sleep(0.5)
        await asyncio.sleep(self.rng.uniform(2, 6))
        r = await self.api.call("POST", f"/v1/incidents/{iid}/acknowledge", "acknowledge",
                                json={"by": LEVELS[1]}, headers={"Idempotency-Key": str(uuid.uuid4())})
        if r is not None and (200 <= r.status_code < 300 or r.status_code == 409):
            self.log[g].acked_at = time.time()
        else:
            self.log[g].errors.append(f"acknowledge: {r.status_code if r is not None else 'no answer'}")

    async def resolve(self, g: int) -> None:
        lg = self.log[g]
        if lg.incident is None:
            return
        lg.resolve_sent = time.time()
        r = await self.api.call("POST", f"/v1/incidents/{lg.incident}/resolve", "resolve",
                                json={"by": "alice", "summary": "fault suite finished"},
                                headers={"Idempotency-Key": str(uuid.uuid4())})
        if r is None or not (200 <= r.status_code < 300 or r.status_code == 409):
            lg.errors.append(f"resolve: {r.status_code if r is not None else 'no answer'}")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=str))
