"""Status page benchmark: publish latency (command → static files on disk) and subscriber fan-out
(emails/s), each against a raw baseline in the same run.

    .venv/bin/python bench/statuspage.py [--publishes 200] [--subscribers 1000] [--quick] [--json]

Publish latency:
* incidentflow: `StatusPageWorkflow.publish` updates, one after another; each is timed from the client's
  update call until `version.txt` in the publish directory says that version (every page file written). The
  worker is registered as deployed: each publish also starts its StatusMailWorkflow child (nobody to mail).
  A failed update is counted and retried with the same request id, as a door would; files not on disk 10 s
  after the command are counted, not timed (both happened once per run before `_settle`: bench/README.md).
  The page's history passes the server's continue-as-new suggestion during the run: the publish before which
  it was suggested, the one before which the new run started, and the slowest publishes are printed.
* raw: a workflow whose update runs one plain activity writing one file; timed from the update call until
  the file is there.

Fan-out, to N confirmed subscribers in a SQLite records store, through a real SMTP server in this process
(aiosmtpd, tests/fakes/smtp.py), one fresh server per system:
* incidentflow: one `StatusMailWorkflow` running `StatusMailActivities.notify_subscribers` (its defaults:
  batches of 200, 4 SMTP sessions; the deliveries ledger written per message), timed from the client's start
  to its result. Lost = subscribers the server never got a message for; duplicated = messages beyond one each.
* raw: aiosmtplib sending the same N messages (built by the same `build_message`) over as many connections
  as the activity's sessions, each connected once; no store, no ledger, no Temporal.

Starts its own local dev server (in-memory) and one worker at a time in this process. It measures and prints;
it never asserts. --quick runs smaller sizes (QUICK below, under two minutes); --json ends with one JSON line
of the named figures (`json_figures`). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sys
import tempfile
import time
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

if (_bench := os.path.dirname(__file__)) not in sys.path:
    sys.path.insert(0, _bench)
if (_root := os.path.dirname(os.path.abspath(_bench))) not in sys.path:
    sys.path.insert(1, _root)  # the SMTP server lives in tests/fakes, which is not installed
with workflow.unsafe.imports_passed_through():
    from common import (
        error_key,
        event_seconds,
        fmt,
        history,
        json_line,
        parse_args,
        peak_rss_mb,
        percentile,
        ratio,
        run_and_exit,
        server_hwm_mb,
        start_dev_server,
        table,
        temporal_cli,
        value_ratio,
    )


QUICK = {"publishes": 160, "subscribers": 300}  # --quick: still past the continue-as-new suggestion (publish 153)
BENCH_URL = "https://status.example.com"
MAIL_TEXT = ("We found the cause of the failing API requests: a bad configuration change. We are rolling it "
             "back.\n\nNext update by 09:30 UTC.")


@activity.defn(name="raw_write_file")
async def raw_write_file(path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(path)
    os.replace(tmp, path)


@workflow.defn(name="RawPublishWorkflow")
class RawPublish:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def publish(self, path: str) -> None:
        await workflow.execute_activity(raw_write_file, path, start_to_close_timeout=timedelta(seconds=30))


async def wait_for(check: Any, limit: float = 30.0) -> None:
    t0 = time.perf_counter()
    while not check():
        if time.perf_counter() - t0 > limit:
            raise TimeoutError("the file never appeared")
        await asyncio.sleep(0.002)


async def run_raw(client: Client, n: int, directory: Path) -> list[float]:
    queue = f"raw-{uuid.uuid4().hex[:6]}"
    out = []
    async with Worker(client, task_queue=queue, workflows=[RawPublish], activities=[raw_write_file]):
        handle = await client.start_workflow(RawPublish.run, id=f"raw-publish-{queue}", task_queue=queue)
        for i in range(n):
            path = directory / f"raw-{i}.txt"
            t0 = time.perf_counter()
            await handle.execute_update(RawPublish.publish, str(path))
            await wait_for(path.exists)
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def run_incidentflow(client: Client, n: int, directory: Path) -> Publishes:
    """Publishes on a worker registered like a deployed one: each publish also starts its StatusMailWorkflow
    child (mail configured, an empty records store: nobody to mail), beside the page being written."""
    from activities.mail import SmtpMailer
    from activities.records import RecordStore
    from activities.statuspage import StatusPageActivities
    from activities.subscribers import StatusMailActivities
    from domain.statuspage.messages import StatusPageStart
    from domain.statuspage.models import StatusPageConfig
    from tests.fakes.smtp import SmtpServer
    from workflows.maintenance import MaintenanceWorkflow
    from workflows.status_mail import StatusMailWorkflow
    from workflows.statuspage import StatusPageWorkflow

    config = StatusPageConfig.model_validate({
        "title": "Bench status", "url": BENCH_URL, "publish_dir": str(directory / "page"),
        "components": [{"id": f"c{k}", "name": f"Component {k}", "services": [f"s{k}"]} for k in range(8)]})
    acts = StatusPageActivities(lambda: config, directory)
    queue = f"sp-{uuid.uuid4().hex[:6]}"
    store = RecordStore.open(f"sqlite:///{directory / 'publish-records.db'}")
    with SmtpServer() as smtp:
        mail = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: config)
        async with Worker(client, task_queue=queue, workflows=[StatusPageWorkflow, MaintenanceWorkflow,
                                                               StatusMailWorkflow],
                          activities=[acts.load_statuspage_config, acts.publish_page, mail.notify_subscribers]):
            handle = await client.start_workflow(StatusPageWorkflow.run, StatusPageStart(), id=f"sp-{queue}",
                                                 task_queue=queue)
            out = await publish_all(handle, n, directory / "page")
            out.suggested = await continue_as_new_suggested(client, handle.id, handle.first_execution_run_id)
            first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
            for _ in range(100 if out.suggested is not None else 0):  # suggested: it continues once publishes pause
                if (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    break
                await asyncio.sleep(0.1)
            out.runs = [w.start_time.timestamp() async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    store.close()
    return out


async def continue_as_new_suggested(client: Client, wid: str, run_id: str | None) -> float | None:
    """When the server first suggested continue-as-new to the page's first run (server clock), None if never."""
    async for e in client.get_workflow_handle(wid, run_id=run_id).fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and \
                e.workflow_task_started_event_attributes.suggest_continue_as_new:
            return event_seconds(e)
    return None


