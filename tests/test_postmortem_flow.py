"""The postmortem on the time-skipping server, through the client: a SEV1 that resolves drafts its document into
the directory sink and links it on the timeline; `set` fills sections and keeps what people wrote elsewhere;
publishing reads the final text back, refuses rows without owner/due/priority (creating nothing), turns the
action items table into ActionItemWorkflows once (publishing twice creates nothing new), stops the deadline
reminders and closes the incident. A SEV3 gets one only on request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.actions.models import ActionItem, ItemStatus
from domain.config import IncidentflowConfig
from domain.models import AckInput, DeclareInput, EventKind, Phase, ResolveInput, Role, RoleInput, Severity
from domain.postmortem.models import (
    PostmortemPublishInput,
    PostmortemRequest,
    PostmortemSetInput,
    PostmortemStatus,
)
from incidentflow.client import CommandRejected, Incidents
from tests.conftest import running_worker
from tests.helpers import add_action_row, events, eventually
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow


def config(tmp_path: Path) -> IncidentflowConfig:
    return IncidentflowConfig.model_validate({
        "people": [{"id": "alice", "name": "Alice"}, {"id": "bob", "name": "Bob"}],
        "services": [{"name": "checkout"}],
        "postmortem": {"sink": {"kind": "directory", "directory": str(tmp_path / "postmortems")}}})


async def test_a_sev1_drafts_fills_publishes_once_and_closes(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with running_worker(ts_env.client, config=lambda: cfg, data_dir=tmp_path) as (settings, notifier):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="Checkout failing", severity=Severity.SEV1, service="checkout",
                                             declared_by="alice", page=False))
        await inc.acknowledge(iid, AckInput(by="alice"))
        await inc.assign_role(iid, RoleInput(role=Role.ic, person="alice", by="alice"))
        await inc.resolve(iid, ResolveInput(by="alice", summary="rolled back release 4812"))
        pm = await inc._first_draft(iid, wait=30)
        assert pm.status == PostmortemStatus.draft and pm.sink is not None
        doc = tmp_path / "postmortems" / f"{iid}.md"
        text = doc.read_text()
        assert "Checkout failing" in text and "system conditions, not a person" in text
        state = await inc.get(iid)
        drafted = [e for e in events(state, EventKind.action) if e.text.startswith("Postmortem drafted")]
        assert drafted and pm.sink.link in drafted[0].text and state.postmortem_link == pm.sink.link

        doc.write_text(doc.read_text().replace("Checkout failing", "Checkout failing (edited by Bob)", 1))
        await inc.set_postmortem(iid, PostmortemSetInput(by="bob", root_cause="a fraud check timing out at 2 s"))
        text = doc.read_text()
        assert "a fraud check timing out at 2 s" in text and "(edited by Bob)" in text, "people's edits stay"

        due = (datetime.now(UTC) + timedelta(days=10)).date()
        doc.write_text(add_action_row(text, f"| Add a timeout alert | | {due:%Y-%m-%d} | P1 |"))
        with pytest.raises(CommandRejected, match="no owner"):
            await inc.publish_postmortem(iid, PostmortemPublishInput(by="alice"))
        assert (await inc.postmortem(iid)).items == [], "a refused publish creates nothing"

        doc.write_text(doc.read_text().replace("| Add a timeout alert | |", "| Add a timeout alert | bob |"))
        first = await inc.publish_postmortem(iid, PostmortemPublishInput(by="alice"))
        assert first.status == PostmortemStatus.published and len(first.items) == 1
        item: ActionItem = await ts_env.client.get_workflow_handle_for(ActionItemWorkflow.run, first.items[0]).query(
            ActionItemWorkflow.get)
        assert (item.owner, item.due, item.priority.value, item.status) == ("bob", due, "P1", ItemStatus.open)
        again = await inc.publish_postmortem(iid, PostmortemPublishInput(by="alice"))
        assert again.items == [], "publishing twice creates nothing new"

        final = await ts_env.client.get_workflow_handle_for(IncidentWorkflow.run, iid).result()
        assert final.phase == Phase.closed and final.postmortem_published_at is not None
        assert any(e.text.startswith("Postmortem published") for e in final.timeline)


async def test_a_sev3_has_a_postmortem_only_on_request(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    cfg = config(tmp_path)
    async with running_worker(ts_env.client, config=lambda: cfg, data_dir=tmp_path) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="Search slow", severity=Severity.SEV3, service="checkout",
                                             declared_by="alice", page=False))
        with pytest.raises(CommandRejected, match="resolve it first"):
            await inc.start_postmortem(iid, PostmortemRequest(by="alice"))
        await inc.resolve(iid, ResolveInput(by="alice", summary="cache warmed"))
        state = await inc.get(iid)
        assert state.postmortem_id is None
        pm = await inc.start_postmortem(iid, PostmortemRequest(by="alice", template="google-sre"))
        assert pm.template == "google-sre" and (tmp_path / "postmortems" / f"{iid}.md").is_file()
        with pytest.raises(CommandRejected, match="already started"):
            await inc.start_postmortem(iid, PostmortemRequest(by="alice"))


async def test_a_refused_first_draft_is_said_and_the_next_command_drafts(ts_env: WorkflowEnvironment,
                                                                        tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg.postmortem.templates = {Severity.SEV2: "missing-template"}
    async with running_worker(ts_env.client, config=lambda: cfg, data_dir=tmp_path) as (settings, _):
        inc = Incidents(ts_env.client, settings, cfg)
        iid = await inc.declare(DeclareInput(title="Cart slow", severity=Severity.SEV2, service="checkout",
                                             declared_by="alice", page=False))
        await inc.resolve(iid, ResolveInput(by="alice", summary="cache warmed"))
        state = await eventually(lambda: inc.get(iid), lambda s: any(
            e.text.startswith("Postmortem not drafted") for e in s.timeline))
        warning = next(e.text for e in state.timeline if e.text.startswith("Postmortem not drafted"))
        assert "missing-template" in warning and "not found" in warning
        cfg.postmortem.templates = {}
        await inc.set_postmortem(iid, PostmortemSetInput(by="alice", root_cause="cold cache after deploy"))
        pm = await inc.postmortem(iid)
        assert pm.sink is not None and "cold cache after deploy" in Path(pm.sink.ref).read_text()
