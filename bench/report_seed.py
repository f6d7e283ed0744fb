"""A year of synthetic archived incidents for bench/report.py: deterministic (seeded), realistic in shape.

Spread: declarations uniform over the 365 days before NOW; 25 services with a long tail (3 % without one);
SEV1 5 %, SEV2 20 %, SEV3 50 %, SEV4 25 %; 65 % opened by an alert (40 rules, a few of them noisy), the rest
by CLI, Slack, API or other; 8 % stood down (12 % of the alert-opened ones). Durations are log-normal:
detect median 2 min, acknowledge 3 min, mitigate 18 min, resolve 35 min, with long tails. SEV1 and SEV2
incidents get about 3 action items each. Every record carries a state with a 14-event timeline (about 6 kB
of JSON), as a real closed incident does, so the table is as large as a real archive of that size.

Rows go in through `archive.incident_values` (the mapping `put_incident` uses), in batches of plain
INSERTs: seeding 100,000 records one upsert at a time would only measure the seeding."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from activities.records.archive import action_values, incident_values
from activities.records.schema import archived_action_items, archived_incidents
from domain.actions.models import ActionItem, ItemStatus
from domain.archive.models import ArchivedIncident
from domain.models import AlertRecord, AlertStatus, EventKind, Phase, Role, Severity
from domain.models.incident import IncidentState, TimelineEvent
from domain.postmortem.models import ItemKind, Priority

NOW = datetime(2026, 12, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
SERVICES = [f"svc-{name}" for name in (
    "checkout", "payments", "search", "auth", "api", "web", "cart", "catalog", "orders", "inventory", "shipping",
    "email", "notifications", "billing", "reports", "admin", "images", "cdn", "db", "queue", "cache",
    "recommendations", "reviews", "accounts", "gateway")]
RULES = [f"Rule{i:02d}" for i in range(40)]
TEAMS = ["payments", "platform", "search", "identity", "storefront", "data"]
PEOPLE = [f"person{i:02d}" for i in range(30)]
SEVERITIES = (("SEV1", 5), ("SEV2", 20), ("SEV3", 50), ("SEV4", 25))
SOURCES = (("alert", 65), ("cli", 10), ("slack", 15), ("api", 8), ("other", 2))
KINDS = [EventKind.declared, EventKind.alert, EventKind.page, EventKind.acknowledged, EventKind.role,
         EventKind.note, EventKind.status_update, EventKind.phase, EventKind.note, EventKind.status_update,
         EventKind.phase, EventKind.phase, EventKind.status_update, EventKind.phase]


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


def _minutes(rng: random.Random, median: float, sigma: float = 1.0) -> timedelta:
    return timedelta(minutes=median * math.exp(rng.gauss(0, sigma)))


def _state(record: ArchivedIncident) -> IncidentState:
    """A closed incident's state: a 14-event timeline, its alert, roles."""
    t0 = record.declared_at
    timeline = [TimelineEvent(seq=i, at=t0 + timedelta(minutes=3 * i), kind=kind, actor="person01",
                              text=f"{kind.value}: what happened at step {i} of {record.id}, in a sentence or two "
                                   "as responders write them in the incident channel.")
                for i, kind in enumerate(KINDS, start=1)]
    alerts = {} if record.alert_rule is None else {"fp": AlertRecord(
        fingerprint="fp", source="alertmanager", title=record.alert_rule, status=AlertStatus.resolved,
        first_seen=t0, last_seen=t0 + timedelta(minutes=30), count=record.alert_notifications,
        starts_at=record.detected_at)}
    phase = Phase.stood_down if record.stood_down else Phase.closed
    return IncidentState.model_construct(
        id=record.id, title=record.title, service=record.service, severity=Severity(record.severity), phase=phase,
        declared_at=t0, declared_by=record.declared_by, roles={Role.ic: "person02", Role.lead: "person03"},
        acknowledged_at=record.acknowledged_at, acknowledged_by="person01" if record.acknowledged_at else None,
        timeline=timeline, seq=len(timeline), alerts=alerts, alerts_received=record.alert_notifications,
        resolved_at=record.resolved_at, ended_at=record.ended_at, pages=record.pages)


