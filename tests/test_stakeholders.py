"""Internal updates for stakeholders: a structured `update` (impact, theory, next action) renders our users'
template into the incident's timeline, the stakeholder Slack channel (a service's own, else the configured one)
and the stakeholder mail list; resolving sends the resolution message (summary, root cause, action items,
when the postmortem follows). Through the real API and worker, the fake Slack and a real SMTP server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from domain.actions.models import ActionItem, ItemStatus
from domain.config import IncidentflowConfig
from domain.models import DeclareInput, Severity, StatusUpdateInput
from domain.models.common import EventKind
from domain.models.incident import IncidentStart, IncidentState
from domain.postmortem.models import ItemKind, Priority
from domain.stakeholders import with_action_items
from incidentflow.client_base import CommandRejected
from tests.conftest import serve_api
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import SmtpServer
from tests.helpers import eventually
from tests.test_slack_e2e import make_config
from tests.test_statuspage_incident import declare, stack, texts, until
from workflows.incident import IncidentWorkflow


async def test_structured_updates_and_the_resolution_reach_the_stakeholders(dev_env: WorkflowEnvironment,
                                                                            tmp_path: Path) -> None:
    with FakeSlack() as slack, SmtpServer() as smtp:
        base, ids = make_config(slack)
        slack.add_channel("exec-updates", bot_member=True)
        slack.add_channel("payments-leads", bot_member=True)
        config = IncidentflowConfig.model_validate({
            **base.model_dump(mode="json", exclude_defaults=True),
            "services": [{"name": "checkout", "stakeholder_channel": "payments-leads"}, {"name": "search"}],
            "slack": {"stakeholder_channel": "exec-updates"},
            "stakeholder_emails": ["leadership@example.com"]})
        async with serve_api(dev_env, config=config, data_dir=tmp_path, slack_bot_token=slack.bot_token,
                             slack_api_url=slack.base_url, smtp_url=smtp.url()) as url, \
                httpx.AsyncClient(base_url=url, timeout=60) as api:
            iid = (await api.post("/v1/incidents", json={"title": "Card payments failing", "severity": "SEV2",
                                                          "service": "checkout", "declared_by": "alice",
                                                          "page": False})).json()["id"]
            await api.post(f"/v1/incidents/{iid}/roles", json={"role": "ic", "person": "alice", "by": "alice"})
            plain = await api.post(f"/v1/incidents/{iid}/status-updates", json={"text": "Looking", "by": "alice"})
            assert plain.status_code == 200, plain.text
            r = await api.post(f"/v1/incidents/{iid}/status-updates", json={
                "text": "Rolling back release 4812", "impact": "about 40% of card payments fail",
                "theory": "the new fraud check times out", "next_action": "roll back, then watch errors",
                "by": "alice"})
            assert r.status_code == 200, r.text

            posts = await eventually(lambda: _texts(slack, "payments-leads"), lambda t: len(t) >= 1)
            assert not await _texts(slack, "exec-updates")  # the service's own channel wins
            update = posts[0]
            for line in ("SEV2 · Card payments failing", "Status: Rolling back release 4812",
                         "Impact: about 40% of card payments fail", "Duration so far:", "Team: IC alice",
                         "Current theory: the new fraud check times out",
                         "Next action: roll back, then watch errors", "Next update:"):
                assert line in update, (line, update)
            mail = await eventually(lambda: _async(smtp.messages()), lambda m: len(m) >= 1)
            assert mail[0].recipients == ("leadership@example.com",)
            assert "Current theory: the new fraud check times out" in mail[0].message.get_content()
            timeline = (await api.get(f"/v1/incidents/{iid}/timeline")).json()
            assert sum(1 for e in timeline if e["kind"] == "status_update") == 2

            due = (datetime.now(UTC) + timedelta(days=7)).date()
            for text, owner in (("Time the fraud check out at 150 ms", "alice"), ("Alert on fraud check latency", "bob")):
                added = await api.post(f"/v1/incidents/{iid}/action-items", json={
                    "text": text, "owner": owner, "due": due.isoformat(), "priority": "P1", "by": "alice"})
                assert added.status_code == 201, added.text
            await api.post(f"/v1/incidents/{iid}/resolve", json={
                "by": "alice", "summary": "rolled back 4812", "root_cause": "fraud check timeout of 200 ms"})
            posts = await eventually(lambda: _texts(slack, "payments-leads"), lambda t: len(t) >= 2)
            for line in ("Resolved: SEV2 · Card payments failing", "Summary: rolled back 4812",
                         "Root cause: fraud check timeout of 200 ms", "Action items: 2",
                         f"• Time the fraud check out at 150 ms — alice, due {due}, P1",
                         f"• Alert on fraud check latency — bob, due {due}, P1", "The postmortem follows by"):
                assert line in posts[1], (line, posts[1])
            assert "none added yet" not in posts[1]
            mail = await eventually(lambda: _async(smtp.messages()), lambda m: len(m) >= 2)
            assert "• Alert on fraud check latency — bob" in mail[1].message.get_content()
            channel = (await api.get(f"/v1/incidents/{iid}")).json()["chat"]["channel_id"]
            resolved = await eventually(lambda: _texts(slack, channel),
                                        lambda t: any(m.startswith("Resolved: SEV2") for m in t))
            assert "• Time the fraud check out at 150 ms — alice" in next(m for m in resolved if m.startswith("Resolved"))
            assert len(slack.messages("payments-leads")) == 2 and len(smtp.messages()) == 2  # each once


async def _texts(slack: FakeSlack, channel: str) -> list[str]:
    return [m.text for m in slack.messages(channel)]


async def _async(value: object) -> object:
    return value


async def _get(api: httpx.AsyncClient, iid: str) -> Any:
    return (await api.get(f"/v1/incidents/{iid}")).json()


async def test_without_stakeholders_the_resolution_goes_to_the_incident_channel(dev_env: WorkflowEnvironment,
                                                                               tmp_path: Path) -> None:
    """Code level 2: no stakeholder channel nor list configured, the incident channel still reads the resolution
    message; with no action item added, it says when the postmortem that agrees them is due."""
    with FakeSlack() as slack:
        config, _ = make_config(slack)
        async with serve_api(dev_env, config=config, data_dir=tmp_path, slack_bot_token=slack.bot_token,
                             slack_api_url=slack.base_url) as url, \
                httpx.AsyncClient(base_url=url, timeout=60) as api:
            iid = (await api.post("/v1/incidents", json={"title": "Card payments failing", "severity": "SEV2",
                                                          "service": "checkout", "declared_by": "alice",
                                                          "page": False})).json()["id"]
            state = await eventually(lambda: _get(api, iid), lambda s: s["chat"] is not None)
            await api.post(f"/v1/incidents/{iid}/resolve", json={"by": "alice", "summary": "rolled back 4812",
                                                                 "root_cause": "fraud check timeout"})
            texts = await eventually(lambda: _texts(slack, state["chat"]["channel_id"]),
                                     lambda t: any(m.startswith("Resolved: SEV2") for m in t))
            message = next(m for m in texts if m.startswith("Resolved: SEV2"))
            due = (await _get(api, iid))["postmortem_due"][:10]
            assert "Root cause: fraud check timeout" in message
            assert f"Action items: none added yet; the postmortem agrees them (due {due}, owner the IC)." in message


async def test_an_update_says_when_the_next_one_comes(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """`next_update` (a duration, a UTC clock time or a date and time) sets the next update's deadline instead of
    the cadence (SEV2: 30 min): the reminder comes then, and the rendered update says when."""
    async with stack(ts_env, tmp_path) as inc:
        iid = await declare(inc, "search")
        result = await inc.post_status_update(iid, StatusUpdateInput(
            text="Rolling back", by="alice", impact="searches time out", next_update="45m"))
        state = await inc.get(iid)
        assert state.next_update_due == state.last_update_at + timedelta(minutes=45)
        assert result.text.endswith(f"next due {state.next_update_due:%H:%M} UTC")
        assert f"Next update: {state.next_update_due:%H:%M} UTC" in texts(state, EventKind.status_update)[-1]

        with pytest.raises(CommandRejected, match=r"next_update: .* is in the past"):
            await inc.post_status_update(iid, StatusUpdateInput(text="x", by="alice",
                                                                next_update="2020-01-01T10:00Z"))
        with pytest.raises(CommandRejected, match=r"next_update: .* more than 24 h 00 min away"):
            await inc.post_status_update(iid, StatusUpdateInput(
                text="x", by="alice", next_update=(state.last_update_at + timedelta(hours=25)).isoformat()))

        def due_reminders(s: IncidentState) -> list[str]:
            return [t for t in texts(s, EventKind.reminder) if t.startswith("A status update is due")]
        await ts_env.sleep(timedelta(minutes=31))  # the cadence's 30 min: nothing owed yet
        assert not due_reminders(await inc.get(iid))
        await ts_env.sleep(timedelta(minutes=15))
        await until(inc, iid, due_reminders)

        plain = await inc.post_status_update(iid, StatusUpdateInput(text="Still rolling back", by="alice",
                                                                    next_update="20m"))
        state = await inc.get(iid)
        assert texts(state, EventKind.status_update)[-1] == \
            f"Still rolling back\nNext update: {state.next_update_due:%H:%M} UTC" and "next due" in plain.text


async def test_an_incident_from_before_level_2_refuses_next_update(ts_env: WorkflowEnvironment,
                                                                  tmp_path: Path) -> None:
    async with stack(ts_env, tmp_path) as inc:
        iid = f"incident-level1-{uuid.uuid4().hex[:6]}"
        await ts_env.client.start_workflow(IncidentWorkflow.run, IncidentStart(
            declare=DeclareInput(title="Search slow", severity=Severity.SEV3, declared_by="alice", page=False),
            incident_id=iid, code_level=1), id=iid, task_queue=inc.settings.task_queue)
        with pytest.raises(CommandRejected, match="next_update: this incident was declared by an earlier version"):
            await inc.post_status_update(iid, StatusUpdateInput(text="x", by="alice", next_update="30m"))
        assert "status update posted" in (await inc.post_status_update(
            iid, StatusUpdateInput(text="x", by="alice"))).text
        await ts_env.client.get_workflow_handle(iid).terminate("test finished")


def test_next_update_reads_a_duration_a_clock_time_or_a_date() -> None:
    now = datetime(2026, 12, 15, 23, 50, tzinfo=UTC)

    def at(value: str) -> datetime | None:
        return StatusUpdateInput(text="x", by="alice", next_update=value).next_update_at(now)
    assert at("30m") == now + timedelta(minutes=30) and at("1h30m") == now + timedelta(minutes=90)
    assert at("2h") == now + timedelta(hours=2) and at("24h") == now + timedelta(hours=24)
    assert at("00:15") == datetime(2026, 12, 16, 0, 15, tzinfo=UTC)  # the next one: tomorrow, 25 min on
    assert at("2026-12-16T01:00+01:00") == datetime(2026, 12, 16, 0, 0, tzinfo=UTC)
    assert at("") is None
    for bad, why in (("soon", "is not a duration"), ("25h", "at most 24 h"), ("0m", "more than 0")):
        with pytest.raises(ValidationError, match=f"next_update\n.*{why}"):
            StatusUpdateInput(text="x", by="alice", next_update=bad)
    with pytest.raises(ValueError, match=r"next_update: 23:40 UTC is 23 h 50 min away .* within 12 h"):
        at("23:40")  # ten minutes ago: a slip, not tomorrow


def test_the_resolution_lists_the_items_left_and_done() -> None:
    text = "Resolved: SEV2 · t\nAction items: none.\nNo postmortem is required for a SEV3."
    made = datetime(2026, 12, 15, tzinfo=UTC)

    def item(n: int, status: ItemStatus) -> ActionItem:
        return ActionItem(aid=f"ai-aaaaaaa{n}", incident_id="inc-1", text=f"fix {n}", owner="alice",
                          due=made.date() + timedelta(days=n), priority=Priority.P1, kind=ItemKind.fix,
                          status=status, created_at=made, created_by="alice")
    assert with_action_items(text, []) == text
    assert with_action_items(text, [item(1, ItemStatus.dropped)]) == text
    out = with_action_items(text, [item(2, ItemStatus.done), item(1, ItemStatus.open), item(3, ItemStatus.dropped)])
    assert out.split("\n") == ["Resolved: SEV2 · t", "Action items: 2", "• fix 1 — alice, due 2026-12-16, P1",
                               "• fix 2 — alice, due 2026-12-17, P1 — done", "No postmortem is required for a SEV3."]
    many = with_action_items(text, [item(n, ItemStatus.open) for n in range(20)])
    assert "Action items: 20" in many and many.count("\n• fix") == 15 and "… and 5 more" in many
