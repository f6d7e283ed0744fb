"""The fault suite's accounting (bench/faults.py): what should have happened, from the workflows' final
states (read through the HTTP API, plus the escalation workflows' results and histories from Temporal),
against what the fakes recorded. Every check adds its lost/duplicated counts to `Report.problems`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common import event_seconds, fmt, percentile
from faults_load import ALERTNAME, People, StormStats, fingerprint
from faults_stack import IMAGE_REPO, LEVELS, NAMESPACE, REPLICAS, ROLLBACK, Fakes, Stack, runbook_for, service

PAGED = re.compile(r"^Paged (\S+) \(L(\d+)")
CHANNEL_OPENED = "Incident channel #"
DIGEST_MORE = re.compile(r" \(\+(\d+) more\)$")


@dataclass
class Collected:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # every incident, by id
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)  # group → its runbook run
    escalations: dict[str, dict[str, Any]] = field(default_factory=dict)  # incident → EscalationWorkflow result
    level_starts: dict[str, list[float]] = field(default_factory=dict)  # incident → each level's start (server)
    unreplayable: dict[str, str] = field(default_factory=dict)  # workflow id → the replay's failure
    replayed: int = 0
    errors: list[str] = field(default_factory=list)


async def collect(stack: Stack, people: People) -> Collected:
    out = Collected()
    api = people.api
    r = await api.call("GET", "/v1/incidents", "list", params={"limit": 1000})
    rows = r.json() if r is not None and r.status_code == 200 else []
    for row in rows:
        state = await people.state(row["id"])
        if state is None:
            out.errors.append(f"GET /v1/incidents/{row['id']} failed")
            continue
        out.states[row["id"]] = state
        eid = state.get("escalation_id")
        if eid:
            await _escalation(stack, row["id"], eid, out)
        elif state.get("escalation"):  # code level 3: the escalation runs inside the incident
            await _inline_escalation(stack, row["id"], state, out)
    # every listed incident, read or not: one stuck on a nondeterminism answers no query (its state is missing above)
    await _replay(stack, [*(row["id"] for row in rows),
                          *(s["escalation_id"] for s in out.states.values() if s.get("escalation_id"))], out)
    for g, lg in people.log.items():
        if lg.run_id:
            rr = await api.call("GET", f"/v1/runbook-runs/{lg.run_id}", "run", patience=60)
            if rr is not None and rr.status_code == 200:
                out.runs[g] = rr.json()
    return out


async def _replay(stack: Stack, ids: list[str], out: Collected) -> None:
    """Every incident's (and escalation's) history through the current workflow code, as a worker that has to
    replay it after a kill would: a nondeterminism leaves an incident stuck, whatever the fakes recorded."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from workers.registry import WORKFLOWS

    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    for wid in ids:
        try:
            history = await stack.client.get_workflow_handle(wid).fetch_history()
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        except Exception as exc:  # noqa: BLE001 - reported, and counted as not replayed
            out.errors.append(f"{wid}: history not read or replayed: {exc}")
            continue
        out.replayed += 1
        if result.replay_failure is not None:
            out.unreplayable[wid] = str(result.replay_failure)[:300]


def audit_replay(rep: Report, c: Collected) -> None:
    sec = "Durability"
    rep.add(sec, "incident and escalation histories replayed", "histories_replayed", c.replayed)
    rep.must_be_zero(sec, "histories that do not replay (nondeterminism)", "histories_unreplayable",
                     len(c.unreplayable), [f"{k}: {v}" for k, v in c.unreplayable.items()])


async def _escalation(stack: Stack, iid: str, eid: str, out: Collected) -> None:
    handle = stack.client.get_workflow_handle(eid)
    try:
        desc = await handle.describe()
        if desc.status is not None and desc.status.name == "COMPLETED":
            result = await handle.result()
            out.escalations[iid] = result if isinstance(result, dict) else result.model_dump(mode="json")
        out.level_starts[iid] = await _scheduled(handle, "resolve_targets")
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the audit goes on
        out.errors.append(f"escalation {eid}: {type(exc).__name__}: {exc}"[:300])


