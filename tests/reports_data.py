"""Archive rows for the reports page tests: `sample` makes a plausible, deterministic stretch of incidents and
action items (the README screenshot, the size bound); the hand-worked rows are in tests/test_reports.py."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from domain.archive.models import ActionItemRow, IncidentRow

SERVICES = ["checkout", "search", "payments", "login", "email", "catalog", "api-gateway", "notifications"]
RULES = ["HighErrorRate", "LatencyP99High", "PodCrashLooping", "DiskAlmostFull", "CertificateExpiry",
         "QueueBacklog", "ReplicaLag", "HostDown"]
TEAMS = ["sre", "payments", "search", "platform", None]


def _minutes(rng: random.Random, median: float) -> timedelta:
    return timedelta(seconds=round(rng.lognormvariate(0, 0.8) * median * 60))


def sample(end: datetime, weeks: int, per_week: int, *, services: list[str] | None = None,
           rules: list[str] | None = None, seed: int = 15) -> tuple[list[IncidentRow], list[ActionItemRow]]:
    """`weeks` weeks of incidents before `end`, about `per_week` a week, getting faster week by week."""
    rng = random.Random(seed)
    services, rules = services or SERVICES, rules or RULES
    incidents: list[IncidentRow] = []
    actions: list[ActionItemRow] = []
    start = end - timedelta(weeks=weeks)
    for n in range(weeks * per_week):
        at = start + timedelta(seconds=rng.randrange(weeks * 7 * 86400))
        better = 1.6 - (at - start) / (end - start)  # later weeks respond faster
        alert = rng.random() < 0.7
        stood_down = rng.random() < (0.12 if alert else 0.04)
        severity = rng.choices(["SEV1", "SEV2", "SEV3", "SEV4"], [1, 3, 5, 2])[0]
        ack = _minutes(rng, 3 * better)
        resolve = ack + _minutes(rng, 25 * better)
        done = not stood_down and at + resolve < end
        incidents.append(IncidentRow(
            id=f"incident-{n:05d}", service=rng.choice(services), severity=severity,
            source="alert" if alert else rng.choice(["cli", "slack", "api"]), declared_at=at,
            detected_at=at - _minutes(rng, 2.5) if alert else None,
            acknowledged_at=None if stood_down and rng.random() < 0.5 else at + ack,
            mitigated_at=at + ack + (resolve - ack) / 2 if done else None,
            resolved_at=at + resolve if done else None, ended_at=at + resolve if done or stood_down else None,
            stood_down=stood_down, alert_rule=rng.choice(rules) if alert else None,
            alert_notifications=rng.randrange(1, 40) if alert else 0, pages=rng.randrange(0, 3),
            phase="closed" if done else "triage"))
        if severity in ("SEV1", "SEV2") and done:
            for k in range(rng.randrange(1, 4)):
                due = (at + timedelta(days=rng.randrange(3, 30))).date()
                status = rng.choices(["open", "done", "dropped"], [3, 6, 1])[0]
                closed = datetime.combine(due, datetime.min.time(), UTC) + timedelta(days=rng.randrange(-5, 4)) \
                    if status != "open" else None
                actions.append(ActionItemRow(
                    aid=f"AI-{n}-{k}", incident_id=f"incident-{n:05d}", owner="someone", team=rng.choice(TEAMS),
                    status=status, due=due, created_at=at, closed_at=closed))
    return incidents, actions
