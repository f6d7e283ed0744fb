"""Vendor webhooks → routed `AlertBatch`es. Pure: no I/O, no clocks (the caller passes `now`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from domain.models import (
    AlertBatch,
    AlertmanagerAlert,
    AlertmanagerPayload,
    AlertSignal,
    AlertStatus,
    GenericAlert,
    GrafanaPayload,
    RouteDecision,
)
from domain.models.alert import ALERT_SEVERITIES
from domain.policy import slugify
from domain.routing import Router

MAX_LABELS = 32
MAX_LABEL_VALUE = 256
MAX_LABEL_CHARS = 2048  # per alert: keeps every batch far below Temporal's payload limits
MAX_BATCH_ALERTS = 200  # per notification (an incident keeps at most this many distinct alerts anyway)


def group_workflow_id(group_key: str) -> str:
    """Alert groups are keyed by a hash: vendor group keys are long and full of braces and quotes."""
    return "alertgroup-" + hashlib.sha256(group_key.encode()).hexdigest()[:32]


def label_fingerprint(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]


def _bounded(labels: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    used = 0
    for key, value in sorted(labels.items())[:MAX_LABELS]:
        key, value = key[:128], str(value)[:MAX_LABEL_VALUE]
        used += len(key) + len(value)
        if used > MAX_LABEL_CHARS:
            break
        out[key] = value
    return out


def _title(router: Router, route: RouteDecision, labels: Mapping[str, str]) -> str:
    """The incident's title: from labels through the routing config's template, never from a summary (its
    live value would stay in the title, topic and pages long after it changed)."""
    return router.title_for(route.rule, labels, route.service) or "Alert"


def _description(summary: str, description: str) -> str:
    """The alert's summary and description (the summary's live value belongs here, as of the first alert)."""
    parts = [p.strip() for p in (summary, description) if p and p.strip()]
    return "\n\n".join(dict.fromkeys(parts))[:4000]


def _signals(source: str, alerts: Sequence[AlertmanagerAlert], now: datetime) -> list[AlertSignal]:
    alerts = alerts[:MAX_BATCH_ALERTS]  # the rest are counted in AlertBatch.truncated
    return [AlertSignal(source=source, fingerprint=(a.fingerprint or label_fingerprint(a.labels))[:256],
                        status=a.status, received_at=now, labels=_bounded(a.labels), starts_at=_started(a, now),
                        title=(a.annotations.get("summary") or a.labels.get("alertname") or "")[:500])
            for a in alerts]


def _started(alert: AlertmanagerAlert, now: datetime) -> datetime | None:
    """startsAt, when it is a real time (Alertmanager's zero time is year 1); never after we received it."""
    at = alert.startsAt
    if at is None or at.year < 2000:
        return None
    at = at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
    return min(at, now)


def _common(common_labels: Mapping[str, str], alerts: Sequence[AlertmanagerAlert]) -> Mapping[str, str]:
    return common_labels or (alerts[0].labels if alerts else {})


def _summary(common_annotations: Mapping[str, str], alerts: Sequence[AlertmanagerAlert]) -> str:
    return common_annotations.get("summary") or (alerts[0].annotations.get("summary", "") if alerts else "")


def from_alertmanager(payload: AlertmanagerPayload, router: Router, now: datetime) -> AlertBatch:
    route = router.route((a.labels, a.status) for a in payload.alerts)
    return AlertBatch(
        source="alertmanager", group_key=f"alertmanager|{payload.receiver}|{payload.groupKey}",
        title=_title(router, route, _common(payload.commonLabels, payload.alerts)),
        description=_description(_summary(payload.commonAnnotations, payload.alerts),
                                 payload.commonAnnotations.get("description", "")),
        route=route, alerts=_signals("alertmanager", payload.alerts, now),
        truncated=payload.truncatedAlerts + max(0, len(payload.alerts) - MAX_BATCH_ALERTS))


def from_grafana(payload: GrafanaPayload, router: Router, now: datetime) -> AlertBatch:
    route = router.route((a.labels, a.status) for a in payload.alerts)
    return AlertBatch(
        source="grafana", group_key=f"grafana|{payload.orgId}|{payload.receiver}|{payload.groupKey}",
        title=_title(router, route, _common(payload.commonLabels, payload.alerts)),
        description=_description(_summary(payload.commonAnnotations, payload.alerts),
                                 payload.commonAnnotations.get("description") or payload.message),
        route=route, alerts=_signals("grafana", payload.alerts, now),
        truncated=payload.truncatedAlerts + max(0, len(payload.alerts) - MAX_BATCH_ALERTS))


def from_generic(alert: GenericAlert, router: Router, now: datetime) -> AlertBatch:
    """One alert as small JSON. Its title is the sender's own, unless the matching rule has a title template.
    A severity word goes in the severity label, so the routing config maps it as it maps Alertmanager's."""
    labels = {**alert.labels, "alertname": alert.labels.get("alertname", alert.title)}
    if alert.service:
        labels[router.service_label] = alert.service
    if alert.severity in ALERT_SEVERITIES:
        labels[router.severity_label] = alert.severity
    elif alert.severity:
        labels[router.override_label] = alert.severity
    route = router.route([(labels, alert.status)])
    key = alert.dedup_key or f"{alert.service or '-'}|{slugify(alert.title, 80)}"
    signal = AlertSignal(source="generic", fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
                         status=alert.status, title=alert.title, labels=_bounded(labels), received_at=now)
    links = "\n".join(alert.links)
    templated = any(r.name == route.rule and r.title for r in router.rules)
    title = (router.title_for(route.rule, labels, route.service) if templated else None) or alert.title
    return AlertBatch(source="generic", group_key=f"generic|{key}", title=title,
                      description="\n\n".join(p for p in (alert.description, links) if p)[:4000],
                      route=route, alerts=[signal])


def resolved_only(batch: AlertBatch) -> bool:
    return all(a.status == AlertStatus.resolved for a in batch.alerts)
