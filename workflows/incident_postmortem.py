"""The incident's postmortem (a mixin of IncidentWorkflow): the PostmortemWorkflow child it starts, and what
the child tells it back.

A severity that needs a postmortem (policy `postmortem.required_for`, SEV1 and SEV2 by default) starts one when
it resolves, as does moving to the `postmortem` phase or `postmortem start` (any severity). Resolving again after
a reopen hands the running postmortem the newer facts. The child says when its draft is there (the link goes on
the timeline, so to the channel) and when it is published: then the deadline reminders stop, the link is kept,
and a resolved incident closes."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from domain import policy
    from domain.models.common import EventKind, Phase, Role
    from domain.models.incident import CommandResult
    from domain.postmortem.models import PostmortemEvent, PostmortemRequest, PostmortemStart, postmortem_id
    from domain.postmortem.source import source_of
    from workflows.incident_core import SYSTEM, IncidentCore
    from workflows.postmortem import PostmortemWorkflow

# postmortem-draft (0.3): resolving a severity that needs a postmortem (or moving to `postmortem`) starts the
# PostmortemWorkflow child. Histories from before it resolved without one.
PATCH_POSTMORTEM = "postmortem-draft"
STARTABLE = (Phase.resolved, Phase.postmortem)


class IncidentPostmortem(IncidentCore):
    def _postmortem_event(self, event: PostmortemEvent) -> None:
        s = self.s
        s.postmortem_link = event.link or s.postmortem_link
        if s.phase == Phase.stood_down:  # reopened, then not an incident after all: its draft is no news
            return
        if event.kind == "drafted":
            self._event(EventKind.action, SYSTEM,
                        f"Postmortem drafted ({event.template} template): {event.link}. Fill it in there or with "
                        f"`incidentflow postmortem set {s.id} --root-cause \"…\"`, then "
                        f"`incidentflow postmortem publish {s.id}`.", subject=s.roles.get(Role.ic))
        elif event.kind == "failed":  # the first draft was refused (template, sink): say so, where people look
            self._event(EventKind.warning, SYSTEM, f"Postmortem not drafted: {event.detail}. Fix the config, "
                        f"then `incidentflow postmortem set {s.id} …` drafts it.", subject=s.roles.get(Role.ic))
        elif event.kind == "published":
            first = s.postmortem_published_at is None
            s.postmortem_published_at = s.postmortem_published_at or workflow.now()
            items = f"; {len(event.items)} new action item(s): {', '.join(event.items)}" if event.items else ""
            self._event(EventKind.action, event.by, f"Postmortem published: {event.link}{items}")
            if first and s.phase in STARTABLE:
                self._set_phase(Phase.closed, event.by, "postmortem published")
        self._wake = True

    async def _request_postmortem(self, cmd: PostmortemRequest) -> CommandResult:
        """`postmortem start`: the child now, whatever the severity."""
        started = await self._start_postmortem(cmd.by, cmd.template)
        return self._result(f"postmortem {'started' if started else 'already started'}: {self.s.postmortem_id}",
                            ref=self.s.postmortem_id)

    def _check_postmortem_request(self, cmd: PostmortemRequest) -> None:
        s = self.s
        if s.phase not in STARTABLE:
            raise policy.NotAllowed(f"cannot start the postmortem: the incident is {s.phase.value}; resolve it first")
        if s.postmortem_id:
            raise policy.NotAllowed(f"the postmortem is already started: `incidentflow postmortem show {s.id}`")

    async def _flush_postmortem(self) -> None:
        """What the phase changes asked for: start the postmortem, or refresh a running one."""
        if not self._postmortem_queue or not self._patched(PATCH_POSTMORTEM):
            self._postmortem_queue.clear()
            return
        self._postmortem_queue.clear()
        s = self.s
        if s.phase not in STARTABLE:  # reopened meanwhile
            return
        if s.postmortem_id is None:
            await self._start_postmortem(SYSTEM, None)
        elif s.postmortem_published_at is None:
            try:
                await self._order.settle(workflow.get_external_workflow_handle(s.postmortem_id).signal(
                    PostmortemWorkflow.refresh, source_of(s, workflow.now())))
            except Exception:  # noqa: BLE001 - the postmortem ended (failed, terminated): nothing to refresh
                pass

    async def _start_postmortem(self, by: str, template: str | None) -> bool:
        s = self.s
        child_id = postmortem_id(s.id)
        s.postmortem_id = child_id
        try:
            await self._order.settle(workflow.start_child_workflow(
                PostmortemWorkflow.run, PostmortemStart(source=source_of(s, workflow.now()), template=template,
                                                        requested_by=by),
                id=child_id, parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"Postmortem of {s.id}"))
        except WorkflowAlreadyStartedError:
            return False
        self._event(EventKind.action, by, "Postmortem started: drafting the document")
        return True
