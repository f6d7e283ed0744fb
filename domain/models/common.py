"""Enumerations shared by every model."""

from __future__ import annotations

from enum import Enum


class AlertStatus(str, Enum):
    firing = "firing"
    resolved = "resolved"


class Severity(str, Enum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @classmethod
    def parse(cls, value: str | int) -> Severity:
        """Accept SEV1, sev1, 1 (and a Severity: argparse converts str-typed defaults too)."""
        if isinstance(value, Severity):
            return value
        text = str(value).strip().upper()
        if text.isdigit():
            text = f"SEV{text}"
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown severity {value!r}: use one of SEV1, SEV2, SEV3, SEV4") from None


class Phase(str, Enum):
    triage = "triage"
    investigating = "investigating"
    identified = "identified"
    mitigating = "mitigating"
    monitoring = "monitoring"
    resolved = "resolved"
    postmortem = "postmortem"
    closed = "closed"
    stood_down = "stood_down"


class Role(str, Enum):
    ic = "ic"
    lead = "lead"
    comms = "comms"
    scribe = "scribe"

    @property
    def label(self) -> str:
        return {"ic": "incident commander", "lead": "tech lead", "comms": "comms lead", "scribe": "scribe"}[
            self.value
        ]


class EventKind(str, Enum):
    declared = "declared"
    alert = "alert"
    acknowledged = "acknowledged"
    role = "role"
    severity = "severity"
    phase = "phase"
    note = "note"
    status_update = "status_update"
    page = "page"
    action = "action"
    reminder = "reminder"
    warning = "warning"
    suggestion = "suggestion"
    approval = "approval"  # a runbook waits for approval (chat shows Approve/Deny buttons)


# A service name (config, declarations, alerts, list filters): also safe inside a visibility query.
SERVICE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
