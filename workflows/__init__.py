"""Deterministic orchestration: one workflow per long-lived process (incident, escalation, runbook)."""

from workflows.alert_group import AlertGroupWorkflow
from workflows.incident import IncidentWorkflow

WORKFLOWS = [IncidentWorkflow, AlertGroupWorkflow]

__all__ = ["WORKFLOWS", "AlertGroupWorkflow", "IncidentWorkflow"]
