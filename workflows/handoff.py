"""HandoffWorkflow: started by a Temporal Schedule at each rotation's handoff time; writes the on-call
handoff note (active incidents, recently resolved, watch items, notes) and sends it to the notifier."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.handoff import HandoffActivities
    from domain.models.handoff import HandoffInput, HandoffNote
    from workflows import options


@workflow.defn(name="HandoffWorkflow")
class HandoffWorkflow:
    @workflow.run
    async def run(self, request: HandoffInput) -> HandoffNote:
        note: HandoffNote = await workflow.execute_activity_method(
            HandoffActivities.compose_handoff, request, summary=f"Handoff note for {request.schedule}",
            **options.CONFIG)
        await workflow.execute_activity_method(
            HandoffActivities.send_handoff, note, summary=f"Send the {request.schedule} handoff note", **options.NOTIFY)
        return note
