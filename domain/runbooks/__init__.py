"""Runbooks: YAML files of parameters and typed steps (Kubernetes, HTTP, Prometheus, approvals).

`load_runbooks` / `check_runbooks` read and validate them, `coerce_params` and `render_steps` turn one
into concrete steps for the runbook workflow.
"""

from __future__ import annotations

from domain.models.runbook import RenderedStep
from domain.runbooks.fields import Condition
from domain.runbooks.loader import (
    RunbookError,
    RunbookSet,
    UnknownRunbook,
    check_runbooks,
    load_runbook,
    load_runbooks,
)
from domain.runbooks.model import AppliesTo, ParamSpec, Runbook
from domain.runbooks.render import ParamError, RenderError, coerce_params, render_steps
from domain.runbooks.steps import (
    STEP_KINDS,
    ApprovalStep,
    HttpRequestStep,
    LogsStep,
    NotifyStep,
    PodsStep,
    PrometheusQueryStep,
    RestartStep,
    RolloutStatusStep,
    RolloutUndoStep,
    ScaleStep,
    Step,
    StepBase,
    WaitStep,
)

__all__ = [
    "STEP_KINDS", "AppliesTo", "ApprovalStep", "Condition", "HttpRequestStep", "LogsStep", "NotifyStep",
    "ParamError", "ParamSpec", "PodsStep", "PrometheusQueryStep", "RenderError", "RenderedStep",
    "RestartStep", "RolloutStatusStep", "RolloutUndoStep", "Runbook", "RunbookError", "RunbookSet",
    "ScaleStep", "Step", "StepBase", "UnknownRunbook", "WaitStep", "check_runbooks", "coerce_params",
    "load_runbook", "load_runbooks", "render_steps",
]
