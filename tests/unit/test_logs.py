from __future__ import annotations

import json
import logging
import sys

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


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJlLWJ5dGVz"


def test_tokens_are_redacted_from_message_extras_and_exceptions() -> None:
    try:
        raise ValueError(f"bad line b'GET /ws?token={JWT}&roomIds=1 HTTP/1.x'")
    except ValueError:
        record = _record(
            "refused %s",
            request="GET /ws?access_token=not-a-jwt-but-secret&x=1",
            header=f"Bearer {JWT}",
        )
        record.args = ("Authorization: Bearer api-key-123",)
        record.exc_info = sys.exc_info()
    for formatter in (JsonFormatter("edge"), TextFormatter("edge")):
        line = formatter.format(record)
        for secret in (JWT, JWT.split(".")[1], "not-a-jwt-but-secret", "api-key-123"):
            assert secret not in line, (type(formatter).__name__, line)
        assert "[redacted]" in line
        assert "roomIds=1" in line  # only the credentials go
    entry = json.loads(JsonFormatter("edge").format(record))
    assert entry["request"] == "GET /ws?access_token=[redacted]&x=1"


def test_redaction_ignores_case() -> None:
    record = _record("GET /ws?TOKEN=abc&Access_Token=def AUTHORIZATION: BEARER ghi")
    line = TextFormatter("edge").format(record)
    assert not any(secret in line for secret in ("abc", "def", "ghi")), line


def test_lines_without_credentials_are_left_alone() -> None:
    record = _record("joined room %s at offset %d", partition=2)
    record.args = ("1001", 42)
    assert TextFormatter("edge").format(record).endswith("joined room 1001 at offset 42")
