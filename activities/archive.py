"""Writing the archive: incidents (at every milestone, so reports see open incidents too), published
postmortems and action items, into the records store (activities/records/archive.py).

Every write is an upsert keyed by id (an incident's carries its event sequence, so an older write never
replaces a newer one): a retried activity, or a worker killed after the write, writes the record once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity

from domain.actions.models import ActionItem
from domain.archive.models import ArchivedIncident, PostmortemArchive
from domain.config import IncidentflowConfig


class ArchiveActivities:
    def __init__(self, store: Callable[[], Any], config: Callable[[], IncidentflowConfig]) -> None:
        self._store, self._config = store, config  # the ArchiveStore, opened (and migrated) on first use

    @activity.defn
    async def archive_incident(self, record: ArchivedIncident) -> bool:
        """True when this write is the newest the archive has of the incident. The workflow builds the record
        (`domain.archive.build.archived_from`): with the whole state when the incident resolves or ends, the
        summary alone at the milestones before (the incident is still in Temporal then)."""
        return bool(await asyncio.to_thread(lambda: self._store().put_incident(record)))

    @activity.defn
    async def archive_postmortem(self, postmortem: PostmortemArchive) -> None:
        p = postmortem
        await asyncio.to_thread(lambda: self._store().put_postmortem(p.incident_id, p.link, p.status, p.text,
                                                                     p.published_at, p.items))

    @activity.defn
    async def archive_action(self, item: ActionItem) -> None:
        person = next((p for p in self._config().people if p.id == item.owner), None)
        team = getattr(person, "team", None) if person else None
        await asyncio.to_thread(lambda: self._store().put_action(item, team))