async def _inline_escalation(stack: Stack, iid: str, state: dict[str, Any], out: Collected) -> None:
    """The escalation inside the incident: its state is the incident's; its levels start with `escalate_level`."""
    inline = state["escalation"]
    if inline.get("finished"):
        out.escalations[iid] = {"finished": inline["finished"], "pages": state.get("pages", 0),
                                "acknowledged_by": inline.get("stopped_by")}
    try:
        out.level_starts[iid] = await _scheduled(stack.client.get_workflow_handle(iid), "escalate_level")
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the audit goes on
        out.errors.append(f"escalation of {iid}: {type(exc).__name__}: {exc}"[:300])


async def _scheduled(handle: Any, activity: str) -> list[float]:
    """When each of the workflow's `activity` tasks was scheduled (an escalation level's start)."""
    return [event_seconds(e) async for e in handle.fetch_history_events()
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == activity]


def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, list[list[str]]] = field(default_factory=dict)  # section → [figure, value, check]
    problems: list[str] = field(default_factory=list)

    def add(self, section: str, label: str, key: str | None, value: Any, check: str = "",
            problem: str | None = None, shown: str | None = None) -> None:
        if key:
            self.figures[key] = value
        if shown is None:
            shown = fmt(value, 0) if isinstance(value, int) and not isinstance(value, bool) else str(value)
        self.rows.setdefault(section, []).append([label, shown, check])
        if problem:
            self.problems.append(problem)

    def must_be_zero(self, section: str, label: str, key: str, value: int, examples: list[str] | None = None) -> None:
        more = f" (e.g. {'; '.join(examples[:3])})" if examples else ""
        self.add(section, label, key, value, "ok" if value == 0 else "FAIL",
                 None if value == 0 else f"{label}: {value}{more}")


def late_figures(rep: Report, section: str, label: str, key: str, values: list[float]) -> None:
    """p50 / p95 / max in seconds: reported, never a failure (a kill mid-activity costs its timeout)."""
    for q in (50, 95):
        rep.figures[f"{key}_p{q}_s"] = round(percentile(values, q), 2) if values else None
    rep.figures[f"{key}_max_s"] = round(max(values), 2) if values else None
    shown = (f"{fmt(percentile(values, 50))} / {fmt(percentile(values, 95))} / {fmt(max(values))} s"
             if values else "n/a")
    rep.add(section, f"{label} p50 / p95 / max", None, None, f"n={len(values)}", shown=shown)


# ---------------------------------------------------------------------------- alerts and groups
def audit_alerts(rep: Report, c: Collected, storm: StormStats, people: People, tag: str, groups: int) -> None:
    sec = "Alerts and incidents"
    by_group: dict[str, list[dict[str, Any]]] = {}
    for s in c.states.values():
        by_group.setdefault(s.get("group_id") or "", []).append(s)
    counted: set[str] = set()
    received = 0
    for s in c.states.values():
        counted.update((s.get("alerts") or {}).keys())
        received += int(s.get("alerts_received") or 0)
    accepted = {fingerprint(i, tag) for i in storm.accepted}
    rep.add(sec, "notifications (Alertmanager groups' webhooks)", "notifications", storm.notifications)
    rep.add(sec, "POSTs incl. HA duplicates and re-sends", "posts", storm.posts)
    rep.add(sec, "HTTP attempts (retries after 429/5xx/no answer)", "attempts", storm.attempts,
            f"{storm.retries:,} retries")
    rep.add(sec, "answers", None, ", ".join(f"{k}: {v:,}" for k, v in sorted(storm.answers.items())))
    rep.add(sec, "POSTs never accepted (gave up)", "posts_failed", storm.failed_posts,
            "ok" if not storm.failed_posts else "FAIL",
            f"{storm.failed_posts} POSTs never accepted" if storm.failed_posts else None)
    rep.add(sec, "alerts sent (distinct)", "alerts_sent", len(storm.sent))
    rep.add(sec, "alerts accepted (distinct, 202)", "alerts_accepted", len(accepted))
    rep.add(sec, "alerts counted in incidents (distinct fingerprints)", "alerts_counted", len(accepted & counted))
    rep.must_be_zero(sec, "alerts lost (accepted, in no incident)", "alerts_lost", len(accepted - counted))
    ok = storm.deliveries_accepted <= received <= storm.deliveries_possible
    rep.add(sec, "alert deliveries: accepted ≤ counted (alerts_received) ≤ possible", "alert_deliveries_counted",
            received, f"{storm.deliveries_accepted:,} ≤ {received:,} ≤ {storm.deliveries_possible:,}: "
            + ("ok" if ok else "FAIL"), None if ok else "alert deliveries counted outside [accepted, possible]")
    rep.figures["alert_deliveries_accepted"] = storm.deliveries_accepted
    ids = {storm.group_ids.get(g) for g in range(groups)} - {None}
    per = [len(by_group.get(gid or "", [])) for gid in (storm.group_ids.get(g) for g in range(groups))]
    rep.add(sec, "alert groups / incidents", "incidents", len(c.states), f"{groups} groups")
    rep.must_be_zero(sec, "groups without an incident", "groups_without_incident", sum(1 for n in per if n == 0))
    rep.must_be_zero(sec, "groups with more than one incident", "groups_with_extra_incidents",
                     sum(1 for n in per if n > 1))
    rep.figures["incidents_per_group_max"] = max(per or [0])
    stray = [i for i, s in c.states.items() if s.get("group_id") not in ids]
    rep.must_be_zero(sec, "incidents outside the storm's groups", "incidents_stray", len(stray))


