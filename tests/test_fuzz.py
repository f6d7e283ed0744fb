"""Property and fuzz tests: parsers never crash or grow unbounded, and no HTTP input yields a 5xx."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from domain import ingest
from domain.config import ApiToken, hash_token, load_config
from domain.models import AlertmanagerPayload, GenericAlert
from domain.routing import Matcher, Router
from tests.conftest import serve_api

ROOT = Path(__file__).parent.parent
ROUTER = load_config(ROOT / "config/example.yaml").routing.router()
NOW = datetime(2026, 11, 23, tzinfo=UTC)

text = st.text(max_size=400)
labels = st.dictionaries(st.text(min_size=1, max_size=60), text, max_size=60)
alert = st.fixed_dictionaries({"status": st.sampled_from(["firing", "resolved"]), "labels": labels,
                               "annotations": st.dictionaries(st.text(max_size=20), text, max_size=5)},
                              optional={"fingerprint": st.text(max_size=40), "startsAt": st.just("2026-11-23T05:00:00Z"),
                                        "endsAt": st.just("0001-01-01T00:00:00Z")})
payload = st.fixed_dictionaries({"status": st.sampled_from(["firing", "resolved"]),
                                 "receiver": st.text(min_size=1, max_size=50),
                                 "groupKey": st.text(min_size=1, max_size=300),
                                 "alerts": st.lists(alert, min_size=1, max_size=8)},
                                optional={"commonLabels": labels, "commonAnnotations": labels, "version": st.just("4")})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload)
def test_alertmanager_parser_is_total_and_bounded(data: dict[str, Any]) -> None:
    batch = ingest.from_alertmanager(AlertmanagerPayload.model_validate(data), ROUTER, NOW)
    assert 1 <= len(batch.title) <= 200 and batch.route.action in ("open", "annotate", "drop")
    assert len(batch.alerts) == len(data["alerts"])
    for signal in batch.alerts:
        assert signal.fingerprint and len(signal.labels) <= ingest.MAX_LABELS
        assert all(len(v) <= ingest.MAX_LABEL_VALUE for v in signal.labels.values())
    assert re.fullmatch(r"alertgroup-[0-9a-f]{32}", ingest.group_workflow_id(batch.group_key))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["title", "service", "severity", "dedup_key", "status", "labels", "x"]),
                       st.one_of(text, st.integers(), st.none(), labels), max_size=6))
def test_generic_alert_is_valid_or_rejected_by_name(data: dict[str, Any]) -> None:
    try:
        alert_ = GenericAlert.model_validate(data)
    except ValidationError as exc:
        assert all(err["loc"] or err["type"] for err in exc.errors())
        return
    batch = ingest.from_generic(alert_, ROUTER, NOW)
    assert batch.group_key.startswith("generic|") and len(batch.alerts) == 1


@given(st.text(max_size=80))
def test_matchers_parse_or_explain(spec: str) -> None:
    try:
        matcher = Matcher.parse(spec)
    except ValueError as exc:
        assert "matcher" in str(exc)
        return
    assert isinstance(matcher.matches({"a": "b"}), bool)


def test_router_picks_the_most_severe_open_decision() -> None:
    router = Router()
    decision = router.route([({"severity": "warning"}, "firing"), ({"severity": "page"}, "firing")])  # type: ignore[list-item]
    assert decision.severity.value == "SEV1"
    assert router.route_one({"severity": "critical", "incident_severity": "sev4"}).severity.value == "SEV4"
    assert router.route_one({"severity": "critical", "incident_severity": "bogus"}).severity.value == "SEV2"


FUZZ_TOKEN = "fuzz-token-not-a-secret"


@pytest.fixture
async def live_api(fresh_dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[str]:
    """The example config plus one named token (alice; read, write, approve; no act-as), so a generated
    `by` naming someone else meets the 403 the spec documents, and a missing one acts as alice."""
    token = {"name": "fuzz", "person": "alice", "scopes": ["read", "write", "approve"], "hash": hash_token(FUZZ_TOKEN)}
    config = load_config(ROOT / "config/example.yaml").model_copy(update={"api_tokens": [ApiToken(**token)]})
    async with serve_api(fresh_dev_env, config=config, data_dir=tmp_path) as url:  # a server of its own: a
        yield url  # fuzz run's hundreds of incidents never load the session server the other tests share


async def test_schemathesis_finds_no_server_error(live_api: str, tmp_path: Path) -> None:
    """Every answer is documented (status_code_conformance) and none is a 5xx but a documented 503."""
    cli = Path(sys.executable).parent / "schemathesis"
    proc = await asyncio.create_subprocess_exec(
        str(cli), "run", f"{live_api}/openapi.json", "--checks", "not_a_server_error,status_code_conformance",
        "--header", f"Authorization: Bearer {FUZZ_TOKEN}",
        "--max-examples", os.environ.get("INCIDENTFLOW_FUZZ_EXAMPLES", "25"), "--generation-deterministic",
        "--request-timeout", "30", "--suppress-health-check", "all",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 400)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
