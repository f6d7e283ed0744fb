"""OpenTelemetry: one trace follows an alert from the webhook to the page (the real API over HTTP, a real
worker, the dev server; spans caught by an in-memory exporter). Tracing is off, and imports nothing, unless
the standard OTEL_* variables ask for it; the OTLP exporter they configure really sends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.paging import LogPager
from domain.config import IncidentflowConfig, Settings
from incidentflow import tracing
from incidentflow.api import create_app
from incidentflow.client import connect
from tests.conftest import running_worker
from tests.helpers import eventually, uvicorn_serving
from tests.test_api_ingest import am_payload

ROOT = Path(__file__).parent.parent
WEBHOOK = "/v1/alerts/alertmanager"
AUTH = {"Authorization": "Bearer am"}
CONFIG = IncidentflowConfig.model_validate({
    "people": [{"id": "pat", "name": "Pat", "notify": ["log"]}],
    "escalation_policies": [{"name": "default", "levels": [{"wait": "15m", "targets": [{"person": "pat"}]}]}],
})
HTTP_SPAN = f"POST {WEBHOOK}"
SIGNAL_WITH_START = "SignalWithStartWorkflow:AlertGroupWorkflow"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, into memory (what `setup_tracing` does with the OTLP exporter)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


@pytest.fixture
async def traced_api(dev_env: WorkflowEnvironment, spans: InMemorySpanExporter) -> AsyncIterator[tuple[str, LogPager]]:
    """The API on a client connected with the tracing interceptor (as `connect` does when tracing is on); a
    worker on the plain client, given the interceptor through build_worker's `interceptors`."""
    target = dev_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace=dev_env.client.namespace, data_converter=pydantic_data_converter,
                                  interceptors=tracing.client_interceptors())
    assert tracing.worker_interceptors(client) == [], "a worker on the traced client inherits its interceptor"
    pager = LogPager()
    async with running_worker(dev_env.client, config=lambda: CONFIG, pagers={"log": pager},
                              interceptors=tracing.worker_interceptors(dev_env.client)) as (settings, _):
        settings = Settings.model_validate({**settings.model_dump(), "alertmanager_token": "am"})
        async with uvicorn_serving(create_app(settings, client, CONFIG)) as port:
            yield f"http://127.0.0.1:{port}", pager


async def _value(value: Any) -> Any:
    return value


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {len(found)} spans\n{_tree(spans)}"
    return found[0]