# ---------------------------------------------------------------------------- pages and escalations
def audit_pages(rep: Report, c: Collected, fakes: Fakes, people: People, wait: float,
                faults: list[float] | None = None) -> list[float]:
    sec = "Pages (PagerDuty fake, 5xx bursts)"
    expected: set[tuple[str, int, str]] = set()
    mismatch = 0
    for iid, s in c.states.items():
        paged = [m for e in s.get("timeline", []) if e["kind"] == "page" and (m := PAGED.match(e["text"]))]
        expected.update((iid, int(m.group(2)), m.group(1)) for m in paged)
        mismatch += int(len(paged) != int(s.get("pages") or 0))
    triggers: Counter[tuple[str, int, str]] = Counter()
    sent_at: dict[tuple[str, int, str], list[float]] = {}
    first_ok: dict[tuple[str, int], float] = {}
    offset = time.time() - time.monotonic()
    answers: Counter[int] = Counter()
    for r in list(fakes.pd.requests):
        answers[r.status] += 1
        body = r.json
        if r.status != 202 or body.get("event_action") != "trigger":
            continue
        d = body["payload"]["custom_details"]
        key = (d["incident_id"], int(d["level"]), d["target"])
        triggers[key] += 1
        sent_at.setdefault(key, []).append(r.at + offset)
        first_ok.setdefault(key[:2], r.at + offset)
    rep.add(sec, "PagerDuty answers", None, ", ".join(f"{k}: {v:,}" for k, v in sorted(answers.items())))
    rep.figures["pagerduty_5xx"] = sum(v for k, v in answers.items() if k >= 500)
    rep.add(sec, "pages expected (page events on the timelines)", "pages_expected", len(expected))
    rep.add(sec, "pages delivered (distinct incident/level/person)", "pages_delivered", len(expected & set(triggers)))
    rep.must_be_zero(sec, "pages lost", "pages_lost", len(expected - set(triggers)))
    # A worker killed (or the server restarted) after a page left and before its activity completed cannot know
    # the page arrived: the retry sends it again with the same dedup key, and PagerDuty keeps the one incident
    # (nobody is notified twice). A repeat with no kill or restart between the two is a duplicate.
    crashes = sorted(faults or [])
    resent = duplicated = 0
    for times in sent_at.values():
        times.sort()
        for before, after in zip(times, times[1:]):
            if any(before <= f <= after for f in crashes):
                resent += 1
            else:
                duplicated += 1
    rep.add(sec, "pages sent again after a kill or restart (same dedup key)", "pages_resent", resent)
    rep.must_be_zero(sec, "pages duplicated (accepted twice, no kill or restart between)", "pages_duplicated",
                     duplicated)
    rep.must_be_zero(sec, "pages sent but not on the timeline", "pages_unrecorded", len(set(triggers) - expected))
    rep.must_be_zero(sec, "incidents whose page count ≠ page events", "pages_count_mismatch", mismatch)
    pd_keys = Counter(i.dedup_key for i in fakes.pd.incidents)
    rep.must_be_zero(sec, "PagerDuty incidents duplicated (per dedup key)", "pagerduty_incidents_duplicated",
                     sum(n - 1 for n in pd_keys.values()))
    rep.must_be_zero(sec, "PagerDuty incidents not resolved at the end", "pagerduty_unresolved",
                     sum(1 for i in fakes.pd.incidents if i.status != "resolved"))
    # levels: an unacknowledged incident's escalation pages every level; an acknowledged one every level due
    # before the ack, and none after it (3 s of slack either way: the ack reaches the child by a signal)
    exhausted = acked = missing = after_ack = 0
    late_after_ack: list[str] = []
    timer_late: list[float] = []
    page_late: list[float] = []
    for iid, s in c.states.items():
        result = c.escalations.get(iid) or {}
        starts = c.level_starts.get(iid, [])
        for k in range(1, len(starts)):
            planned = starts[k - 1] + wait
            timer_late.append(starts[k] - planned)
            if (iid, k + 1) in first_ok:
                page_late.append(first_ok[(iid, k + 1)] - planned)
        finished = result.get("finished")
        exhausted += int(finished == "exhausted")
        if finished not in ("exhausted", "acknowledged"):
            missing += 1
            rep.problems.append(f"escalation of {iid} did not end ({finished!r})")
            continue
        ack = ts(s.get("acknowledged_at"))
        if ack is None:
            missing += max(0, len(LEVELS) - len(starts))
            continue
        acked += 1
        due = 1
        while due < len(LEVELS) and due <= len(starts) and starts[due - 1] + wait < ack - 3:
            due += 1
        missing += max(0, due - len(starts))
        after = [(k + 1, t - ack) for k, t in enumerate(starts) if t > ack + 3]
        after_ack += len(after)
        late_after_ack += [f"{iid} L{k} started {d:.1f} s after the ack" for k, d in after]
    rep.add(sec, "escalations run out (every level paged) / incidents acknowledged", "escalations_exhausted",
            exhausted, f"{acked} acknowledged")
    rep.figures["incidents_acknowledged"] = acked
    rep.must_be_zero(sec, "levels due but never paged", "levels_lost", missing)
    rep.must_be_zero(sec, "levels started after the acknowledgement", "levels_after_ack", after_ack, late_after_ack)
    late_figures(rep, sec, "level timer lateness (level start vs planned, history)", "level_timer_late", timer_late)
    late_figures(rep, sec, "page arrival lateness (first 202 vs planned)", "page_late", page_late)
    return timer_late


