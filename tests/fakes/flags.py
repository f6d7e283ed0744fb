"""A fake feature-flag REST service: real HTTP on a loopback port.

Runs a stdlib `ThreadingHTTPServer` in a daemon thread (see `tests/fakes/kubernetes.HttpFake`), state under
a lock, every request recorded, faults injectable.

    with FakeFlags() as flags:
        flags.add_flag("checkout.new-pricing", enabled=True)
        headers = {"Authorization": f"Bearer {flags.token}"}
        httpx.post(f"{flags.url}/flags/checkout.new-pricing/disable", headers=headers)
        assert flags.flags["checkout.new-pricing"].enabled is False
        assert flags.changes == [("checkout.new-pricing", False)]

API (JSON in and out):
    GET  /flags                      -> 200 {"flags": [flag, ...]}
    GET  /flags/{key}                -> 200 flag
    PUT|PATCH|POST /flags/{key}      {"enabled": bool} -> 200 flag (400 {"error"} when not a bool)
    POST /flags/{key}/enable|disable -> 200 flag
    flag = {"key": str, "enabled": bool, "updated_at": RFC 3339 str, "version": int}
Unknown key -> 404 {"error": "flag not found"}; missing/wrong `Authorization: Bearer <token>` -> 401
{"error": "unauthorized"}; other paths 404 {"error": "not found"}, wrong method 405.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.fakes.kubernetes import HttpFake, RecordedRequest, Reply


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FeatureFlag:
    key: str
    enabled: bool
    updated_at: str
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "enabled": self.enabled, "updated_at": self.updated_at,
                "version": self.version}


class FakeFlags(HttpFake):
    """`.url` base URL; `.token` the bearer token; `.flags` key -> FeatureFlag; `.changes` every (key,
    enabled) set through the API, in order (also no-op sets)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None) -> None:
        super().__init__(host, port)
        self.token = token or secrets.token_urlsafe(16)
        self.flags: dict[str, FeatureFlag] = {}
        self.changes: list[tuple[str, bool]] = []

    def __enter__(self) -> FakeFlags:
        self.start()
        return self

    def add_flag(self, key: str, enabled: bool = True) -> FeatureFlag:
        with self._lock:
            flag = self.flags[key] = FeatureFlag(key, enabled, _now())
            return flag

    def enabled(self, key: str) -> bool:
        with self._lock:
            return self.flags[key].enabled

    def fault_reply(self, req: RecordedRequest, status: int, reason: str | None,
                    message: str | None) -> Reply:
        return Reply(status, {"error": message or reason or f"injected failure {status}"})

    def handle(self, req: RecordedRequest) -> Reply:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "unauthorized"})
        parts = req.path.strip("/").split("/")  # already URL-decoded
        if parts == ["flags"]:
            if req.method != "GET":
                return Reply(405, {"error": "method not allowed"})
            return Reply(200, {"flags": [f.to_json() for _, f in sorted(self.flags.items())]})
        if len(parts) not in (2, 3) or parts[0] != "flags":
            return Reply(404, {"error": "not found"})
        flag = self.flags.get(parts[1])
        if len(parts) == 3:
            if parts[2] not in ("enable", "disable"):
                return Reply(404, {"error": "not found"})
            if req.method != "POST":
                return Reply(405, {"error": "method not allowed"})
            if flag is None:
                return Reply(404, {"error": "flag not found"})
            return self._set(flag, parts[2] == "enable")
        if req.method == "GET":
            return Reply(200, flag.to_json()) if flag else Reply(404, {"error": "flag not found"})
        if req.method not in ("PUT", "PATCH", "POST"):
            return Reply(405, {"error": "method not allowed"})
        if flag is None:
            return Reply(404, {"error": "flag not found"})
        body = req.json
        if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
            return Reply(400, {"error": "body must be a JSON object with a boolean 'enabled'"})
        return self._set(flag, body["enabled"])

    def _set(self, flag: FeatureFlag, enabled: bool) -> Reply:
        if flag.enabled != enabled:
            flag.version += 1
        flag.enabled = enabled
        flag.updated_at = _now()
        self.changes.append((flag.key, enabled))
        return Reply(200, flag.to_json())

