"""The worker: adapters built once from Settings, workflows and bound activity methods registered.

Activities hold ports (activities/ports.py); this is the one place that picks the vendor behind each.
Vendor adapters are imported only when Settings ask for them, so starting a worker without Slack or a
cluster never loads slack_sdk or kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Interceptor, UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.chat import ChatActivities
from activities.handoff import HandoffActivities
from activities.metrics import install as install_metrics
from activities.notify import IncidentActivities, LogNotifier
from activities.paging import EscalationActivities, LogPager
from activities.ports import Chat, IncidentDirectory, Notifier, Pager
from activities.runbook import RunbookActivities, RunbookSource, RunbookSteps
from domain.config import ConfigSource, IncidentflowConfig, Settings
from workers import payload_walks, single_batch
from workers.learning import learning_activities
from workers.metrics import metrics_address, metrics_for
from workers.query_guard import QueryGuardRunner
from workers.registry import WORKFLOWS
from workers.statuspage import LazyRecords, statuspage_activities

log = logging.getLogger("incidentflow.worker")
GRACEFUL_SHUTDOWN = timedelta(seconds=20)  # on SIGTERM, activities in flight get this long (the pods allow 30 s)
# The workflow modules come from the host, not re-imported (and compiled from source: py-spy showed ~17% of the
# worker's CPU in importlib under bench/ingest.py) for every new workflow run. Their mixins, domain and activities
# were passed through already; the sandbox's restrictions still guard what they import inside it.
# Both wrapped in the query guard (workers/query_guard.py): a query that raced new events never leaves commands
# behind that would make the incident's history unreplayable.
RUNNER = QueryGuardRunner(SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")))
UNSANDBOXED = QueryGuardRunner(UnsandboxedWorkflowRunner())


def build_pagers(settings: Settings, http: httpx.AsyncClient | None = None) -> dict[str, Pager]:
    """Pagers from Settings: the log always; PagerDuty and the signed webhook when configured."""
    pagers: dict[str, Pager] = {"log": LogPager()}
    if settings.pagerduty_routing_keys or settings.pagerduty_default_routing_key:
        from activities.pagerduty import PagerDutyPager

        pagers["pagerduty"] = PagerDutyPager(http or httpx.AsyncClient(timeout=10), settings.pagerduty_events_url,
                                             settings.pagerduty_routing_keys, settings.pagerduty_default_routing_key)
    if settings.paging_webhook_url:
        from activities.webhook_pager import WebhookPager

        pagers["webhook"] = WebhookPager(http or httpx.AsyncClient(timeout=10), settings.paging_webhook_url,
                                         settings.paging_webhook_secret)
    return pagers


def build_chat(settings: Settings, config: Callable[[], IncidentflowConfig], pagers: dict[str, Pager],
               chat: Chat | None = None) -> Chat | None:
    """`chat`, else Slack when a bot token is set. With Slack comes the `slack` pager: a direct message to
    people with `notify: [slack]`."""
    if chat is None and not settings.slack_enabled:
        return None
    if chat is not None and "activities.slack" not in sys.modules:
        return chat  # not a SlackChat: nothing to page through
    from activities.slack import SlackChat, SlackPager

    chat = chat or SlackChat.from_settings(settings, config)
    if isinstance(chat, SlackChat):
        pagers.setdefault("slack", SlackPager(chat))
    return chat


def lazy_runbook_steps(settings: Settings, given: RunbookSteps | None = None) -> Callable[[], RunbookSteps]:
    """The runbook steps' adapters, built once on first use: no cluster client is loaded to start a worker."""
    built: list[RunbookSteps] = [given] if given is not None else []

    def steps() -> RunbookSteps:
        if not built:
            built.append(RunbookSteps.from_settings(settings))
        return built[0]
    return steps


