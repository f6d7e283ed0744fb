"""A fake PagerDuty Events API v2, and a recording webhook receiver: real HTTP on a loopback port.

Both run a stdlib `ThreadingHTTPServer` in a daemon thread, so sync code, async tests (httpx
AsyncClient) and Temporal workers in the same process all reach them. State is guarded by a lock.

    with FakePagerDuty() as pd:
        pager = PagerDutyPager(client, pd.url, {"checkout": pd.routing_key()})
        pd.fail_next(2, status=429, retry_after="1")
        pd.fail_bursts(every=20, length=4, status=503)   # 5xx bursts: 4 failures in a row every 20 requests
        ...
        assert len(pd.incidents) == 1 and pd.incidents[0].status == "triggered"

`FakePagerDuty` validates like the real endpoint (400 `{"status": "invalid event", "message": "Event
object is invalid", "errors": [...]}`), keeps incidents per (routing_key, dedup_key) with PagerDuty's
dedup rules, and answers 202 `{"status": "success", "message": "Event processed", "dedup_key"}`.
It is stricter in one place: a summary over 1024 characters is rejected, to catch adapter bugs.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.threaded import ThreadedServer

ENQUEUE_PATH = "/v2/enqueue"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
_Reply = tuple[int, dict[str, Any]]  # status, JSON body
_FAULT_BODIES = {
    429: {"status": "throttle event", "message": "Requests for this service are arriving too quickly."},
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    status: int  # what the fake answered
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class FakeIncident:
    id: str
    number: int
    routing_key: str
    dedup_key: str
    summary: str
    severity: str
    status: str = "triggered"  # triggered | acknowledged | resolved
    events: list[dict[str, Any]] = field(default_factory=list)  # every event applied, in order


class _Server(ThreadedServer):
    """Thread, recording and fault injection shared by the fakes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._fail_next: list[tuple[int, str | None]] = []
        self._fail_every: tuple[int, int, str | None] | None = None
        self._seen = 0
        self._bursts: tuple[int, int, int, str | None] | None = None
        self._burst_seen = 0
        self._delays: list[float] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request's arrival, held ones included
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, n: int, status: int = 500, retry_after: str | int | None = None) -> None:
        """The next `n` requests get `status` (with Retry-After when given), before any validation."""
        with self._lock:
            self._fail_next.extend([(status, None if retry_after is None else str(retry_after))] * n)

    def fail_every(self, k: int, status: int = 500, retry_after: str | int | None = None) -> None:
        """From now on every k-th request fails with `status`; k=0 turns it off."""
        with self._lock:
            self._fail_every = (k, status, None if retry_after is None else str(retry_after)) if k else None
            self._seen = 0

    def fail_bursts(self, every: int, length: int, status: int = 503, retry_after: str | int | None = None) -> None:
        """Outage bursts: from now on requests come in cycles of `every`, and the last `length` requests of
        each cycle fail with `status` (retries count, so a burst is `length` failures in a row); every=0
        turns it off. `fail_next` and `fail_every` come first when they apply."""
        if every and not 0 < length < every:
            raise ValueError(f"fail_bursts: need 0 < length < every, got length={length} every={every}")
        with self._lock:
            self._bursts = (every, length, status, None if retry_after is None else str(retry_after)) if every else None
            self._burst_seen = 0

    def hold_next(self, n: int, seconds: float) -> None:
        """The next `n` requests are applied and answered only `seconds` after they arrived (a slow vendor, or
        one that took the request while its sender died): the sender may be gone by then."""
        with self._lock:
            self._delays.extend([seconds] * n)

    def _arrived(self) -> float:
        with self._lock:
            self.arrivals.append(time.monotonic())
            return self._delays.pop(0) if self._delays else 0.0

    def _fault(self) -> tuple[int, str | None] | None:
        self._seen += 1
        self._burst_seen += 1
        if self._fail_next:
            return self._fail_next.pop(0)
        if self._fail_every and self._seen % self._fail_every[0] == 0:
            return self._fail_every[1], self._fail_every[2]
        if self._bursts and (self._burst_seen - 1) % self._bursts[0] >= self._bursts[0] - self._bursts[1]:
            return self._bursts[2], self._bursts[3]
        return None

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            fault = self._fault()
            if fault:
                status, retry_after = fault
                body = _FAULT_BODIES.get(status, {"status": "error", "message": "Internal Server Error"})
                extra = {"Retry-After": retry_after} if retry_after is not None else {}
            else:
                status, body = self.handle(method, path, headers, raw)
                extra = {}
            self.requests.append(RecordedRequest(method, path, headers, raw, status))
        return status, body, extra

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        raise NotImplementedError  # called under the lock

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                hold = server._arrived()
                if hold:
                    time.sleep(hold)
                status, body, extra = server._answer(self.command, self.path, headers, raw)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the sender is gone (a held request): applied all the same
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; `requests` holds everything

        return Handler


