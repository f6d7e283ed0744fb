"""A query must never leave commands behind that no workflow task asked for.

Temporal dispatches a query straight to a worker (a "legacy query") when the workflow has no workflow task
pending. If events arrive before a worker picks the query up (an activity completes, say), the worker's SDK
core applies them to answer the query: the workflow code runs on them and its commands wait in the worker's
cache. When the workflow task for those events comes, with more events that arrived meanwhile (signals), the
worker sends the waiting commands first and the rest after. A replay of the same history sees all those events
in one activation, handles signals first, and schedules the same commands in another order: a nondeterminism
error on the next worker that has to replay the incident, which then stays stuck. The fault suite caught one
(bench/evidence/incident-nondeterminism-2026-12-07.json; bench/README.md). Core still does this (sdk-core,
`find_end_index_of_next_wft_seq` builds a sequence from a history's incomplete tail when it is the last page).

The guard: when a legacy query comes right after an activation that applied such a tail (new events, and no
new WorkflowTaskStarted: the activation keeps the previous task's time at a longer history), the query's
activation fails instead of answering. Core then evicts the run, so the commands are dropped before they are sent, and the workflow task
replays the history the way every later replay will. The query fails with QUERY_RETRY_MARK in its message;
the doors' Temporal client asks again (incidentflow/query_retry.py), and by then the workflow task carries it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import temporalio.workflow
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

from domain.query_mark import QUERY_RETRY_MARK

log = logging.getLogger("incidentflow.worker")
LEGACY_QUERY_ID = "legacy_query"  # sdk-core's id for a query dispatched straight to a worker


class QueryGuardRunner(WorkflowRunner):
    """Wraps the worker's workflow runner (sandboxed or not) with the guard above."""

    def __init__(self, inner: WorkflowRunner) -> None:
        self.inner = inner

    def prepare_workflow(self, defn: temporalio.workflow._Definition) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return GuardedInstance(self.inner.create_instance(det))

    def set_worker_level_failure_exception_types(self, types: Sequence[type[BaseException]]) -> None:
        self.inner.set_worker_level_failure_exception_types(types)


class GuardedInstance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance) -> None:
        self.inner = inner
        self._last: tuple[int, int] | None = None  # (time, history length) of the last activation with events
        self._tail = False  # that activation applied events that no workflow task has started for

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        kinds = [job.WhichOneof("variant") for job in act.jobs]
        if kinds == ["query_workflow"]:
            if self._tail and act.jobs[0].query_workflow.query_id == LEGACY_QUERY_ID:
                log.warning("%s (run %s): a query came with events no workflow task has started for; the run is "
                            "evicted so that they are replayed in order", self.inner.get_info().workflow_id, act.run_id)
                return refused(act.run_id)
        elif kinds and "remove_from_cache" not in kinds:
            # A workflow task's activation has the time of its WorkflowTaskStarted event. Events applied with no
            # new WorkflowTaskStarted (a query's history tail) keep the last task's time at a longer history.
            now = (act.timestamp.seconds * 10**9 + act.timestamp.nanos, act.history_length)
            self._tail = (not act.is_replaying and self._last is not None and now[0] == self._last[0]
                          and now[1] > self._last[1])
            self._last = now
        return self.inner.activate(act)

    # Every method the SDK calls on an instance, passed on by name: a catch-all __getattr__ never sees get_thread_id,
    # which WorkflowInstance answers None for by default.
    def get_thread_id(self) -> int | None:  # the deadlock detector frees a stuck thread by raising in it
        return self.inner.get_thread_id()

    def get_serialization_context(self, command_info: Any) -> Any:
        return self.inner.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self.inner.get_external_store_context(command_info)

    def get_info(self) -> temporalio.workflow.Info:
        return self.inner.get_info()


def refused(run_id: str) -> WorkflowActivationCompletion:
    done = WorkflowActivationCompletion(run_id=run_id)
    done.failed.failure.message = QUERY_RETRY_MARK
    return done
