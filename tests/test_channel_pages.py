"""Pages and the incident channel: whoever is paged is invited, and every page links the channel and the
incident (Temporal UI), on every pager (Slack DM, PagerDuty, the signed webhook, the log). Real slack_sdk
against the fake Slack, httpx against the fake PagerDuty and webhook receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.testing import WorkflowEnvironment

from activities.pagerduty import PagerDutyPager
from activities.paging import EscalationActivities, LogPager
from activities.slack import SlackChat, SlackPager
from activities.webhook_pager import WebhookPager
from domain.config import IncidentflowConfig, Settings
from domain.models import AckInput, DeclareInput, EscalateInput, EventKind, PageInput, Severity
from domain.models.chat import ChannelLink
from domain.models.paging import PageRequest
from incidentflow.client import Incidents
from tests.conftest import running_worker
from tests.fakes.pagerduty import FakePagerDuty, FakeWebhookReceiver
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually

UI = "https://temporal.example"


def ui_link(incident_id: str) -> str:
    return Settings(temporal_ui_url=UI).workflow_url(incident_id)


async def _value(value: object) -> object:
    return value


async def test_every_pager_links_the_channel_and_the_incident() -> None:
    """The page activity fills the incident's link from the worker's Settings (not from workflow state,
    which alert-opened incidents lack), and each pager carries it with the channel's."""
    with FakeSlack() as slack, FakePagerDuty() as pd, FakeWebhookReceiver() as hook:
        alice = slack.add_user(name="alice")
        config = IncidentflowConfig.model_validate({"people": [
            {"id": "alice", "name": "Alice", "slack": alice, "notify": ["slack", "pagerduty", "webhook", "log"]}]})
        settings = Settings(slack_bot_token=slack.bot_token, slack_api_url=slack.base_url, temporal_ui_url=UI)
        chat = SlackChat(AsyncWebClient(token=slack.bot_token, base_url=slack.base_url), settings, lambda: config)
        async with httpx.AsyncClient(timeout=5) as http:
            log = LogPager()
            pagers = {"slack": SlackPager(chat), "pagerduty": PagerDutyPager(http, pd.url, {}, pd.routing_key()),
                      "webhook": WebhookPager(http, hook.url, SecretStr("s")), "log": log}
            activities = EscalationActivities(lambda: config, pagers, incident_url=settings.workflow_url)
            channel = ChannelLink(id="C0INCIDENT", name="incident-20261123-0815-sev2-checkout",
                                  url="https://acme.slack.com/archives/C0INCIDENT")
            iid = "incident-20261123-0815-checkout"
            result = await activities.page(PageRequest(
                incident_id=iid, dedup_key=f"{iid}:r1:L1:alice", incident_key=f"incidentflow-{iid}",
                target="alice", level=1, reason="L1", summary="[SEV2] Checkout failing", severity=Severity.SEV2,
                service="checkout", channel=channel))
        assert result.channel == "slack+pagerduty+webhook+log" and result.delivered, result
        event = pd.requests[0].json
        assert event["links"] == [{"href": channel.url, "text": f"Slack #{channel.name}"},
                                  {"href": ui_link(iid), "text": f"Incident {iid} (Temporal UI)"}]
        assert event["client"] == "incidentflow" and event["client_url"] == ui_link(iid)
        sent = PageRequest.model_validate_json(hook.requests[0].raw)
        assert sent.channel == channel and sent.incident_url == ui_link(iid)
        assert log.sent[0].channel == channel and log.sent[0].incident_url == ui_link(iid)
        [dm] = slack.dm(alice)
        assert f"<#{channel.id}>" in dm.text and f"<{ui_link(iid)}|Temporal UI>" in dm.text, dm.text
        assert [(m.channel, m.ts) for m in result.messages] == [(dm.channel, dm.ts)], \
            "the DM with its Acknowledge button is reported, so the incident can close it once answered"


def paging_config(ids: dict[str, str]) -> IncidentflowConfig:
    return IncidentflowConfig.model_validate({
        "people": [{"id": "alice", "name": "Alice", "slack": ids["alice"], "notify": ["slack"]},
                   {"id": "bob", "name": "Bob", "email": "bob@example.com", "notify": ["log"]},
                   {"id": "carol", "name": "Carol", "slack": ids["carol"], "notify": ["log"]},
                   {"id": "dave", "name": "Dave", "slack": ids["dave"]}],
        "services": [{"name": "checkout", "escalation_policy": "p"}],
        "escalation_policies": [{"name": "p", "levels": [{"wait": "5m", "targets": [{"person": "alice"}]},
                                                         {"wait": "30m", "targets": [{"person": "carol"}]}]}]})


def people(slack: FakeSlack) -> dict[str, str]:
    return {name: slack.add_user(name=name, email=f"{name}@example.com") for name in ("alice", "bob", "carol", "dave")}


