"""Every workflow type the worker runs (and the replayers check).

Kept out of `workflows/__init__.py` on purpose: the workflow sandbox imports a workflow's package afresh for
every new workflow run, so a package that imports all ten workflow modules cost each new run ~30 ms of CPU
(py-spy, bench/README.md)."""

from workflows.action_digest import ActionDigestWorkflow
from workflows.action_item import ActionItemWorkflow
from workflows.alert_group import AlertGroupWorkflow
from workflows.escalation import EscalationWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.incident import IncidentWorkflow
from workflows.maintenance import MaintenanceWorkflow
from workflows.ping import PingWorkflow
from workflows.postmortem import PostmortemWorkflow
from workflows.runbook import RunbookWorkflow
from workflows.status_mail import StatusMailWorkflow, SubscriptionWorkflow
from workflows.statuspage import StatusPageWorkflow

WORKFLOWS = [IncidentWorkflow, AlertGroupWorkflow, EscalationWorkflow, HandoffWorkflow, RunbookWorkflow, PingWorkflow,
             StatusPageWorkflow, MaintenanceWorkflow, StatusMailWorkflow, SubscriptionWorkflow, PostmortemWorkflow,
             ActionItemWorkflow, ActionDigestWorkflow]
