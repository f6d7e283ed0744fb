"""Statuspage mirror activities: the workflow that owns the public page calls these after each change.

They hold a `StatuspageMirror` (the port; `activities.statuspage_io.AtlassianStatuspage` is the adapter), so
this module loads no HTTP client and workflows may import it for method references. Without a mirror
configured, every call answers `mirrored=False` and sends nothing, so the workflow needs no flag of its own.

Retries are Temporal's: a rate limit (420/429) carries Retry-After as the next retry delay, a refusal is
non-retryable (activities/errors.py). The adapter is told when an attempt is a retry, so an update whose
answer was lost is not posted twice; a create always looks for an earlier attempt's incident first.
"""

from __future__ import annotations

import logging
from typing import Protocol

from temporalio import activity

from domain.statuspage.mirror import MaintenanceMirrorInput, MirrorInput, MirrorResult

log = logging.getLogger("incidentflow.statuspage_mirror")


class StatuspageMirror(Protocol):
    """An external status page that mirrors ours (Atlassian Statuspage)."""

    name: str

    async def mirror(self, update: MirrorInput, *, retrying: bool) -> MirrorResult: ...

    async def mirror_maintenance(self, step: MaintenanceMirrorInput, *, retrying: bool) -> MirrorResult: ...


class StatuspageMirrorActivities:
    def __init__(self, mirror: StatuspageMirror | None = None) -> None:
        self._mirror = mirror

    @activity.defn
    async def mirror_update(self, update: MirrorInput) -> MirrorResult:
        """Mirror one published incident update (or component statuses). Returns the Statuspage incident id:
        keep it and send it back with the incident's next update."""
        if self._mirror is None:
            return MirrorResult(mirrored=False)
        result = await self._mirror.mirror(update, retrying=activity.info().attempt > 1)
        _log(update.incident.incident_id if update.incident else "components", result)
        return result

    @activity.defn
    async def mirror_maintenance(self, step: MaintenanceMirrorInput) -> MirrorResult:
        """Mirror one maintenance step (announce, start, verify, complete, cancel, extend)."""
        if self._mirror is None:
            return MirrorResult(mirrored=False)
        result = await self._mirror.mirror_maintenance(step, retrying=activity.info().attempt > 1)
        _log(step.maintenance_id, result)
        return result


def _log(what: str, result: MirrorResult) -> None:
    how = ("created" if result.created else "found after a lost answer" if result.recovered
           else "already applied" if result.already_applied else "updated")
    log.info("mirrored %s to Statuspage %s (%s)", what, result.statuspage_id or "components", how)
