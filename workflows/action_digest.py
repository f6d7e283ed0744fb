"""ActionDigestWorkflow: the weekly review of open and overdue action items, started by a Temporal Schedule
(`action_items.digest` in config: day, time and time zone). One activity lists, renders and sends it."""

from __future__ import annotations

from datetime import UTC

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.action_items import ActionActivities, DigestRequest, DigestSent
    from workflows import options


@workflow.defn(name="ActionDigestWorkflow")
class ActionDigestWorkflow:
    @workflow.run
    async def run(self) -> DigestSent:
        request = DigestRequest(today=workflow.now().astimezone(UTC).date(),
                                dedup_key=f"digest:{workflow.info().workflow_id}")
        return await workflow.execute_activity_method(ActionActivities.send_digest, request,
                                                      summary="The weekly action items review", **options.NOTIFY)
