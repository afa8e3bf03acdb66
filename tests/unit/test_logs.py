from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from roomcast_core.logs import JsonFormatter, TextFormatter


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("roomcast.test", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_trace_ids_inside_a_span() -> None:
    tracer = TracerProvider().get_tracer("test")
    formatter = JsonFormatter("publisher")
    with tracer.start_as_current_span("work") as span:
        line = formatter.format(_record("published", partition=2))
        context = span.get_span_context()
    entry = json.loads(line)
    assert entry["msg"] == "published"
    assert entry["service"] == "publisher"
    assert entry["level"] == "info"
    assert entry["partition"] == 2
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")


def test_json_lines_outside_a_span_have_no_trace_ids() -> None:
    entry = json.loads(JsonFormatter("auth").format(_record("hello")))
    assert "trace_id" not in entry
    assert entry["ts"].endswith("Z")


def test_text_format_is_for_people() -> None:
    line = TextFormatter("edge").format(_record("ready"))
    assert "edge" in line
    assert "ready" in line
    assert not line.startswith("{")