NOT_WRITTEN_AFTER = 10.0  # seconds: a publish whose files are not on disk by then is counted, not timed


@dataclass
class Publishes:
    ms: list[float]  # command → files on disk, per publish (a failed command: until its retry's files)
    timed: list[int] = field(default_factory=list)  # the publish each of `ms` is for
    sent: list[float] = field(default_factory=list)  # time.time() each publish was sent (all N)
    runs: list[float] = field(default_factory=list)  # start times of the page's runs (continue-as-new: > 1)
    suggested: float | None = None  # the server first suggested continue-as-new (first run, server clock)
    failed: list[int] = field(default_factory=list)  # publishes whose update failed (bench/README.md: continue-as-new)
    errors: list[str] = field(default_factory=list)
    kept: int = 0  # failed ones the retry found already applied (same request id: duplicate=True)
    on_page: int = 0  # updates in the page's state at the end (every publish once: N)
    stale: list[str] = field(default_factory=list)  # not on disk NOT_WRITTEN_AFTER s later (left out of ms)


async def publish_all(handle: Any, n: int, page_dir: Path) -> Publishes:
    from temporalio.client import WorkflowUpdateFailedError

    from activities.statuspage import published_version
    from domain.statuspage.models import ComponentChange, ComponentStatus, PublicStatus, PublishInput
    from workflows.statuspage import StatusPageWorkflow

    statuses, out = list(PublicStatus), Publishes([])
    for i in range(n):
        cmd = PublishInput(
            incident_id=f"inc-{i // 4}", name=f"Incident {i // 4}", status=statuses[i % 4],
            body=f"Update {i}: what is affected, what we know, what we do.", by="bench", request_id=f"bench-{i}",
            components=[ComponentChange(component=f"c{i % 8}", status=ComponentStatus.partial_outage
                                        if i % 4 != 3 else ComponentStatus.operational)])
        t0 = time.perf_counter()
        out.sent.append(time.time())
        try:
            result = await handle.execute_update(StatusPageWorkflow.publish, cmd)
        except WorkflowUpdateFailedError as exc:
            out.failed.append(i)
            out.errors.append(error_key(exc, root_cause=True))
            result = await handle.execute_update(StatusPageWorkflow.publish, cmd)  # a door retrying, same request id
            out.kept += result.duplicate
        try:
            await wait_for(lambda v=result.version: published_version(page_dir) >= v, limit=NOT_WRITTEN_AFTER)
        except TimeoutError:
            out.stale.append(f"publish {i} (version {result.version}{', retried' if out.failed[-1:] == [i] else ''})")
            continue  # the next change writes it
        out.ms.append((time.perf_counter() - t0) * 1000)
        out.timed.append(i)
    state = await handle.query(StatusPageWorkflow.get_state)
    out.on_page = sum(len(incident.updates) for incident in state.incidents)
    return out


