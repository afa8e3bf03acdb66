"""The demo page in a real headless Chromium: connect, subscribe, see a published message."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from roomcast_client import publish
from roomcast_harness.jaeger import JaegerServer
from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def demo_stack(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(
        infra,
        tmp_path,
        edges=1,
        ROOMCAST_AUTH__CORS_ORIGINS="*",
        ROOMCAST_PUBLISHER__CORS_ORIGINS="*",
    )
    yield running
    running.stop()


async def test_demo_page_shows_a_published_message(demo_stack: Stack) -> None:
    stack = demo_stack
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    topic = f"demo-{uuid.uuid4().hex[:6]}"
    edge_url = stack.edges[0].url.replace("127.0.0.1", "localhost")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{edge_url}/demo/")
            await page.fill("#auth-url", stack.auth.url)
            await page.fill("#publisher-url", stack.publisher.url)
            await page.fill("#rooms", "")
            await page.click("#connect")
            await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
            await page.fill("#sub-topic", topic)
            await page.fill("#sub-type", "*")
            await page.click("#subscribe")
            await expect(page.locator("#last-reply")).to_have_text("subscribe: ok", timeout=20_000)

            async with aiohttp.ClientSession() as session:
                await publish(
                    session, stack.publisher.url, {"hello": "browser"}, topic=topic, type_="event"
                )
            row = page.locator("#messages tr").first
            await expect(row).to_contain_text('{"hello":"browser"}', timeout=20_000)
            await expect(row).to_contain_text(topic)
            await expect(row).to_contain_text(" ms")

            # The page's own publish form goes through the publisher too.
            await page.fill("#pub-topic", topic)
            await page.fill("#pub-payload", '{"from": "form"}')
            await page.click("#publish")
            await expect(page.locator("#publish-result")).to_contain_text(
                "published", timeout=20_000
            )
            await expect(page.locator("#messages tr").first).to_contain_text(
                '{"from":"form"}', timeout=20_000
            )

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "demo-page.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            await browser.close()


@pytest.fixture
def traced_stack(infra: Infra, tmp_path: Path) -> Iterator[tuple[Stack, JaegerServer]]:
    with JaegerServer(tmp_path / "jaeger") as jaeger:
        running = start_stack(
            infra,
            tmp_path,
            edges=1,
            ROOMCAST_AUTH__CORS_ORIGINS="*",
            ROOMCAST_PUBLISHER__CORS_ORIGINS="*",
            ROOMCAST_EDGE__TRACE_ID_IN_META="true",
            ROOMCAST_EDGE__TRACE_UI_URL=jaeger.ui_url,
            **jaeger.otel_env(),
        )
        yield running, jaeger
        running.stop()


async def test_demo_page_links_a_message_to_its_trace_in_jaeger(
    traced_stack: tuple[Stack, JaegerServer],
) -> None:
    stack, jaeger = traced_stack
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    topic = f"traced-{uuid.uuid4().hex[:6]}"
    edge_url = stack.edges[0].url.replace("127.0.0.1", "localhost")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{edge_url}/demo/")
            await page.fill("#auth-url", stack.auth.url)
            await page.fill("#publisher-url", stack.publisher.url)
            await page.fill("#rooms", "")
            await page.click("#connect")
            await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
            await page.fill("#sub-topic", topic)
            await page.fill("#sub-type", "*")
            await page.click("#subscribe")
            await expect(page.locator("#last-reply")).to_have_text("subscribe: ok", timeout=20_000)

            async with aiohttp.ClientSession() as session:
                await publish(
                    session, stack.publisher.url, {"hello": "jaeger"}, topic=topic, type_="event"
                )
            link = page.locator("#messages tr").first.locator("a.trace-link")
            await expect(link).to_be_visible(timeout=20_000)
            href = await link.get_attribute("href")
            assert href is not None
            assert href.startswith(f"{jaeger.ui_url}/trace/")

            async with page.context.expect_page() as opened:
                await link.click()
            trace_page = await opened.value
            await trace_page.set_viewport_size({"width": 1280, "height": 560})
            # The whole journey: publisher HTTP and producer spans, edge consumer and fan-out.
            await expect(trace_page.locator("#span-count")).to_have_text("4 spans", timeout=30_000)
            spans = trace_page.locator("#spans")
            for text in (
                "roomcast-publisher",
                "POST /v1/messages",
                f"send {stack.topic}",
                "roomcast-edge",
                f"{stack.topic} process",
                "roomcast.fanout",
            ):
                await expect(spans).to_contain_text(text)
            fanout = spans.locator(".span", has_text="roomcast.fanout")
            await fanout.click()
            await expect(fanout.locator(".tags")).to_contain_text("roomcast.recipients = 1")

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "jaeger-trace.png"
            await trace_page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            await browser.close()
