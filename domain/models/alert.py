"""Alerts: vendor payloads as received, and what the workflows see of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from domain.models.common import SERVICE_NAME, AlertStatus, Severity
from domain.text import MultiLine, SingleLine

# The severity words alert rules put in their `severity` label, and the incident severity each maps to by
# default (the routing config's `severity_map` starts from these; domain/routing.py).
ALERT_SEVERITIES: dict[str, Severity] = {
    "page": Severity.SEV1, "critical": Severity.SEV2, "error": Severity.SEV2,
    "warning": Severity.SEV3, "info": Severity.SEV4, "none": Severity.SEV4,
}


def _severity(value: Any) -> Any:
    """SEV1..SEV4 (any case), or a word of ALERT_SEVERITIES (any case); anything else names what is accepted."""
    if value is None or isinstance(value, Severity):
        return value.value if isinstance(value, Severity) else None
    text = str(value).strip()
    if text.lower() in ALERT_SEVERITIES:
        return text.lower()
    try:
        return Severity.parse(text).value
    except ValueError:
        accepted = ", ".join([s.value for s in Severity] + list(ALERT_SEVERITIES))
        raise PydanticCustomError("severity", f"unknown severity {str(value)[:40]!r}: use one of {accepted}") from None


AlertSeverity = Annotated[
    Literal["SEV1", "SEV2", "SEV3", "SEV4", "page", "critical", "error", "warning", "info", "none"],
    BeforeValidator(_severity)]


class AlertSignal(BaseModel):
    """One alert notification delivered to an incident (signal `alert`/`alerts`)."""

    source: str = Field("generic", max_length=64)
    fingerprint: str = Field(..., min_length=1, max_length=256, description="stable id of the alert")
    status: AlertStatus = AlertStatus.firing
    title: SingleLine = Field("", max_length=500)
    labels: dict[str, str] = Field(default_factory=dict)
    received_at: datetime | None = None  # set by the edge; the workflow falls back to workflow.now()
    starts_at: datetime | None = None  # when the sender says the problem began (Alertmanager's startsAt): MTTD


class AlertRecord(BaseModel):
    """Aggregate of every notification for one fingerprint: repeats only bump counters."""

    fingerprint: str
    source: str
    title: str
    status: AlertStatus
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    starts_at: datetime | None = None  # the sender's start of the problem, when it said (time to detect)
    rule: str | None = None  # the alert rule (its alertname label): alert quality per rule in reports


# ---------------------------------------------------------------------------- vendor payloads
class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlertmanagerAlert(_Payload):
    status: AlertStatus
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None  # "0001-01-01T00:00:00Z" while firing
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerPayload(_Payload):
    """Alertmanager webhook, payload version 4."""

    version: str = "4"
    groupKey: str = Field(..., min_length=1, max_length=8192)
    truncatedAlerts: int = 0
    status: AlertStatus
    receiver: str = Field(..., min_length=1, max_length=512)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(..., min_length=1, max_length=10_000)


class GrafanaAlert(AlertmanagerAlert):
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float | int | None] | None = None
    valueString: str = ""


class GrafanaPayload(_Payload):
    """Grafana unified-alerting webhook contact point, version "1"."""

    version: str = "1"
    receiver: str = Field("", max_length=512)
    status: AlertStatus
    orgId: int = 1
    groupKey: str = Field(..., min_length=1, max_length=8192)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    title: str = ""
    state: str = ""
    message: str = ""
    alerts: list[GrafanaAlert] = Field(..., min_length=1, max_length=10_000)


class GenericAlert(BaseModel):
    """Anything else (cron jobs, synthetic checks, curl): one alert per request."""

    model_config = ConfigDict(extra="forbid")

    title: SingleLine = Field(..., min_length=1, max_length=200)
    service: str | None = Field(None, max_length=63, pattern=SERVICE_NAME)
    severity: AlertSeverity | None = Field(
        None, description="SEV1..SEV4 as is, or an alert severity word (page, critical, error, warning, info, none) "
                          "mapped by the routing config's severity_map, as Alertmanager's severity label is")
    dedup_key: str | None = Field(None, min_length=1, max_length=256,
                                  description="alerts with the same key belong to one incident; "
                                              "defaults to service + title")
    status: AlertStatus = AlertStatus.firing
    description: MultiLine = Field("", max_length=4000)
    labels: dict[str, str] = Field(default_factory=dict)
    links: list[str] = Field(default_factory=list, max_length=20)
