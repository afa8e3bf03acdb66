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
