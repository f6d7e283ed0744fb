"""Capability ports: what the activities need from the outside world, one small Protocol each.

Activities hold ports, never vendors. One adapter per vendor implements each port (Slack → `Chat`,
Kubernetes → `Cluster`, PagerDuty/webhook/log → `Pager`, …), built once by workers/main.py;
tests/fakes/memory.py has an in-memory fake of each for workflow tests.

Failures: adapters raise `ApplicationError`s built by activities/errors.py (the one place that decides
what retries); nothing else may escape them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from domain.actions.models import ActionItem, TicketChange, TicketInput, TicketRef
from domain.models import IncidentSummary, NotifyInput
from domain.models.chat import ChatOpenInput, ChatRoom, ChatSyncInput, ChatSyncResult
from domain.models.paging import PageRequest, PageResult
from domain.models.runbook import HttpRequestArgs, KubeReadArgs, PrometheusQueryArgs, StepOutcome, StepPlan
from domain.postmortem.models import SinkRef, WriteInput

Heartbeat = Callable[[str], None]
"""Long steps report progress through this (the activity heartbeats; tests collect the lines)."""


def no_heartbeat(_: str) -> None:
    """The default `Heartbeat`: nobody listens (plans, dry runs, adapter tests)."""


class Notifier(Protocol):
    async def notify(self, message: NotifyInput) -> None:
        """Deliver a reminder/notice. Must be idempotent on `message.dedup_key`."""


class Pager(Protocol):
    """Delivers pages. Must be idempotent on `request.dedup_key` (the vendor dedups, or the adapter does)."""

    name: str

    async def send(self, request: PageRequest) -> PageResult:
        """Trigger, acknowledge or resolve. Raise ApplicationError (activities/errors.py) on vendor failure."""


class IncidentDirectory(Protocol):
    """Lists incidents (newest first) from Temporal visibility; `incidentflow.client.Incidents` is one."""

    async def list(self, *, limit: int = 100) -> list[IncidentSummary]:
        """The most recent incidents, open and ended."""


class Chat(Protocol):
    """The incident channel (Slack is one adapter). Every post is idempotent on its dedup key."""

    def note_attempt(self) -> None:
        """Called at the start of each activity attempt (retries look for posts an earlier attempt made)."""

    async def open(self, inp: ChatOpenInput) -> ChatRoom:
        """Create or reuse the incident's channel, pin its context, post the summary, announce it."""

    async def sync(self, inp: ChatSyncInput) -> ChatSyncResult:
        """Bring the channel up to date: summary, pinned context, invites, new timeline events, and the
        answered messages with buttons (`inp.close`) updated in place without their buttons."""


class Cluster(Protocol):
    """The Kubernetes deployments runbook steps act on (the official client is one adapter).

    Changes are two calls: `plan_*` reads and decides the target (recorded in history), then the change
    works toward exactly that target, so a retry or replay converges instead of changing twice.
    """

    async def plan_rollout_undo(self, namespace: str, deployment: str, to_revision: int | None) -> StepPlan:
        """Decide the revision to go back to. data: target_revision, from_revision, target_replicaset."""

    async def rollout_undo(self, namespace: str, deployment: str, target_revision: int,
                           from_revision: int | None = None) -> StepOutcome:
        """Put the pod template of `target_revision` back (nothing when it is already there)."""

    async def plan_scale(self, namespace: str, deployment: str, replicas: int | None, factor: float | None,
                         max_replicas: int) -> StepPlan:
        """Decide the absolute count. data: previous_replicas, replicas, capped."""

    async def scale(self, namespace: str, deployment: str, replicas: int) -> StepOutcome:
        """Set the absolute count (a retry sets the same count)."""

    async def plan_restart(self, namespace: str, deployment: str, restarted_at: str) -> StepPlan:
        """Decide the restart stamp (`restarted_at`, or now when empty). data: restarted_at, …"""

    async def restart(self, namespace: str, deployment: str, restarted_at: str) -> StepOutcome:
        """Set the pod template's restart stamp unless it already has that value."""

    async def rollout_status(self, namespace: str, deployment: str, timeout_s: float,
                             heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        """Wait for the rollout to complete, heartbeating progress; RolloutTimeout when it does not."""

    async def pods(self, namespace: str, selector: str, max_bytes: int = 4000) -> StepOutcome:
        """The pods for `selector`: a table in `output`, counts in `data`."""

    async def logs(self, namespace: str, pod: str | None, selector: str | None, container: str | None,
                   tail_lines: int, max_bytes: int) -> StepOutcome:
        """The last lines of one pod, or of a few pods matching `selector`."""

    async def plan_read(self, args: KubeReadArgs) -> StepPlan:
        """What a read-only step would read (a dry run; no API call)."""


class RequestProbe(Protocol):
    """HTTP requests of runbook steps (feature flags, rate-limit endpoints), secrets resolved inside."""

    def plan_request(self, args: HttpRequestArgs) -> StepPlan:
        """The request as it would be sent, secrets masked."""

    async def request(self, args: HttpRequestArgs, idempotency_key: str | None = None) -> StepOutcome:
        """Send it; an answer outside `expect_status` fails the step."""


class MetricsProbe(Protocol):
    """Metric queries of runbook steps (Prometheus is one adapter)."""

    async def query(self, args: PrometheusQueryArgs, heartbeat: Heartbeat = no_heartbeat) -> StepOutcome:
        """One query, or — with `until` — poll until the condition holds (VerificationFailed if it never does)."""


class Probe(RequestProbe, MetricsProbe, Protocol):
    """Looking at a service from outside: its HTTP endpoints and its metrics."""


class PostmortemSink(Protocol):
    """Where postmortem documents live while people edit them: a directory, a GitHub pull request, a
    webhook receiver. Writes are idempotent: the same text written again changes nothing."""

    kind: str

    async def write(self, doc: WriteInput) -> SinkRef:
        """Create or update the document; `doc.ref` is the earlier write (None the first time)."""

    async def read(self, ref: SinkRef) -> str:
        """The document's text as people left it (read back on publish)."""


class Tracker(Protocol):
    """A ticket tracker (GitHub Issues, Jira Cloud). `create` is idempotent on `ticket.aid`: a retried
    activity finds the ticket an earlier attempt made instead of creating a second one."""

    kind: str

    async def create(self, ticket: TicketInput) -> TicketRef:
        """Create the item's ticket, or return the one that already carries its aid."""

    async def change(self, change: TicketChange) -> None:
        """Close (or reopen) the ticket; closing a closed ticket is fine."""


class ActionDirectory(Protocol):
    """Lists action items from Temporal visibility; `incidentflow.client.Incidents` is one."""

    async def action_items(self, *, open_only: bool = True, incident: str | None = None) -> list[ActionItem]:
        """The items (of one incident, if given), open ones only unless asked otherwise."""
