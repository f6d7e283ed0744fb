"""What the incident hands its postmortem: the facts computed from its state and timeline, hints drawn from
them, and the folded timeline (`domain.postmortem.timeline`).

Pure and deterministic: `source_of` runs inside workflow code, so everything comes from the state and `now`
(no clock, no I/O). Definitions (DOMAIN.md, "Metrics, defined precisely"): time to detect is the first
alert's start → the incident opened; to acknowledge, opened → first acknowledgement; to mitigate, opened →
first move to monitoring; to resolve, opened → resolved.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from domain.models.common import EventKind, Phase
from domain.models.incident import IncidentState, TimelineEvent
from domain.postmortem.models import PostmortemFacts, PostmortemSource, RunbookOutcome
from domain.postmortem.timeline import ALERT, PUBLIC, fold
from domain.timeline_markdown import duration

PAGE_LEVEL = re.compile(r"^Paged .+? \(L(\d+)[,)]")
PHASE = re.compile(r"^Phase (\w+) → (\w+)")
SEVERITY = re.compile(r"^Severity (\w+) → (\w+)")
INACTIVE = frozenset({Phase.resolved.value, Phase.postmortem.value, Phase.closed.value, Phase.stood_down.value})
SLOW_DETECTION = timedelta(minutes=5)  # DOMAIN.md: MTTD under 5 min
SLOW_MITIGATION = timedelta(minutes=30)  # DOMAIN.md: MTTR under 30 min
GRACE = timedelta(minutes=1)  # an update a minute late is on time
FLAPPING = 3  # an alert that fired this often flapped
MAX_HINTS = 12
ZERO = timedelta(0)


def source_of(state: IncidentState, now: datetime, max_rows: int = 200) -> PostmortemSource:
    """The postmortem's raw material, bounded (a folded timeline of at most `max_rows` rows)."""
    rows, omitted = fold(state, max_rows)
    return PostmortemSource(
        incident_id=state.id, title=state.title, severity=state.severity, service=state.service,
        declared_by=state.declared_by, roles=dict(state.roles), description=state.description,
        resolution_summary=state.resolution_summary, stand_down_reason=state.stand_down_reason,
        facts=facts_of(state, now), timeline=rows, timeline_omitted=omitted + state.timeline_dropped,
        postmortem_due=state.postmortem_due, url=state.url)


def facts_of(state: IncidentState, now: datetime) -> PostmortemFacts:
    s = state.model_copy(update={"timeline": sorted(state.timeline, key=lambda e: e.seq)})  # in the order it happened
    declared = _utc(s.declared_at)
    # the problem began when the first alert's sender says it did (startsAt), else when we first heard of it
    starts = sorted((_utc(a.starts_at or a.first_seen), a.fingerprint) for a in s.alerts.values())
    detected = starts[0][0] if starts else None
    pages = [e for e in s.timeline if e.kind == EventKind.page]
    levels = [int(m.group(1)) for e in pages if (m := PAGE_LEVEL.match(e.text))]
    mitigated = next((_utc(e.at) for e in _phases(s) if _phase_to(e) == Phase.monitoring.value),
                     _opt(s.monitoring_since))
    ack, resolved = _opt(s.acknowledged_at), _opt(s.resolved_at)
    facts = PostmortemFacts(
        started_at=min(detected, declared) if detected else declared, declared_at=declared,
        detected_at=detected, acknowledged_at=ack, mitigated_at=mitigated, resolved_at=resolved,
        ended_at=_opt(s.ended_at),
        time_to_detect=max(ZERO, declared - detected) if detected else None,
        time_to_acknowledge=_since(declared, ack), time_to_mitigate=_since(declared, mitigated),
        time_to_resolve=_since(declared, resolved),
        first_page_at=_utc(pages[0].at) if pages else None, pages=max(s.pages, len(pages)),
        max_level=max(levels) if levels else None,
        runbooks=[RunbookOutcome(runbook=r.runbook, title=r.title, status=r.status.value, by=r.by, auto=r.auto)
                  for r in s.runbooks],
        internal_updates=sum(1 for e in s.timeline if e.kind == EventKind.status_update),
        public_updates=sum(1 for e in s.timeline if _public(e)),
        longest_update_gap=_longest_gap(s, now), cadence=s.policy.update_every.get(s.severity),
        alerts=len(s.alerts), alert_notifications=s.alerts_received)
    facts.hints = hints(s, facts)[:MAX_HINTS]
    return facts


# ---------------------------------------------------------------------------- hints
def hints(s: IncidentState, f: PostmortemFacts) -> list[str]:
    """Short, evidence-based observations for the review (each names its numbers)."""
    return [*_detection_hints(s, f), *_paging_hints(s, f), *_severity_hints(s, f), *_update_hints(s, f),
            *_runbook_hints(f), *_alert_hints(s), *_reopen_hints(s)]


def _detection_hints(s: IncidentState, f: PostmortemFacts) -> list[str]:
    if f.detected_at is None:
        return [] if s.phase == Phase.stood_down else ["no alert fired: a person noticed it first"]
    if f.time_to_detect is not None and f.time_to_detect >= SLOW_DETECTION:
        return [f"detected {duration(f.time_to_detect)} after the first alert started"]
    late = f.detected_at - f.declared_at
    if late >= SLOW_DETECTION:
        return [f"the first alert fired {duration(late)} after the incident was declared"]
    return []


