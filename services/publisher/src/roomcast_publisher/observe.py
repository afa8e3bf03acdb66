"""Request counting, and the trace context of records when spans are not exported
(server spans come from roomcast_core.telemetry)."""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from roomcast_core.api import Handler
from roomcast_core.telemetry import tracing_disabled
from roomcast_publisher.metrics import PublisherMetrics


def route_of(request: web.Request) -> str:
    """The route template, so label values stay few ("unmatched" otherwise)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def request_counter(
    metrics: PublisherMetrics, spanless: SpanlessTrace | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Counts requests; with `spanless`, also picks the records' trace context (one
    middleware for both: each layer costs a coroutine per request)."""
    # The labelled child per (route, status), looked up once: labels() costs more than inc().
    children: dict[tuple[str, int], Any] = {}

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if spanless is not None:
            spanless.enter(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            key = (route_of(request), status)
            child = children.get(key)
            if child is None:
                child = children[key] = metrics.requests.labels(endpoint=key[0], status=str(status))
            child.inc()

    return count


# ---- trace context without spans -------------------------------------------------
# Without an exporter nobody sees the publisher's spans, yet they cost about a third of a
# single-message request. Then no span is made: the record carries the caller's trace id
# (or a new one) under an id of its own, as an unexported producer span would have.

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_TRACESTATE_MAX = 512
_NO_HEADERS: list[tuple[str, bytes]] = []
# The trace headers for the records of the request being handled. Set on every request:
# a keep-alive connection handles its requests in one task, so one context.
_RECORD_TRACE: ContextVar[list[tuple[str, bytes]]] = ContextVar("record_trace", default=_NO_HEADERS)


def tracing_exported(environ: Mapping[str, str]) -> bool:
    """Whether spans leave the process (the rule setup_tracing applies)."""
    if tracing_disabled(environ):
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return exporters == "otlp" or (not exporters and bool(endpoint))


class SpanlessTrace:
    """The trace context records get when spans are not exported. `fresh_roots`: a
    request without a caller's context starts a trace (the SDK on), or carries none
    (the SDK disabled: no span, no context, as OpenTelemetry's no-op API does)."""

    def __init__(self, *, fresh_roots: bool) -> None:
        self._fresh_roots = fresh_roots

    def enter(self, request: web.Request) -> None:
        headers = request.headers
        parent = headers.get("traceparent")
        match = _TRACEPARENT.fullmatch(parent) if parent is not None else None
        if match is not None and _valid(match):
            version, trace_id, _, flags = match.groups()
            value = f"{version}-{trace_id}-{_new_id(64):016x}-{flags}"
            record = [("traceparent", value.encode())]
            state = headers.get("tracestate")
            if state and state.isascii() and len(state) <= _TRACESTATE_MAX:
                record.append(("tracestate", state.encode()))
            _RECORD_TRACE.set(record)
        elif self._fresh_roots:
            root = f"00-{_new_id(128):032x}-{_new_id(64):016x}-01"
            _RECORD_TRACE.set([("traceparent", root.encode())])
        else:
            _RECORD_TRACE.set(_NO_HEADERS)


def _new_id(bits: int) -> int:
    """A non-zero random id, as OpenTelemetry's SDK draws them (not a secret: no syscall)."""
    return random.getrandbits(bits) or 1


def _valid(match: re.Match[str]) -> bool:
    version, trace_id, span_id, _ = match.groups()
    return version != "ff" and trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN


def record_trace() -> list[tuple[str, bytes]]:
    """The trace headers SpanlessTrace chose for the current request's records."""
    return _RECORD_TRACE.get()
