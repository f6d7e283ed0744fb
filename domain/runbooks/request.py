"""A runbook run request: the runbook, its rendered steps and its approvers resolved to people."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.config import IncidentflowConfig
from domain.models.runbook import RenderedStep, RunbookRequest
from domain.runbooks.model import Runbook


def request_for(rb: Runbook, params: Mapping[str, Any], steps: list[RenderedStep], by: str,
                config: IncidentflowConfig, auto: bool = False) -> RunbookRequest:
    """A RunbookRequest with approver groups resolved to people (the workflow checks names only)."""
    approvers: list[str] = []
    for who in rb.approvers:
        if who.startswith("group:"):
            approvers += config.groups.get(who.removeprefix("group:"), [])
        else:
            approvers.append(who)
    return RunbookRequest(runbook=rb.name, title=rb.title, params=dict(params), steps=steps,
                          approvers=list(dict.fromkeys(approvers)), approval_timeout=rb.approval_timeout,
                          on_approval_timeout=rb.on_approval_timeout, auto=auto, all_steps=rb.auto_run == "all",
                          by=by, likely_causes=list(rb.likely_causes), escalation=rb.escalation)

