"""Handoff notes: a Temporal Schedule per rotation layer, at local handoff time, and the note it sends."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from domain.config import load_config
from domain.models import DeclareInput, Severity
from incidentflow.client import Incidents, ensure_handoff_schedules
from tests.conftest import running_worker
from tests.helpers import eventually

EXAMPLE = Path(__file__).parent.parent / "config/example.yaml"


async def test_schedules_follow_rotations_and_send_the_note(dev_env: WorkflowEnvironment) -> None:
    config = load_config(EXAMPLE)
    async with running_worker(dev_env.client, config=lambda: config) as (settings, notifier):
        ids = await ensure_handoff_schedules(dev_env.client, settings, config)
        assert ids == ["handoff-checkout-oncall-primary", "handoff-checkout-oncall-secondary",
                       "handoff-search-oncall-primary"]
        assert await ensure_handoff_schedules(dev_env.client, settings, config) == ids, "idempotent"
        primary = (await dev_env.client.get_schedule_handle(ids[0]).describe()).schedule.spec
        assert primary.time_zone_name == "Europe/London"
        calendar = primary.calendars[0]
        assert [r.start for r in calendar.day_of_week] == [1] and calendar.hour[0].start == 9
        assert calendar.minute[0].start == 0
        secondary = (await dev_env.client.get_schedule_handle(ids[1]).describe()).schedule.spec
        assert secondary.intervals[0].every.days == 14, "a 14-day rotation is an interval"

        inc = Incidents(dev_env.client, settings, config)
        await inc.declare(DeclareInput(title="Payments slow", severity=Severity.SEV2, service="checkout",
                                       declared_by="pat", page=False))
        await dev_env.client.get_schedule_handle(ids[0]).trigger()
        delivered = await eventually(lambda: _notes(notifier), lambda n: len(n) >= 1, timeout=20)
        note = delivered[0]
        assert note.kind == "handoff" and note.text.startswith("On-call handoff for checkout-oncall")
        for section in ("Active incidents:", "Recently resolved (7 days):", "Watch items:", "Notes:"):
            assert section in note.text
        assert "Payments slow" in note.text and "DB maintenance window" in note.text
        assert "Dan away until Dec 1" in note.text
        for schedule_id in ids:
            await dev_env.client.get_schedule_handle(schedule_id).delete()


async def _notes(notifier: object) -> list:
    return [m for m in notifier.delivered if m.kind == "handoff"]  # type: ignore[attr-defined]