# ------------------------------------------------------------------------------------- fan-out


@dataclass
class Fanout:
    mailed: int  # distinct subscribers the SMTP server got a message for
    seconds: float
    lost: int
    duplicates: int
    activity_seconds: float | None = None  # incidentflow: the activity, scheduled → completed (server clock)

    @property
    def per_s(self) -> float:
        return self.mailed / self.seconds if self.seconds else float("nan")


def subscribe_confirmed(store: Any, n: int) -> list[str]:
    """N addresses through the real double opt-in (subscribe, then the confirm link), all about "api"."""
    emails = [f"subscriber{i}@example.com" for i in range(n)]
    for address in emails:
        store.subscribers.confirm(store.subscribers.subscribe(address, ["api"]).confirm_token)
    return emails


def delivered(smtp: Any, emails: list[str], seconds: float) -> Fanout:
    counts = smtp.count_by_recipient()
    return Fanout(mailed=sum(1 for e in emails if counts[e]), seconds=seconds,
                  lost=sum(1 for e in emails if not counts[e]), duplicates=sum(n - 1 for n in counts.values() if n > 1))


def mail_concurrency() -> int:
    """The activity's default number of SMTP sessions: the raw baseline opens as many connections."""
    import inspect

    from activities.subscribers import StatusMailActivities

    return int(inspect.signature(StatusMailActivities).parameters["concurrency"].default)


