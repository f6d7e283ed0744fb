"""Logging for every incidentflow process (CLI, worker, API, dev stack): one record, one line.

`INCIDENTFLOW_LOG_FORMAT=json` writes each record as one JSON object: time, level, logger, message and,
when known, incident_id, workflow_id, run_id, workflow_type, activity, attempt, request_id, exception.
The default (`text`) is the human format `<time> <LEVEL> <logger>: <message>`. In both, nothing a user
typed can start a line: JSON escapes it, and the human format writes control, line-separator and bidi
characters as `\\n`, `\\x1b`, `\\u202e`; traceback lines are indented, so a line that starts at column 0
always starts a real record.

Context comes from three places: Temporal's loggers (the `temporal_activity`/`temporal_workflow` extras),
the running activity (our activities log through plain loggers), and context variables the doors set
(`request_id_scope` via `RequestIdMiddleware`, `incident_scope`). Incident ids are also derived from
workflow ids (`incident-…`, `incident-…-escalation-N`, `incident-…-runbook-N`).

In JSON, the lines Temporal's Rust core would print itself are forwarded to the `temporalio.core` logger.

Imports nothing heavy (no worker, no HTTP stack): the CLI calls `configure_logging` on every command.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from temporalio import activity

from domain.text import UNSAFE, escape_unsafe

FORMATS = ("text", "json")
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("incident_id", "workflow_id", "run_id", "workflow_type", "activity", "attempt", "request_id")
_MARK = "_incidentflow_handler"
_core_forwarded = False
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_INCIDENT_WORKFLOW = re.compile(r"(incident-\d{8}-\d{4}-[a-z0-9-]+?)(?:-(?:escalation|runbook)-\d+)?")
_INCIDENT_PATH = re.compile(r"^/v1/incidents/([^/]+)")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("incidentflow_request_id", default=None)
_incident_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("incidentflow_incident_id", default=None)


# --- context the doors set ------------------------------------------------------------------------

def safe_id(value: str | None) -> str | None:
    """The id if it looks like one of ours or a caller's request id; None for anything else."""
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


@contextmanager
def request_id_scope(request_id: str | None = None) -> Iterator[str]:
    """Every record logged inside carries this request id (a fresh one when missing or malformed)."""
    rid = safe_id(request_id) or uuid.uuid4().hex
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


@contextmanager
def incident_scope(incident_id: str | None) -> Iterator[None]:
    """Every record logged inside carries this incident id (ignored unless it looks like an id)."""
    token = _incident_id.set(safe_id(incident_id))
    try:
        yield
    finally:
        _incident_id.reset(token)


def set_incident_id(incident_id: str | None) -> contextvars.Token[str | None]:
    """For code that cannot wrap a block: set the incident id for the rest of the current context."""
    return _incident_id.set(safe_id(incident_id))


def current_request_id() -> str | None:
    return _request_id.get()


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestIdMiddleware:
    """ASGI middleware: a request id for every HTTP request (the caller's `X-Request-ID` when it is a
    plain id, else a new one), set for the records logged while it runs and echoed in the response's
    `X-Request-ID`. The incident id of `/v1/incidents/{id}…` paths is set too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        path = _INCIDENT_PATH.match(scope.get("path", ""))

        with request_id_scope(given or None) as rid, incident_scope(path.group(1) if path else None):
            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                    message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
                await send(message)

            await self.app(scope, receive, send_with_id)


# --- what a record knows ----------------------------------------------------------------------------

def incident_of(workflow_id: str | None) -> str | None:
    """incident-20261123-0815-checkout(-escalation-1|-runbook-2)? → incident-20261123-0815-checkout."""
    match = _INCIDENT_WORKFLOW.fullmatch(workflow_id or "")
    return match.group(1) if match else None


def _temporal_context(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {}
    wf = getattr(record, "temporal_workflow", None)
    act = getattr(record, "temporal_activity", None)
    if act is None and activity.in_activity():  # our activities log through plain loggers
        info = activity.info()
        act = {"workflow_id": info.workflow_id, "workflow_run_id": info.workflow_run_id,
               "workflow_type": info.workflow_type, "activity_type": info.activity_type, "attempt": info.attempt}
    if isinstance(wf, Mapping):
        found.update(workflow_id=wf.get("workflow_id"), run_id=wf.get("run_id"),
                     workflow_type=wf.get("workflow_type"), attempt=wf.get("attempt"))
    if isinstance(act, Mapping):
        found.update(workflow_id=act.get("workflow_id"), run_id=act.get("workflow_run_id"),
                     workflow_type=act.get("workflow_type"), activity=act.get("activity_type"),
                     attempt=act.get("attempt"))
    return found


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The known context of a record: Temporal's, then the context variables; None values dropped."""
    fields = _temporal_context(record)
    fields["request_id"] = _request_id.get()
    fields["incident_id"] = _incident_id.get() or incident_of(fields.get("workflow_id"))
    return {k: fields[k] for k in FIELDS if fields.get(k) is not None}


def _unsafe_to_json(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(record),
        }
        if record.exc_info:
            doc["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        # json escapes C0 itself; DEL, C1, U+2028/9, bidi controls and lone surrogates it would write raw
        return UNSAFE.sub(_unsafe_to_json, json.dumps(doc, ensure_ascii=False, default=str))


class HumanFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger>: <message>` with the message's unsafe characters escaped; tracebacks
    follow on indented lines."""

    def __init__(self) -> None:
        super().__init__(HUMAN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_unsafe(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        tail = []
        if record.exc_info:
            tail.append(record.exc_text or self.formatException(record.exc_info))
        if record.stack_info:
            tail.append(self.formatStack(record.stack_info))
        for block in tail:
            for text in block.splitlines():
                line += "\n    " + escape_unsafe(text)
        return line


# --- setup ------------------------------------------------------------------------------------------

def _temporal_adapters_on_message(on: bool) -> None:
    """Temporal's loggers append their context to the message; JSON has it as fields already."""
    from temporalio import workflow

    activity.logger.activity_info_on_message = on
    workflow.logger.workflow_info_on_message = on


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (as logging's last-resort handler does), so a
    replaced stderr (pytest's capture, a daemon's redirect) never leaves it writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _forward_core_logs() -> None:
    """Temporal's Rust core writes its own lines to stderr; in JSON they must be records too. The
    default runtime is replaced once, before the first client is made (clients made earlier keep
    theirs)."""
    global _core_forwarded
    if _core_forwarded:
        return
    from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig

    forward = LogForwardingConfig(logger=logging.getLogger("temporalio.core"), append_target_to_name=False)
    Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=LoggingConfig.default.filter, forwarding=forward))), error_if_already_set=False)
    _core_forwarded = True


def configure_logging(fmt: str | None = None, level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Send every record to `stream` (stderr) in `fmt`: "text" (the default) or "json"; None reads
    INCIDENTFLOW_LOG_FORMAT. Call it first thing (it stands in for `logging.basicConfig`): it replaces the
    handler an earlier call installed and leaves others alone. Returns the handler."""
    chosen = (fmt if fmt is not None else os.environ.get("INCIDENTFLOW_LOG_FORMAT", "")).strip().lower() or "text"
    unknown = chosen not in FORMATS
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.setFormatter(JsonFormatter() if chosen == "json" else HumanFormatter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _temporal_adapters_on_message(chosen != "json")
    if chosen == "json":
        _forward_core_logs()
    if unknown:  # a typo must not stop a worker; say so on the line it would have formatted
        logging.getLogger("incidentflow").warning("unknown log format %r (use %s): using text", chosen,
                                                  " or ".join(FORMATS))
    return handler
