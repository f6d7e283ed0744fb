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
)
from domain.policy import slugify
from domain.routing import Router
from domain.text import single_line

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


def _title(common_annotations: Mapping[str, str], common_labels: Mapping[str, str],
           alerts: Sequence[AlertmanagerAlert], fallback: str = "") -> str:
    first = alerts[0] if alerts else None
    for candidate in (common_annotations.get("summary"), first and first.annotations.get("summary"),
                      common_labels.get("alertname"), first and first.labels.get("alertname"), fallback):
        cleaned = single_line(candidate or "")
        if cleaned:
            return cleaned[:200].rstrip()
    return "Alert"


def _signals(source: str, alerts: Sequence[AlertmanagerAlert], now: datetime) -> list[AlertSignal]:
    alerts = alerts[:MAX_BATCH_ALERTS]  # the rest are counted in AlertBatch.truncated
    return [AlertSignal(source=source, fingerprint=(a.fingerprint or label_fingerprint(a.labels))[:256],
                        status=a.status, received_at=now, labels=_bounded(a.labels),
                        title=(a.annotations.get("summary") or a.labels.get("alertname") or "")[:500])
            for a in alerts]


def from_alertmanager(payload: AlertmanagerPayload, router: Router, now: datetime) -> AlertBatch:
    route = router.route((a.labels, a.status) for a in payload.alerts)
    return AlertBatch(
        source="alertmanager", group_key=f"alertmanager|{payload.receiver}|{payload.groupKey}",
        title=_title(payload.commonAnnotations, payload.commonLabels, payload.alerts),
        description=payload.commonAnnotations.get("description", "")[:4000],
        route=route, alerts=_signals("alertmanager", payload.alerts, now),
        truncated=payload.truncatedAlerts + max(0, len(payload.alerts) - MAX_BATCH_ALERTS))


def from_grafana(payload: GrafanaPayload, router: Router, now: datetime) -> AlertBatch:
    route = router.route((a.labels, a.status) for a in payload.alerts)
    return AlertBatch(
        source="grafana", group_key=f"grafana|{payload.orgId}|{payload.receiver}|{payload.groupKey}",
        title=_title(payload.commonAnnotations, payload.commonLabels, payload.alerts, payload.title),
        description=(payload.commonAnnotations.get("description") or payload.message)[:4000],
        route=route, alerts=_signals("grafana", payload.alerts, now),
        truncated=payload.truncatedAlerts + max(0, len(payload.alerts) - MAX_BATCH_ALERTS))


def from_generic(alert: GenericAlert, router: Router, now: datetime) -> AlertBatch:
    labels = {**alert.labels, "alertname": alert.labels.get("alertname", alert.title)}
    if alert.service:
        labels[router.service_label] = alert.service
    if alert.severity:
        labels[router.override_label] = alert.severity.value
    route = router.route([(labels, alert.status)])
    key = alert.dedup_key or f"{alert.service or '-'}|{slugify(alert.title, 80)}"
    signal = AlertSignal(source="generic", fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
                         status=alert.status, title=alert.title, labels=_bounded(labels), received_at=now)
    links = "\n".join(alert.links)
    return AlertBatch(source="generic", group_key=f"generic|{key}", title=alert.title,
                      description="\n\n".join(p for p in (alert.description, links) if p)[:4000],
                      route=route, alerts=[signal])


def resolved_only(batch: AlertBatch) -> bool:
    return all(a.status == AlertStatus.resolved for a in batch.alerts)