def _paging_hints(s: IncidentState, f: PostmortemFacts) -> list[str]:
    out: list[str] = []
    ack = f.acknowledged_at
    if f.first_page_at is not None and ack is not None and ack >= f.first_page_at:
        by = f" by {s.acknowledged_by}" if s.acknowledged_by else ""
        out.append(f"acknowledged{by} {duration(ack - f.first_page_at)} after the first page")
    elif f.pages and ack is None:
        out.append(f"nobody acknowledged the {_count(f.pages, 'page')}")
    if f.max_level is not None and f.max_level >= 2:
        reached = next((_utc(e.at) for e in s.timeline if e.kind == EventKind.page
                        and (m := PAGE_LEVEL.match(e.text)) and int(m.group(1)) == f.max_level), None)
        if reached is not None and (ack is None or reached < ack):
            out.append(f"paging escalated to L{f.max_level} before anyone acknowledged")
    return out


def _severity_hints(s: IncidentState, f: PostmortemFacts) -> list[str]:
    for e in s.timeline:
        m = SEVERITY.match(e.text) if e.kind == EventKind.severity else None
        if m:
            raised = "raised" if m.group(2) < m.group(1) else "lowered"  # SEV1 is the highest
            return [f"severity {raised} from {m.group(1)} to {m.group(2)} "
                    f"{duration(_utc(e.at) - f.declared_at)} after declaration"]
    return []


def _update_hints(s: IncidentState, f: PostmortemFacts) -> list[str]:
    out: list[str] = []
    gap, cadence = f.longest_update_gap, f.cadence
    if gap is not None and cadence is not None:
        if gap > cadence + GRACE and not f.internal_updates:
            out.append(f"no status update was posted in {duration(gap)} against a {duration(cadence)} cadence")
        elif gap > cadence + GRACE:
            out.append(f"status updates were {duration(gap)} apart at worst against a {duration(cadence)} cadence")
        elif f.internal_updates:
            out.append(f"status updates kept the {duration(cadence)} cadence (at most {duration(gap)} apart)")
    if s.public is not None and not f.public_updates:
        out.append("no public update was posted, though status page components were affected")
    return out


def _runbook_hints(f: PostmortemFacts) -> list[str]:
    verbs = {"succeeded": "succeeded", "failed": "failed", "denied": "was stopped (an approval was refused)",
             "running": "was still running", "awaiting_approval": "was still waiting for approval"}
    seen: dict[tuple[str, str], int] = {}
    for r in f.runbooks:
        seen[(r.runbook, r.status)] = seen.get((r.runbook, r.status), 0) + 1
    out = [f"the {name} runbook {verbs.get(status, status)}" + (f" ({n} runs)" if n > 1 else "")
           for (name, status), n in seen.items()]
    slow = f.time_to_mitigate or f.time_to_resolve
    if not f.runbooks and slow is not None and slow > SLOW_MITIGATION:
        out.append(f"no runbook was run; mitigation took {duration(slow)}")
    return out


def _alert_hints(s: IncidentState) -> list[str]:
    fired: dict[str, int] = {}
    for e in s.timeline:
        m = ALERT.match(e.text) if e.kind == EventKind.alert else None
        if m and m.group(1) == "firing":
            fired[m.group(2)] = fired.get(m.group(2), 0) + 1
    out = [f"alert \"{name}\" fired {n} times (it resolved and re-fired: flapping)"
           for name, n in fired.items() if n >= FLAPPING]
    refired = sum(1 for e in s.timeline if e.kind == EventKind.warning and e.text.startswith("Alert re-fired"))
    if refired:
        out.append(f"an alert re-fired during monitoring {_count(refired, 'time')}: the first fix did not hold")
    return out


def _reopen_hints(s: IncidentState) -> list[str]:
    reopened = sum(1 for e in _phases(s) if e.text.startswith(f"Phase {Phase.resolved.value} → "))
    return [f"reopened {_count(reopened, 'time')} after it was resolved"] if reopened else []


# ---------------------------------------------------------------------------- status updates
def _longest_gap(s: IncidentState, now: datetime) -> timedelta | None:
    """The longest stretch without an internal status update while the incident was worked: from the
    declaration (or a reopen) to the first update, between updates, and from the last to the resolution."""
    updates = sorted(_utc(e.at) for e in s.timeline if e.kind == EventKind.status_update)
    longest: timedelta | None = None
    for start, end in _worked(s, now):
        points = [start, *(u for u in updates if start <= u <= end), end]
        for a, b in zip(points, points[1:], strict=False):
            longest = b - a if longest is None else max(longest, b - a)
    return longest


def _worked(s: IncidentState, now: datetime) -> list[tuple[datetime, datetime]]:
    """The stretches the incident was worked: declaration → resolved (or stood down), reopen → resolved …"""
    spans: list[tuple[datetime, datetime]] = []
    start: datetime | None = _utc(s.declared_at)
    for e in _phases(s):
        target = _phase_to(e)
        if start is not None and target in INACTIVE:
            spans.append((start, _utc(e.at)))
            start = None
        elif start is None and target not in INACTIVE:
            start = _utc(e.at)
    if start is not None:
        spans.append((start, _opt(s.ended_at) or max(_utc(now), start)))
    return spans


# ---------------------------------------------------------------------------- helpers
def _phases(s: IncidentState) -> list[TimelineEvent]:
    return [e for e in s.timeline if e.kind == EventKind.phase and PHASE.match(e.text)]


def _phase_to(e: TimelineEvent) -> str:
    m = PHASE.match(e.text)
    return m.group(2) if m else ""


def _public(e: TimelineEvent) -> bool:
    return e.kind == EventKind.action and e.subject == "status page" and e.text.startswith(PUBLIC)


def _since(start: datetime, end: datetime | None) -> timedelta | None:
    return max(ZERO, end - start) if end is not None else None


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _opt(at: datetime | None) -> datetime | None:
    return _utc(at) if at is not None else None


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
