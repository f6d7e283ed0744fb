"""Plumbing of the one door into Temporal (`incidentflow.client`): the errors a user sees, connecting,
and sending one update or signal to an incident by method reference.

Temporal errors become three exceptions whose message is shown as is: `TemporalUnavailable` (and its
`NoWorker`), `IncidentNotFound`, `CommandRejected` (all `IncidentflowError`). A name the config does not know
(a person, a service, an escalation level) is `InvalidInput`, a `CommandRejected` naming the field.

Idempotency: a command given an idempotency key is sent as a Temporal update whose id is derived from the
key (and the command and its input), so a retry attaches to the first one and answers its result: Temporal
runs an update id once per workflow run. A command must be accepted by a worker within `deadline` seconds
(`NoWorker` otherwise, while the update stays with Temporal and applies once a worker polls again).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from domain.models import CommandResult, IncidentState
from domain.settings import Settings
from incidentflow import temporal_tls, tracing
from incidentflow.query_retry import QueryRetry

if TYPE_CHECKING:  # at run time the incident is reached by name: `show` should not import every workflow module
    from domain.config import IncidentflowConfig
    from workflows.incident import IncidentWorkflow

M = TypeVar("M", bound=BaseModel)
IncidentHandle = WorkflowHandle[Any, IncidentState]
Signal = Callable[["IncidentWorkflow", M], Awaitable[None] | None]
INCIDENT_TYPE = "IncidentWorkflow"
# incident-YYYYMMDD-HHMM-<slug>[-N]: anything else is not an incident, whatever Temporal holds under that id
INCIDENT_ID = re.compile(r"^incident-[A-Za-z0-9][A-Za-z0-9._-]{0,245}$")
# Ids a door has seen to be IncidentWorkflows', per Temporal client (the API makes a door per request; they share
# the client). An incident id never changes type: incidents start with REJECT_DUPLICATE. A command to a known id
# goes straight to the incident; one that has ended answers NOT_FOUND, which `_command_error` explains.
KNOWN_INCIDENTS = 10_000
_KNOWN: weakref.WeakKeyDictionary[Client, OrderedDict[str, None]] = weakref.WeakKeyDictionary()


class IncidentflowError(Exception):
    """Base of the errors a user sees; the message is the whole story."""


class TemporalUnavailable(IncidentflowError):
    pass


class NoWorker(TemporalUnavailable):
    """Temporal has the command but no worker accepted it in time: not confirmed, not lost either."""


class IncidentNotFound(IncidentflowError):
    pass


class CommandRejected(IncidentflowError):
    pass


class InvalidInput(CommandRejected):
    """Input the config does not know: an unknown person, service or escalation level (HTTP 422). Each
    problem starts with the field it is about (`person: 'zed' is not one of incidentflow's people …`)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def vet_person(config: IncidentflowConfig, field: str, name: str, acting: bool = False) -> str:
    """The config person id `name` stands for (`acting`: the actor of a write, which `slack.allow_everyone`
    lets be anyone). InvalidInput listing who is known otherwise."""
    from domain import known

    problem = (known.actor_problem if acting else known.person_problem)(config, field, name)
    if problem:
        raise InvalidInput([problem])
    return known.person_id(config, name) or name


async def connect(settings: Settings, timeout: float = 5.0, wait: bool = False,
                  runtime: Runtime | None = None) -> Client:
    """Connect to Temporal: plaintext, TLS (a CA, a client certificate) or Temporal Cloud (an API key), as
    Settings say (incidentflow.temporal_tls). `wait`: keep trying until `timeout` (a server that is still
    starting answers "Frontend is not healthy yet" for a moment after its port opens). `runtime`: the worker's,
    which exports its metrics (workers.metrics); else the process default."""
    try:
        tls = temporal_tls.tls_config(settings)
    except ValueError as exc:
        raise TemporalUnavailable(f"cannot connect to Temporal at {settings.temporal_address}: {exc}") from None
    key = temporal_tls.api_key(settings)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = max(deadline - asyncio.get_running_loop().time(), 0.1)
        try:
            return await asyncio.wait_for(
                Client.connect(settings.temporal_address, namespace=settings.temporal_namespace, tls=tls,
                               api_key=key, runtime=runtime, data_converter=pydantic_data_converter,
                               interceptors=[QueryRetry(), *tracing.client_interceptors()]),  # tracing: OTEL_* turn it on
                left,
            )
        except (TimeoutError, RuntimeError, OSError, RPCError) as exc:
            if wait and asyncio.get_running_loop().time() + 0.25 < deadline:
                await asyncio.sleep(0.25)
                continue
            full, short = ((text.replace(key, "***") if key else text) for text in (str(exc), _first_line(exc)))
            raise TemporalUnavailable(
                f"cannot reach Temporal at {settings.temporal_address} (namespace {settings.temporal_namespace}, "
                f"{temporal_tls.describe(settings)}): {temporal_tls.explain(settings, full, short)}"
            ) from None


