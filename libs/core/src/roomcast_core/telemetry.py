"""OpenTelemetry set-up from the standard OTEL_* variables.

Spans are always created (so logs can carry trace ids); they are exported only
when an OTLP endpoint or exporter is named, so a laptop without a collector pays
nothing and never sees connection errors. A bad endpoint never blocks a service:
export happens on the batch processor's own thread.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger(__name__)

INSTANCE_ID = str(uuid.uuid4())
# At shutdown, buffered spans get this long to reach the collector.
FLUSH_SECONDS = 3.0


def tracing_disabled(environ: Mapping[str, str]) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporters == "none" or (not exporters and not endpoint):
        return None
    if exporters and exporters != "otlp":
        log.warning(
            "unsupported OTEL_TRACES_EXPORTER, tracing export is off", extra={"value": exporters}
        )
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def setup_tracing(
    service_name: str, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """Install the global tracer provider for this process; None when the SDK is disabled."""
    env = os.environ if environ is None else environ
    if tracing_disabled(env):
        return None
    resource = Resource.create(
        {
            "service.name": env.get("OTEL_SERVICE_NAME") or service_name,
            "service.instance.id": INSTANCE_ID,
        }
    )
    # Shutdown is ours (bounded, in telemetry_ctx); an atexit flush could hang on a dead collector.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = _exporter(env)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing(provider: TracerProvider, within: float = FLUSH_SECONDS) -> None:
    """Flush what is buffered, but never wait longer than `within` for the collector."""
    flusher = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    flusher.start()
    flusher.join(within)
    if flusher.is_alive():
        log.warning("tracing flush did not finish; spans may be lost", extra={"seconds": within})


def telemetry_ctx(service_name: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """cleanup_ctx entry: tracing up before everything else, flushed after everything else."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        provider = setup_tracing(service_name)
        yield
        if provider is not None:
            shutdown_tracing(provider)

    return ctx


# ---- HTTP server spans ---------------------------------------------------------

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNTRACED = frozenset({"/health", "/livez", "/readyz", "/metrics"})


class _AsciiHeaders(Getter[Mapping[str, str]]):
    """Trace context headers are ASCII (W3C). Other bytes reach us as surrogate escapes,
    which the propagators cannot encode (a 500 from baggage's length check), so such a
    header counts as absent."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value is not None and value.isascii() else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


_ASCII_HEADERS = _AsciiHeaders()


def _route_of(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else request.path


@web.middleware
async def tracing_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """A SERVER span per request, continuing the caller's W3C trace context.

    Probes and scrapes are left out: they would drown the traces that matter.
    """
    if request.path in _UNTRACED:
        return await handler(request)
    route = _route_of(request)
    tracer = trace.get_tracer("roomcast.http")
    parent = propagate.extract(request.headers, getter=_ASCII_HEADERS)
    with tracer.start_as_current_span(
        f"{request.method} {route}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "http.route": route,
            "url.path": request.path,
            "server.port": request.url.port or 0,
        },
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            if exc.status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(trace.StatusCode.ERROR)
        return response