async def test_the_paged_are_invited_and_their_dm_links_the_channel(ts_env: WorkflowEnvironment) -> None:
    """The escalation's page (L1 alice, a Slack DM) and a manual page (carol, by log only) both bring the
    person into the channel; the channel's "Paged …" line @-mentions someone who is in it."""
    with FakeSlack() as slack:
        ids = people(slack)
        config = paging_config(ids)
        async with running_worker(ts_env.client, config=lambda: config, slack_bot_token=slack.bot_token,
                                  slack_api_url=slack.base_url, temporal_ui_url=UI) as (settings, _):
            inc = Incidents(ts_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Checkout down", severity=Severity.SEV1, service="checkout",
                                                 declared_by="bob"))
            state = await eventually(lambda: inc.get(iid), lambda s: s.pages >= 1 and s.chat is not None)
            channel = state.chat.channel_id  # type: ignore[union-attr]
            await eventually(lambda: _value(slack.members(channel)), lambda m: ids["alice"] in m)
            [dm] = await eventually(lambda: _value(slack.dm(ids["alice"])), lambda m: len(m) == 1)
            assert f"<#{channel}>" in dm.text and f"<{ui_link(iid)}|Temporal UI>" in dm.text, dm.text
            assert state.timeline.index(next(e for e in state.timeline if "channel" in e.text and "opened" in e.text)) \
                < state.timeline.index(next(e for e in state.timeline if e.kind == EventKind.page)), \
                "the channel opens first, so the page can link it"

            await inc.page(iid, PageInput(person="carol", by="bob", note="payments DB owner"))
            await eventually(lambda: _value(slack.members(channel)), lambda m: ids["carol"] in m)
            texts = await eventually(lambda: _value([m.text for m in slack.messages(channel)]),
                                     lambda t: any("Paged carol" in x for x in t))
            paged = next(x for x in texts if "Paged carol" in x)
            assert f"<@{ids['carol']}>" in paged and ids["carol"] in slack.members(channel)
            assert ids["dave"] not in slack.members(channel), "only the paged and the role holders"


async def test_a_page_before_the_channel_opens_still_leads_to_an_invite(ts_env: WorkflowEnvironment) -> None:
    """Slack is down when the incident is declared: L1 is paged without waiting for it (the DM says an
    invite follows), the channel opens later and invites alice; the escalation learns the channel, so L2's
    page links it."""
    with FakeSlack() as slack:
        ids = people(slack)
        config = paging_config(ids)
        slack.fail_next(1, error="ratelimited", method="conversations.create", retry_after=60)
        log = LogPager()
        async with running_worker(ts_env.client, config=lambda: config, pagers={"log": log},
                                  slack_bot_token=slack.bot_token, slack_api_url=slack.base_url) as (settings, _):
            inc = Incidents(ts_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Checkout down", severity=Severity.SEV1, service="checkout",
                                                 declared_by="bob"))
            await ts_env.sleep(timedelta(seconds=15))  # longer than the incident waits for its channel
            state = await eventually(lambda: inc.get(iid), lambda s: s.pages >= 1)
            assert state.chat is None, "paged before the channel existed"
            [dm] = await eventually(lambda: _value(slack.dm(ids["alice"])), lambda m: len(m) == 1)
            assert "invited to the incident channel once it is open" in dm.text, dm.text
            await ts_env.sleep(timedelta(seconds=60))  # Slack's Retry-After: the channel opens
            state = await eventually(lambda: inc.get(iid), lambda s: s.chat is not None)
            channel = state.chat.channel_id  # type: ignore[union-attr]
            await eventually(lambda: _value(slack.members(channel)), lambda m: ids["alice"] in m)
            await ts_env.sleep(timedelta(minutes=5))  # nobody acknowledged: L2
            await eventually(lambda: _value(log.sent), lambda sent: any(r.target == "carol" for r in sent))
            l2 = next(r for r in log.sent if r.target == "carol")
            assert l2.channel is not None and l2.channel.id == channel
            await eventually(lambda: _value(slack.members(channel)), lambda m: ids["carol"] in m)


def test_a_dm_without_the_channel_yet_says_an_invite_follows() -> None:
    from domain import blockkit as render

    said, text, blocks = render.page_message("incident-x", "[SEV1] Down", "L1", None, None)
    assert "invited to the incident channel once it is open" in said and "Acknowledge" in text
    assert [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]] == [render.ACK]
    assert json.dumps(blocks, ensure_ascii=False).count(said) == 1


async def test_a_restarted_escalation_pages_again(ts_env: WorkflowEnvironment) -> None:
    """`escalate` after the escalation ended starts a new one: its pages have their own dedup keys, so alice's DM
    comes again (the first escalation's keys would have been taken for a retry of the same page)."""
    with FakeSlack() as slack:
        ids = people(slack)
        config = paging_config(ids)
        async with running_worker(ts_env.client, config=lambda: config, slack_bot_token=slack.bot_token,
                                  slack_api_url=slack.base_url) as (settings, _):
            inc = Incidents(ts_env.client, settings, config)
            iid = await inc.declare(DeclareInput(title="Checkout down", severity=Severity.SEV1, service="checkout",
                                                 declared_by="bob"))
            await eventually(lambda: _value(slack.dm(ids["alice"])), lambda m: len(m) == 1)
            await inc.acknowledge(iid, AckInput(by="bob"))
            await eventually(lambda: inc.get(iid), lambda s: not s.escalation_active)
            await inc.escalate(iid, EscalateInput(level=1, by="bob"))
            dms = await eventually(lambda: _value(slack.dm(ids["alice"])), lambda m: len(m) == 2)
            state = await inc.get(iid)
            assert state.escalations == 2 and state.pages == 2
            assert [e.text.split(" via")[0] for e in state.timeline if e.kind == EventKind.page] == [
                "Paged alice (L1, person alice)"] * 2
            keys = [m.metadata["event_payload"]["dedup_key"] for m in dms]
            assert keys == [f"page:{iid}:r1:L1:alice", f"page:{iid}:e2:r1:L1:alice"], keys
