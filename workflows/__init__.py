"""Deterministic orchestration: one workflow per long-lived process (incident, escalation, runbook, status page).

Import each workflow from its module; the list the worker registers is `workers.registry.WORKFLOWS` (this package
stays empty: the sandbox re-imports it for every new workflow run)."""
