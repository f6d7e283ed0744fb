"""The part of the status page config an incident snapshots at declaration (its public-update cadence)."""

from __future__ import annotations

from domain.models.incident import PublicPolicy
from domain.statuspage.models import StatusPageConfig


def public_policy(sp: StatusPageConfig) -> PublicPolicy | None:
    """None when no component names a service: then no incident owes the public anything."""
    by_service: dict[str, list[str]] = {}
    for comp in sp.components:
        for name in comp.services:
            by_service.setdefault(name, []).append(comp.id)
    if not by_service:
        return None
    return PublicPolicy(components=by_service, first_update=sp.first_update, cadence=sp.cadence,
                        auto_publish=sp.auto_publish)
