"""A fake Atlassian Statuspage REST API (v1): real HTTP on a loopback port.

A stdlib `ThreadingHTTPServer` in a daemon thread, like the other fakes, so async adapters, Temporal
workers and plain clients in the same process all reach it. State is guarded by one lock.

    with FakeStatuspage() as sp:
        api = sp.add_component("API")
        adapter = AtlassianStatuspage(http, page_id=sp.page_id, api_key=sp.api_key, base_url=sp.base_url,
                                      component_ids={"api": api})
        sp.rate_limit_every(3, status=429, retry_after=1)   # every 3rd request: 429 + Retry-After, no effect
        sp.lose_next("POST")                                # apply the next POST, then drop the connection
        ...
        assert len(sp.incidents) == 1 and sp.components[api]["status"] == "major_outage"
        assert min(sp.gaps()) >= 1.0                        # 1 request/s per key

Wire format as Atlassian documents it: `Authorization: OAuth <key>` (401 `{"error": …}` otherwise), bodies
wrapped as `{"incident": {…}}` / `{"component": {…}}` (400 when the wrapper is missing), incidents answered
with their `incident_updates` newest first and `metadata`, 201 on create, 200 otherwise, 404 for unknown ids,
422 for invalid values. Served: GET/PATCH `components[/{id}]`, POST/GET `incidents` (with `q`), GET/PATCH
`incidents/{id}`, GET `incidents/unresolved|upcoming|active_maintenance` (`page`, `per_page`).
Simplifications: no postmortems, templates, subscribers or page access; impact is derived from the
components only when no `impact_override` is given; scheduled maintenances never move on by themselves.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.threaded import ThreadedServer

COMPONENT_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance")
REALTIME = ("investigating", "identified", "monitoring", "resolved", "postmortem")
SCHEDULED = ("scheduled", "in_progress", "verifying", "completed")
IMPACTS = ("none", "minor", "major", "critical")
_IMPACT_OF = {"degraded_performance": "minor", "partial_outage": "major", "major_outage": "critical"}
_Reply = tuple[int, Any]


def sp_id() -> str:
    """An id shaped like Statuspage's (12 lowercase letters and digits)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any
    status: int  # what the fake answered; 0: the answer was dropped (lost response)
    at: float = field(default_factory=time.monotonic)