def build_worker(client: Client, settings: Settings, notifier: Notifier | None = None,
                 interceptors: Sequence[Interceptor] = (), fail_fast: bool = False,
                 pagers: dict[str, Pager] | None = None, config: Callable[[], IncidentflowConfig] | None = None,
                 chat: Chat | None = None, runbook_steps: RunbookSteps | None = None,
                 directory: IncidentDirectory | None = None, learning: dict[str, Any] | None = None,
                 max_cached_workflows: int | None = None) -> Worker:
    """Ports given here (tests pass in-memory fakes) win over the adapters Settings would build.
    `directory` lists incidents for handoff notes and action items for the digest (the doors pass
    `incidentflow.client.Incidents`); `learning` overrides the postmortem sink, tracker or secrets.
    `fail_fast` (tests) turns any workflow-code exception into a failed workflow instead of a task
    retried forever, so a bug shows as a red test, not a hang. Our own metrics (workers/metrics.py) are
    recorded when the client's runtime exports metrics: one recorder per process, the last worker's.
    `max_cached_workflows` (tests: 0, a worker that replays every run's history for every task, as after a
    restart) defaults to the SDK's."""
    own = metrics_for(client)
    install_metrics(own)
    payload_walks.install()  # applies to this worker's workflows only when its converter has no codec
    if own is None and settings.worker_metrics_port is not None:
        log.warning("INCIDENTFLOW_WORKER_METRICS_PORT is set but this worker's Temporal client was connected "
                    "without the metrics runtime (workers.metrics.worker_runtime): no metrics are served")
    notifier = notifier or LogNotifier()
    config = config or ConfigSource(settings.config)
    pagers = dict(pagers or build_pagers(settings))
    chat = build_chat(settings, config, pagers, chat)
    incidents = IncidentActivities(notifier)
    escalation = EscalationActivities(config, pagers, incident_url=settings.workflow_url)
    chat_activities = ChatActivities(chat)
    runbooks = RunbookActivities(lazy_runbook_steps(settings, runbook_steps), RunbookSource(settings.runbook_paths()),
                                 config)
    handoff = HandoffActivities(config, directory, notifier)
    records = LazyRecords(settings)  # one engine for status mail and the archive
    records.warm_in_background()
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[incidents.send_notification, escalation.plan_escalation, escalation.resolve_targets,
                    escalation.page, escalation.escalate_level, escalation.sync_pagers,
                    handoff.compose_handoff, handoff.send_handoff,
                    chat_activities.open_chat, chat_activities.sync_chat,
                    runbooks.plan_step, runbooks.apply_step, runbooks.match_runbooks, runbooks.runbook_triggers,
                    *statuspage_activities(settings, config, chat, records=records, directory=directory),
                    *learning_activities(settings, config, chat, directory, records=records, **(learning or {}))],
        interceptors=interceptors,
        workflow_runner=(RUNNER if settings.workflow_sandbox else UNSANDBOXED).for_converter(client.data_converter),
        unsandboxed_workflow_runner=UNSANDBOXED.for_converter(client.data_converter),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        workflow_failure_exception_types=[Exception] if fail_fast else [],
        # A killed worker's cached workflows wait this long on its sticky queue before another worker
        # takes them (SDK default 10 s): short, so an escalation due right after a crash is on time.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
        # Activities go through the task queue, not eagerly to the worker that scheduled them: a busy worker held
        # eager ones up to 10 s before starting them (bench/chat_runbooks.py, `sync_chat` p99; bench/README.md).
        disable_eager_activity_execution=True,
        **({} if max_cached_workflows is None else {"max_cached_workflows": max_cached_workflows}),
    )
    single_batch.enable(worker)  # an activation's jobs all applied before its coroutines run
    return worker


async def run_worker(client: Client, settings: Settings, directory: IncidentDirectory | None = None,
                     stop: asyncio.Event | None = None) -> None:
    worker = build_worker(client, settings, directory=directory)
    log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
    if settings.worker_metrics_port is not None:
        log.info("worker metrics on http://%s/metrics", metrics_address(settings))
    async with worker:
        await (stop.wait() if stop else asyncio.Event().wait())
