"""Deterministic orchestration: one workflow per long-lived process (incident, escalation, runbook)."""

from workflows.incident import IncidentWorkflow

WORKFLOWS = [IncidentWorkflow]

__all__ = ["WORKFLOWS", "IncidentWorkflow"]
