"""A whole incident through Slack, and the channel stays true: every message in it is current at the end.

alert (Alertmanager webhook) → the incident opens its channel, then runs the alert's diagnostics → the
on-call is paged (Slack DM + PagerDuty) and invited → acknowledged with the DM's button → IC claimed →
a rollback runbook approved with its button → a status update and a note → resolved with `/incident
resolve`. Our real API and worker, the real slack_sdk client against the fake Slack, the official
Kubernetes client against the fake cluster, the fake PagerDuty. At the end: no button is left live
anywhere, the pin, the summary, the announcement, the DM and the approval request all say what happened,
everyone @-mentioned in the channel is in it, and the Markdown timeline (`?format=markdown`, what
`timeline --markdown` prints) is one to paste into the postmortem, checked by parsing it as CommonMark.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import EventKind, Phase, Role
from domain.models.runbook import RunStatus
from domain.timeline_markdown import duration
from incidentflow.client import Incidents
from tests.conftest import serve_api
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.slack import FakeSlack, SlackMessage
from tests.helpers import eventually
from tests.test_slack_e2e import SECRET, button_body, command_body, signed
from tests.test_timeline_markdown import MD, blocks, entries, header, text_of

UI = "https://temporal.example"
AM_TOKEN = "am-story"
DIAGNOSTICS = """\
name: story-diagnostics
title: Story diagnostics
applies_to:
  alerts: ['alertname="StoryCheckoutErrors"']
auto_run: diagnostics
steps:
  - {kind: kubernetes.pods, namespace: payments, selector: app=checkout-service}
"""
ROLLBACK = """\
name: story-rollback
title: Roll back checkout
approvers: [ic]
steps:
  - {kind: approval, prompt: "Roll back payments/checkout-service? This replaces the running pods."}
  - {kind: kubernetes.rollout_undo, namespace: payments, deployment: checkout-service}
