"""The OpenAPI spec lists every status code the API really answers (issue 11).

Schemathesis (tests/test_fuzz.py) checks the answers to generated requests; the edges it rarely reaches
are driven here, for every operation in /openapi.json: no token, a token without the scope, a body over
the limit, malformed JSON, and Temporal unreachable. Each answer's status must be documented."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from domain.config import IncidentflowConfig, Settings
from incidentflow.api import create_app

READER, ADMIN = "contract-reader", "contract-admin"
METHODS = ("get", "post", "put")


def app() -> Any:
    config = IncidentflowConfig.model_validate({"people": [{"id": "carol", "name": "Carol"}], "api_tokens": [
        {"name": "dashboard", "person": "carol", "scopes": ["read"],
         "hash": "sha256:" + hashlib.sha256(READER.encode()).hexdigest()}]})
    settings = Settings(temporal_address="127.0.0.1:1", api_token=ADMIN, max_body_bytes=4096,
                        slack_signing_secret="s", pagerduty_webhook_secrets=["p"])
    return create_app(settings, config=config)


OPERATIONS = [(path, method, op) for path, ops in app().openapi()["paths"].items()
              for method, op in ops.items() if method in METHODS]


def url(path: str) -> str:
    return re.sub(r"\{incident_id\}", "incident-20260101-0000-x", re.sub(r"\{run_id\}", "run-1", path))


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://api") as client:
        yield client


async def chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 1024):
        yield b"x" * 1024


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=[f"{m.upper()} {p}" for p, m, _ in OPERATIONS])
async def test_every_answer_at_the_edges_is_documented(http: httpx.AsyncClient, path: str, method: str,
                                                       op: dict[str, Any]) -> None:
    documented = set(op["responses"])
    json_body = "application/json" in op.get("requestBody", {}).get("content", {})
    tries: dict[str, dict[str, Any]] = {
        "no token": {},
        "a read-only token": {"headers": {"Authorization": f"Bearer {READER}"}},
        "Temporal unreachable": {"headers": {"Authorization": f"Bearer {ADMIN}"}, **({"json": {}} if json_body else {})},
    }
    if method != "get":
        json_headers = {"Authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
        tries["a streamed body over the limit"] = {"headers": json_headers, "content": chunks(64 * 1024)}
        if json_body:
            tries["malformed JSON"] = {"headers": json_headers, "content": b'{"a": 1,,}'}
    for what, kwargs in tries.items():
        resp = await http.request(method.upper(), url(path), **kwargs)
        assert str(resp.status_code) in documented, (
            f"{method.upper()} {path} with {what} answered {resp.status_code} ({resp.text[:200]}), "
            f"which its OpenAPI responses ({', '.join(sorted(documented))}) do not list")
