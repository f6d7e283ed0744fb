"""PostmortemWorkflow: the blameless postmortem of one incident, from draft to published.

Started by the incident (a child, `ParentClosePolicy.ABANDON`, so closing the incident never stops it) when a
severity that needs one resolves, or on request (`postmortem start`). It drafts the document from what the
incident handed it (`PostmortemSource`: computed facts, the folded timeline) with the severity's template,
writes it to the sink where people edit it, and tells the incident the link. `set_fields` fills sections,
`publish` reads the final text back from the sink, turns its action items table into ActionItemWorkflows
(idempotently: the item id comes from the row, so publishing twice creates nothing new) and tells the incident,
which stops the deadline reminders and records the link. It stays a while after publishing, so a corrected
document can be published again, then ends with its state as result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.archive import ArchiveActivities
    from activities.errors import REJECTED
    from activities.postmortem import PostmortemActivities
    from domain.actions.models import ActionItem, ActionItemStart, action_id
    from domain.archive.models import PostmortemArchive
    from domain.postmortem.models import (
        ActionRow,
        CollectRequest,
        DraftInput,
        DraftRequest,
        FieldsRequest,
        PostmortemEvent,
        PostmortemPublishInput,
        PostmortemResult,
        PostmortemSetInput,
        PostmortemSource,
        PostmortemStart,
        PostmortemState,
        PostmortemStatus,
    )
    from workflows import options
    from workflows.action_item import ActionItemWorkflow
    from workflows.incident_core import IncidentCore

KEPT_AFTER_PUBLISH = timedelta(days=30)  # a corrected document can be published again meanwhile
HISTORY_KEPT = 50
CONTINUE_AFTER = 5000
SECTIONS = ("summary", "impact", "root_cause", "trigger", "detection", "resolution", "went_well", "improve",
            "lessons")


def row_key(row: ActionRow) -> str:
    return " ".join(row.action.lower().split())


@workflow.defn(name="PostmortemWorkflow")
class PostmortemWorkflow:
    @workflow.init
    def __init__(self, start: PostmortemStart) -> None:
        if start.carried is not None:
            self.s = start.carried
        else:
            self.s = PostmortemState(incident_id=start.source.incident_id, source=start.source,
                                     template=start.template or "")
        self._lock = asyncio.Lock()  # one change of the document at a time (read, change, write)
        self._redraft = False

    @workflow.run
    async def run(self, start: PostmortemStart) -> PostmortemState:
        if self.s.sink is None:
            async with self._lock:
                try:
                    await self._draft(start.requested_by)
                except ApplicationError as exc:  # a refused template or sink: `set`/`publish` draft again
                    self._note(start.requested_by, f"not drafted: {exc.message}")
                    await self._tell_incident(PostmortemEvent(kind="failed", by=start.requested_by,
                                                              detail=exc.message[:1000]))
        while True:
            if workflow.info().get_current_history_length() > CONTINUE_AFTER:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(PostmortemStart(source=self.s.source, carried=self.s))
            published = self.s.published_at
            timeout = (published + KEPT_AFTER_PUBLISH - workflow.now()) if published else None
            try:
                await workflow.wait_condition(self._changed_since(published),
                                              timeout=timeout, timeout_summary="kept for a second publish")
            except TimeoutError:
                break
            if self._redraft:
                self._redraft = False
                async with self._lock:
                    await self._draft("incidentflow")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.s

    def _changed_since(self, published: datetime | None) -> Callable[[], bool]:
        return lambda: self._redraft or self.s.published_at != published

    # ---------------------------------------------------------------- commands
    @workflow.update
    async def set_fields(self, cmd: PostmortemSetInput) -> PostmortemResult:
        updates = {name: getattr(cmd, name) for name in SECTIONS if getattr(cmd, name) is not None}
        async with self._lock:
            if self.s.sink is None:
                await self._draft(cmd.by)
            assert self.s.sink is not None
            fields = self.s.fields.model_copy(update=updates)
            if cmd.review_date is not None:
                fields.review_date = cmd.review_date
                updates["review_date"] = f"{cmd.review_date:%Y-%m-%d}"
            if cmd.reviewers is not None:
                fields.reviewers = list(cmd.reviewers)
                updates["reviewers"] = ", ".join(cmd.reviewers)
            status = cmd.status or self.s.status
            if updates:
                self.s.sink = await self._document(
                    PostmortemActivities.update_postmortem,
                    FieldsRequest(incident_id=self.s.incident_id, title=self.s.source.title, ref=self.s.sink,
                                  updates=updates, status=status), "Fill in the postmortem")
            self.s.fields, self.s.status = fields, status
            what = ", ".join(k.replace("_", " ") for k in updates) or f"status {status.value}"
            self._note(cmd.by, f"set {what}")
            return self._result(f"set {what}")

    @set_fields.validator
    def _check_set(self, cmd: PostmortemSetInput) -> None:
        given = [n for n in (*SECTIONS, "review_date", "reviewers", "status") if getattr(cmd, n) is not None]
        if not given:
            raise ValueError("nothing to set: give a field (--root-cause, --impact, --went-well, --improve, "
                             "--lessons, --review-date, …)")
        if self.s.status == PostmortemStatus.published:
            raise ValueError("the postmortem is published: edit the document and publish again")
        if cmd.status == PostmortemStatus.published:
            raise ValueError("status: use `postmortem publish` to publish")

    @workflow.update
    async def publish(self, cmd: PostmortemPublishInput) -> PostmortemResult:
        async with self._lock:
            if self.s.sink is None:
                await self._draft(cmd.by)
            sink = self.s.sink
            assert sink is not None
            today = workflow.now().astimezone(UTC).date()
            collected = await self._document(
                PostmortemActivities.collect_postmortem,
                CollectRequest(incident_id=self.s.incident_id, ref=sink, today=today), "Read the final text")
            if collected.problems:
                raise ApplicationError("publish refused, nothing was created: " + "; ".join(collected.problems),
                                       type=REJECTED, non_retryable=True)
            created = await self._create_items(collected.rows, cmd.by, collected.remind_at)
            s = self.s
            first = s.published_at is None
            s.status, s.published_at, s.published_by = PostmortemStatus.published, workflow.now(), cmd.by
            s.link, s.final_text = sink.link, collected.text
            self._note(cmd.by, f"published ({len(created)} new action items)")
            await self._tell_incident(PostmortemEvent(kind="published", link=s.link, by=cmd.by, items=created,
                                                      template=s.template))
            await self._archive()
            text = "published" if first else "published again"
            return self._result(f"{text}; {len(created)} new action item(s)", items=created, text=collected.text)

    @publish.validator
    def _check_publish(self, cmd: PostmortemPublishInput) -> None:
        if not cmd.by.strip():
            raise ValueError("by: who publishes")

    @workflow.signal
    def refresh(self, source: PostmortemSource) -> None:
        """The incident resolved again (after a reopen): newer facts. Redrafted unless people edited it."""
        if self.s.status == PostmortemStatus.published:
            return
        self.s.source = source
        self._redraft = True

    @workflow.query
    def get_state(self) -> PostmortemState:
        return self.s

    # ---------------------------------------------------------------- the work
    async def _draft(self, by: str) -> None:
        s = self.s
        request = DraftRequest(draft=DraftInput(source=s.source, fields=s.fields, actions=s.actions, status=s.status,
                                                template=s.template, now=workflow.now()), ref=s.sink)
        drafted = await self._document(PostmortemActivities.draft_postmortem, request, "Draft the postmortem")
        first = s.sink is None
        s.sink, s.template = drafted.ref, drafted.template
        if drafted.edited:
            self._note(by, "not redrafted: people edited the document")
            return
        s.drafts += 1
        s.drafted_at = s.drafted_at or workflow.now()
        self._note(by, f"drafted ({drafted.template})")
        if first:
            await self._tell_incident(PostmortemEvent(kind="drafted", link=drafted.ref.link, by=by,
                                                      template=drafted.template))

    async def _document(self, method, arg, summary: str):  # type: ignore[no-untyped-def]
        """A document activity; its refusal becomes the command's error, in the person's words."""
        try:
            return await workflow.execute_activity_method(method, arg, summary=summary, **options.DOCUMENT)
        except ActivityError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            raise ApplicationError(message, type=REJECTED, non_retryable=True) from None

    async def _create_items(self, rows: list[ActionRow], by: str, remind_at: time) -> list[str]:
        s, created, kept = self.s, [], []
        for row in rows:
            aid = action_id(s.incident_id, "postmortem", row.kind.value, row_key(row))
            kept.append(row.model_copy(update={"aid": aid}))
            if aid in s.items:
                continue
            assert row.owner and row.due and row.priority  # collect refused rows without them
            item = ActionItem(aid=aid, incident_id=s.incident_id, text=row.action, owner=row.owner, due=row.due,
                              priority=row.priority, kind=row.kind, created_at=workflow.now(), created_by=by,
                              source="postmortem")
            try:
                await workflow.start_child_workflow(
                    ActionItemWorkflow.run, ActionItemStart(item=item, remind_at=remind_at), id=aid,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    static_summary=f"Action item: {row.action}"[:200])
            except WorkflowAlreadyStartedError:
                pass  # made by an earlier publish that did not get to record it
            s.items.append(aid)
            created.append(aid)
        s.actions = kept
        return created

    async def _tell_incident(self, event: PostmortemEvent) -> None:
        try:
            await workflow.get_external_workflow_handle(self.s.incident_id).signal(IncidentCore.postmortem_event,
                                                                                   event)
        except Exception:  # noqa: BLE001 - the incident has ended: the postmortem goes on without it
            pass

    async def _archive(self) -> None:
        """The published text and link go to the archive (they outlive Temporal's retention)."""
        if not workflow.patched("archive"):
            return
        s = self.s
        record = PostmortemArchive(incident_id=s.incident_id, link=s.link, status=s.status.value, text=s.final_text,
                                   published_at=s.published_at, items=s.items)
        try:
            await workflow.execute_activity_method(ArchiveActivities.archive_postmortem, record,
                                                   summary="Archive the postmortem", **options.ARCHIVE)
        except ActivityError:
            self._note("incidentflow", "not archived (the records store is unavailable)")

    def _note(self, by: str, text: str) -> None:
        stamp = workflow.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        self.s.history = [*self.s.history[1 - HISTORY_KEPT:], f"{stamp} UTC {by}: {text}"]

    def _result(self, message: str, items: list[str] | None = None, text: str = "") -> PostmortemResult:
        link = self.s.link or (self.s.sink.link if self.s.sink else None)
        return PostmortemResult(incident_id=self.s.incident_id, status=self.s.status, message=message, link=link,
                                text=text, items=items or [])
