"""Deterministic orchestration: one workflow per long-lived process (incident, escalation, runbook)."""

from workflows.alert_group import AlertGroupWorkflow
from workflows.escalation import EscalationWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.incident import IncidentWorkflow
from workflows.ping import PingWorkflow
from workflows.runbook import RunbookWorkflow

WORKFLOWS = [IncidentWorkflow, AlertGroupWorkflow, EscalationWorkflow, HandoffWorkflow, RunbookWorkflow, PingWorkflow]

__all__ = ["WORKFLOWS", "AlertGroupWorkflow", "EscalationWorkflow", "HandoffWorkflow", "IncidentWorkflow",
           "PingWorkflow", "RunbookWorkflow"]
