"""Trace context of records when the publisher's spans are not exported."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from roomcast_publisher.observe import SpanlessTrace, record_trace, tracing_exported

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def headers_for(trace: SpanlessTrace, headers: dict[str, str]) -> dict[str, str]:
    trace.enter(make_mocked_request("POST", "/v1/messages", headers=headers))
    return {name: value.decode() for name, value in record_trace()}


@pytest.mark.parametrize("fresh_roots", [True, False])
def test_the_callers_trace_continues_under_a_new_span_id(fresh_roots: bool) -> None:
    trace = SpanlessTrace(fresh_roots=fresh_roots)
    got = headers_for(
        trace, {"traceparent": f"00-{TRACE_ID}-{PARENT}-01", "tracestate": "vendor=1"}
    )
    version, trace_id, span_id, flags = got["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert len(span_id) == 16
    assert span_id != PARENT
    assert got["tracestate"] == "vendor=1"


@pytest.mark.parametrize(
    "parent",
    [
        None,
        "garbage",
        f"ff-{TRACE_ID}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{PARENT}-01",
    ],
)
def test_without_a_valid_parent_a_trace_starts_only_with_the_sdk_on(parent: str | None) -> None:
    headers = {} if parent is None else {"traceparent": parent}
    fresh = headers_for(SpanlessTrace(fresh_roots=True), headers)
    version, trace_id, span_id, flags = fresh["traceparent"].split("-")
    assert (version, flags, len(trace_id), len(span_id)) == ("00", "01", 32, 16)
    assert trace_id != TRACE_ID
    assert headers_for(SpanlessTrace(fresh_roots=False), headers) == {}


def test_every_request_sets_its_own_context() -> None:
    """A keep-alive connection handles its requests in one task: nothing may carry over."""
    trace = SpanlessTrace(fresh_roots=False)
    assert headers_for(trace, {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
    assert headers_for(trace, {}) == {}


@pytest.mark.parametrize(
    ("environ", "exported"),
    [
        ({}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
    ],
)
def test_spans_are_made_only_when_exported(environ: dict[str, str], exported: bool) -> None:
    assert tracing_exported(environ) is exported
