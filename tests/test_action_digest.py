"""The weekly review: a Temporal Schedule at the configured day, time and time zone starts the digest, which
lists open and overdue action items from visibility, grouped by owner with their incidents and due dates, and
sends it to the Slack channel and the stakeholder mail list. Real dev server, fake Slack, real SMTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.actions.digest import digest
from domain.actions.models import ActionItem, ActionItemStart, ItemStatus
from domain.config import IncidentflowConfig
from domain.postmortem.models import ItemKind, Priority
from incidentflow.client import Incidents
from incidentflow.client_learning import DIGEST_SCHEDULE
from tests.conftest import running_worker
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import SmtpServer
from tests.helpers import eventually
from workflows.action_item import ActionItemWorkflow


def item(aid: str, owner: str, due_in: int, text: str, incident: str = "incident-20261207-0100-checkout",
         status: ItemStatus = ItemStatus.open) -> ActionItem:
    now = datetime.now(UTC)
    return ActionItem(aid=aid, incident_id=incident, text=text, owner=owner, due=(now + timedelta(days=due_in)).date(),
                      priority=Priority.P1, kind=ItemKind.fix, created_at=now - timedelta(days=30), created_by="alice",
                      status=status)


def test_the_digest_groups_open_items_by_owner_and_flags_overdue_ones() -> None:
    today = datetime.now(UTC).date()
    review = digest([item("ai-aaaaaaaa", "bob", -3, "Add <alert> & page"), item("ai-bbbbbbbb", "alice", 5, "Docs"),
                     item("ai-cccccccc", "bob", 2, "Load test"),
                     item("ai-dddddddd", "bob", -9, "Done thing", status=ItemStatus.done)], today)
    assert (review.open, review.overdue, review.owners) == (3, 1, ["alice", "bob"])
    assert review.slack.index("*alice* (1)") < review.slack.index("*bob* (2)")
    assert "OVERDUE 3 d" in review.slack and "Add &lt;alert&gt; &amp; page" in review.slack
    assert "Done thing" not in review.mail and "[ai-aaaaaaaa] P1 Add <alert> & page -- OVERDUE 3 d" in review.mail
    empty = digest([], today)
    assert empty.open == 0 and "Nothing is outstanding" in empty.slack


async def test_the_schedule_sends_the_review_to_the_channel_and_the_list(fresh_dev_env: WorkflowEnvironment,
                                                                         tmp_path: Path) -> None:
    env = fresh_dev_env
    with FakeSlack() as slack, SmtpServer() as smtp:
        slack.add_channel("incident-review", bot_member=True)
        config = IncidentflowConfig.model_validate({
            "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}],
            "stakeholder_emails": ["leads@example.com"],
            "action_items": {"digest": {"day": "friday", "time": "16:30", "timezone": "Europe/Berlin",
                                        "channel": "#incident-review"}}})

        class Directory:
            async def action_items(self, *, open_only: bool = True, incident: str | None = None) -> list[ActionItem]:
                return await Incidents(env.client, settings, config).action_items(open_only=open_only,
                                                                                   incident=incident)

        async with running_worker(env.client, config=lambda: config, directory=Directory(), data_dir=tmp_path,
                                  slack_bot_token=slack.bot_token, slack_api_url=slack.base_url,
                                  smtp_url=smtp.url()) as (settings, _):
            inc = Incidents(env.client, settings, config)
            for it in (item("ai-aaaaaaaa", "bob", -3, "Alert on queue depth"),
                       item("ai-bbbbbbbb", "alice", 5, "Runbook for the failover")):
                await env.client.start_workflow(ActionItemWorkflow.run, ActionItemStart(item=it), id=it.aid,
                                                task_queue=settings.task_queue)
            await eventually(lambda: inc.action_items(), lambda items: len(items) == 2)
            assert [i.aid for i in await inc.action_items(overdue_only=True)] == ["ai-aaaaaaaa"]
            assert [i.aid for i in await inc.action_items(owner="alice")] == ["ai-bbbbbbbb"]

            assert await inc.setup_digest() == DIGEST_SCHEDULE
            assert await inc.setup_digest() == DIGEST_SCHEDULE, "idempotent"
            schedule = env.client.get_schedule_handle(DIGEST_SCHEDULE)
            spec = (await schedule.describe()).schedule.spec
            calendar = spec.calendars[0]
            assert spec.time_zone_name == "Europe/Berlin"
            assert ([r.start for r in calendar.day_of_week], calendar.hour[0].start, calendar.minute[0].start) == \
                ([5], 16, 30)
            await schedule.trigger()
            posts = await eventually(lambda: _texts(slack, "incident-review"), lambda t: len(t) >= 1)
            assert "2 open, 1 overdue" in posts[0] and "*alice* (1)" in posts[0] and "*bob* (1)" in posts[0]
            assert "`ai-aaaaaaaa` P1 Alert on queue depth — OVERDUE 3 d — `incident-20261207-0100-checkout`" in posts[0]
            mail = await eventually(lambda: _async(smtp.messages()), lambda m: len(m) >= 1)
            assert mail[0].recipients == ("leads@example.com",)
            assert "Runbook for the failover" in mail[0].message.get_content()

            config.action_items.digest.enabled = False
            assert await inc.setup_digest() is None
            assert DIGEST_SCHEDULE not in [s.id async for s in await env.client.list_schedules()]


async def _texts(slack: FakeSlack, channel: str) -> list[str]:
    return [m.text for m in slack.messages(channel)]


async def _async(value: object) -> object:
    return value
