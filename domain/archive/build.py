"""An incident's archive record from its state (pure: the incident workflow builds it when it resolves, closes,
is stood down or reopens; `archive sync` builds it from the final state of incidents that ended before)."""

from __future__ import annotations

from datetime import datetime

from domain.archive.models import SOURCES, ArchivedIncident
from domain.models.common import Phase
from domain.models.incident import IncidentState
from domain.postmortem.source import facts_of


def source_of(state: IncidentState, memo_source: str | None) -> str:
    """How it was opened: by an alert (an alert group opened it), or through a door (the declare memo)."""
    if state.group_id:
        return "alert"
    given = (memo_source or "").lower()
    return given if given in SOURCES else "other"


def archived_from(state: IncidentState, memo_source: str | None, now: datetime,
                  whole: bool = True) -> ArchivedIncident:
    """The record (`whole`: with the state, timeline and all). `version` is the state's event sequence, so the
    store keeps the newest."""
    facts = facts_of(state, now)
    detected = facts.detected_at if facts.detected_at and facts.detected_at <= facts.declared_at else None
    alerts = sorted(state.alerts.values(), key=lambda a: (a.starts_at or a.first_seen, a.fingerprint))
    rules = list(dict.fromkeys(a.rule or a.title for a in alerts))
    return ArchivedIncident(
        id=state.id, title=state.title, service=state.service, severity=state.severity.value,
        phase=state.phase.value, source=source_of(state, memo_source), declared_at=facts.declared_at,
        declared_by=state.declared_by, detected_at=detected, acknowledged_at=facts.acknowledged_at,
        mitigated_at=facts.mitigated_at, resolved_at=facts.resolved_at, ended_at=facts.ended_at,
        stood_down=state.phase == Phase.stood_down, alert_rule=rules[0] if rules else None, alert_rules=rules[:50],
        alerts=len(state.alerts), alert_notifications=state.alerts_received, pages=facts.pages,
        max_level=facts.max_level, runbook_runs=len(state.runbooks), internal_updates=facts.internal_updates,
        public_updates=facts.public_updates, group_id=state.group_id, postmortem_link=state.postmortem_link,
        version=state.seq, archived_at=now, state=state if whole else None)