def _parent(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


def _chain(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """The span's name and its ancestors' up to the root."""
    names: list[str] = []
    current: ReadableSpan | None = span
    while current is not None:
        names.append(current.name)
        current = _parent(current, spans)
    return names


def _tree(spans: list[ReadableSpan]) -> str:
    return "\n".join(f"{s.context.trace_id:032x} {' <- '.join(_chain(s, spans))}" for s in spans)


async def test_one_trace_follows_an_alert_from_the_webhook_to_the_page(
        traced_api: tuple[str, LogPager], spans: InMemorySpanExporter) -> None:
    url, pager = traced_api
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.post(WEBHOOK, json=am_payload(f"tr-{uuid.uuid4().hex[:6]}"), headers=AUTH)
        assert resp.status_code == 202, resp.text
        await eventually(lambda: _value(pager.sent), lambda sent: len(sent) == 1)
        got = list(await eventually(lambda: _value(spans.get_finished_spans()),
                                    lambda got: any(s.name == "RunActivity:escalate_level" for s in got)))
    server = _one(got, HTTP_SPAN)
    assert server.kind == SpanKind.SERVER and server.parent is None and server.attributes is not None
    assert server.attributes["http.route"] == WEBHOOK and server.attributes["http.status_code"] == 202
    assert _one(got, SIGNAL_WITH_START).kind == SpanKind.CLIENT
    # the page: a step of the escalation inside the incident (code level 3)
    page = _one(got, "RunActivity:escalate_level")
    assert _chain(page, got) == ["RunActivity:escalate_level", "StartActivity:escalate_level",
                                 "StartChildWorkflow:IncidentWorkflow", SIGNAL_WITH_START, HTTP_SPAN], _tree(got)
    for workflow, started_by in [("AlertGroupWorkflow", SIGNAL_WITH_START),
                                 ("IncidentWorkflow", "StartChildWorkflow:IncidentWorkflow")]:
        run = _one(got, f"RunWorkflow:{workflow}")
        assert _chain(run, got)[1] == started_by, _tree(got)
    incident = _one(got, "RunWorkflow:IncidentWorkflow")
    assert page.attributes is not None and incident.attributes is not None
    assert page.attributes["temporalWorkflowID"] == incident.attributes["temporalWorkflowID"]
    assert {s.context.trace_id for s in got} == {server.context.trace_id}, \
        f"every span the alert caused is in the webhook's trace:\n{_tree(got)}"


async def test_a_later_alert_of_the_group_is_linked_from_the_groups_trace(
        traced_api: tuple[str, LogPager], spans: InMemorySpanExporter) -> None:
    """The alert group lives on: what it does for a later notification continues the trace that started it
    (the workflow's context comes from its start headers), and its signal span links the later request."""
    url, pager = traced_api
    svc = f"tr-{uuid.uuid4().hex[:6]}"
    later = am_payload(svc)
    for alert in later["alerts"]:
        alert["fingerprint"] += "-later"
        alert["labels"]["instance"] = "web-9"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.post(WEBHOOK, json=am_payload(svc), headers=AUTH)).status_code == 202
        await eventually(lambda: _value(pager.sent), lambda sent: len(sent) == 1)
        first = len(spans.get_finished_spans())
        assert (await http.post(WEBHOOK, json=later, headers=AUTH)).status_code == 202
        got = list(await eventually(
            lambda: _value(spans.get_finished_spans()[first:]),
            lambda got: [s.name for s in got].count("HandleSignal:alerts") == 2))  # the group's, the incident's
    request, call = _one(got, HTTP_SPAN), _one(got, SIGNAL_WITH_START)
    assert _parent(call, got) is request
    group_trace = spans.get_finished_spans()[0].context.trace_id
    handled = [s for s in got if s.name == "HandleSignal:alerts"]
    assert {s.context.trace_id for s in handled} == {group_trace} != {request.context.trace_id}
    assert any(link.context.span_id == call.context.span_id for s in handled for link in s.links), \
        f"the group's signal span links the request that sent it:\n{_tree(got)}"


async def test_probes_and_scrapes_send_no_trace(traced_api: tuple[str, LogPager],
                                                spans: InMemorySpanExporter) -> None:
    url, _ = traced_api
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for path in ("/healthz", "/metrics", "/readyz"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/v1/alert-groups/nope")).status_code in (401, 404)
    names = [s.name for s in spans.get_finished_spans()]
    assert names == ["GET /v1/alert-groups/{group_id}"], \
        "no span for /healthz, /metrics, or /readyz and the PingWorkflow it starts; other routes are traced"


async def test_connect_adds_no_interceptor_while_tracing_is_off(dev_env: WorkflowEnvironment) -> None:
    client = await connect(Settings(temporal_address=dev_env.client.service_client.config.target_host))
    assert [type(i).__name__ for i in client.config()["interceptors"]] == ["QueryRetry"]  # workers/query_guard.py


async def test_connect_traces_when_tracing_is_on(dev_env: WorkflowEnvironment, spans: InMemorySpanExporter) -> None:
    """The one door into Temporal carries the interceptor: the API's client and the worker's (which inherits it)."""
    client = await connect(Settings(temporal_address=dev_env.client.service_client.config.target_host))
    assert [type(i).__name__ for i in client.config()["interceptors"]] == ["QueryRetry", "TracingInterceptor"]
    assert tracing.worker_interceptors(client) == []


def test_tracing_is_off_and_imports_nothing_by_default() -> None:
    """Unset, `none` or OTEL_SDK_DISABLED: no provider, no interceptor, and no opentelemetry module loaded
    (one fresh interpreter: the CLI's lazy imports hold)."""
    probe = """
import json, os, sys
from incidentflow import tracing
import incidentflow.client
offs = []
for extra in ({}, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
              {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}):
    os.environ.update(extra)
    offs.append(tracing.setup_tracing("x") is None and tracing.client_interceptors() == []
                and tracing.worker_interceptors() == [])
    with tracing.untraced():
        pass
    for key in extra:
        del os.environ[key]
print(json.dumps([offs, sorted(m for m in sys.modules if "opentelemetry" in m)]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    run = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    assert json.loads(run.stdout) == [[True, True, True], []], run.stdout


@pytest.mark.parametrize(("env", "expected"), [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp_proto_http"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp_proto_http"]),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["otlp_proto_grpc"]),
    ({"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["otlp_proto_http", "console"]),
    ({"OTEL_TRACES_EXPORTER": "None", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
    ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}, []),
])
def test_the_standard_variables_choose_the_exporters(env: dict[str, str], expected: list[str]) -> None:
    assert tracing.exporter_names(env) == expected


def test_a_bad_protocol_or_a_missing_exporter_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL: unsupported OTLP protocol 'http/json'"):
        tracing.exporter_names({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    with pytest.raises(ValueError, match="no span exporter 'zipkin_json' is installed"):
        tracing._load_exporter("zipkin_json")


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps each export request (path, content type, protobuf body)."""

    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("env", [{}, {"OTEL_SERVICE_NAME": "incidentflow-eu"}], ids=["default-name", "env-name"])
def test_otlp_endpoint_receives_the_spans(env: dict[str, str]) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    probe = ("from incidentflow import tracing\nfrom opentelemetry import trace\n"
             "provider = tracing.setup_tracing('incidentflow-api')\n"
             "assert tracing.setup_tracing('other') is provider and trace.get_tracer_provider() is provider\n"
             "assert len(tracing.client_interceptors()) == 1\n"
             "with trace.get_tracer('t').start_as_current_span('hello'):\n    pass\nprovider.shutdown()\n")
    try:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        run_env = clean | {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"} | env
        subprocess.run([sys.executable, "-c", probe], env=run_env, cwd=ROOT, timeout=60, check=True)
    finally:
        server.shutdown()
    [(path, content_type, body)] = _Collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    [resource_spans] = ExportTraceServiceRequest.FromString(body).resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == env.get("OTEL_SERVICE_NAME", "incidentflow-api")
    assert [s.name for scope in resource_spans.scope_spans for s in scope.spans] == ["hello"]
