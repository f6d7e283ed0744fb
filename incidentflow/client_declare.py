"""Declaring incidents through the one door (`incidentflow.client.Incidents`), at most once per key.

Without a key, `declare` starts an `IncidentWorkflow` under the first free readable id
(`incident-YYYYMMDD-HHMM-<slug>[-N]`). With an idempotency key it first writes a *request record*: a
workflow execution whose id is the key's (`request-<sha256 of route and key>`) and whose memo holds the
incident id it is for and a hash of the request body. Temporal lets one execution hold an id, so the
record is the durable "this key was used, for this"; it needs no worker (it is started with a start delay
longer than its 24 h timeout, so it never runs and times out by itself). A retry, in this process or any
other, finds the record and answers with its incident; the same key with another body is refused.

Races: concurrent requests with one key all try to start the record; one wins, the others read it. Any of
them may start the recorded incident (the incident's memo names the record, so "already started" by one
of them counts as done). Should the recorded id have gone to another declaration in the meantime, the
record is terminated and the next attempt picks another id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import known, policy
from domain.models import DeclareInput, IncidentStart, Phase
from domain.models.incident import CODE_LEVEL
from incidentflow.client_base import (
    INCIDENT_TYPE,
    CommandRejected,
    Door,
    IncidentflowError,
    InvalidInput,
    TemporalUnavailable,
    vet_person,
)
from workflows import search_attributes as sa
from workflows.incident import IncidentWorkflow

DECLARE_ROUTE = "POST /v1/incidents"
RECORD_TYPE = "RequestRecord"  # never runs: no worker has (or needs) this workflow type
RECORD_TTL = timedelta(hours=24)  # how long a key is remembered
KEY_HEADER = "Idempotency-Key"


class KeyReused(IncidentflowError):
    """The idempotency key was used before for a request with another body (HTTP: 422)."""


@dataclass(frozen=True)
class Declared:
    incident_id: str
    created: bool  # False: an earlier request with the same key created it (this is its answer again)


@dataclass(frozen=True)
class _Record:
    incident_id: str
    body: str
    run_id: str | None


def body_hash(cmd: DeclareInput) -> str:
    return hashlib.sha256(cmd.model_dump_json().encode()).hexdigest()


def record_id(route: str, key: str) -> str:
    return "request-" + hashlib.sha256(f"{route}\n{key}".encode()).hexdigest()


class Declarations(Door):
    def vetted(self, cmd: DeclareInput) -> DeclareInput:
        """A person's declaration checked against the config, as every door checks one before `declare`: who
        declares (a config person, unless `slack.allow_everyone`), the commander (a config person) and the
        service (a configured one). Names become person ids. InvalidInput names each bad field; alert groups
        declare without this (their unknown services are routing's business)."""
        problems, update = [], {}
        for field, acting in (("declared_by", True), ("commander", False)):
            name = getattr(cmd, field)
            if name:
                try:
                    update[field] = vet_person(self.config, field, name, acting=acting)
                except InvalidInput as exc:
                    problems += exc.problems
        service = known.service_problem(self.config, "service", cmd.service)
        if service:
            problems.append(service)
        if problems:
            raise InvalidInput(problems)
        return cmd.model_copy(update=update)

    async def declare(self, cmd: DeclareInput, now: datetime | None = None, key: str | None = None) -> str:
        """Start the incident; returns its id. With `key`, at most once per key (see `declare_once`)."""
        if key:
            return (await self.declare_once(cmd, key, now)).incident_id
        start_time = now or datetime.now(UTC)
        for incident_id in self._candidates(cmd, start_time):
            if await self._start_incident(incident_id, cmd, start_time):
                return incident_id
        raise CommandRejected("could not find a free incident id")

    async def declare_once(self, cmd: DeclareInput, key: str, now: datetime | None = None) -> Declared:
        """Declare once per idempotency key: a retry answers with the incident the first request created.
        KeyReused when the key came with another body before."""
        record, body = record_id(DECLARE_ROUTE, key), body_hash(cmd)
        start_time = now or datetime.now(UTC)
        for _ in range(5):
            found = await self._read_record(record)
            if found is None:
                incident_id = await self._free_incident_id(cmd, start_time)
                run_id = await self._start_record(record, incident_id, body, cmd)
                if run_id is None:
                    continue  # another request with this key won: read its record
                found = _Record(incident_id, body, run_id)
            elif found.body != body:
                raise KeyReused(f"{KEY_HEADER}: this key was already used for a different request (it declared "
                                f"{found.incident_id}); use a new key for a new request")
            outcome = await self._start_recorded_incident(found.incident_id, cmd, record, start_time)
            if outcome is not None:
                return Declared(found.incident_id, created=outcome)
            await self._drop_record(record, found)  # its incident id went to another declaration: pick again
        raise TemporalUnavailable("could not record the declaration under its idempotency key (too many concurrent "
                                  "requests with it); retry")

    def _candidates(self, cmd: DeclareInput, start_time: datetime) -> Iterator[str]:
        yield from (policy.incident_id(start_time, cmd.service, cmd.title, attempt) for attempt in range(50))
        # past 50 incidents of one service in one minute, a short random suffix keeps ids unique
        base = policy.incident_id(start_time, cmd.service, cmd.title)
        yield from (f"{base}-{uuid.uuid4().hex[:6]}" for _ in range(5))

    async def _free_incident_id(self, cmd: DeclareInput, start_time: datetime) -> str:
        for incident_id in self._candidates(cmd, start_time):
            try:
                await self.client.get_workflow_handle(incident_id).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return incident_id
                raise self._rpc_error(exc, incident_id) from None
        raise CommandRejected("could not find a free incident id")

    async def _start_incident(self, incident_id: str, cmd: DeclareInput, start_time: datetime,
                              request: str | None = None) -> bool:
        """Start the incident under this id; False when the id is taken (running or closed)."""
        memo = {"title": cmd.title, **({"request": request} if request else {}),
                **({"source": self.source} if self.source else {})}
        try:
            await self.client.start_workflow(
                IncidentWorkflow.run,
                IncidentStart(declare=cmd, incident_id=incident_id,
                              policy=self.config.incident_policy().model_copy(update={"chat": self.settings.slack_enabled}),
                              url=self.settings.workflow_url(incident_id), code_level=CODE_LEVEL),
                id=incident_id, task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(self._attributes(cmd, start_time)), memo=memo,
                static_summary=f"{cmd.severity.value} {cmd.title}"[:200], static_details=self._details(cmd),
                request_eager_start=True,
            )
            return True
        except WorkflowAlreadyStartedError:
            return False
        except RPCError as exc:
            raise self._rpc_error(exc, incident_id) from None

    def _attributes(self, cmd: DeclareInput, start_time: datetime) -> list[SearchAttributePair[Any]]:
        pairs: list[SearchAttributePair[Any]] = [SearchAttributePair(sa.SEVERITY, cmd.severity.value),
                                                 SearchAttributePair(sa.PHASE, Phase.triage.value),
                                                 SearchAttributePair(sa.ACKNOWLEDGED, False),
                                                 SearchAttributePair(sa.DECLARED_AT, start_time)]
        if cmd.service:
            pairs.append(SearchAttributePair(sa.SERVICE, cmd.service))
        if cmd.commander:
            pairs.append(SearchAttributePair(sa.COMMANDER, cmd.commander))
        return pairs

    def _details(self, cmd: DeclareInput) -> str:
        service = self.config.service(cmd.service)
        details = [f"Declared by {cmd.declared_by}"]
        if service and service.runbook:
            details.append(f"Runbook: {service.runbook}")
        if cmd.description:
            details.append(cmd.description)
        return "\n\n".join(details)

    # ------------------------------------------------------------------ request records
    async def _read_record(self, record: str) -> _Record | None:
        """The live record under this id, or None (none yet, expired, or dropped)."""
        try:
            desc = await self.client.get_workflow_handle(record).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self._rpc_error(exc, record) from None
        if desc.status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            return None
        memo = await desc.memo()
        return _Record(str(memo.get("incident_id", "")), str(memo.get("body", "")), desc.run_id)

    async def _start_record(self, record: str, incident_id: str, body: str, cmd: DeclareInput) -> str | None:
        """Claim the key for this incident id: the record's run id, or None when another request holds it."""
        try:
            handle = await self.client.start_workflow(
                RECORD_TYPE, id=record, task_queue=f"{self.settings.task_queue}-requests",
                execution_timeout=RECORD_TTL, run_timeout=RECORD_TTL, start_delay=RECORD_TTL + timedelta(hours=1),
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                memo={"incident_id": incident_id, "body": body, "route": DECLARE_ROUTE},
                static_summary=f"{KEY_HEADER} of {DECLARE_ROUTE} → {incident_id}"[:200],
                static_details=f"Declared by {cmd.declared_by}: {cmd.title}"[:2000])
            return handle.result_run_id
        except WorkflowAlreadyStartedError:
            return None
        except RPCError as exc:
            raise self._rpc_error(exc, record) from None

    async def _start_recorded_incident(self, incident_id: str, cmd: DeclareInput, record: str,
                                       start_time: datetime) -> bool | None:
        """Start the record's incident: True when this call started it, False when it already runs for this
        record (an earlier or concurrent request), None when the id went to another declaration."""
        if await self._start_incident(incident_id, cmd, start_time, request=record):
            return True
        try:
            desc = await self.client.get_workflow_handle(incident_id).describe()
        except RPCError as exc:
            raise self._rpc_error(exc, incident_id) from None
        mine = desc.workflow_type == INCIDENT_TYPE and (await desc.memo()).get("request") == record
        return False if mine else None

    async def _drop_record(self, record: str, found: _Record) -> None:
        try:
            await self.client.get_workflow_handle(record, run_id=found.run_id).terminate(
                f"incident id {found.incident_id} was taken by another declaration; a new one is picked")
        except RPCError:
            pass  # a concurrent request dropped it already