# ---------------------------------------------------------------------------- Slack
def _dedup(message: Any) -> str | None:
    meta = message.metadata or {}
    return (meta.get("event_payload") or {}).get("dedup_key")


def _digest_size(text: str) -> int:
    body = text.removeprefix("🔔 ")
    more = DIGEST_MORE.search(body)
    items = DIGEST_MORE.sub("", body).split("; ")
    return len(items) + (int(more.group(1)) if more else 0)


def _covered(iid: str, keys: Counter[str]) -> set[int]:
    """The timeline seqs named by the channel's dedup keys: one event's message is `<iid>:event:<seq>`; events
    posted together are `<iid>:event:<first>-<last>`, first and last in the message's order (an alert digest
    takes its last alert's seq and stands where its first alert was, so "first" can be the larger seq)."""
    prefix, seqs = f"{iid}:event:", set()
    for key in keys:
        if key.startswith(prefix):
            first, _, last = key[len(prefix):].partition("-")
            if first.isdigit() and (not last or last.isdigit()):
                seqs.update({int(first), int(last or first)})
    return seqs


def _shown(text: str, messages: list[Any]) -> bool:
    """Whether a timeline event's line is in one of the channel's messages (a batch has a line per event; a
    mention may stand before the event's text, so its start is looked for anywhere)."""
    probe = text[:60].strip()
    return any(probe in m.text for m in messages)


