"""Deterministic orchestration: one workflow per long-lived process (incident, escalation, runbook)."""

from workflows.alert_group import AlertGroupWorkflow
from workflows.escalation import EscalationWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.incident import IncidentWorkflow
from workflows.maintenance import MaintenanceWorkflow
from workflows.ping import PingWorkflow
from workflows.runbook import RunbookWorkflow
from workflows.status_mail import StatusMailWorkflow, SubscriptionWorkflow
from workflows.statuspage import StatusPageWorkflow

WORKFLOWS = [IncidentWorkflow, AlertGroupWorkflow, EscalationWorkflow, HandoffWorkflow, RunbookWorkflow, PingWorkflow,
             StatusPageWorkflow, MaintenanceWorkflow, StatusMailWorkflow, SubscriptionWorkflow]

__all__ = ["WORKFLOWS", "AlertGroupWorkflow", "EscalationWorkflow", "HandoffWorkflow", "IncidentWorkflow",
           "MaintenanceWorkflow", "PingWorkflow", "RunbookWorkflow", "StatusMailWorkflow", "StatusPageWorkflow",
           "SubscriptionWorkflow"]
