"""`/incident publish [text]` in an incident channel: only the comms lead or IC publishes; the draft goes out
as it is, or the words given; the reply says what the public now reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain import blockkit as render
from domain.config import IncidentflowConfig, Settings
from domain.models import Role, RoleInput
from incidentflow.client import Incidents
from tests.conftest import serve_api
from tests.fakes.slack import FakeSlack
from tests.helpers import eventually
from tests.test_slack_commands import Stack
from tests.test_slack_e2e import SECRET, make_config


async def test_publish_from_slack(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    with FakeSlack() as slack:
        base, ids = make_config(slack)
        config = IncidentflowConfig.model_validate({**base.model_dump(mode="json", exclude_defaults=True),
                                                    "statuspage": {"url": "http://status.test", "components": [
                                                        {"id": "pay", "name": "Payments", "services": ["checkout"]}]}})
        general = slack.add_channel("general-publish", members=list(ids.values()), bot_member=True)
        async with serve_api(dev_env, config=config, data_dir=tmp_path, slack_signing_secret=SECRET,
                             slack_bot_token=slack.bot_token, slack_api_url=slack.base_url) as url, \
                httpx.AsyncClient(base_url=url, timeout=60) as http:
            stack = Stack(slack, config, ids, http, Incidents(dev_env.client, Settings(), config), general)
            iid = await stack.declare("sev2 service=checkout Card payments failing")
            channel = await stack.channel_of(iid)
            refused = await stack.command("publish", user="bob", channel=channel)
            assert "only the comms lead or the incident commander" in refused["text"], refused
            await stack.incidents.assign_role(iid, RoleInput(role=Role.comms, person="bob", by="alice"))
            reply = await stack.command("publish Payments fail for some cards; we are on it.", user="bob",
                                        channel=channel)
            assert "published to the status page (investigating): Payments fail for some cards" in reply["text"]
            listed = await eventually(lambda: http.get("/api/v2/incidents.json"),
                                      lambda r: r.status_code == 200 and r.json()["incidents"])
            update = listed.json()["incidents"][0]["incident_updates"][0]
            assert update["body"] == "Payments fail for some cards; we are on it." and update["status"] == "investigating"

            # the draft in the channel carries Publish / Edit for the comms lead
            def drafts() -> list[Any]:
                return [m for m in slack.messages(channel) if m.blocks and any(
                    e.get("action_id") == render.PUBLISH_PUBLIC for b in m.blocks for e in b.get("elements", []))]
            draft = (await eventually(_async(drafts), lambda d: bool(d)))[0]
            assert "Public update to publish (investigating" in draft.text
            pressed = await stack.press(render.PUBLISH_PUBLIC, iid, user="bob")
            assert "published to the status page (investigating)" in pressed.get("text", ""), pressed
            trigger = slack.new_trigger_id(ids["bob"])
            await stack.press(render.EDIT_PUBLIC, iid, user="bob", trigger_id=trigger)
            opened = [v for v in slack.views if v.trigger_id == trigger]
            assert len(opened) == 1 and opened[0].view["callback_id"] == render.PUBLIC_VIEW
            prefilled = opened[0].view["blocks"][0]["element"]["initial_value"]
            assert "Payments" in prefilled
            done = await stack.submit(opened[0].view, "bob", {"text": {"value": {
                "type": "plain_text_input", "value": "Card payments work again for most customers."}}})
            assert done.status_code == 200 and not done.content.strip(b"{} "), done.text
            listed = await eventually(lambda: http.get("/api/v2/incidents.json"),
                                      lambda r: len(r.json()["incidents"][0]["incident_updates"]) == 3)
            assert listed.json()["incidents"][0]["incident_updates"][0]["body"] == \
                "Card payments work again for most customers."


def _async(fn: Any) -> Any:
    async def call() -> Any:
        return fn()
    return call