def incident(rng: random.Random, n: int, declared_at: datetime) -> ArchivedIncident:
    severity, source = _pick(rng, SEVERITIES), _pick(rng, SOURCES)
    service = None if rng.random() < 0.03 else SERVICES[min(int(rng.expovariate(1 / 6)), len(SERVICES) - 1)]
    alerted = source == "alert"
    stood_down = rng.random() < (0.12 if alerted else 0.02)
    rule = RULES[min(int(rng.expovariate(1 / 8)), len(RULES) - 1)] if alerted else None
    acked = declared_at + _minutes(rng, 3) if rng.random() < (0.4 if stood_down else 0.95) else None
    mitigated = resolved = None
    if not stood_down:
        resolved = declared_at + _minutes(rng, 35, 0.9) if rng.random() < 0.99 else None
        if resolved is not None and rng.random() < 0.7:
            mitigated = declared_at + (resolved - declared_at) * rng.uniform(0.3, 0.8)
    ended = (resolved or declared_at) + (timedelta(minutes=rng.uniform(2, 20)) if stood_down else timedelta(days=1))
    paging = severity != "SEV4"
    record = ArchivedIncident(
        id=f"incident-{declared_at:%Y%m%d-%H%M}-{n:06d}", title=f"{service or 'unknown'} degraded ({rule or source})",
        service=service, severity=severity, phase="stood_down" if stood_down else "closed", source=source,
        declared_at=declared_at, declared_by="alertmanager" if alerted else rng.choice(PEOPLE),
        detected_at=declared_at - _minutes(rng, 2) if alerted else None, acknowledged_at=acked,
        mitigated_at=mitigated, resolved_at=resolved, ended_at=ended, stood_down=stood_down, alert_rule=rule,
        alert_rules=[rule] if rule else [], alerts=1 if alerted else 0,
        alert_notifications=1 + int(rng.expovariate(1 / (40 if rule in RULES[:3] else 4))) if alerted else 0,
        pages=rng.randint(1, 3) if paging else 0, max_level=rng.randint(1, 3) if paging else None,
        version=14, archived_at=ended)
    return record.model_copy(update={"state": _state(record)})


def actions(rng: random.Random, record: ArchivedIncident) -> Iterator[tuple[ActionItem, str]]:
    if record.severity not in ("SEV1", "SEV2") or record.stood_down:
        return
    for i in range(rng.randint(1, 5)):
        created = record.ended_at or record.declared_at
        due = (created + timedelta(days=rng.randint(5, 30))).date()
        status = ItemStatus.open if created > NOW - timedelta(days=45) and rng.random() < 0.6 else rng.choices(
            [ItemStatus.open, ItemStatus.done, ItemStatus.dropped], [15, 75, 10])[0]
        closed = None if status is ItemStatus.open else created + timedelta(days=rng.uniform(1, 40))
        item = ActionItem(aid=f"ai-{record.id[-6:]}{i}", incident_id=record.id, text="Follow-up", owner=rng.choice(PEOPLE),
                          due=due, priority=rng.choice(list(Priority)), kind=rng.choice(list(ItemKind)),
                          status=status, created_at=created, created_by="person02", source="postmortem",
                          closed_at=min(closed, NOW) if closed else None)
        yield item, rng.choice(TEAMS)


def seed(engines: Sequence[Engine], count: int, seed_value: int = 15, batch: int = 2000) -> tuple[int, int]:
    """`count` incidents (and their action items) into each empty, migrated archive, generated once and
    written to every engine batch by batch; returns (incidents, action items)."""
    rng = random.Random(seed_value)
    starts = sorted(NOW - YEAR * rng.random() for _ in range(count))
    incidents: list[dict[str, object]] = []
    items: list[dict[str, object]] = []
    total_items = 0
    for n, declared_at in enumerate(starts):
        record = incident(rng, n, declared_at)
        incidents.append(incident_values(record))
        items += [action_values(item, team) for item, team in actions(rng, record)]
        if len(incidents) >= batch or n == count - 1:
            for engine in engines:
                with engine.begin() as conn:
                    conn.execute(insert(archived_incidents), incidents)
                    if items:
                        conn.execute(insert(archived_action_items), items)
            total_items += len(items)
            incidents, items = [], []
    return count, total_items
