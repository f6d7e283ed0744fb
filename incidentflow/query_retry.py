"""Queries the worker refused for a moment are asked again (workers/query_guard.py says why it refuses).

The worker refuses a query that arrived with events no workflow task has started for, and evicts the run so
those events are replayed in order. By the time it is asked again, the workflow task that carries those events
is pending, so Temporal hands the query to that task and it is answered there. A few quick tries hide the
refusal from every door (API, CLI, Slack); anything else a query raises is raised as before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.client import Interceptor, OutboundInterceptor, QueryWorkflowInput, WorkflowQueryFailedError

from domain.query_mark import QUERY_RETRY_MARK

log = logging.getLogger("incidentflow.client")
WAITS = (0.05, 0.2, 0.5, 1.0, 2.0)  # s; the guard fires once per race, so one more try nearly always answers


class QueryRetry(Interceptor):
    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next)


class _Outbound(OutboundInterceptor):
    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        for wait in WAITS:
            try:
                return await super().query_workflow(input)
            except WorkflowQueryFailedError as exc:
                if QUERY_RETRY_MARK not in str(exc):
                    raise
                log.info("query %s on %s refused by the worker for a moment; asking again in %g s",
                         input.query, input.id, wait)
                await asyncio.sleep(wait)
        return await super().query_workflow(input)  # the last try: its refusal, if any, is the caller's
