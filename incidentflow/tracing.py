"""OpenTelemetry tracing, on only when the standard `OTEL_*` variables ask for it.

One trace follows an alert from the webhook to the page: the FastAPI server span of the request, the
Temporal client call it makes (signal-with-start of the alert group), then every workflow, child workflow
and activity it leads to, linked through Temporal headers by `temporalio.contrib.opentelemetry`'s
`TracingInterceptor` (on the client, which the worker built from it inherits, or on the worker).

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter (not `none`) or an OTLP endpoint is set
(`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; the exporter is then `otlp`), unless
`OTEL_SDK_DISABLED=true`. Everything else is the SDK's own env handling: the exporter reads its endpoint,
headers, timeout and certificate (`OTEL_EXPORTER_OTLP_*`), the provider its sampler (`OTEL_TRACES_SAMPLER`),
the batch processor `OTEL_BSP_*`, the resource `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.
`otlp` means OTLP over HTTP/protobuf (the exporter we ship) unless `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc`
(then install `opentelemetry-exporter-otlp-proto-grpc`); other names (`console`, …) are the SDK's exporter
plugins (entry points `opentelemetry_traces_exporter`).

Off (the default), nothing here imports opentelemetry: the CLI stays fast, and a run pays nothing.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Client
    from temporalio.client import Interceptor as ClientInterceptor
    from temporalio.worker import Interceptor as WorkerInterceptor

# Probes and scrapes would be most of the spans and tell nothing (regexes, searched in the request URL)
EXCLUDED_URLS = "/metrics$,/healthz$,/readyz$"
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
EXPORTER_PACKAGES = {"otlp_proto_http": "opentelemetry-exporter-otlp-proto-http",
                     "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc"}

_provider: TracerProvider | None = None


def exporter_names(env: os._Environ[str] | dict[str, str] = os.environ) -> list[str]:
    """The span exporters the environment asks for ([] = tracing off), as entry point names."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not names:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        names = "otlp" if endpoint else "none"
    if names.lower() == "none":
        return []
    return [_entry_point(name.strip(), env) for name in names.split(",") if name.strip()]


def _entry_point(name: str, env: os._Environ[str] | dict[str, str]) -> str:
    if name != "otlp":
        return name
    protocol = next((env[var].strip() for var in PROTOCOL_VARS if env.get(var)), "http/protobuf")
    if protocol not in OTLP_BY_PROTOCOL:
        raise ValueError(f"{PROTOCOL_VARS[1]}: unsupported OTLP protocol {protocol!r} "
                         f"(one of {', '.join(OTLP_BY_PROTOCOL)})")
    return OTLP_BY_PROTOCOL[protocol]


def setup_tracing(service_name: str) -> TracerProvider | None:
    """Configure tracing from the environment for this process (once; later calls return the same
    provider) and make it the global provider. None, and no import of opentelemetry, when tracing is off.
    `service_name` is the default `service.name` (`OTEL_SERVICE_NAME` wins)."""
    if _provider is not None:
        return _provider
    names = exporter_names()
    if not names:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from incidentflow import __version__

    resource = Resource.create({"service.name": service_name, "service.version": __version__})
    provider = TracerProvider(resource=resource.merge(OTELResourceDetector().detect()))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_load_exporter(name)()))
    trace.set_tracer_provider(provider)
    install(provider)
    return provider


def _load_exporter(name: str) -> Any:
    from importlib.metadata import entry_points

    found = list(entry_points(group="opentelemetry_traces_exporter", name=name))
    if not found:
        package = EXPORTER_PACKAGES.get(name, f"the package that provides the {name!r} span exporter")
        raise ValueError(f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed; install {package}")
    return found[0].load()


def install(provider: TracerProvider | None) -> None:
    """Use `provider` for the interceptors and the app instrumentation built from now on (None: tracing
    off). `setup_tracing` calls it; tests install a provider with an in-memory exporter."""
    global _provider
    _provider = provider


def enabled() -> bool:
    return _provider is not None


def _interceptor(provider: TracerProvider) -> Any:
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return TracingInterceptor(provider.get_tracer("incidentflow"))


def client_interceptors() -> list[ClientInterceptor]:
    """For `Client.connect(..., interceptors=…)`: `[TracingInterceptor]` when tracing is on, else []. A
    worker built on such a client traces its workflows and activities too (the SDK hands client
    interceptors that are also worker interceptors to the worker)."""
    return [_interceptor(_provider)] if _provider is not None else []


def worker_interceptors(client: Client | None = None) -> list[WorkerInterceptor]:
    """For `build_worker(..., interceptors=…)`: `[TracingInterceptor]` when tracing is on and `client` does
    not carry one already (twice would record every span twice), else []."""
    if _provider is None:
        return []
    if client is not None and any(type(i).__name__ == "TracingInterceptor"
                                  for i in client.config()["interceptors"]):
        return []
    return [_interceptor(_provider)]


@contextmanager
def untraced() -> Iterator[None]:
    """No spans within, down to the workflows it starts (readiness probes would otherwise send a trace
    every few seconds): the current context becomes a parent that is not sampled, which the default
    parent-based sampler follows here and, through the Temporal headers, in the worker."""
    if _provider is None:
        yield
        return
    from opentelemetry import context, trace

    unsampled = trace.SpanContext(trace_id=random.getrandbits(128) or 1, span_id=random.getrandbits(64) or 1,
                                  is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT))
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(unsampled)))
    try:
        yield
    finally:
        context.detach(token)


def instrument_app(app: Any) -> None:
    """Trace every request of the FastAPI `app` (a server span each, which the Temporal client calls
    continue; an incoming `traceparent` is its parent), except /metrics, /healthz and /readyz and the URLs
    `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` adds. Does nothing when tracing is off."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    excluded = ",".join(filter(None, (EXCLUDED_URLS, os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"))))
    # no span per ASGI send/receive message: one span per request, whose children are our Temporal calls
    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=excluded,
                                       exclude_spans=["receive", "send"])
