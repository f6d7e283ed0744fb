"""In-memory fakes of every port in activities/ports.py, for workflow tests without HTTP fakes.

Each keeps what it was asked in plain Python state for assertions, is idempotent where its port
promises to be (dedup keys, absolute targets), and fails on demand with the same classified errors
the real adapters raise (activities/errors.py), so the workflows' reactions are the real ones:

    cluster = MemoryCluster()
    cluster.add_deployment("shop", "checkout", images=["checkout:v1", "checkout:v2", "checkout:v3"])
    steps = RunbookSteps(cluster, probe := MemoryProbe(), probe)
    worker = build_worker(client, settings, runbook_steps=steps, chat=MemoryChat(), ...)

The HTTP fakes (tests/fakes/slack.py, kubernetes.py, …) stay for the adapters' own tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from temporalio.exceptions import ApplicationError

from activities import errors
from activities.ports import (
    Chat,
    Cluster,
    Heartbeat,
    IncidentDirectory,
    MetricsProbe,
    Notifier,
    Pager,
    Probe,
    RequestProbe,
    no_heartbeat,
)
from domain.models import IncidentSummary, NotifyInput
from domain.models.chat import ButtonMessage, ChatOpenInput, ChatRoom, ChatSyncInput, ChatSyncResult
from domain.models.common import EventKind
from domain.models.paging import PageRequest, PageResult
from domain.models.runbook import (
    HttpRequestArgs,
    KubeReadArgs,
    LogsArgs,
    PodsArgs,
    PrometheusQueryArgs,
    StepOutcome,
    StepPlan,
)


class Failures:
    """Errors to raise on the next calls of a fake (`fail_next(err)`), oldest first."""

    def __init__(self) -> None:
        self.pending: list[ApplicationError] = []

    def fail_next(self, *failures: ApplicationError) -> None:
        self.pending.extend(failures)

    def check(self) -> None:
        if self.pending:
            raise self.pending.pop(0)


# ------------------------------------------------------------------------------------- Notifier, Pager, …


class MemoryNotifier:
    def __init__(self) -> None:
        self.delivered: list[NotifyInput] = []
        self.failures = Failures()

    async def notify(self, message: NotifyInput) -> None:
        self.failures.check()
        if all(m.dedup_key != message.dedup_key for m in self.delivered):
            self.delivered.append(message)


class MemoryPager:
    """A pager channel; `refuse` names targets it refuses for good (like an unknown routing key)."""

    def __init__(self, name: str = "memory", refuse: set[str] | None = None) -> None:
        self.name = name
        self.refuse = refuse or set()
        self.sent: list[PageRequest] = []
        self.failures = Failures()

    async def send(self, request: PageRequest) -> PageResult:
        self.failures.check()
        if request.target in self.refuse:
            raise errors.not_configured(f"{self.name} cannot reach {request.target}")
        if all((r.dedup_key, r.action) != (request.dedup_key, request.action) for r in self.sent):
            self.sent.append(request)
        return PageResult(channel=self.name, detail=f"{request.action} {request.dedup_key}")


class MemoryDirectory:
    def __init__(self, incidents: list[IncidentSummary] | None = None) -> None:
        self.incidents = list(incidents or [])

    async def list(self, *, limit: int = 100) -> list[IncidentSummary]:
        return self.incidents[:limit]


# ------------------------------------------------------------------------------------- Chat


@dataclass
class Channel:
    room: ChatRoom
    posts: dict[str, str] = field(default_factory=dict)  # dedup key → text, in posting order
    summaries: list[str] = field(default_factory=list)  # each summary shown (open, then updates)
    members: list[str] = field(default_factory=list)
    closed: dict[str, str] = field(default_factory=dict)  # ts of an answered button message → its outcome


class MemoryChat:
    """Channels per incident; every post is kept once per dedup key (as the Slack adapter promises)."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}  # incident id → channel
        self.attempts = 0
        self.failures = Failures()

    def note_attempt(self) -> None:
        self.attempts += 1

    async def open(self, inp: ChatOpenInput) -> ChatRoom:
        self.failures.check()
        s = inp.summary
        if s.incident_id not in self.channels:
            n = len(self.channels) + 1
            room = ChatRoom(provider="memory", channel_id=f"C{n:06d}", channel_name=f"inc-{n}",
                            context_ts=f"{n}.1", summary_ts=f"{n}.2")
            self.channels[s.incident_id] = Channel(room=room, summaries=[f"{s.severity.value} {s.title}"])
        channel = self.channels[s.incident_id]
        channel.members = list(dict.fromkeys([*channel.members, *inp.invite]))
        return channel.room.model_copy(update={"invited": list(inp.invite)})

    async def sync(self, inp: ChatSyncInput) -> ChatSyncResult:
        self.failures.check()
        channel = self.channels[inp.incident_id]
        if inp.summary is not None:
            channel.summaries.append(f"{inp.summary.severity.value} {inp.summary.title} "
                                     f"({inp.summary.phase.value})")
        channel.members = list(dict.fromkeys([*channel.members, *inp.invite]))
        posted, buttons = [], []
        for post in inp.posts:
            key = f"{inp.incident_id}:event:{post.seq}"
            channel.posts.setdefault(key, post.text)
            posted.append(f"ts-{post.seq}")
            if post.kind == EventKind.approval and post.ref:
                buttons.append(ButtonMessage(kind="approval", ref=post.ref, seq=post.seq, channel=channel.room.channel_id,
                                             ts=f"ts-{post.seq}", text=post.text))
        for message in inp.close:
            channel.closed.setdefault(message.ts, message.outcome or "")
        return ChatSyncResult(posted=posted, invited=list(inp.invite), closed=[m.ts for m in inp.close],
                              buttons=buttons)

    def texts(self, incident_id: str) -> list[str]:
        return list(self.channels[incident_id].posts.values())