def audit_slack(rep: Report, c: Collected, fakes: Fakes) -> None:
    sec = "Slack (fake answering 429 to every third call)"
    slack = fakes.slack
    announced = Counter(k for m in slack.messages(slack.incidents_channel_id) if (k := _dedup(m)))
    expected = delivered = duplicated = no_channel = broken = 0
    alert_events = digested = 0
    dup_examples: list[str] = []
    digest_examples: list[str] = []
    for iid, s in c.states.items():
        chat = s.get("chat")
        if not chat:
            no_channel += 1
            continue
        broken += int(bool(chat.get("broken")))
        messages = slack.messages(chat["channel_id"])
        keys = Counter(k for m in messages if (k := _dedup(m)))
        extra = sum(n - 1 for n in keys.values()) + max(0, announced.get(f"{iid}:announce", 0) - 1)
        duplicated += extra
        if extra:
            worst = max(keys, key=lambda k: keys[k])
            dup_examples.append(f"{iid}: {extra} extra, {worst} posted {keys[worst]}×")
        timeline = s.get("timeline", [])
        opened = next((e["seq"] for e in timeline if e["kind"] == "action" and e["text"].startswith(CHANNEL_OPENED)), 0)
        # one pinned message (context and summary); a channel from before it has a summary message too
        want = [f"{iid}:context"] + ([f"{iid}:summary"] if chat.get("summary_ts") != chat.get("context_ts") else [])
        events = [e for e in timeline if e["seq"] > opened and e["kind"] != "alert"]
        covered = _covered(iid, keys)
        expected += len(want) + len(events) + 1
        delivered += (sum(1 for k in want if keys.get(k))
                      + sum(1 for e in events if e["seq"] in covered or _shown(e["text"], messages))
                      + int(bool(announced.get(f"{iid}:announce"))))
        mine = sum(1 for e in timeline if e["seq"] > opened and e["kind"] == "alert")
        named = sum(_digest_size(line) for m in messages for line in m.text.split("\n") if line.startswith("🔔 "))
        alert_events, digested = alert_events + mine, digested + named
        if named < mine:
            digest_examples.append(f"{iid}: {mine} alert events after the channel opened, {named} in digests")
    rep.add(sec, "Slack API calls / answered 429", "slack_calls", len(slack.calls),
            f"{sum(1 for call in slack.calls if call.status == 429):,} answered 429")
    rep.add(sec, "messages expected (pinned, announcement, each event)", "slack_expected", expected)
    rep.add(sec, "messages delivered (by dedup key in message metadata; a batch covers its events)",
            "slack_delivered", delivered)
    rep.must_be_zero(sec, "messages lost", "slack_lost", expected - delivered)
    rep.must_be_zero(sec, "messages duplicated (same dedup key twice)", "slack_duplicated", duplicated, dup_examples)
    rep.figures["slack_alert_digested"] = digested
    rep.add(sec, "alert events after the channel opened / named in alert digests", "slack_alert_events",
            alert_events, f"{digested:,} in digests: " + ("ok" if not digest_examples else "FAIL"),
            None if not digest_examples else
            f"alert digests missing in {len(digest_examples)} channels (e.g. {'; '.join(digest_examples[:3])})")
    rep.must_be_zero(sec, "incidents without a channel", "slack_no_channel", no_channel)
    rep.must_be_zero(sec, "channels whose updates stopped", "slack_broken", broken)


