"""A newcomer's first minutes on the demo page, in headless Chromium at a phone's width.

The edge learns where auth and the publisher are from its settings (here their ports,
as `make run` passes ROOMCAST_AUTH__PORT / ROOMCAST_PUBLISHER__PORT to every service),
and the page's defaults meet: the first published message shows without typing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, async_playwright, expect

from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_browser import CHROMIUM_FLAGS

PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def moved_stack(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(
        infra,
        tmp_path,
        edges=0,
        ROOMCAST_AUTH__CORS_ORIGINS="*",
        ROOMCAST_PUBLISHER__CORS_ORIGINS="*",
    )
    try:
        running.start_edge(
            "edge-1",
            ROOMCAST_AUTH__PORT=str(running.auth.port),
            ROOMCAST_PUBLISHER__PORT=str(running.publisher.port),
        )
        yield running
    finally:
        running.stop()


async def _no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"


async def test_first_message_with_the_defaults_on_a_phone(moved_stack: Stack) -> None:
    stack = moved_stack
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    edge_url = stack.edges[0].url.replace("127.0.0.1", "localhost")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport=PHONE)
            await page.goto(f"{edge_url}/demo/")
            # The services' addresses come from the edge, not from fixed ports.
            auth = f"http://localhost:{stack.auth.port}"
            publisher = f"http://localhost:{stack.publisher.port}"
            await expect(page.locator("#auth-url")).to_have_value(auth, timeout=10_000)
            await expect(page.locator("#publisher-url")).to_have_value(publisher)

            # Before connecting: the room and subscription buttons wait, and say why.
            await expect(page.locator("#join")).to_be_disabled()
            await expect(page.locator("#subscribe")).to_be_disabled()
            await expect(page.locator("#step2-hint")).to_contain_text("Connect first")
            await _no_sideways_scroll(page)

            await page.click("#connect")
            await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
            await expect(page.locator("#step2-hint")).to_have_text("")
            await expect(page.locator("#my-subs")).to_have_text("order:*")
            await expect(page.locator("#reach")).to_contain_text("receives it")

            # The first publish with the form's defaults shows up.
            await page.click("#publish")
            await expect(page.locator("#publish-result")).to_contain_text(
                "published", timeout=20_000
            )
            row = page.locator("#messages tr").first
            await expect(row).to_contain_text('{"content":"hello from the demo"}', timeout=20_000)
            await expect(row).to_contain_text("order")

            # A message this connection would not get is explained before it is sent.
            await page.fill("#pub-room", "2002")
            await expect(page.locator("#reach")).to_contain_text("not in room 2002")
            await page.fill("#pub-room", "")
            await page.fill("#pub-topic", "quotes")
            await expect(page.locator("#reach")).to_contain_text("not subscribed to quotes:event")
            await _no_sideways_scroll(page)

            # Disconnect means disconnected, and stays so.
            await page.click("#disconnect")
            await expect(page.locator("#status")).to_have_text("disconnected")
            await expect(page.locator("#join")).to_be_disabled()
            await expect(page.locator("#connect")).to_be_enabled()
            await expect(page.locator("#connection-info")).to_have_text("disconnected by you")
            await expect(page.locator("#status")).to_have_text("disconnected")

            # And connecting again works.
            await page.click("#connect")
            await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
        finally:
            await browser.close()
