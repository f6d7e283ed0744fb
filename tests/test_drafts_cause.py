"""Public drafts name the cause as the responders last gave it: a structured update's theory, the note moving to
identified, the root cause at resolve (`IncidentState.cause`). A person reads such a draft before it goes out;
a draft that auto-publishes (SEV1 here) leaves the cause out, since it was written for colleagues.
On the time-skipping server with the real worker (tests/test_statuspage_incident.py's stack)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.models import Phase, PhaseInput, ResolveInput, Severity, StatusUpdateInput
from domain.models.common import EventKind
from domain.models.incident import IncidentState
from domain.statuspage.drafts import context_of, draft
from tests.test_statuspage_incident import CONFIG, declare, stack, texts, until


def test_the_identified_draft_names_the_cause_unless_it_auto_publishes() -> None:
    state = IncidentState(id="inc-1", title="Card payments failing", service="checkout", severity=Severity.SEV2,
                          declared_at=datetime(2026, 12, 15, 22, 27, tzinfo=UTC), declared_by="alice",
                          cause="a database failover left the payment service on a read-only replica")
    reviewed = draft(CONFIG.statuspage, context_of(state, Phase.identified, ["pay"], None))
    assert reviewed.body.startswith("We have found the cause of the problem with Payments: a database failover "
                                    "left the payment service on a read-only replica. We are working on a fix.")
    auto = draft(CONFIG.statuspage, context_of(state, Phase.identified, ["pay"], None, cause=False))
    assert auto.body.startswith("We have found the cause of the problem with Payments. We are working on a fix.")
    assert "replica" not in auto.body


async def test_drafts_name_the_latest_cause_the_responders_gave(ts_env: WorkflowEnvironment, tmp_path: Path) -> None:
    async with stack(ts_env, tmp_path) as inc:
        iid = await declare(inc, "checkout")  # SEV2: drafts wait for a person
        await until(inc, iid, lambda s: texts(s, EventKind.suggestion))
        await inc.post_status_update(iid, StatusUpdateInput(text="Looking", by="alice",
                                                            theory="the card network rate-limits us"))
        assert (await inc.get(iid)).cause == "the card network rate-limits us"

        await inc.set_phase(iid, PhaseInput(phase=Phase.identified, by="alice",
                                            note="release 4812's fraud check times out"))
        state = await until(inc, iid, lambda s: len(texts(s, EventKind.suggestion)) >= 2)
        named = ("We have found the cause of the problem with Payments: release 4812's fraud check times out. "
                 "We are working on a fix.")
        assert named in texts(state, EventKind.suggestion)[-1]
        assert (await inc.public_draft(iid)).body.startswith(named)  # what Publish and Edit (Slack, CLI) start from

        await inc.post_status_update(iid, StatusUpdateInput(text="Rolling back", by="alice", impact="4% fail"))
        assert (await inc.get(iid)).cause == "release 4812's fraud check times out"  # no theory: it stands
        await inc.resolve(iid, ResolveInput(by="alice", summary="rolled back 4812",
                                            root_cause="the fraud check's 200 ms timeout"))
        assert (await inc.get(iid)).cause == "the fraud check's 200 ms timeout"


async def test_an_auto_published_draft_keeps_the_internal_cause_out(ts_env: WorkflowEnvironment,
                                                                    tmp_path: Path) -> None:
    async with stack(ts_env, tmp_path) as inc:
        iid = await declare(inc, "checkout", Severity.SEV1)  # SEV1 auto-publishes
        await until(inc, iid, lambda s: s.public and s.public.last_status == "investigating")
        await inc.set_phase(iid, PhaseInput(phase=Phase.identified, by="alice",
                                            note="db-primary-3 OOM after bob's deploy"))
        state = await until(inc, iid, lambda s: s.public.last_status == "identified")
        published = [t for t in texts(state, EventKind.action) if t.startswith("Published a public update (identified)")]
        assert published and "We have found the cause of the problem with Payments. We are working" in published[0]
        assert not any("db-primary-3" in t for t in texts(state, EventKind.action))
        page = await inc.statuspage_state()
        assert not any("db-primary-3" in u.body for u in page.incident(iid).updates)