class FakeStatuspage(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, page_id: str | None = None,
                 api_key: str | None = None) -> None:
        self.page_id = page_id or sp_id()
        self.api_key = api_key or secrets.token_hex(16)
        self.components: dict[str, dict[str, Any]] = {}
        self.incidents: list[dict[str, Any]] = []  # oldest first
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._every: tuple[int, int, str | None] | None = None
        self._fail_next: list[tuple[int, str | None, Any]] = []
        self._lose: list[str | None] = []
        self._redirect: str | None = None
        self._seen = 0
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # ------------------------------------------------------------------------------- set-up and faults

    def add_component(self, name: str, status: str = "operational") -> str:
        cid = sp_id()
        with self._lock:
            self.components[cid] = {"id": cid, "page_id": self.page_id, "name": name, "status": status,
                                    "description": None, "created_at": _now(), "updated_at": _now()}
        return cid

    def rate_limit_every(self, n: int, status: int = 429, retry_after: str | int | None = 1) -> None:
        """From now on every n-th request is answered `status` (429, or Statuspage's older 420) with
        Retry-After, and changes nothing; n=0 turns it off."""
        with self._lock:
            self._every = (n, status, None if retry_after is None else str(retry_after)) if n else None
            self._seen = 0

    def fail_next(self, n: int, status: int = 500, retry_after: str | int | None = None, body: Any = None) -> None:
        with self._lock:
            self._fail_next += [(status, None if retry_after is None else str(retry_after), body)] * n

    def lose_next(self, method: str | None = None) -> None:
        """The next request (of `method`, if given) is applied, then the connection drops without an answer."""
        with self._lock:
            self._lose.append(method)

    def redirect_all(self, location: str | None) -> None:
        """Answer every request 307 to `location` + the path (None: stop)."""
        with self._lock:
            self._redirect = location

    # ------------------------------------------------------------------------------- inspection

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = next((i for i in self.incidents if i["id"] == incident_id), None)
            return copy.deepcopy(found)

    def gaps(self) -> list[float]:
        """Seconds between the arrivals of consecutive requests."""
        with self._lock:
            times = [r.at for r in self.requests]
        return [b - a for a, b in zip(times, times[1:])]

    # ------------------------------------------------------------------------------- serving

    def _answer(self, method: str, target: str, headers: dict[str, str], raw: bytes,
                ) -> tuple[int, Any, dict[str, str], bool]:
        """(status, body, extra headers, drop the answer) — under the lock, recorded."""
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self._seen += 1
            status, reply, extra = self._fault()
            lose = False
            if not status:
                status, reply = self._authorized(headers) or self._route(method, parts.path, query, body)
                lose = bool(self._lose) and self._lose[0] in (None, method)
                if lose:
                    self._lose.pop(0)
            if self._redirect and status == 307:
                extra = {"Location": self._redirect + parts.path}
            self.requests.append(RecordedRequest(method, parts.path, query, headers, body, 0 if lose else status))
        return status, reply, extra, lose

    def _fault(self) -> tuple[int, Any, dict[str, str]]:
        if self._redirect:
            return 307, {"error": "moved"}, {}
        if self._fail_next:
            status, retry_after, body = self._fail_next.pop(0)
        elif self._every and self._seen % self._every[0] == 0:
            status, retry_after, body = self._every[1], self._every[2], None
        else:
            return 0, None, {}
        text = "Rate limit exceeded" if status in (420, 429) else "Something went wrong"
        return status, body or {"error": text}, {"Retry-After": retry_after} if retry_after else {}

    def _authorized(self, headers: dict[str, str]) -> _Reply | None:
        if headers.get("authorization") != f"OAuth {self.api_key}":
            return 401, {"error": "Could not authenticate"}
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> _Reply:
        prefix = f"/v1/pages/{self.page_id}/"
        if not path.startswith(prefix):
            return 404, {"error": "The page you requested could not be found"}
        segments = path[len(prefix):].strip("/").split("/")
        match (method, segments):
            case ("GET", ["components"]):
                return 200, list(self.components.values())
            case ("PATCH" | "PUT", ["components", cid]):
                return self._patch_component(cid, body)
            case ("POST", ["incidents"]):
                return self._create(body)
            case ("GET", ["incidents"]):
                q = query.get("q", "").lower()
                return 200, self._page([i for i in self.incidents if q in i["name"].lower()], query, "limit")
            case ("GET", ["incidents", "unresolved" | "upcoming" | "active_maintenance" | "scheduled" as which]):
                return 200, self._page([i for i in self.incidents if _listed(i, which)], query, "per_page")
            case ("GET", ["incidents", iid]):
                found = self._incident(iid)
                return (200, found) if found else (404, {"error": "Incident not found"})
            case ("PATCH" | "PUT", ["incidents", iid]):
                return self._update(iid, body)
        return 404, {"error": "Not found"}

    # ------------------------------------------------------------------------------- behaviour

    def _page(self, rows: list[dict[str, Any]], query: dict[str, str], size: str) -> list[dict[str, Any]]:
        per_page, page = int(query.get(size, 100)), int(query.get("page", 1))
        newest_first = rows[::-1]
        return copy.deepcopy(newest_first[(page - 1) * per_page: page * per_page])

    def _incident(self, iid: str) -> dict[str, Any] | None:
        return next((i for i in self.incidents if i["id"] == iid), None)

    def _patch_component(self, cid: str, body: Any) -> _Reply:
        if cid not in self.components:
            return 404, {"error": "Component not found"}
        fields = body.get("component") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"error": "param is missing or the value is empty: component"}
        if "status" in fields and fields["status"] not in COMPONENT_STATUSES:
            return 422, {"error": f"Status is not included in the list ({fields['status']})"}
        self.components[cid].update({k: v for k, v in fields.items() if k in ("status", "name", "description")},
                                    updated_at=_now())
        return 200, copy.deepcopy(self.components[cid])

    def _create(self, body: Any) -> _Reply:
        fields = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"error": "param is missing or the value is empty: incident"}
        if not str(fields.get("name") or "").strip():
            return 422, {"error": ["Name can't be blank"]}
        scheduled = bool(fields.get("scheduled_for"))
        now = _now()
        incident: dict[str, Any] = {
            "id": sp_id(), "page_id": self.page_id, "name": "", "status": "scheduled" if scheduled else "investigating",
            "impact": "none", "impact_override": None, "created_at": now, "updated_at": now, "monitoring_at": None,
            "resolved_at": None, "shortlink": "", "scheduled_for": None, "scheduled_until": None,
            "scheduled_remind_prior": False, "scheduled_auto_in_progress": False, "scheduled_auto_completed": False,
            "metadata": {}, "components": [], "incident_updates": []}
        incident["shortlink"] = f"https://stspg.io/{incident['id'][:9]}"
        error = self._apply(incident, fields, new=True)
        if error:
            return error
        self.incidents.append(incident)
        return 201, copy.deepcopy(incident)

    def _update(self, iid: str, body: Any) -> _Reply:
        incident = self._incident(iid)
        if incident is None:
            return 404, {"error": "Incident not found"}
        fields = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"error": "param is missing or the value is empty: incident"}
        trial = copy.deepcopy(incident)
        error = self._apply(trial, fields, new=False)
        if error:
            return error
        incident.clear()
        incident.update(trial)
        return 200, copy.deepcopy(incident)

    def _apply(self, incident: dict[str, Any], fields: dict[str, Any], *, new: bool) -> _Reply | None:
        """Validate everything, then apply to `incident` (a copy on updates: nothing half-applied)."""
        scheduled = bool(fields.get("scheduled_for") or incident["scheduled_for"])
        status = fields.get("status", incident["status"])
        if status not in (SCHEDULED if scheduled else REALTIME):
            return 422, {"error": [f"Status {status} is not valid for this incident"]}
        if fields.get("impact_override") not in (None, *IMPACTS):
            return 422, {"error": ["Impact override is not included in the list"]}
        metadata = fields.get("metadata", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, dict) for v in metadata.values()):
            return 422, {"error": ["Metadata top-level values must be objects"]}
        changes = fields.get("components") or {}
        ids = list(fields.get("component_ids") or [])
        unknown = [c for c in [*ids, *changes] if c not in self.components]
        bad = [s for s in changes.values() if s not in COMPONENT_STATUSES]
        if unknown or bad:
            return 422, {"error": [f"Unknown components {unknown}" if unknown else f"Invalid statuses {bad}"]}
        changed_status = status != incident["status"]
        for key in ("name", "impact_override", "scheduled_for", "scheduled_until", "scheduled_remind_prior",
                    "scheduled_auto_in_progress", "scheduled_auto_completed"):
            if key in fields:
                incident[key] = fields[key]
        incident["status"], incident["updated_at"] = status, _now()
        incident["metadata"] = {**incident["metadata"], **metadata}
        affected = []
        for cid, new_status in changes.items():
            component = self.components[cid]
            affected.append({"code": cid, "name": component["name"], "old_status": component["status"],
                             "new_status": new_status})
            component.update(status=new_status, updated_at=_now())
        if ids or changes:
            listed = list(dict.fromkeys([*(c["id"] for c in incident["components"]), *ids, *changes]))
            incident["components"] = [copy.deepcopy(self.components[c]) for c in listed]
        worst = [_IMPACT_OF.get(c["status"], "none") for c in incident["components"]]
        incident["impact"] = incident["impact_override"] or ("maintenance" if scheduled else max(
            worst, key=IMPACTS.index, default="none"))
        if status == "monitoring" and not incident["monitoring_at"]:
            incident["monitoring_at"] = _now()
        incident["resolved_at"] = _now() if status in ("resolved", "completed") else None
        if new or fields.get("body") or changed_status:
            incident["incident_updates"].insert(0, {
                "id": sp_id(), "incident_id": incident["id"], "status": status, "body": fields.get("body") or "",
                "created_at": _now(), "updated_at": _now(), "display_at": _now(), "affected_components": affected,
                "deliver_notifications": fields.get("deliver_notifications", True)})
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra, lose = server._answer(self.command, self.path, headers, raw)
                if lose:
                    self.close_connection = True  # applied, but the client never hears of it
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # `requests` holds everything

        return Handler


def _listed(incident: dict[str, Any], which: str) -> bool:
    scheduled, status = bool(incident["scheduled_for"]), incident["status"]
    return {"unresolved": not scheduled and status not in ("resolved", "postmortem"),
            "upcoming": scheduled and status == "scheduled",
            "active_maintenance": scheduled and status in ("in_progress", "verifying"),
            "scheduled": scheduled}[which]