# ---------------------------------------------------------------------------- runbooks
def audit_runbooks(rep: Report, c: Collected, fakes: Fakes, people: People, groups: int) -> None:
    sec = "Runbooks (Kubernetes fake), approved over the API"
    kube = fakes.kube
    writes = kube.writes()
    figures: dict[str, Counter[str]] = {ROLLBACK: Counter(), "scale": Counter()}
    not_done: list[str] = []
    for g in range(groups):
        name = runbook_for(g)
        kind = ROLLBACK if name == ROLLBACK else "scale"
        run = c.runs.get(g) or {}
        f = figures[kind]
        f["expected"] += 1
        status = run.get("status")
        f[f"status {status}"] += 1
        if status != "succeeded":
            not_done.append(f"{service(g)}: {status or 'no run'} {people.log[g].errors}")
        dep = kube.deployment(NAMESPACE, service(g))
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{service(g)}"
        n_writes = sum(1 for w in writes if w.path in (path, path + "/scale"))
        f["writes"] += n_writes
        f["repeated writes"] += max(0, n_writes - 1)
        if kind == ROLLBACK:
            revision = int(dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
            image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
            f["applied"] += int(revision >= 4)
            f["duplicated"] += max(0, revision - 4)
            f["wrong image"] += int(revision == 4 and image != f"{IMAGE_REPO}-{service(g)}:v2")
        else:
            replicas = int(dep["spec"]["replicas"])
            f["applied"] += int(replicas >= 2 * REPLICAS)
            f["duplicated"] += int(replicas > 2 * REPLICAS)
    for kind, f in figures.items():
        label = "rollbacks" if kind == ROLLBACK else "scales (factor 2)"
        key = "rollbacks" if kind == ROLLBACK else "scales"
        rep.add(sec, f"{label} expected / applied", f"{key}_expected", f["expected"], f"{f['applied']:,} applied")
        rep.figures[f"{key}_applied"] = f["applied"]
        rep.must_be_zero(sec, f"{label} lost", f"{key}_lost", f["expected"] - f["applied"])
        rep.must_be_zero(sec, f"{label} duplicated (applied twice)", f"{key}_duplicated", f["duplicated"] + f["wrong image"])
        rep.add(sec, f"{label}: writes / repeated (idempotent) writes", f"{key}_writes", f["writes"],
                f"{f['repeated writes']:,} repeated")
    rep.must_be_zero(sec, "runs that did not succeed", "runbook_runs_failed", len(not_done))
    rep.problems += [f"runbook run: {x}" for x in not_done[:5]]


# ---------------------------------------------------------------------------- reminders
def audit_reminders(rep: Report, c: Collected, people: People, reminder: float, grace: float = 5.0) -> None:
    """The status-update reminder chain: first due at declared + `reminder`, then every `reminder` (after an
    outage, once now and `reminder` later). Every slot due before the resolve (less `grace`) must fire once."""
    sec = "Timers"
    resolve_sent = {lg.incident: lg.resolve_sent for lg in people.log.values() if lg.incident}
    fired = lost = early = mismatch = 0
    late: list[float] = []
    for iid, s in c.states.items():
        at = sorted(ts(e["at"]) or 0.0 for e in s.get("timeline", []) if e["kind"] == "reminder"
                    and "status update is due" in e["text"])
        mismatch += int(len(at) != int(s.get("reminders_sent") or 0))
        due = (ts(s["declared_at"]) or 0.0) + reminder
        for t in at:
            if t < due - 1:
                early += 1
                continue
            fired += 1
            late.append(t - due)
            due = due + reminder if due + reminder > t else t + reminder
        end = resolve_sent.get(iid) or ts(s.get("resolved_at")) or time.time()
        lost += int(due < end - grace)
    rep.add(sec, "status-update reminders fired (on time or late)", "reminders_fired", fired)
    rep.must_be_zero(sec, "reminders due but never fired", "reminders_lost", lost)
    rep.must_be_zero(sec, "reminders fired early or twice", "reminders_duplicated", early)
    rep.must_be_zero(sec, "incidents whose reminder count ≠ reminder events", "reminders_count_mismatch", mismatch)
    late_figures(rep, sec, "reminder lateness", "reminder_late", late)


__all__ = ["ALERTNAME", "Collected", "Report", "audit_alerts", "audit_pages", "audit_reminders", "audit_replay",
           "audit_runbooks", "audit_slack", "collect"]
