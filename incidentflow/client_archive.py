"""The archive through the one door: reads that outlive Temporal's retention, the backfill, and the reports.

Incidents are archived by the worker at every milestone (`activities/archive.py`), so the archive holds every
incident, open or ended. The doors read it directly (the records store: SQLite under the data directory, or
PostgreSQL with INCIDENTFLOW_DATABASE_URL): `get` falls back to it when Temporal no longer has the workflow,
`list` adds what only the archive knows, and reports are computed from it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from domain.actions.models import ActionItem
from domain.archive.build import archived_from
from domain.archive.models import ArchivedIncident, ArchiveQuery
from domain.models import IncidentState, IncidentSummary, Phase, Severity
from domain.postmortem.models import PostmortemState
from incidentflow.client_base import Door, IncidentNotFound

_STORES: dict[str, Any] = {}  # one RecordStore per database URL in this process (opening migrates)
_LOCK = threading.Lock()


class SyncResult(BaseModel):
    incidents: int = 0
    postmortems: int = 0
    action_items: int = 0


class Archives(Door):
    def _records(self) -> Any:
        from activities.records import RecordStore, database_url

        url = database_url(self.settings.data_dir, self.settings.database_url.get_secret_value()
                           if self.settings.database_url else None)
        with _LOCK:
            if url not in _STORES:
                _STORES[url] = RecordStore.open(url)
            return _STORES[url]

    async def _archive(self, method: str, *args: Any) -> Any:
        def call() -> Any:
            return getattr(self._records().archive, method)(*args)
        return await asyncio.to_thread(call)

    async def archived(self, incident_id: str) -> ArchivedIncident | None:
        record: ArchivedIncident | None = await self._archive("get", incident_id)
        return record

    async def get(self, incident_id: str) -> IncidentState:
        """The incident from Temporal, else (its history deleted by retention) from the archive."""
        try:
            return await super().get(incident_id)
        except IncidentNotFound:
            record = await self.archived(incident_id)
            if record is None or record.state is None:
                raise
            return self._linked(record.state)

    async def _archived_rows(self, seen: set[str], severity: Any, service: str | None, phase: Any,
                             limit: int) -> list[IncidentSummary]:
        """`list` rows for incidents only the archive has (their workflows deleted by retention)."""
        query = ArchiveQuery(service=service, severity=severity.value if severity else None, limit=limit + len(seen))
        try:
            records = await self.archive_list(query)
        except Exception:  # noqa: BLE001 - an unreadable archive must not break listing what Temporal has
            return []
        return [IncidentSummary(id=r.id, title=r.title, severity=Severity(r.severity), phase=Phase(r.phase),
                                service=r.service, commander=None, acknowledged=r.acknowledged_at is not None,
                                declared_at=r.declared_at, running=False)
                for r in records if r.id not in seen and (phase is None or r.phase == phase.value)]

    async def archive_list(self, query: ArchiveQuery) -> list[ArchivedIncident]:
        rows: list[ArchivedIncident] = await self._archive("list", query)
        return rows

    async def archive_export(self, query: ArchiveQuery) -> list[ArchivedIncident]:
        def collect() -> list[ArchivedIncident]:
            found: Iterator[ArchivedIncident] = self._records().archive.export(query)
            return list(found)
        return await asyncio.to_thread(collect)

    async def report(self, query: ArchiveQuery, now: datetime | None = None) -> Any:
        """The learning report over the archive (which holds every incident, open or ended, and every item)."""
        from domain.reports.compute import compute

        rows = await self._archive("rows", query.model_copy(update={"limit": None}))
        actions = await self._archive("action_rows")
        return compute(rows, actions, query, self.config.reports.targets, now or datetime.now(UTC))

    async def archive_sync(self, limit: int = 100_000) -> SyncResult:
        """Archive what ended before the archive existed: closed incidents still in Temporal, their postmortems
        and action items (idempotent: the store keeps the newest version of each)."""
        done = SyncResult()
        now = datetime.now(UTC)
        query = "WorkflowType = '{}' AND ExecutionStatus = 'Completed'"
        try:
            async for wf in self.client.list_workflows(query.format("IncidentWorkflow"), limit=limit):
                state: IncidentState = await self.client.get_workflow_handle(
                    wf.id, run_id=wf.run_id, result_type=IncidentState).result()
                source = await wf.memo_value("source", None)
                await self._archive("put_incident", archived_from(state, source, now))
                done.incidents += 1
            async for wf in self.client.list_workflows(query.format("PostmortemWorkflow"), limit=limit):
                pm: PostmortemState = await self.client.get_workflow_handle(
                    wf.id, run_id=wf.run_id, result_type=PostmortemState).result()
                await self._archive("put_postmortem", pm.incident_id, pm.link, pm.status.value, pm.final_text,
                                    pm.published_at, pm.items)
                done.postmortems += 1
            async for wf in self.client.list_workflows("WorkflowType = 'ActionItemWorkflow'", limit=limit):
                item = await self._item_of(wf)
                if item is not None:
                    person = next((p for p in self.config.people if p.id == item.owner), None)
                    await self._archive("put_action", item, getattr(person, "team", None))
                    done.action_items += 1
        except RPCError as exc:
            raise self._rpc_error(exc, "archive sync") from None
        return done

    async def _item_of(self, wf: Any) -> ActionItem | None:
        if wf.status == WorkflowExecutionStatus.COMPLETED:
            item: ActionItem = await self.client.get_workflow_handle(
                wf.id, run_id=wf.run_id, result_type=ActionItem).result()
            return item
        memo = await wf.memo_value("item", None)
        return ActionItem.model_validate(memo) if memo else None
