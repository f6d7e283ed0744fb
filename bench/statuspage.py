"""Status page benchmark: publish latency (command → static files on disk) and subscriber fan-out
(emails/s), each against a raw baseline in the same run.

    .venv/bin/python bench/statuspage.py [--publishes 200] [--subscribers 1000] [--json]

Publish latency:
* incidentflow: `StatusPageWorkflow.publish` updates, one after another; each is timed from the client's
  update call until `version.txt` in the publish directory says that version (every page file written). The
  worker is registered as deployed: each publish also starts its StatusMailWorkflow child (nobody to mail).
  A failed update is counted and retried with the same request id, as a door would; files not on disk 10 s
  after the command are counted, not timed (bench/README.md: the continue-as-new defect).
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
it never asserts. With --json, one JSON line of named figures at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
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
        peak_rss_mb,
        percentile,
        ratio,
        run_and_exit,
        start_dev_server,
        table,
        temporal_cli,
    )


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
    store.close()
    return out


NOT_WRITTEN_AFTER = 10.0  # seconds: a publish whose files are not on disk by then is counted, not timed


@dataclass
class Publishes:
    ms: list[float]  # command → files on disk, per publish (a failed command: until its retry's files)
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
def print_publish(pub: Publishes, raw: list[float]) -> dict[str, Any]:
    flow = pub.ms

    def row(name: str, v: list[float]) -> list[str]:
        return [name, str(len(v)), fmt(percentile(v, 50)), fmt(percentile(v, 99)), fmt(max(v))]

    print(table("Publish latency (ms): command → files on disk", ["system", "n", "p50", "p99", "max"],
                [row("incidentflow", flow), row("raw (one activity, one file)", raw),
                 ["incidentflow / raw", "", ratio(percentile(flow, 50), percentile(raw, 50)),
                  ratio(percentile(flow, 99), percentile(raw, 99)), ratio(max(flow), max(raw))]]))
    failed = f"publish commands failed: {len(pub.failed)}"
    if pub.failed:
        failed += (f" (publish {', '.join(map(str, pub.failed))}: {pub.errors[0]}); retried with the same request id: "
                   f"{pub.kept} already applied")
    print(f"{failed}\nupdates on the page at the end: {pub.on_page} of {len(flow) + len(pub.stale)}; files not on "
          f"disk {NOT_WRITTEN_AFTER:.0f} s after the command (left out above): {', '.join(pub.stale) or 'none'}")
    return {"publish_p50_ms": round(percentile(flow, 50), 2), "publish_p99_ms": round(percentile(flow, 99), 2),
            "raw_publish_p50_ms": round(percentile(raw, 50), 2), "raw_publish_p99_ms": round(percentile(raw, 99), 2),
            "publish_p99_ratio": round(percentile(flow, 99) / percentile(raw, 99), 2), "publishes": len(flow) + len(pub.stale),
            "publish_failed": len(pub.failed), "publish_not_written": len(pub.stale),
            "publish_updates_on_page": pub.on_page}


def print_fanout(n: int, flow: Fanout, raw: Fanout, setup: float, sessions: int) -> dict[str, Any]:
    def row(name: str, f: Fanout) -> list[str]:
        return [name, f"{f.mailed:,}", fmt(f.seconds, 2), fmt(f.per_s), str(f.lost), str(f.duplicates)]

    print(table(f"Fan-out to {n:,} confirmed subscribers: start → result ({sessions} SMTP sessions each)",
                ["system", "mailed", "seconds", "emails/s", "lost", "duplicated"],
                [row("incidentflow (StatusMailWorkflow)", flow), row("raw (aiosmtplib, no store)", raw),
                 ["incidentflow / raw", "", ratio(flow.seconds, raw.seconds), ratio(flow.per_s, raw.per_s), "", ""]]))
    if flow.activity_seconds is not None:
        print(f"of which the activity (scheduled → completed): {flow.activity_seconds:.2f} s; "
              f"subscribing and confirming {n:,} addresses beforehand: {setup:.1f} s")
    return {"fanout_emails_per_s": round(flow.per_s, 1), "raw_emails_per_s": round(raw.per_s, 1),
            "fanout_ratio": round(flow.per_s / raw.per_s, 3) if raw.per_s else None,
            "fanout_seconds": round(flow.seconds, 3), "raw_fanout_seconds": round(raw.seconds, 3),
            "fanout_activity_seconds": None if flow.activity_seconds is None else round(flow.activity_seconds, 3),
            "fanout_lost": flow.lost, "fanout_duplicates": flow.duplicates, "raw_lost": raw.lost,
            "raw_duplicates": raw.duplicates, "subscribers": n}


def print_targets(figures: dict[str, Any]) -> None:
    """The issue's targets: publish p99 under 2 s; 1,000 subscribers mailed within 60 s; 0 lost."""
    lines = []
    if "publish_p99_ms" in figures:
        p99 = figures["publish_p99_ms"]
        lines.append(f"publish p99 under 2 s: {'met' if p99 < 2000 else 'MISSED'} ({p99:,.0f} ms)")
        failed, unwritten = figures["publish_failed"], figures["publish_not_written"]
        lines.append(f"every publish applied once and on disk at once: {'yes' if not failed + unwritten else 'NO'} "
                     f"({failed} commands failed, {unwritten} not written until the next change, "
                     f"{figures['publish_updates_on_page']} of {figures['publishes']} updates on the page)")
    if "fanout_seconds" in figures:
        n, s = figures["subscribers"], figures["fanout_seconds"]
        at_1000 = s * 1000 / n  # the run's rate, scaled to the target's 1,000 when N differs
        lines.append(f"1,000 subscribers within 60 s: {'met' if at_1000 < 60 else 'MISSED'} "
                     f"({s:.1f} s for {n:,}{'' if n == 1000 else f', {at_1000:.1f} s per 1,000'})")
        lost, dup = figures["fanout_lost"], figures["fanout_duplicates"]
        lines.append(f"0 lost: {'met' if lost == 0 else 'MISSED'} ({lost} lost, {dup} duplicated)")
    if lines:
        print("\nTargets (issue 13)\n" + "\n".join(lines))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publishes", "-n", type=int, default=200, help="publishes per system (200; 0 skips)")
    ap.add_argument("--subscribers", "-s", type=int, default=1000, help="confirmed subscribers to mail (1000; 0 skips)")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of named figures")
    args = ap.parse_args()
    env, boot = await start_dev_server(temporal_cli())
    import temporalio
    print(f"\nincidentflow status page benchmark: {args.publishes} publishes, {args.subscribers} subscribers; "
          f"temporalio {temporalio.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; dev server (in-memory) up in {boot:.2f} s", flush=True)
    figures: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.publishes > 0:
                raw = await run_raw(env.client, args.publishes, Path(tmp))
                flow = await run_incidentflow(env.client, args.publishes, Path(tmp))
                figures.update(print_publish(flow, raw))
            if args.subscribers > 0:
                fanout, raw_fanout, setup = await run_fanout(env.client, args.subscribers, Path(tmp))
                figures.update(print_fanout(args.subscribers, fanout, raw_fanout, setup, mail_concurrency()))
    finally:
        await env.shutdown()
    print_targets(figures)
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    run_and_exit(main)