# ------------------------------------------------------------------------------------- Cluster


@dataclass
class Deployment:
    """`images[rev]` is the pod template of each kept revision; a rollback reuses a revision under a new
    number (max + 1), as the controller does, and remembers the old number in `moved`."""

    images: dict[int, str]
    revision: int
    replicas: int = 3
    restarted_at: str | None = None
    paused: bool = False
    moved: dict[int, int] = field(default_factory=dict)  # old revision → its number now

    @property
    def image(self) -> str:
        return self.images[self.revision]

    def find(self, revision: int) -> int | None:
        return revision if revision in self.images else self.moved.get(revision)


class MemoryCluster:
    """Deployments in memory. `writes` lists every change made, so tests can count them."""

    def __init__(self) -> None:
        self.deployments: dict[str, Deployment] = {}
        self.pods_by_selector: dict[str, list[str]] = {}
        self.writes: list[str] = []
        self.failures = Failures()

    def add_deployment(self, namespace: str, name: str, images: list[str], replicas: int = 3) -> Deployment:
        dep = Deployment(images={i + 1: image for i, image in enumerate(images)}, revision=len(images),
                         replicas=replicas)
        self.deployments[f"{namespace}/{name}"] = dep
        self.pods_by_selector[f"app={name}"] = [f"{name}-{i}" for i in range(replicas)]
        return dep

    def _get(self, namespace: str, name: str) -> Deployment:
        self.failures.check()
        dep = self.deployments.get(f"{namespace}/{name}")
        if dep is None:
            raise errors.kubernetes_rejected(f"Kubernetes refused to get deployments/{name} in {namespace}: "
                                             f'404 NotFound: deployments.apps "{name}" not found')
        return dep

    async def plan_rollout_undo(self, namespace: str, deployment: str, to_revision: int | None) -> StepPlan:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        older = [r for r in dep.images if r < dep.revision]
        target = to_revision if to_revision is not None else (max(older) if older else None)
        number = None if target is None else dep.find(target)
        if target is None or number is None:
            raise errors.kubernetes_rejected(f"cannot roll back {ref}: no revision to roll back to")
        data = {"target_revision": target, "from_revision": dep.revision, "target_replicaset": f"{deployment}-{number}"}
        if dep.images[number] == dep.image:
            return StepPlan(summary=f"{ref} already runs the template of revision {target}", data=data, noop=True)
        return StepPlan(summary=f"Roll back {ref} from revision {dep.revision} to revision {target}",
                        changes=[f"container {deployment}: image {dep.image} → {dep.images[number]}"], data=data)

    async def rollout_undo(self, namespace: str, deployment: str, target_revision: int,
                           from_revision: int | None = None) -> StepOutcome:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        number = dep.find(target_revision)
        if number is None:
            raise errors.kubernetes_rejected(f"cannot roll back {ref}: revision {target_revision} not found")
        data = {"target_revision": target_revision, "from_revision": from_revision}
        if dep.images[number] == dep.image:
            return StepOutcome(summary=f"{ref} already at the template of revision {target_revision} (nothing to do)",
                               data={**data, "changed": False, "revision": dep.revision})
        previous, new = dep.revision, max(dep.images) + 1
        dep.images[new] = dep.images.pop(number)
        dep.moved[target_revision] = new
        dep.revision = new
        self.writes.append(f"rollback {ref} to {target_revision}")
        return StepOutcome(summary=f"Rolled back {ref} from revision {previous} to the template of revision "
                                   f"{target_revision} (now revision {new})",
                           data={**data, "changed": True, "revision": new, "previous_revision": previous})

    async def plan_scale(self, namespace: str, deployment: str, replicas: int | None, factor: float | None,
                         max_replicas: int) -> StepPlan:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        wanted = replicas if replicas is not None else math.ceil(round(dep.replicas * (factor or 1), 9))
        target = min(wanted, max_replicas)
        data = {"previous_replicas": dep.replicas, "replicas": target, "capped": target < wanted}
        return StepPlan(summary=f"Scale {ref} from {dep.replicas} to {target} replicas", data=data,
                        changes=[f"spec.replicas: {dep.replicas} → {target}"], noop=target == dep.replicas)

    async def scale(self, namespace: str, deployment: str, replicas: int) -> StepOutcome:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        previous, changed = dep.replicas, dep.replicas != replicas
        if changed:
            dep.replicas = replicas
            self.writes.append(f"scale {ref} to {replicas}")
        return StepOutcome(summary=f"Scaled {ref} from {previous} to {replicas} replicas",
                           data={"previous_replicas": previous, "replicas": replicas, "changed": changed})

    async def plan_restart(self, namespace: str, deployment: str, restarted_at: str) -> StepPlan:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        value = restarted_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        data = {"restarted_at": value, "previous_restarted_at": dep.restarted_at, "replicas": dep.replicas}
        return StepPlan(summary=f"Restart {ref}", data=data, noop=dep.restarted_at == value)

    async def restart(self, namespace: str, deployment: str, restarted_at: str) -> StepOutcome:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        changed = dep.restarted_at != restarted_at
        if changed:
            dep.restarted_at = restarted_at
            dep.images[max(dep.images) + 1] = dep.images.pop(dep.revision)
            dep.revision = max(dep.images)
            self.writes.append(f"restart {ref} at {restarted_at}")
        return StepOutcome(summary=f"Restarted {ref}", data={"changed": changed, "restarted_at": restarted_at,
                                                             "revision": dep.revision})

    async def rollout_status(self, namespace: str, deployment: str, timeout_s: float,
                             heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        ref, dep = f"{namespace}/{deployment}", self._get(namespace, deployment)
        heartbeat(f"rollout of {ref}: {dep.replicas} of {dep.replicas} updated")
        return StepOutcome(summary=f"Rollout of {ref} complete (revision {dep.revision})",
                           data={"revision": dep.revision, "replicas": dep.replicas, "polls": 1})

    async def pods(self, namespace: str, selector: str, max_bytes: int = 4000) -> StepOutcome:
        self.failures.check()
        names = self.pods_by_selector.get(selector, [])
        return StepOutcome(summary=f"{len(names)} pods ({len(names)} ready) for {selector} in {namespace}",
                           output="\n".join(names)[:max_bytes], data={"pods": len(names), "ready": len(names)})

    async def logs(self, namespace: str, pod: str | None, selector: str | None, container: str | None,
                   tail_lines: int, max_bytes: int) -> StepOutcome:
        self.failures.check()
        names = [pod] if pod else self.pods_by_selector.get(selector or "", [])[:3]
        return StepOutcome(summary=f"Last {tail_lines} log lines of {len(names)} pods in {namespace}",
                           output="".join(f"==> {n} <==\n" for n in names)[:max_bytes], data={"pods": names})

    async def plan_read(self, args: KubeReadArgs) -> StepPlan:
        what = (f"pods {args.selector}" if isinstance(args, PodsArgs) else f"logs of {args.pod or args.selector}"
                if isinstance(args, LogsArgs) else f"the rollout of {args.deployment}")
        return StepPlan(summary=f"Read {what} in {args.namespace}")


# ------------------------------------------------------------------------------------- Probe


class MemoryProbe:
    """HTTP answers per URL and metric values per query (each query answers the next value; the last
    one repeats). Requests are recorded with their idempotency keys."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, str]] = {}  # "METHOD url" → (status, body)
        self.requests: list[tuple[HttpRequestArgs, str | None]] = []
        self.values: dict[str, list[float | None]] = {}
        self.queries: list[str] = []
        self.failures = Failures()

    def plan_request(self, args: HttpRequestArgs) -> StepPlan:
        return StepPlan(summary=f"{args.method.upper()} {args.url}")

    async def request(self, args: HttpRequestArgs, idempotency_key: str | None = None) -> StepOutcome:
        self.failures.check()
        what = f"{args.method.upper()} {args.url}"
        self.requests.append((args, idempotency_key))
        status, body = self.answers.get(what, (200, ""))
        expect = args.expect_status or [200, 201, 202, 204]
        if status not in expect:
            raise errors.unexpected_status(status, None, what, expect, body)
        return StepOutcome(summary=f"{what} → HTTP {status}", output=body, data={"status": status})

    async def query(self, args: PrometheusQueryArgs, heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        for _ in range(1000):
            self.failures.check()
            self.queries.append(args.query)
            values = self.values.get(args.query) or [None]
            value = values.pop(0) if len(values) > 1 else values[0]
            if args.until is None:
                return StepOutcome(summary=f"= {value}", data={"value": value})
            if value is not None and _holds(args.until.op, value, args.until.threshold):
                return StepOutcome(summary=f"verified: {value:g} {args.until.op} {args.until.threshold:g}",
                                   data={"value": value, "verified": True, "queries": self.queries.count(args.query)})
            heartbeat(f"{value} (want {args.until.op} {args.until.threshold:g})")
        raise errors.verification_failed(f"not verified: {args.query} stayed {value}")


def _holds(op: str, value: float, threshold: float) -> bool:
    return {"<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold,
            "==": value == threshold, "!=": value != threshold}[op]


if TYPE_CHECKING:  # each fake is its port (mypy tests/fakes/memory.py checks it)
    _ports: tuple[Notifier, Pager, IncidentDirectory, Chat, Cluster, Probe, RequestProbe, MetricsProbe] = (
        MemoryNotifier(), MemoryPager(), MemoryDirectory(), MemoryChat(), MemoryCluster(), MemoryProbe(),
        MemoryProbe(), MemoryProbe())
