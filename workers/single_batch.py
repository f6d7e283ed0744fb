"""Apply every job of a workflow activation before any coroutine runs (the SDK's single-batch logic flag).

temporalio (1.35) runs an activation's jobs in groups by default: signals and updates first, the workflow's
coroutines, then activity results, timers and the rest, the coroutines again. A worker without the run in its
cache can be handed a workflow task that issued no commands together with the next task's update in one
activation (temporalio/sdk-rust#1146), where a replay sees two. Grouped, the update's coroutines act before the
earlier task's activity results are in; replayed, after. Applied as one batch, both see every job first and the
incident's wake order (workflows/wake_order.py) decides the rest.

The SDK records the flag in each workflow task it is used in, so histories replay as they were written: a run
written before takes it from its next new task on. It is the SDK's planned default ("after two published SDK
releases have recognized flag 2"); until then the switch is private, so `enable` checks it is there and logs
when it is not (tests/test_cold_incident.py fails then).
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio.worker import Worker

log = logging.getLogger("incidentflow.worker")


def flag() -> Any:
    from temporalio.worker import _workflow_instance

    flags = getattr(_workflow_instance, "_WorkflowLogicFlag", None)
    return getattr(flags, "PROCESS_WORKFLOW_ACTIVATION_JOBS_AS_SINGLE_BATCH", None)


def enable(worker: Worker) -> bool:
    """Turn the flag on for `worker`'s new workflow tasks; False (logged) when this SDK has no such switch."""
    single, switch = flag(), getattr(worker, "_set_default_workflow_logic_flag", None)
    if single is None or switch is None:
        log.warning("this temporalio has no single-batch activation flag: a worker without a workflow cache may "
                    "write incident histories that do not replay (workers/single_batch.py)")
        return False
    switch(single, enabled=True)
    return True
