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

The wrapper also answers the two payload-context questions the SDK asks an instance for every payload it walks
(`get_serialization_context`, `get_external_store_context`) without entering the sandbox, when the worker's
data converter has neither a payload codec nor external storage: the walks then leave every payload as it is
whatever the context, and the sandbox answers each question by compiling and running a snippet inside it
(`exec` of a string; 9-14 us a question, ~1.5 % of the chat bench's CPU). Such a worker also skips those walks
for these instances (workers/payload_walks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import temporalio.workflow
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter, StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

from domain.query_mark import QUERY_RETRY_MARK

log = logging.getLogger("incidentflow.worker")
LEGACY_QUERY_ID = "legacy_query"  # sdk-core's id for a query dispatched straight to a worker


NO_STORE = StorageDriverStoreContext(target=None)  # what an instance answers when it has nothing to say


def reads_contexts(converter: DataConverter) -> bool:
    """Whether the SDK's payload walks with this converter can depend on a payload's context: only a codec or
    external storage is applied there (the payload converter is not), and each may be context-aware."""
    return converter.payload_codec is not None or getattr(converter, "external_storage", None) is not None


class QueryGuardRunner(WorkflowRunner):
    """Wraps the worker's workflow runner (sandboxed or not) with the guard above. `contexts`: pass the
    payload-context questions on to the instance (a converter that may read them, see `for_converter`)."""

    def __init__(self, inner: WorkflowRunner, contexts: bool = True) -> None:
        self.inner = inner
        self.contexts = contexts

    def for_converter(self, converter: DataConverter) -> QueryGuardRunner:
        """This runner for a worker whose client converts with `converter` (the same inner runner)."""
        return QueryGuardRunner(self.inner, contexts=reads_contexts(converter))

    def prepare_workflow(self, defn: temporalio.workflow._Definition) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return GuardedInstance(self.inner.create_instance(det), self.contexts)

    def set_worker_level_failure_exception_types(self, types: Sequence[type[BaseException]]) -> None:
        self.inner.set_worker_level_failure_exception_types(types)


class GuardedInstance(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance, contexts: bool = True) -> None:
        self.inner = inner
        self.contexts = contexts
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
        if not self.contexts:  # None: the worker's own converter, which is all the walks use then
            return None
        return self.inner.get_serialization_context(command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        if not self.contexts:
            return NO_STORE
        return self.inner.get_external_store_context(command_info)

    def get_info(self) -> temporalio.workflow.Info:
        return self.inner.get_info()


def refused(run_id: str) -> WorkflowActivationCompletion:
    done = WorkflowActivationCompletion(run_id=run_id)
    done.failed.failure.message = QUERY_RETRY_MARK
    return done
