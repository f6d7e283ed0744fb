"""Postmortems and action items through the one door (`incidentflow.client.Incidents`).

A postmortem is one PostmortemWorkflow per incident (`postmortem-<incident id>`): started by the incident
while it runs, or here from the ended incident's final state. Action items are one ActionItemWorkflow each,
listed from visibility (search attributes and memo), so `action list` needs no worker. The weekly review's
schedule is `incidentflow.client_digest`."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from domain import known
from domain.actions.models import (
    AID_PATTERN,
    ActionItem,
    ActionItemInput,
    ActionItemStart,
    DoneInput,
    DropInput,
    DueInput,
    ItemResult,
    ItemStatus,
    TicketClosed,
    action_id,
)
from domain.actions.schedule import overdue
from domain.postmortem.config import BUILTIN_TEMPLATES
from domain.postmortem.models import (
    PostmortemPublishInput,
    PostmortemRequest,
    PostmortemResult,
    PostmortemSetInput,
    PostmortemStart,
    PostmortemState,
    PostmortemStatus,
    postmortem_id,
)
from domain.postmortem.source import source_of
from incidentflow.client_base import (
    CommandRejected,
    Door,
    IncidentflowError,
    IncidentNotFound,
    InvalidInput,
    NoWorker,
    quote,
    update_id,
    vet_person,
)
from incidentflow.client_declare import KeyReused
from incidentflow.client_digest import DIGEST_SCHEDULE, Digests, digest_schedule
from workflows import search_attributes as sa
from workflows.action_item import ActionItemWorkflow, memo_of
from workflows.incident import IncidentWorkflow
from workflows.postmortem import PostmortemWorkflow

__all__ = ["DIGEST_SCHEDULE", "ActionItems", "Postmortems", "digest_schedule"]
ITEM_TYPE = "ActionItemWorkflow"
# what `postmortem set` can fill (the input model's names; the doors spell them --root-cause, root-cause, …)
SETTABLE = ("summary", "impact", "root_cause", "trigger", "detection", "resolution", "went_well", "improve",
            "lessons", "review_date", "reviewers", "status")


class Postmortems(Door):
    def _postmortem(self, incident_id: str) -> WorkflowHandle[PostmortemWorkflow, PostmortemState]:
        return self.client.get_workflow_handle_for(PostmortemWorkflow.run, postmortem_id(incident_id))

    async def start_postmortem(self, incident_id: str, cmd: PostmortemRequest, key: str | None = None,
                               wait: float = 10.0) -> PostmortemState:
        """Start the incident's postmortem (any severity) and wait (bounded) for its first draft."""
        desc = await self._require_incident(incident_id)
        cmd = cmd.model_copy(update={"by": vet_person(self.config, "by", cmd.by, acting=True)})
        templates = self.templates()
        if cmd.template and templates and cmd.template not in templates:  # the draft would fail for good
            raise InvalidInput([f"template: no template {cmd.template!r} (known: {', '.join(templates)})"])
        if desc.status == WorkflowExecutionStatus.RUNNING:
            await self._update(incident_id, IncidentWorkflow.start_postmortem, cmd, key=key)
        else:  # the incident has ended: the postmortem starts from its final state
            state = await self.get(incident_id)
            if state.phase.value == "stood_down":
                raise CommandRejected(f"{incident_id} was stood down (not an incident): no postmortem")
            try:
                await self.client.start_workflow(
                    PostmortemWorkflow.run, PostmortemStart(source=source_of(state, datetime.now(UTC)),
                                                            template=cmd.template, requested_by=cmd.by),
                    id=postmortem_id(incident_id), task_queue=self.settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    static_summary=f"Postmortem of {incident_id}")
            except RPCError as exc:
                raise self._rpc_error(exc, incident_id) from None
            except Exception as exc:  # noqa: BLE001 - WorkflowAlreadyStartedError: it ran before (a reuse)
                if type(exc).__name__ != "WorkflowAlreadyStartedError":
                    raise
        return await self._first_draft(incident_id, wait)

    def templates(self) -> list[str]:
        """The template names a draft can use: the built-in ones and `<name>.md.j2` in the config's template_dir
        (relative to the config file); [] when that directory is not readable here (the worker may see it)."""
        folder = self.config.postmortem.template_dir
        found = set(BUILTIN_TEMPLATES)
        if folder:
            path = (self.settings.config.parent if self.settings.config else Path.cwd()) / folder
            if not path.is_dir():
                return []
            found |= {f.name.removesuffix(".md.j2") for f in path.glob("*.md.j2")}
        return sorted(found)

    async def _first_draft(self, incident_id: str, wait: float) -> PostmortemState:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                state = await self.postmortem(incident_id)
            except IncidentNotFound:
                state = None
            if state is not None and (state.sink is not None or loop.time() >= deadline):
                return state
            if loop.time() >= deadline:
                raise NoWorker(f"{incident_id}: the postmortem was requested, but no worker drafted it within "
                               f"{wait:g} s; it is drafted once a worker runs (`incidentflow postmortem show`)")
            await asyncio.sleep(0.2)

    async def postmortem(self, incident_id: str) -> PostmortemState:
        """The postmortem's state: a query while it runs, its result once it ended (no worker needed)."""
        handle = self._postmortem(incident_id)
        try:
            desc = await handle.describe()
            if desc.status == WorkflowExecutionStatus.RUNNING:
                return await handle.query(PostmortemWorkflow.get_state, rpc_timeout=timedelta(seconds=self.deadline))
            return await handle.result(rpc_timeout=timedelta(seconds=10))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                await self._require_incident(incident_id)  # no such incident: say that, not "start one"
                raise IncidentNotFound(f"no postmortem for {incident_id!r} yet (start one: "
                                       f"`incidentflow postmortem start {incident_id}`)") from None
            if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
                raise NoWorker(f"{incident_id}: no incidentflow worker answered within {self.deadline:g} s") from None
            raise self._rpc_error(exc, incident_id) from None
        except (WorkflowQueryFailedError, WorkflowFailureError) as exc:
            raise IncidentflowError(f"postmortem of {incident_id}: {exc}") from None

    async def set_postmortem(self, incident_id: str, cmd: PostmortemSetInput, key: str | None = None) -> PostmortemResult:
        if not any(getattr(cmd, name) is not None for name in SETTABLE):
            raise InvalidInput([f"fields: nothing to set: give one of {', '.join(SETTABLE)}"])
        if cmd.status == PostmortemStatus.published:
            raise InvalidInput(["status: draft or in_review; publishing is `postmortem publish`"])
        cmd = cmd.model_copy(update={"by": vet_person(self.config, "by", cmd.by, acting=True)})
        if cmd.reviewers:
            cmd = cmd.model_copy(update={"reviewers": [vet_person(self.config, "reviewers", r) for r in cmd.reviewers]})
        return await self._postmortem_update(incident_id, PostmortemWorkflow.set_fields, cmd, key)

    async def publish_postmortem(self, incident_id: str, cmd: PostmortemPublishInput,
                                 key: str | None = None) -> PostmortemResult:
        cmd = cmd.model_copy(update={"by": vet_person(self.config, "by", cmd.by, acting=True)})
        return await self._postmortem_update(incident_id, PostmortemWorkflow.publish, cmd, key)

    async def _postmortem_update(self, incident_id: str, update: Any, cmd: Any, key: str | None) -> PostmortemResult:
        handle = self._postmortem(incident_id)
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                await self._require_incident(incident_id)
                raise CommandRejected(f"{incident_id} has no postmortem yet: `incidentflow postmortem start "
                                      f"{incident_id}`") from None
            raise self._rpc_error(exc, incident_id) from None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise CommandRejected(f"the postmortem of {incident_id} is closed (published more than 30 days ago)")
        try:
            result: PostmortemResult = await self._send_update(handle, update, cmd, update_id(update, cmd, key),
                                                               incident_id, timeout=120)
            return result
        except RPCError as exc:
            raise self._rpc_error(exc, incident_id) from None


