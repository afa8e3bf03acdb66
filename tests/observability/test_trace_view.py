"""The harness's trace view (served by a real Jaeger) in headless Chromium.

Spans with known names, times and attributes are sent to Jaeger over OTLP by the
OpenTelemetry SDK; the page must find them by service and operation, lay them out on
a time axis and show every attribute.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, set_span_in_context
from playwright.async_api import async_playwright, expect

from roomcast_harness.jaeger import JaegerServer
from roomcast_harness.procs import wait_for

MS = 1_000_000  # nanoseconds
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    with JaegerServer(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


def _send_spans(jaeger: JaegerServer, service: str) -> str:
    """Two traces of `service`: GET /a (10 ms, with a 5 ms child) and POST /b.

    Returns the trace id of GET /a.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": "9.9.9"})
    )
    exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_http_endpoint}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("trace-view-test")
    t0 = time.time_ns()
    root = tracer.start_span("GET /a", kind=SpanKind.SERVER, start_time=t0)
    child = tracer.start_span(
        "db query",
        context=set_span_in_context(root),
        start_time=t0 + 2 * MS,
        attributes={"db.rows": 3, "db.statement": "select 1"},
    )
    child.end(end_time=t0 + 7 * MS)
    root.end(end_time=t0 + 10 * MS)
    other = tracer.start_span("POST /b", kind=SpanKind.SERVER, start_time=t0 + 20 * MS)
    other.end(end_time=t0 + 21 * MS)
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def _stored_traces(jaeger: JaegerServer, service: str) -> int:
    url = f"{jaeger.ui_url}/api/traces?service={service}&lookback=1h"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return len(json.loads(response.read())["data"] or [])
    except OSError:
        return 0


async def test_search_by_service_and_operation_then_a_trace_on_its_time_axis(
    jaeger: JaegerServer,
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    service = f"view-{uuid.uuid4().hex[:6]}"
    trace_id = _send_spans(jaeger, service)
    # Jaeger stores spans a moment after it acknowledged them.
    wait_for(lambda: _stored_traces(jaeger, service) == 2, 30, "both traces in Jaeger")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 700})
            await page.goto(f"{jaeger.ui_url}/search?service={service}")
            await expect(page.locator("#banner")).to_contain_text(
                "a small view over Jaeger's query API, not the Jaeger UI"
            )
            operations = page.locator("#search-operation option")
            await expect(operations).to_have_text(
                ["all operations", "GET /a", "POST /b", "db query"], timeout=20_000
            )
            await expect(page.locator("#found")).to_contain_text(f"2 traces of {service}")

            await page.select_option("#search-operation", "POST /b")
            await page.click("#find")
            await expect(page.locator("#found")).to_contain_text(f"1 trace of {service}: POST /b")
            rows = page.locator("#results tr")
            await expect(rows).to_have_count(2)  # the header and one trace
            await expect(rows.nth(1)).to_contain_text(f"{service}: POST /b")
            await expect(rows.nth(1)).to_contain_text("1.00 ms")
            artifacts = Path(__file__).resolve().parents[2] / "artifacts"
            artifacts.mkdir(exist_ok=True)
            await page.screenshot(path=str(artifacts / "trace-search.png"), full_page=True)

            await page.goto(f"{jaeger.ui_url}/trace/{trace_id}")
            await expect(page.locator("#span-count")).to_have_text("2 spans", timeout=20_000)
            ticks = page.locator("#axis .tick")
            await expect(ticks).to_have_text(["0 ms", "2 ms", "4 ms", "6 ms", "8 ms", "10 ms"])
            child = page.locator("#spans .span", has_text="db query")
            await expect(child.locator(".duration")).to_have_text("5.00 ms")
            # The child's bar starts a fifth of the way along the axis and fills half of it.
            bar = await child.locator(".bar").get_attribute("style")
            assert bar is not None
            assert "left: 20%" in bar
            assert "width: 50%" in bar
            await child.click()
            details = child.locator(".tags")
            await expect(details).to_be_visible()
            await expect(details).to_contain_text("db.rows = 3")
            await expect(details).to_contain_text("db.statement = select 1")
            await expect(details).to_contain_text("service.version = 9.9.9")
            await expect(details).to_contain_text("starts at +2.00 ms, lasts 5.00 ms")

            await page.screenshot(path=str(artifacts / "trace-view.png"), full_page=True)
        finally:
            await browser.close()
