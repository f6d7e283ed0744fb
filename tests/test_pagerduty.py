"""PagerDuty and webhook pagers against real HTTP fakes; PagerDuty v3 webhook verification and parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.errors import NON_RETRYABLE_TYPES, classify_http, parse_retry_after
from activities.pagerduty import PagerDutyPager, pd_dedup_key
from activities.webhook_pager import WebhookPager
from domain.models import Severity
from domain.models.paging import PageRequest, PageResult
from domain.pagerduty_webhook import InvalidPagerDutyEvent, parse_event, sign, verify_signature
from tests.fakes.pagerduty import FakePagerDuty, FakeWebhookReceiver


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def page(action: str = "trigger", **overrides: object) -> PageRequest:
    fields: dict[str, object] = dict(
        incident_id="INC-42", dedup_key="INC-42:alice", target="alice", level=1,
        reason="L1 primary of checkout",
        summary="[SEV2] Checkout failing", severity=Severity.SEV2, service="checkout", action=action,
        incident_url="https://incidentflow.example/incidents/INC-42")
    return PageRequest.model_validate({**fields, **overrides})


async def rejected(pager: PagerDutyPager | WebhookPager, request: PageRequest) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        await pager.send(request)
    return info.value


async def test_trigger_acknowledge_resolve(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    key = pd.routing_key()
    pager = PagerDutyPager(http, pd.url, {"checkout": SecretStr(key)})
    result = await pager.send(page())
    assert result == PageResult(channel="pagerduty", detail="success: Event processed")
    [incident] = pd.incidents
    assert (incident.routing_key, incident.dedup_key, incident.status) == (key, "INC-42:alice", "triggered")
    assert (incident.severity, incident.summary) == ("error", "[SEV2] Checkout failing")
    sent = pd.requests[0].json
    assert sent["payload"]["source"] == "incidentflow" and sent["payload"]["component"] == "checkout"
    assert sent["payload"]["custom_details"] == {"incident_id": "INC-42", "target": "alice", "level": 1,
                                                 "reason": "L1 primary of checkout", "service": "checkout"}
    assert sent["links"] == [{"href": "https://incidentflow.example/incidents/INC-42",
                              "text": "Incident INC-42 (Temporal UI)"}]
    assert sent["client"] == "incidentflow" and sent["client_url"] == "https://incidentflow.example/incidents/INC-42"
    await pager.send(page("acknowledge"))
    assert incident.status == "acknowledged"
    await pager.send(page("resolve"))
    assert incident.status == "resolved" and len(pd.incidents) == 1
    assert pd.requests[2].json == {"routing_key": key, "event_action": "resolve", "dedup_key": "INC-42:alice"}


@pytest.mark.parametrize(("severity", "expected"), [(Severity.SEV1, "critical"), (Severity.SEV2, "error"),
                                                    (Severity.SEV3, "warning"), (Severity.SEV4, "info")])
async def test_severity_mapping(pd: FakePagerDuty, http: httpx.AsyncClient, severity: Severity,
                                expected: str) -> None:
    await PagerDutyPager(http, pd.url, default_routing_key=pd.routing_key()).send(page(severity=severity))
    assert pd.incidents[0].severity == expected


async def test_retries_of_the_same_page_never_open_a_second_incident(pd: FakePagerDuty,
                                                                     http: httpx.AsyncClient) -> None:
    pager = PagerDutyPager(http, pd.url, {"checkout": pd.routing_key()})
    pd.fail_next(1, status=500)
    await rejected(pager, page())  # PagerDuty may or may not have enqueued it: the retry must be safe
    for _ in range(3):
        await pager.send(page())
    assert len(pd.incidents) == 1 and len(pd.incidents[0].events) == 3
    await pager.send(page(dedup_key="INC-42:bob", target="bob"))  # another target is another page
    assert len(pd.incidents) == 2


async def test_trigger_after_resolve_opens_a_new_incident(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    pager = PagerDutyPager(http, pd.url, default_routing_key=pd.routing_key())
    for action in ("trigger", "resolve", "acknowledge", "trigger"):
        await pager.send(page(action))
    assert [i.status for i in pd.incidents] == ["resolved", "triggered"]


async def test_429_is_retryable_after_retry_after(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    pd.fail_next(1, status=429, retry_after=7)
    err = await rejected(PagerDutyPager(http, pd.url, default_routing_key=pd.routing_key()), page())
    assert (err.type, err.non_retryable) == ("VendorRateLimited", False)
    assert err.next_retry_delay == timedelta(seconds=7)
    assert "PagerDuty" in err.message and "429" in err.message and "throttle event" in err.message


async def test_5xx_is_retryable(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    pd.fail_every(2, status=503)
    pager = PagerDutyPager(http, pd.url, default_routing_key=pd.routing_key())
    await pager.send(page())
    err = await rejected(pager, page())
    assert (err.type, err.non_retryable, err.next_retry_delay) == ("VendorUnavailable", False, None)
    await pager.send(page())
    assert [r.status for r in pd.requests] == [202, 503, 202] and len(pd.incidents) == 1


async def test_400_is_not_retryable_and_hides_the_routing_key(pd: FakePagerDuty,
                                                              http: httpx.AsyncClient) -> None:
    bad_key = "R0UT1NGKEY-too-short"
    err = await rejected(PagerDutyPager(http, pd.url, {"checkout": SecretStr(bad_key)}), page())
    assert (err.type, err.non_retryable) == ("VendorRejected", True)
    assert "400" in err.message and "Length of 'routing_key' is incorrect" in err.message
    assert bad_key not in err.message and bad_key not in str(err)


async def test_vendor_echo_of_the_key_is_redacted() -> None:
    key = "k" * 32

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "invalid event", "message": request.content.decode()})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        pager = PagerDutyPager(client, "https://pd.test/v2/enqueue", default_routing_key=key)
        err = await rejected(pager, page())
    assert key not in err.message and "[redacted]" in err.message


async def test_missing_routing_key_is_not_retryable(pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    pager = PagerDutyPager(http, pd.url, {"payments": pd.routing_key()})
    err = await rejected(pager, page())
    assert (err.type, err.non_retryable) == ("VendorNotConfigured", True)
    assert "no PagerDuty routing key for service checkout" in err.message and pd.requests == []


async def test_transport_errors_are_retryable(http: httpx.AsyncClient) -> None:
    with FakePagerDuty() as gone:
        url = gone.url
    err = await rejected(PagerDutyPager(http, url, default_routing_key="k" * 32), page())
    assert (err.type, err.non_retryable) == ("VendorUnavailable", False)
    assert "could not be reached" in err.message

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        err = await rejected(PagerDutyPager(client, url, default_routing_key="k" * 32), page())
    assert (err.type, err.non_retryable) == ("VendorUnavailable", False) and "timed out" in err.message


async def test_long_summary_and_dedup_key_fit_pagerduty_limits(pd: FakePagerDuty,
                                                               http: httpx.AsyncClient) -> None:
    long_key = "INC-42:" + "x" * 400
    pager = PagerDutyPager(http, pd.url, default_routing_key=pd.routing_key())
    await pager.send(page(summary="s" * 5000, dedup_key=long_key))
    await pager.send(page(summary="s" * 5000, dedup_key=long_key))
    [incident] = pd.incidents
    assert len(incident.summary) == 1024 and incident.dedup_key == pd_dedup_key(long_key)
    assert len(incident.dedup_key) == 255


def test_classify_http_and_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == timedelta(seconds=30)
    assert parse_retry_after("86400") == timedelta(minutes=10)  # capped
    assert parse_retry_after("soon") is None and parse_retry_after("-3") is None
    assert parse_retry_after(None) is None and parse_retry_after("") is None
    for status, kind, final in [(429, "VendorRateLimited", False), (500, "VendorUnavailable", False),
                                (502, "VendorUnavailable", False), (408, "VendorUnavailable", False),
                                (400, "VendorRejected", True), (401, "VendorRejected", True),
                                (403, "VendorRejected", True), (404, "VendorRejected", True),
                                (422, "VendorRejected", True)]:
        err = classify_http(status, None, "Acme", "nope")
        assert (err.type, err.non_retryable) == (kind, final) and f"{status}" in err.message
        assert "Acme" in err.message and "nope" in err.message


def test_fake_validates_like_pagerduty(pd: FakePagerDuty) -> None:
    key = pd.routing_key()
    trigger = {"summary": "x", "source": "y", "severity": "error"}
    cases = [({"event_action": "trigger", "payload": trigger}, "'routing_key' is missing or blank"),
             ({"routing_key": key, "event_action": "poke", "payload": trigger}, "'event_action'"),
             ({"routing_key": key, "event_action": "trigger"}, "'payload' is missing or blank"),
             ({"routing_key": key, "event_action": "trigger",
               "payload": {"summary": "x", "severity": "error"}},
              "'payload.source' is missing or blank"),
             ({"routing_key": key, "event_action": "trigger", "payload": {**trigger, "severity": "sev1"}},
              "'payload.severity' is invalid"),
             ({"routing_key": key, "event_action": "resolve"}, "'dedup_key' is missing or blank")]
    with httpx.Client() as client:  # the fake serves sync callers too
        for body, error in cases:
            response = client.post(pd.url, json=body)
            assert response.status_code == 400, body
            answer = response.json()
            assert answer["status"] == "invalid event" and any(error in e for e in answer["errors"])
        ok = client.post(pd.url, json={"routing_key": key, "event_action": "trigger", "payload": trigger})
    assert ok.status_code == 202 and ok.json()["dedup_key"] and len(pd.incidents) == 1


class _PagingActivities:
    def __init__(self, pager: PagerDutyPager) -> None:
        self._pager = pager
        self.attempts: list[int] = []

    @activity.defn
    async def page_responder(self, request: PageRequest) -> PageResult:
        self.attempts.append(activity.info().attempt)
        return await self._pager.send(request)


@workflow.defn(sandboxed=False)  # a test double: no sandbox re-imports of this module
class _PageWorkflow:
    @workflow.run
    async def run(self, request: PageRequest) -> PageResult:
        return await workflow.execute_activity_method(
            _PagingActivities.page_responder, request, start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5,
                                     non_retryable_error_types=list(NON_RETRYABLE_TYPES)))


@pytest.fixture(params=["ts_env", "dev_env"])
def temporal(request: pytest.FixtureRequest) -> tuple[str, WorkflowEnvironment]:
    """Time-skipping, and the dev server too: only real time shows Retry-After being honoured."""
    return request.param, request.getfixturevalue(request.param)


async def test_activity_retries_through_429_and_opens_one_incident(
        temporal: tuple[str, WorkflowEnvironment], pd: FakePagerDuty, http: httpx.AsyncClient) -> None:
    server, env = temporal
    activities = _PagingActivities(PagerDutyPager(http, pd.url, {"checkout": pd.routing_key()}))
    pd.fail_next(2, status=429, retry_after=1)
    queue = f"pd-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[_PageWorkflow],
                      activities=[activities.page_responder]):
        result = await env.client.execute_workflow(
            _PageWorkflow.run, page(), id=f"page-{uuid.uuid4().hex[:8]}", task_queue=queue,
            execution_timeout=timedelta(minutes=2))
    assert result.channel == "pagerduty" and activities.attempts == [1, 2, 3]
    assert [r.status for r in pd.requests] == [429, 429, 202] and len(pd.incidents) == 1
    if server == "dev_env":  # next_retry_delay (1 s) overrides the policy's 100 ms interval
        gaps = [b.at - a.at for a, b in zip(pd.requests, pd.requests[1:])]
        assert all(0.9 <= gap < 5 for gap in gaps), gaps


async def test_webhook_pager_signs_and_carries_an_idempotency_key(http: httpx.AsyncClient) -> None:
    secret = "whsec-" + uuid.uuid4().hex
    with FakeWebhookReceiver() as hook:
        result = await WebhookPager(http, hook.url, SecretStr(secret)).send(page())
        await WebhookPager(http, hook.url, None).send(page("resolve"))
        hook.status = 503
        retry = await rejected(WebhookPager(http, hook.url, SecretStr(secret)), page())
        hook.status = 400
        final = await rejected(WebhookPager(http, hook.url, SecretStr(secret)), page())
    assert result == PageResult(channel="webhook", detail="HTTP 200")
    signed, unsigned = hook.requests[0], hook.requests[1]
    expected = "sha256=" + hmac.new(secret.encode(), signed.raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed.headers["x-incidentflow-signature"], expected)
    assert signed.headers["idempotency-key"] == "INC-42:alice:trigger"
    assert abs(int(signed.headers["x-incidentflow-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    assert PageRequest.model_validate_json(signed.raw) == page()
    assert "x-incidentflow-signature" not in unsigned.headers
    assert unsigned.headers["idempotency-key"] == "INC-42:alice:resolve"
    assert (retry.type, retry.non_retryable) == ("VendorUnavailable", False)
    assert (final.type, final.non_retryable) == ("VendorRejected", True) and secret not in final.message


def _pd_webhook(event_type: str, agent: dict[str, str] | None = None) -> bytes:
    return json.dumps({"event": {
        "id": "01DEN4HPBQAAAG05V5QQYBRZMF", "event_type": event_type, "resource_type": "incident",
        "occurred_at": "2020-10-02T18:45:22.169Z", "agent": agent, "client": None,
        "data": {"id": "PGR0VU2", "type": "incident", "number": 2, "status": event_type.split(".")[-1],
                 "incident_key": "INC-42:alice", "title": "[SEV2] Checkout failing",
                 "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2"}}}).encode()


def test_pagerduty_webhook_signatures() -> None:
    body, old, new = _pd_webhook("incident.acknowledged"), "old-secret", "new-secret"
    valid = "v1=" + hmac.new(new.encode(), body, hashlib.sha256).hexdigest()
    assert sign(body, new) == valid
    assert verify_signature(body, valid, [new])
    assert verify_signature(body, f"{sign(body, 'their-other')},{valid}", [new])  # PagerDuty rotating
    assert verify_signature(body, sign(body, old), [new, old])  # us rotating
    assert not verify_signature(body, "v1=" + "0" * 64, [new])  # forged
    assert not verify_signature(body + b" ", valid, [new])  # body altered
    assert not verify_signature(body, valid.replace("v1=", "v0="), [new])  # unknown version
    assert not verify_signature(body, None, [new]) and not verify_signature(body, valid, [])


def test_parse_pagerduty_events() -> None:
    agent = {"id": "PLH1HKV", "summary": "Alice Doe", "type": "user_reference"}
    ack = parse_event(_pd_webhook("incident.acknowledged", agent))
    assert ack is not None and ack.action == "acknowledge"
    assert (ack.incident_id, ack.incident_key, ack.status) == ("PGR0VU2", "INC-42:alice", "acknowledged")
    assert (ack.agent_name, ack.agent_type, ack.incident_number) == ("Alice Doe", "user_reference", 2)
    resolved = parse_event(_pd_webhook("incident.resolved"))
    assert resolved is not None and resolved.action == "resolve" and resolved.agent_name is None
    for ignored in ("incident.triggered", "incident.unacknowledged", "incident.annotated", "pagey.ping",
                    "service.updated"):
        assert parse_event(_pd_webhook(ignored)) is None
    for bad in (b"not json", b"[]", b'{"messages": []}', json.dumps({"event": {
            "event_type": "incident.resolved", "data": {}}}).encode()):
        with pytest.raises(InvalidPagerDutyEvent):
            parse_event(bad)
