"""OpenTelemetry tracing: a tracer provider with service name/version, instrumentations.

Installed once per process (the global provider cannot be replaced). Spans are
exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, over ``http/protobuf`` (default) or
``grpc`` as ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``
say, following the OpenTelemetry exporter specification: the traces endpoint is
used as given, the base one gets ``/v1/traces`` appended for HTTP. The exporters
read the other standard variables (``OTEL_EXPORTER_OTLP_HEADERS``, timeouts,
certificates, ``OTEL_BSP_*``) themselves. Without an endpoint, spans are still
created, so incoming ``traceparent`` ids are continued and show up in log lines.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from auth_service.config import Settings

__all__ = ("configure_tracing", "service_version", "span_exporter")

_configured = False


def service_version() -> str:
    """The installed version of this service."""
    try:
        return version("auth-service")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def configure_tracing(settings: Settings) -> None:
    """Install the tracer provider and client instrumentations (idempotent per process)."""
    global _configured
    if _configured:
        return
    _configured = True
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": service_version()}
    )
    provider = TracerProvider(resource=resource)
    exporter = span_exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    HTTPXClientInstrumentor().instrument()
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()


def span_exporter(settings: Settings) -> SpanExporter | None:
    """The OTLP span exporter the ``OTEL_EXPORTER_OTLP_*`` settings ask for, if any."""
    base = settings.otel_exporter_otlp_endpoint
    traces = settings.otel_exporter_otlp_traces_endpoint
    if base is None and traces is None:
        return None
    protocol = settings.otel_exporter_otlp_traces_protocol or settings.otel_exporter_otlp_protocol
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        # An http:// endpoint means a plaintext channel (the exporter reads the scheme).
        return GrpcExporter(endpoint=traces or base)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if traces is None:
        assert base is not None
        traces = base.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=traces)