"""


def alert(group: str) -> dict[str, Any]:
    labels = {"alertname": "StoryCheckoutErrors", "service": "checkout", "severity": "critical", "story": group}
    return {"receiver": "incidentflow", "status": "firing", "version": "4", "truncatedAlerts": 0,
            "groupKey": f'{{}}:{{story="{group}"}}', "groupLabels": {"story": group}, "commonLabels": labels,
            "commonAnnotations": {"summary": "Checkout errors"}, "externalURL": "http://alertmanager.example",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "Checkout errors"},
                        "startsAt": "2026-11-23T06:00:11.817Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus.example", "fingerprint": f"story-{group}"}]}


def blocks_of(message: SlackMessage | None) -> str:
    assert message is not None
    return json.dumps(message.blocks or [], ensure_ascii=False)


def live_buttons(messages: list[SlackMessage]) -> list[str]:
    return [m.text[:80] for m in messages if any(b.get("type") == "actions" for b in m.blocks or [])]


async def _value(value: Any) -> Any:
    return value


async def press(http: httpx.AsyncClient, slack: FakeSlack, action: str, value: str, user: str,
                channel: str) -> str:
    url = slack.new_response_url()
    body = button_body(action, value, user, url, channel)
    r = await http.post("/slack/interactions", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    return str((await slack.wait_for_response_async(url))[0]["text"])


async def command(http: httpx.AsyncClient, slack: FakeSlack, text: str, user: str, channel: str) -> str:
    body = command_body(text, user, channel, slack.new_response_url())
    r = await http.post("/slack/commands", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    return str(r.json()["text"])


async def test_a_whole_incident_leaves_a_channel_whose_every_message_is_current(
        dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeKubernetes() as kube, FakePagerDuty() as pd:
        kube.add_deployment("payments", "checkout-service", "registry.example/checkout:v3", replicas=2, revisions=2)
        alice = slack.add_user(name="alice", email="alice@example.com")
        slack.add_user(name="bob", email="bob@example.com")  # L2, never reached: alice acknowledges
        config = IncidentflowConfig.model_validate({
            "people": [{"id": "alice", "name": "Alice", "slack": alice, "notify": ["slack", "pagerduty"]},
                       {"id": "bob", "name": "Bob", "email": "bob@example.com"}],
            "services": [{"name": "checkout", "runbook": "https://runbooks.example/checkout",
                          "escalation_policy": "story"}],
            "escalation_policies": [{"name": "story", "levels": [
                {"wait": "10m", "targets": [{"person": "alice"}]}, {"wait": "10m", "targets": [{"person": "bob"}]}]}],
        })
        (tmp_path / "runbooks").mkdir()
        (tmp_path / "runbooks" / "story-diagnostics.yaml").write_text(DIAGNOSTICS)
        (tmp_path / "runbooks" / "story-rollback.yaml").write_text(ROLLBACK)
        settings = {"slack_signing_secret": SECRET, "slack_bot_token": slack.bot_token, "slack_api_url": slack.base_url,
                    "kubeconfig": str(kube.write_kubeconfig(tmp_path / "kc")), "runbooks_dir": str(tmp_path / "runbooks"),
                    "alertmanager_token": AM_TOKEN, "temporal_ui_url": UI,
                    "pagerduty_events_url": pd.url, "pagerduty_default_routing_key": pd.routing_key()}
        async with serve_api(dev_env, config=config, **settings) as url, \
                httpx.AsyncClient(base_url=url, timeout=30) as http:
            inc = Incidents(dev_env.client, Settings(), config)
            r = await http.post("/v1/alerts/alertmanager", json=alert(uuid.uuid4().hex[:8]),
                                headers={"Authorization": f"Bearer {AM_TOKEN}"})
            assert r.status_code < 300, r.text

            # the channel opens first, then the alert's diagnostics run; the on-call is paged and invited
            created = await eventually(lambda: _value([c for c in slack.channels.values() if c.name.startswith(
                "incident-")]), lambda found: len(found) == 1 and "Incident " in found[0].purpose["value"])
            channel = created[0].id
            iid = re.search(r"Incident (\S+) ", created[0].purpose["value"]).group(1)  # type: ignore[union-attr]
            await eventually(lambda: inc.get(iid), lambda s: s.pages >= 1 and bool(s.runbooks)
                                     and s.runbooks[0].status == RunStatus.succeeded, timeout=60)
            texts = await eventually(lambda: _value([m.text for m in slack.messages(channel)]),
                                     lambda t: any("Runbook story-diagnostics finished" in x for x in t)
                                     and any("Paged alice" in x for x in t))
            # The channel opens with its one pinned message (context and summary), then what the incident did.
            # Nothing happened while it opened, so no "Incident channel … opened" line repeats what the pin says
            # (test_channel_order has the case where something did, and that line goes first).
            assert slack.pins(channel) == [slack.messages(channel)[0].ts], texts
            assert not [t for t in texts if "Incident channel #" in t and "opened" in t], texts
            diagnostics = next(i for i, t in enumerate(texts) if "Runbook story-diagnostics" in t)
            # the pinned message (checked at the end), then the diagnostics, the L1 page line maybe before them
            assert diagnostics >= 1 and all("Paged alice" in t for t in texts[1:diagnostics]), texts
            await eventually(lambda: _value(slack.members(channel)), lambda m: alice in m)
            [dm] = await eventually(lambda: _value(slack.dm(alice)), lambda m: len(m) == 1)
            ui = Settings(temporal_ui_url=UI).workflow_url(iid)
            assert f"<#{channel}>" in dm.text and f"<{ui}|Temporal UI>" in dm.text, dm.text
            trigger = next(q.json for q in pd.requests if q.json["event_action"] == "trigger")
            assert trigger["client_url"] == ui
            assert [link["href"] for link in trigger["links"]] == [f"https://acme.slack.com/archives/{channel}", ui]

            # acknowledged with the DM's button; alice takes IC from the summary message
            assert "acknowledged by alice" in await press(http, slack, render.ACK, iid, alice, dm.channel)
            assert "alice is now incident commander" in await press(http, slack, render.CLAIM_IC, iid, alice, channel)

            # a rollback, approved with its button
            reply = await command(http, slack, "runbook story-rollback", alice, channel)
            run_id = f"{iid}-runbook-2"
            assert run_id in reply, reply
            asked = (await eventually(lambda: _value([m for m in slack.messages(channel)
                                                      if render.APPROVE in blocks_of(m)]), bool))[0]
            assert f"/incident approve {run_id}" in blocks_of(asked)
            answer = await press(http, slack, render.APPROVE, run_id, alice, channel)
            assert answer.endswith("This replaces the running pods.") and "?." not in answer, answer
            run = await eventually(lambda: inc.runbook_run(run_id), lambda r: r.ended_at is not None, timeout=60)
            assert run.status == RunStatus.succeeded and kube.revision("payments", "checkout-service") == 3

            assert "status update posted" in await command(http, slack, f"update {UPDATE}", alice, channel)
            assert f"Noted on `{iid}`." == await command(http, slack, f"note {NOTE}", alice, channel)
            assert "resolved" in await command(http, slack, "resolve Rolled back the bad deploy", alice, channel)
            final = await eventually(lambda: inc.get(iid), lambda s: s.phase == Phase.resolved and s.chat is not None
                                     and s.chat.posted_seq >= max(e.seq for e in s.timeline)
                                     and bool(s.buttons) and all(b.closed for b in s.buttons), timeout=60)
            await asyncio.sleep(0.5)  # anything in flight lands before we look
            # the Markdown as `incidentflow timeline --markdown` and the API give it, and the state it shows
            _, md, shown = await eventually(lambda: markdown_of(http, inc, iid), lambda x: x[0].seq == x[2].seq)
            pods = (await inc.runbook_run(final.runbooks[0].run_id)).results[0].output

        check_every_message_is_current(slack, final, channel, alice, dm, asked)
        check_the_markdown_is_postmortem_ready(md, shown, pods)


async def markdown_of(http: httpx.AsyncClient, inc: Incidents, iid: str) -> tuple[Any, str, Any]:
    """The state before, the Markdown, the state after: equal states mean the Markdown shows that state (the
    postmortem's first events may still land after the resolve)."""
    before = await inc.get(iid)
    r = await http.get(f"/v1/incidents/{iid}/timeline", params={"format": "markdown"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown"), r.text
    return before, r.text, await inc.get(iid)


UPDATE = "Checkout errors back to normal after the rollback; watching for 15 min"
NOTE = "The bad deploy was 4812"


def check_the_markdown_is_postmortem_ready(md: str, state: Any, pods: str) -> None:
    """The header says what, who, when and how long; every event is its own paragraph; the diagnostics'
    kubectl table is verbatim in a fence on its own lines; the status update stands apart from the note."""
    tokens = MD.parse(md)
    assert tokens[0].type == "heading_open" and tokens[0].tag == "h1"
    assert text_of(MD.renderInline(tokens[1].content)) == state.title
    facts = header(md)
    assert {k: facts.get(k) for k in ("Incident", "Severity", "Phase", "Incident commander", "Acknowledged",
                                      "Declared", "Resolved", "Time to acknowledge", "Time to resolve")} == {
        "Incident": state.id, "Severity": state.severity.value, "Phase": "resolved", "Incident commander": "alice",
        "Acknowledged": f"{state.acknowledged_at:%Y-%m-%d %H:%M} UTC by alice",
        "Declared": f"{state.declared_at:%Y-%m-%d %H:%M} UTC by {state.declared_by}",
        "Resolved": f"{state.resolved_at:%Y-%m-%d %H:%M} UTC",
        "Time to acknowledge": duration(state.acknowledged_at - state.declared_at),
        "Time to resolve": duration(state.resolved_at - state.declared_at)}, facts
    found = blocks(md)
    resolution = next(i for i, t in enumerate(found) if t.content == "Resolution")
    assert found[resolution + 1].content == "Rolled back the bad deploy"
    # every event on its own line, in order; fences balanced, nothing indented into a code block
    assert len(entries(md)) == len(state.timeline), md
    assert md.count("```") % 2 == 0 and not [t for t in tokens if t.type == "code_block"], md
    # the diagnostics' multi-line output: under its line, verbatim, not squashed onto it
    assert pods.count("\n") >= 2, pods
    step = next(i for i, t in enumerate(found) if t.type == "inline" and " - runbook: Step 1/1 " in t.content)
    assert found[step + 1].type == "fence" and found[step + 1].content == pods + "\n", (found[step].content, md)
    assert pods.splitlines()[1] not in found[step].content
    # a status update is labelled; a note is not
    lines = {text_of(MD.renderInline(t.content)): MD.renderInline(t.content) for t in entries(md)}
    [update] = [html for text, html in lines.items() if text.endswith(UPDATE)]
    [note] = [html for text, html in lines.items() if text.endswith(NOTE)]
    assert "<strong>Status update</strong> by alice:" in update and "<strong>" not in note, (update, note)


def check_every_message_is_current(slack: FakeSlack, state: Any, channel: str, alice: str, dm: SlackMessage,
                                   asked: SlackMessage) -> None:
    messages = slack.messages(channel)
    everywhere = [*messages, *slack.dm(alice), *slack.messages("incidents")]
    assert not live_buttons(everywhere), f"buttons left live: {live_buttons(everywhere)}"
    # the pin: who leads now, where it stands, where to look
    [pinned] = [slack.message(channel, ts) for ts in slack.pins(channel)]
    context = blocks_of(pinned)
    for expected in (f"*Incident commander:* <@{alice}>", "resolved", "|Temporal UI>",
                     "https://runbooks.example/checkout"):
        assert expected in context, (expected, context)
    assert "claim it" not in context
    # the summary is the pinned message (the channel's first); it and the announcement follow the incident
    assert messages[0].ts == state.chat.summary_ts == state.chat.context_ts == pinned.ts
    summary = blocks_of(slack.message(channel, state.chat.summary_ts))
    assert "resolved" in summary and "Rolled back the bad deploy" in summary and f"<@{alice}>" in summary
    [announced] = [m for m in slack.messages("incidents") if f"<#{channel}>" in m.text + blocks_of(m)]
    assert "resolved" in blocks_of(announced)
    # the answered questions say who answered, and when
    closed_dm = blocks_of(slack.message(dm.channel, dm.ts))
    assert f"Acknowledged by alice at {state.acknowledged_at:%H:%M} UTC" in closed_dm, closed_dm
    closed_ask = blocks_of(slack.message(channel, asked.ts))
    assert "approved by alice at" in closed_ask and "✅" in closed_ask, closed_ask
    # everyone the channel @-mentions is in it
    members = set(slack.members(channel))
    mentioned = {u for m in messages for u in re.findall(r"<@(U[A-Z0-9]+)>", m.text + blocks_of(m))}
    assert mentioned and mentioned <= members, mentioned - members
    # nothing twice, nothing lost
    keys = [m.metadata["event_payload"]["dedup_key"] for m in messages
            if m.metadata and m.metadata.get("event_type") == "incidentflow_post"]
    assert not [k for k, n in Counter(keys).items() if n > 1]
    assert state.roles[Role.ic] == "alice" and state.acknowledged_by == "alice"
    assert not [e.text for e in state.timeline if e.kind == EventKind.warning and e.actor == "slack"]