class FakePagerDuty(_Server):
    """PagerDuty Events API v2. `.url` is the enqueue URL; `.incidents` every incident, in order."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.incidents: list[FakeIncident] = []
        self._numbers = itertools.count(1)

    def __enter__(self) -> FakePagerDuty:
        self.start()
        return self

    @property
    def url(self) -> str:
        return self.base_url + ENQUEUE_PATH

    @staticmethod
    def routing_key() -> str:
        """A fresh key of the 32 characters the real API demands."""
        return secrets.token_hex(16)

    def incident(self, routing_key: str, dedup_key: str) -> FakeIncident | None:
        """The latest incident for the key pair (a trigger after resolve opens a new one)."""
        with self._lock:
            return self._latest(routing_key, dedup_key)

    def _latest(self, routing_key: str, dedup_key: str) -> FakeIncident | None:
        return next((i for i in reversed(self.incidents)
                     if (i.routing_key, i.dedup_key) == (routing_key, dedup_key)), None)

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        if path.split("?")[0] != ENQUEUE_PATH:
            return 404, {"status": "not found", "message": "Not Found"}
        if method != "POST":
            return 405, {"status": "error", "message": "Method Not Allowed"}
        try:
            event = json.loads(raw)
        except ValueError:
            return _invalid("Malformed JSON")
        if not isinstance(event, dict):
            return _invalid("Event object must be a JSON object")
        errors = _validate(event)
        if errors:
            return _invalid(*errors)
        routing_key, action = event["routing_key"], event["event_action"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        incident = self._latest(routing_key, dedup_key)
        if incident is not None and incident.status == "resolved":
            incident = None  # resolved: a trigger opens a new one, ack/resolve are dropped
        if action == "trigger" and incident is None:
            payload = event["payload"]
            incident = FakeIncident(id=f"P{uuid.uuid4().hex[:6].upper()}", number=next(self._numbers),
                                    routing_key=routing_key, dedup_key=dedup_key,
                                    summary=payload["summary"], severity=payload["severity"])
            self.incidents.append(incident)
        elif incident is not None and action == "acknowledge" and incident.status == "triggered":
            incident.status = "acknowledged"
        elif incident is not None and action == "resolve":
            incident.status = "resolved"
        if incident is not None:
            incident.events.append(event)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}


def _invalid(*errors: str) -> _Reply:
    return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}


def _validate(event: dict[str, Any]) -> list[str]:
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is missing or invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or blank"]
        for name in ("summary", "source", "severity"):
            if not isinstance(payload.get(name), str) or not payload[name].strip():
                errors.append(f"'payload.{name}' is missing or blank")
        if isinstance(payload.get("summary"), str) and len(payload["summary"]) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if payload.get("severity") and payload["severity"] not in SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            errors.append("'payload.custom_details' must be an object")
        for link in event.get("links") or []:
            if not isinstance(link, dict) or not link.get("href"):
                errors.append("'links' entries need an 'href'")
    return errors


class FakeWebhookReceiver(_Server):
    """Accepts any POST on any path with `status` (default 200); records and can fail like PagerDuty."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, status: int = 200) -> None:
        super().__init__(host, port)
        self.status = status

    def __enter__(self) -> FakeWebhookReceiver:
        self.start()
        return self

    @property
    def url(self) -> str:
        return self.base_url + "/page"

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        return self.status, {"ok": 200 <= self.status < 300}