class ActionItems(Digests):
    def _item(self, aid: str) -> WorkflowHandle[ActionItemWorkflow, ActionItem]:
        return self.client.get_workflow_handle_for(ActionItemWorkflow.run, aid)

    async def add_action(self, incident_id: str, cmd: ActionItemInput, key: str | None = None,
                         today: date | None = None) -> ActionItem:
        """A new action item on an incident. With `key`, the same request again answers the item the first one
        made (the id comes from the key), and the same key with another item is `KeyReused`."""
        await self._require_incident(incident_id)
        problems = []
        for field, name, acting in (("by", cmd.by, True), ("owner", cmd.owner, False)):
            try:
                cmd = cmd.model_copy(update={field: vet_person(self.config, field, name, acting=acting)})
            except InvalidInput as exc:
                problems += exc.problems
        today = today or datetime.now(UTC).date()
        if cmd.due < today:
            problems.append(f"due: {cmd.due:%Y-%m-%d} is in the past (today is {today:%Y-%m-%d} UTC)")
        if problems:
            raise InvalidInput(problems)
        aid = action_id(incident_id, "manual", key or f"{cmd.text}\x1f{datetime.now(UTC).isoformat()}")
        if key:
            earlier = await self._earlier_item(aid)
            if earlier is not None:
                return self._same_item(earlier, incident_id, cmd, key)
        item = ActionItem(aid=aid, incident_id=incident_id, text=cmd.text, owner=cmd.owner, due=cmd.due,
                          priority=cmd.priority, kind=cmd.kind, created_at=datetime.now(UTC), created_by=cmd.by)
        due = datetime.combine(item.due, datetime.min.time(), tzinfo=UTC)
        try:  # memo and search attributes from the start: listed and shown before any worker ran it
            await self.client.start_workflow(
                ActionItemWorkflow.run, ActionItemStart(item=item, remind_at=self.config.action_items.remind_at),
                id=aid, task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, static_summary=f"Action item: {cmd.text}"[:200],
                memo=memo_of(item), search_attributes=TypedSearchAttributes([
                    SearchAttributePair(sa.ACTION_OWNER, item.owner),
                    SearchAttributePair(sa.ACTION_STATUS, item.status.value),
                    SearchAttributePair(sa.ACTION_INCIDENT, incident_id), SearchAttributePair(sa.ACTION_DUE, due)]))
        except RPCError as exc:
            raise self._rpc_error(exc, aid) from None
        except Exception as exc:  # noqa: BLE001 - WorkflowAlreadyStartedError: the same key, item already done
            if type(exc).__name__ != "WorkflowAlreadyStartedError":
                raise
            return self._same_item(await self.action(aid), incident_id, cmd, key or "")
        return item

    async def _earlier_item(self, aid: str) -> ActionItem | None:
        """The item an earlier request with the same key made, or None."""
        try:
            await self._item(aid).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self._rpc_error(exc, aid) from None
        return await self.action(aid)

    @staticmethod
    def _same_item(item: ActionItem, incident_id: str, cmd: ActionItemInput, key: str) -> ActionItem:
        """`item` when it is what `cmd` asks for (a retry), else KeyReused (the due date may have moved since)."""
        asked = (incident_id, cmd.text, cmd.owner, cmd.priority, cmd.kind)
        if (item.incident_id, item.text, item.owner, item.priority, item.kind) != asked:
            raise KeyReused(f"idempotency key {key!r} was used for another action item ({item.aid}: {item.text!r}); "
                            "use a new key for a new item")
        return item

    async def action(self, aid: str) -> ActionItem:
        """One item: a query while open, its result once closed (no worker needed)."""
        if not re.match(AID_PATTERN, aid):
            raise IncidentNotFound(f"no action item {aid[:100]!r} (ids look like ai-abcd2345)")
        handle = self._item(aid)
        try:
            desc = await handle.describe()
            if desc.workflow_type != ITEM_TYPE:
                raise IncidentNotFound(f"no action item {aid!r}")
            if desc.status == WorkflowExecutionStatus.RUNNING:
                memo = await desc.memo_value("item", default=None)
                try:
                    return await handle.query(ActionItemWorkflow.get, rpc_timeout=timedelta(seconds=self.deadline))
                except RPCError:
                    if memo:  # no worker answers: what visibility knows
                        return ActionItem.model_validate(memo)
                    raise
            return await handle.result(rpc_timeout=timedelta(seconds=10))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise IncidentNotFound(f"no action item {aid!r}") from None
            raise self._rpc_error(exc, aid) from None

    async def action_items(self, *, open_only: bool = True, owner: str | None = None, incident: str | None = None,
                           overdue_only: bool = False, limit: int = 500) -> list[ActionItem]:
        """Items from visibility (newest first), filtered by owner, incident, status and due date."""
        query = [f"WorkflowType='{ITEM_TYPE}'"]
        if open_only or overdue_only:
            query.append(f"{sa.ACTION_STATUS.name}='{ItemStatus.open.value}'")
        if owner:
            query.append(f"{sa.ACTION_OWNER.name}='{quote(known.person_id(self.config, owner) or owner)}'")
        if incident:
            query.append(f"{sa.ACTION_INCIDENT.name}='{quote(incident)}'")
        today = datetime.now(UTC).date()
        items: list[ActionItem] = []
        try:
            async for wf in self.client.list_workflows(" AND ".join(query), limit=limit):
                memo = await wf.memo_value("item", default=None)
                if not memo:
                    continue
                item = ActionItem.model_validate(memo)
                if overdue_only and not overdue(item, today):
                    continue
                items.append(item)
        except RPCError as exc:
            raise self._rpc_error(exc, "action items") from None
        return sorted(items, key=lambda i: (i.due, i.aid))

    async def action_done(self, aid: str, cmd: DoneInput, key: str | None = None) -> ItemResult:
        return await self._item_update(aid, ActionItemWorkflow.done, cmd, key)

    async def action_drop(self, aid: str, cmd: DropInput, key: str | None = None) -> ItemResult:
        return await self._item_update(aid, ActionItemWorkflow.drop, cmd, key)

    async def action_due(self, aid: str, cmd: DueInput, key: str | None = None) -> ItemResult:
        today = datetime.now(UTC).date()
        if cmd.due < today:  # the workflow refuses it too; here it is bad input, before anything is sent
            raise InvalidInput([f"due: {cmd.due:%Y-%m-%d} is in the past (today is {today:%Y-%m-%d} UTC)"])
        return await self._item_update(aid, ActionItemWorkflow.set_due, cmd, key)

    async def _item_update(self, aid: str, update: Any, cmd: Any, key: str | None) -> ItemResult:
        cmd = cmd.model_copy(update={"by": vet_person(self.config, "by", cmd.by, acting=True)})
        item = await self.action(aid)  # NotFound first, and a closed item's answer
        uid = update_id(update, cmd, key)
        if item.status != ItemStatus.open:
            earlier = await self._earlier_update(aid, uid) if uid else None
            if earlier is not None:  # this very request closed it: a retry gets the first answer
                return earlier
            raise CommandRejected(f"{aid} is already {item.status.value}")
        try:
            result: ItemResult = await self._send_update(self._item(aid), update, cmd, uid, aid, timeout=30)
            return result
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise CommandRejected(f"{aid} was closed meanwhile") from None
            raise self._rpc_error(exc, aid) from None

    async def _earlier_update(self, aid: str, uid: str) -> ItemResult | None:
        """The answer of update `uid` if the item ran it (Temporal keeps update outcomes with the history)."""
        handle = self._item(aid).get_update_handle(uid, result_type=ItemResult)
        try:
            result: ItemResult = await handle.result(rpc_timeout=timedelta(seconds=5))
            return result
        except (RPCError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError):
            return None

    async def ticket_event(self, aid: str, event: TicketClosed) -> bool:
        """A tracker's webhook about the item's ticket; False when the item is not open any more (or unknown)."""
        try:
            await self._item(aid).signal(ActionItemWorkflow.ticket_closed, event)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise self._rpc_error(exc, aid) from None
        return True