async def fanout_incidentflow(client: Client, store: Any, emails: list[str]) -> Fanout:
    from activities.mail import SmtpMailer
    from activities.subscribers import StatusMailActivities
    from domain.statuspage.mail import Notification, NotificationKind
    from domain.statuspage.models import ComponentConfig, StatusPageConfig
    from tests.fakes.smtp import SmtpServer
    from workflows.status_mail import StatusMailWorkflow, mail_workflow_id

    page = StatusPageConfig(title="Bench Status", url=BENCH_URL,
                            components=[ComponentConfig(id="api", name="Public API")])
    queue = f"mail-{uuid.uuid4().hex[:6]}"

    def notice(nid: str, components: list[str]) -> Notification:
        return Notification(notification_id=nid, kind=NotificationKind.update, components=components,
                            subject="[Bench Status] API errors: identified", text=MAIL_TEXT, url=f"{BENCH_URL}/#i-1")

    with SmtpServer() as smtp:
        acts = StatusMailActivities(store.subscribers, SmtpMailer.from_url(smtp.url()), lambda: page)
        async with Worker(client, task_queue=queue, workflows=[StatusMailWorkflow],
                          activities=[acts.notify_subscribers]):
            # Warm-up: the same workflow and activity for a component nobody follows (mails nobody).
            await client.execute_workflow(StatusMailWorkflow.run, notice(f"{queue}:warmup", ["nobody"]),
                                          id=mail_workflow_id(f"{queue}:warmup"), task_queue=queue)
            wid = mail_workflow_id(f"{queue}:public:1")
            t0 = time.perf_counter()
            await client.execute_workflow(StatusMailWorkflow.run, notice(f"{queue}:public:1", ["api"]), id=wid,
                                          task_queue=queue)
            seconds = time.perf_counter() - t0
        await asyncio.sleep(0.2)  # nothing should still be arriving; if it were, it would count
        result = delivered(smtp, emails, seconds)
    times = {e.event_type: event_seconds(e) for e in await history(client, wid)}
    scheduled = times.get(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    completed = times.get(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    if scheduled is not None and completed is not None:
        result.activity_seconds = completed - scheduled
    return result


async def fanout_raw(emails: list[str], concurrency: int) -> Fanout:
    import aiosmtplib

    from activities.mail import Footer, build_message
    from tests.fakes.smtp import SmtpServer

    def message(i: int, to: str) -> Any:
        unsubscribe = f"{BENCH_URL}/status/unsubscribe?token=raw{i}"
        return build_message(
            sender="status@example.com", sender_name="Bench Status", to=to,
            subject="[Bench Status] API errors: identified", text=MAIL_TEXT, message_id=f"<raw.{i}@example.com>",
            footer=Footer(unsubscribe, "You get this mail because you subscribed to Bench Status updates."),
            list_id="<status.example.com>", link=f"{BENCH_URL}/#i-1")

    with SmtpServer() as smtp:
        todo = list(reversed(list(enumerate(emails))))

        async def drain() -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp.port, start_tls=False, timeout=30)
            await client.connect()
            try:
                while todo:
                    i, to = todo.pop()
                    await client.send_message(message(i, to), sender="status@example.com")
            finally:
                await client.quit()

        t0 = time.perf_counter()
        await asyncio.gather(*(drain() for _ in range(min(concurrency, len(emails)))))
        seconds = time.perf_counter() - t0
        await asyncio.sleep(0.2)
        return delivered(smtp, emails, seconds)


async def run_fanout(client: Client, n: int, directory: Path) -> tuple[Fanout, Fanout, float]:
    """Raw first, then incidentflow, on the same store; returns (incidentflow, raw, seconds to subscribe N)."""
    from activities.records import RecordStore

    store = RecordStore.open(f"sqlite:///{directory / 'records.db'}")
    try:
        t0 = time.perf_counter()
        emails = await asyncio.to_thread(subscribe_confirmed, store, n)
        setup = time.perf_counter() - t0
        raw = await fanout_raw(emails, mail_concurrency())
        flow = await fanout_incidentflow(client, store, emails)
    finally:
        store.close()
    return flow, raw, setup


# ------------------------------------------------------------------------------------- output
def print_publish(pub: Publishes, raw: list[float]) -> None:
    flow = pub.ms

    def row(name: str, v: list[float]) -> list[str]:
        return [name, str(len(v)), fmt(percentile(v, 50)), fmt(percentile(v, 99)), fmt(max(v, default=math.nan))]

    print(table("Publish latency (ms): command → files on disk", ["system", "n", "p50", "p99", "max"],
                [row("incidentflow", flow), row("raw (one activity, one file)", raw),
                 ["incidentflow / raw", "", ratio(percentile(flow, 50), percentile(raw, 50)),
                  ratio(percentile(flow, 99), percentile(raw, 99)),
                  ratio(max(flow, default=math.nan), max(raw, default=math.nan))]]))
    failed = f"publish commands failed: {len(pub.failed)}"
    if pub.failed:
        failed += (f" (publish {', '.join(map(str, pub.failed))}: {pub.errors[0]}); retried with the same request id: "
                   f"{pub.kept} already applied")
    print(f"{failed}\nupdates on the page at the end: {pub.on_page} of {len(flow) + len(pub.stale)}; files not on "
          f"disk {NOT_WRITTEN_AFTER:.0f} s after the command (left out above): {', '.join(pub.stale) or 'none'}")
    starts = sorted(pub.runs)[1:]  # continue-as-new: the first publish sent after each new run started
    slowest = sorted(zip(flow, pub.timed), reverse=True)[:5]

    def before(t: float) -> str:
        i = bisect_left(pub.sent, t)
        return f"before publish {i}" if i < len(pub.sent) else "after the last publish"

    print(f"page workflow runs: {len(pub.runs)}"
          + ("" if pub.suggested is None else f"; continue-as-new suggested {before(pub.suggested)}")
          + "".join(f"; run {k + 2} started {before(t)}" for k, t in enumerate(starts))
          + f"\nslowest publishes (ms): {', '.join(f'#{i} {ms:,.0f}' for ms, i in slowest)}")


def print_fanout(n: int, flow: Fanout, raw: Fanout, setup: float, sessions: int) -> None:
    def row(name: str, f: Fanout) -> list[str]:
        return [name, f"{f.mailed:,}", fmt(f.seconds, 2), fmt(f.per_s), str(f.lost), str(f.duplicates)]

    print(table(f"Fan-out to {n:,} confirmed subscribers: start → result ({sessions} SMTP sessions each)",
                ["system", "mailed", "seconds", "emails/s", "lost", "duplicated"],
                [row("incidentflow (StatusMailWorkflow)", flow), row("raw (aiosmtplib, no store)", raw),
                 ["incidentflow / raw", "", ratio(flow.seconds, raw.seconds), ratio(flow.per_s, raw.per_s), "", ""]]))
    if flow.activity_seconds is not None:
        print(f"of which the activity (scheduled → completed): {flow.activity_seconds:.2f} s; "
              f"subscribing and confirming {n:,} addresses beforehand: {setup:.1f} s")


def json_figures(pub: Publishes | None, raw: list[float] | None,
                 fanout: tuple[Fanout, Fanout] | None) -> dict[str, Any]:
    """The figures under stable names (bench/README.md, issue 16); a section skipped (-n 0, -s 0) gives nulls."""
    out: dict[str, Any] = {"bench": "statuspage"}
    flow, base = (pub.ms, raw) if pub is not None and raw is not None else ([], [])
    p50, p99 = percentile(flow, 50), percentile(flow, 99)
    out |= {"publish_p50_ms": p50, "publish_p99_ms": p99, "publish_max_ms": max(flow, default=math.nan),
            "raw_publish_p50_ms": percentile(base, 50), "raw_publish_p99_ms": percentile(base, 99),
            "publish_p50_ratio": value_ratio(p50, percentile(base, 50)),
            "publish_p99_ratio": value_ratio(p99, percentile(base, 99))}
    out |= ({"publishes_failed": len(pub.failed), "publishes_not_written": len(pub.stale),
             "publishes_on_page": pub.on_page, "page_runs": len(pub.runs),
             "continue_as_new_suggested_at": None if pub.suggested is None else bisect_left(pub.sent, pub.suggested),
             "continue_as_new_at": bisect_left(pub.sent, sorted(pub.runs)[1]) if len(pub.runs) > 1 else None}
            if pub is not None else dict.fromkeys(["publishes_failed", "publishes_not_written", "publishes_on_page",
                                                   "page_runs", "continue_as_new_suggested_at", "continue_as_new_at"]))
    if fanout is None:
        return out | dict.fromkeys(["fanout_s", "raw_fanout_s", "fanout_activity_s", "emails_per_s",
                                    "raw_emails_per_s", "emails_ratio", "lost", "duplicated", "raw_lost",
                                    "raw_duplicated"])
    f, r = fanout
    return out | {"fanout_s": f.seconds, "raw_fanout_s": r.seconds, "fanout_activity_s": f.activity_seconds,
                  "emails_per_s": f.per_s, "raw_emails_per_s": r.per_s, "emails_ratio": value_ratio(f.per_s, r.per_s),
                  "lost": f.lost, "duplicated": f.duplicates, "raw_lost": r.lost, "raw_duplicated": r.duplicates}


def print_targets(figures: dict[str, Any], publishes: int, subscribers: int) -> None:
    """The issue's targets: publish p99 under 2 s; 1,000 subscribers mailed within 60 s; 0 lost."""
    lines = []
    if figures["publishes_failed"] is not None:
        p99 = figures["publish_p99_ms"]
        lines.append(f"publish p99 under 2 s: {'met' if p99 < 2000 else 'MISSED'} ({p99:,.0f} ms)")
        failed, unwritten = figures["publishes_failed"], figures["publishes_not_written"]
        lines.append(f"every publish applied once and on disk at once: {'yes' if not failed + unwritten else 'NO'} "
                     f"({failed} commands failed, {unwritten} not written until the next change, "
                     f"{figures['publishes_on_page']} of {publishes} updates on the page)")
    if figures["fanout_s"] is not None:
        s = figures["fanout_s"]
        at_1000 = s * 1000 / subscribers  # the run's rate, scaled to the target's 1,000 when N differs
        lines.append(f"1,000 subscribers within 60 s: {'met' if at_1000 < 60 else 'MISSED'} "
                     f"({s:.1f} s for {subscribers:,}{'' if subscribers == 1000 else f', {at_1000:.1f} s per 1,000'})")
        lost, dup = figures["lost"], figures["duplicated"]
        lines.append(f"0 lost: {'met' if lost == 0 else 'MISSED'} ({lost} lost, {dup} duplicated)")
    if lines:
        print("\nTargets (issue 13)\n" + "\n".join(lines))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publishes", "-n", type=int, default=200, help="publishes per system (200; 0 skips)")
    ap.add_argument("--subscribers", "-s", type=int, default=1000, help="confirmed subscribers to mail (1000; 0 skips)")
    args = parse_args(ap, QUICK)
    load_before = os.getloadavg()
    env, boot = await start_dev_server(temporal_cli())
    import temporalio
    print(f"\nincidentflow status page benchmark: {args.publishes} publishes, {args.subscribers} subscribers"
          f"{' (--quick)' if args.quick else ''}; temporalio {temporalio.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} cores, load average {load_before[0]:.2f}; dev server "
          f"(in-memory) up in {boot:.2f} s", flush=True)
    pub: Publishes | None = None
    raw: list[float] | None = None
    fanout: tuple[Fanout, Fanout] | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.publishes > 0:
                raw = await run_raw(env.client, args.publishes, Path(tmp))
                pub = await run_incidentflow(env.client, args.publishes, Path(tmp))
                print_publish(pub, raw)
            if args.subscribers > 0:
                flow, raw_fanout, setup = await run_fanout(env.client, args.subscribers, Path(tmp))
                fanout = (flow, raw_fanout)
                print_fanout(args.subscribers, flow, raw_fanout, setup, mail_concurrency())
        srv_hwm = server_hwm_mb()
    finally:
        await env.shutdown()
    load_after = os.getloadavg()
    figures = json_figures(pub, raw, fanout)
    print_targets(figures, args.publishes, args.subscribers)
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB; dev server {fmt(srv_hwm, 0)} MB\n"
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    if args.json:
        print(json_line({**figures, "publishes": args.publishes, "subscribers": args.subscribers,
                         "quick": args.quick, "peak_rss_mb": peak_rss_mb(), "server_peak_rss_mb": srv_hwm,
                         "load_before": load_before[0], "load_after": load_after[0]}))


if __name__ == "__main__":
    run_and_exit(main)
