"""Runbooks: YAML files of parameters and typed steps (Kubernetes, HTTP, Prometheus, approvals).

`load_runbooks` / `check_runbooks` read and validate them, `coerce_params` and `render_steps` turn one
into concrete steps for the runbook workflow.
"""

from __future__ import annotations

from domain.runbooks.loader import (
    RunbookError,
    RunbookSet,
    UnknownRunbook,
    check_runbooks,
    load_runbook,
    load_runbooks,
)
from domain.runbooks.model import (
    STEP_KINDS,
    AppliesTo,
    ApprovalStep,
    Condition,
    HttpRequestStep,
    LogsStep,
    NotifyStep,
    ParamSpec,
    PodsStep,
    PrometheusQueryStep,
    RestartStep,
    RolloutStatusStep,
    RolloutUndoStep,
    Runbook,
    ScaleStep,
    Step,
    StepBase,
    WaitStep,
)
from domain.runbooks.render import ParamError, RenderedStep, RenderError, coerce_params, render_steps

__all__ = [
    "STEP_KINDS", "AppliesTo", "ApprovalStep", "Condition", "HttpRequestStep", "LogsStep", "NotifyStep",
    "ParamError", "ParamSpec", "PodsStep", "PrometheusQueryStep", "RenderError", "RenderedStep",
    "RestartStep", "RolloutStatusStep", "RolloutUndoStep", "Runbook", "RunbookError", "RunbookSet",
    "ScaleStep", "Step", "StepBase", "UnknownRunbook", "WaitStep", "check_runbooks", "coerce_params",
    "load_runbook", "load_runbooks", "render_steps",
]