_OS_REASON = re.compile(r'message: "([^"]{1,120})"')  # the core's `Os { code: 111, …, message: "Connection refused" }`


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """The error's first line, shortened at a word boundary (never cut mid-word). The innermost reason the
    cut would drop (the OS's words, "Connection refused") goes after the cut."""
    text = str(exc).splitlines()[0].strip() if str(exc).strip() else "no answer"
    if len(text) <= limit:
        return text
    reasons = _OS_REASON.findall(text)
    tail = f" … {reasons[-1]}" if reasons else " …"
    return text[:limit - len(tail) + 1].rsplit(" ", 1)[0].rstrip(" ,:;{([") + tail


def signal_name(signal: Callable[..., Awaitable[None] | None]) -> str:
    """The name history records for a `@workflow.signal` method: signal-with-start takes a name."""
    return workflow._SignalDefinition.must_name_from_fn_or_str(signal)


def request_id(kind: str, key: str, *parts: str) -> str:
    """A Temporal id (update or workflow) for one keyed request: the same key and parts, the same id."""
    digest = hashlib.sha256("\n".join((kind, key, *parts)).encode()).hexdigest()
    return f"{kind}-{digest[:40]}"


def update_id(update: object, arg: BaseModel, key: str | None) -> str | None:
    """The update id of a keyed command (None: Temporal picks one). `update` is the workflow's update method
    or its name. The input is part of it, so the same key with another input is another command, and a
    retry of the same request is the same update."""
    if not key:
        return None
    name = update if isinstance(update, str) else str(getattr(update, "__name__", "update"))
    return request_id(name, key, arg.model_dump_json())


