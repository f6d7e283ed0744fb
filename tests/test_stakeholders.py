"""Internal updates for stakeholders: a structured `update` (impact, theory, next action) renders our users'
template into the incident's timeline, the stakeholder Slack channel (a service's own, else the configured one)
and the stakeholder mail list; resolving sends the resolution message (summary, root cause, action items,
when the postmortem follows). Through the real API and worker, the fake Slack and a real SMTP server."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.config import IncidentflowConfig
from tests.conftest import serve_api
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import SmtpServer
from tests.helpers import eventually
from tests.test_slack_e2e import make_config


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

            await api.post(f"/v1/incidents/{iid}/resolve", json={
                "by": "alice", "summary": "rolled back 4812", "root_cause": "fraud check timeout of 200 ms"})
            posts = await eventually(lambda: _texts(slack, "payments-leads"), lambda t: len(t) >= 2)
            for line in ("Resolved: SEV2 · Card payments failing", "Summary: rolled back 4812",
                         "Root cause: fraud check timeout of 200 ms", "Action items:", "The postmortem follows by"):
                assert line in posts[1], (line, posts[1])
            assert len(slack.messages("payments-leads")) == 2 and len(smtp.messages()) == 2  # each once


async def _texts(slack: FakeSlack, channel: str) -> list[str]:
    return [m.text for m in slack.messages(channel)]


async def _async(value: object) -> object:
    return value
