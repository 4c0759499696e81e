"""OpenTelemetry tracing: a tracer provider with service name/version, instrumentations.

Installed once per process (the global provider cannot be replaced). Spans are
exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set;
otherwise they are still created, so incoming ``traceparent`` ids are continued
and show up in log lines.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from auth_service.config import Settings

__all__ = ("configure_tracing", "service_version")

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
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)

    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    HTTPXClientInstrumentor().instrument()
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()