def quote(value: str) -> str:
    """A value inside a single-quoted visibility query string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class Door:
    """What every part of `Incidents` shares: the client, the settings, the config and the error mapping."""

    def __init__(self, client: Client, settings: Settings, config: IncidentflowConfig | None = None,
                 source: str | None = None) -> None:
        self.client = client
        self.settings = settings
        self._config = config  # None: an empty config, built on first use (a read never needs one)
        self.source = source  # who opens incidents through this door (api, slack, cli): in their memo
        self.deadline = max(settings.command_deadline, 0.5)  # seconds a worker has to accept a command

    @property
    def config(self) -> IncidentflowConfig:
        if self._config is None:
            from domain.config import IncidentflowConfig

            self._config = IncidentflowConfig()
        return self._config

    def _incident(self, incident_id: str) -> IncidentHandle:
        return self.client.get_workflow_handle(incident_id, result_type=IncidentState)

    async def _require_incident(self, incident_id: str) -> WorkflowExecutionDescription:
        """The incident's description; IncidentNotFound for an id that is not an IncidentWorkflow's (an alert
        group, an escalation, a runbook run, or nothing), before any read or command reaches it."""
        if not INCIDENT_ID.match(incident_id):
            raise IncidentNotFound(f"no incident with id {incident_id[:300]!r}")
        try:
            desc = await self.client.get_workflow_handle(incident_id).describe()
        except RPCError as exc:
            raise self._rpc_error(exc, incident_id) from None
        if desc.workflow_type != INCIDENT_TYPE:
            raise IncidentNotFound(f"no incident with id {incident_id!r} (that id belongs to a workflow of type "
                                   f"{desc.workflow_type}; incident ids look like incident-YYYYMMDD-HHMM-<name>)")
        known = _KNOWN.setdefault(self.client, OrderedDict())
        known[incident_id] = None
        known.move_to_end(incident_id)
        if len(known) > KNOWN_INCIDENTS:
            known.popitem(last=False)
        return desc

    async def require_incident(self, incident_id: str) -> None:
        """IncidentNotFound unless an incident has this id: a door asks first, so a command to a non-incident is
        `no incident with id …` whatever else is wrong with it. An id seen to be an incident's is not asked
        about again (`KNOWN_INCIDENTS`): a command then costs no `describe`."""
        known = _KNOWN.get(self.client)
        if known is not None and incident_id in known:
            known.move_to_end(incident_id)
            return
        await self._require_incident(incident_id)

    async def get(self, incident_id: str) -> IncidentState:
        """The incident's state: its result once it has ended (no worker needed), else a query."""
        desc = await self._require_incident(incident_id)
        handle = self._incident(incident_id)
        try:
            if desc.status == WorkflowExecutionStatus.COMPLETED:
                return self._linked(await handle.result(rpc_timeout=timedelta(seconds=10)))
            if desc.status != WorkflowExecutionStatus.RUNNING:
                raise IncidentNotFound(
                    f"incident {incident_id} ended abnormally ({desc.status.name.lower() if desc.status else '?'}); "
                    "see it in the Temporal UI")
            return self._linked(await handle.query("get_state", result_type=IncidentState,
                                                   rpc_timeout=timedelta(seconds=self.deadline)))
        except RPCError as exc:
            if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
                raise NoWorker(f"{incident_id}: no incidentflow worker answered within {self.deadline:g} s (does a "
                               f"worker poll task queue {self.settings.task_queue!r}?); retry shortly") from None
            raise self._rpc_error(exc, incident_id) from None
        except WorkflowQueryFailedError as exc:
            raise IncidentflowError(f"incident {incident_id}: query failed: {exc}") from None
        except WorkflowFailureError as exc:
            raise IncidentflowError(f"incident {incident_id} failed: {exc.cause}") from None

    def _linked(self, state: IncidentState) -> IncidentState:
        """Every incident has its Web UI link, however it started (one opened from an alert has none in its
        state: the alert group starts it, and has no settings)."""
        return state if state.url else state.model_copy(update={"url": self.settings.workflow_url(state.id)})

    async def _update(self, incident_id: str,
                      update: workflow.UpdateMethodMultiParam[[IncidentWorkflow, M], CommandResult], arg: M,
                      timeout: float = 30, key: str | None = None, uid: str | None = None) -> CommandResult:
        """Send a command (an update) to an incident; `uid` overrides the update id derived from `key`."""
        await self.require_incident(incident_id)
        try:
            result: CommandResult = await self._send_update(self._incident(incident_id), update, arg,
                                                            uid or update_id(update, arg, key), incident_id, timeout)
            return result
        except RPCError as exc:
            raise await self._command_error(exc, incident_id) from None

    async def earlier_result(self, incident_id: str, operation: str, arg: BaseModel, key: str) -> CommandResult | None:
        """The result of this keyed command (update `operation` with `arg`) if a request with the same key
        already applied it, else None: lets a door tell a replayed request from a first one."""
        await self.require_incident(incident_id)
        handle = self._incident(incident_id).get_update_handle(update_id(operation, arg, key) or "",
                                                               result_type=CommandResult)
        try:
            result: CommandResult = await handle.result(rpc_timeout=timedelta(seconds=5))
            return result
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise self._rpc_error(exc, incident_id) from None
        except (WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError):
            return None  # failed, or still running: sending it again attaches to it

    async def _send_update(self, handle: WorkflowHandle[Any, Any], update: Any, arg: BaseModel, uid: str | None,
                           target: str, timeout: float) -> Any:
        """Send one update and return its result. A worker must accept it within `deadline` (else NoWorker);
        a validator's rejection is CommandRejected. RPCError is left to the caller."""
        try:
            async with asyncio.timeout(self.deadline):
                started = await handle.start_update(update, arg, id=uid, wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                                                    rpc_timeout=timedelta(seconds=self.deadline))
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            raise NoWorker(f"{target}: no incidentflow worker accepted the command within {self.deadline:g} s "
                           f"(does a worker poll task queue {self.settings.task_queue!r}?). It is not confirmed: "
                           "it applies once a worker is back; retry the same request (same idempotency key) "
                           "for its result, and it is applied only once") from None
        except WorkflowUpdateFailedError as exc:
            raise CommandRejected(f"{target}: {_cause(exc)}") from None
        try:
            return await started.result(rpc_timeout=timedelta(seconds=timeout))
        except WorkflowUpdateFailedError as exc:
            raise CommandRejected(f"{target}: {_cause(exc)}") from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise NoWorker(f"{target}: the command was accepted but did not finish within {timeout:g} s; it goes "
                           "on: retry the same request (same idempotency key) for its result") from None

    async def _signal(self, incident_id: str, signal: Signal[M], arg: M, check: bool = True) -> None:
        if check:
            await self.require_incident(incident_id)
        try:
            await self._incident(incident_id).signal(signal, arg)
        except RPCError as exc:
            raise await self._command_error(exc, incident_id) from None

    async def _command_error(self, exc: RPCError, incident_id: str) -> IncidentflowError:
        """NOT_FOUND on an update or signal means no such incident, or one that has ended: tell which."""
        if exc.status == RPCStatusCode.NOT_FOUND:
            try:
                desc = await self.client.get_workflow_handle(incident_id).describe()
            except RPCError:
                return self._rpc_error(exc, incident_id)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return CommandRejected(f"incident {incident_id} is over (closed or stood down); "
                                       "declare a new one or see its timeline")
        return self._rpc_error(exc, incident_id)

    def _rpc_error(self, exc: RPCError, incident_id: str) -> IncidentflowError:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return IncidentNotFound(f"no incident with id {incident_id!r}")
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return TemporalUnavailable(f"Temporal at {self.settings.temporal_address} is unavailable: "
                                       f"{exc.message[:200]}")
        return IncidentflowError(f"Temporal error ({exc.status.name}): {exc.message[:300]}")


def _cause(exc: WorkflowUpdateFailedError) -> str:
    cause = exc.cause
    return str(getattr(cause, "message", None) or cause)
