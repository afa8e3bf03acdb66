"""The operator console in a real headless Chromium, against a publisher and two edges."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from playwright.async_api import async_playwright, expect

from roomcast_core.edge_link import edge_of
from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_browser import CHROMIUM_FLAGS
from tests.integration.console.conftest import EDGES, seeded_crowd
from tests.integration.edge.conftest import connect, recv_json, token

ADMIN_KEY = "console-admin-key-0123456789"
PUBLISH_KEY = "console-publish-key-0123456789"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def console_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(
        infra,
        tmp_path_factory.mktemp("console-e2e"),
        edges=2,
        ROOMCAST_PUBLISHER__ADMIN_KEYS=ADMIN_KEY,
        ROOMCAST_PUBLISHER__API_KEYS=PUBLISH_KEY,
    )
    yield running
    running.stop()


async def drain(ws: Any) -> list[dict[str, Any]]:
    """Every frame until the connection closes (ConnectionClosed says how)."""
    seen = []
    while True:
        seen.append(await recv_json(ws))


async def test_an_operator_finds_and_acts_from_the_console(
    console_stack: Stack, tmp_path: Path
) -> None:
    stack = console_stack
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    tag = uuid.uuid4().hex[:6]
    user, room = f"user-{tag}", f"room-{tag}"
    near, near_hello = await connect(stack.edges[0], token=token(subject=user), roomIds=room)
    far, far_hello = await connect(stack.edges[1], token=token(subject=user), roomIds=room)
    edge_ids = [edge_of(near_hello["connection_id"]), edge_of(far_hello["connection_id"])]
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=CHROMIUM_FLAGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                # A wrong key is refused and the page says so.
                await page.goto(stack.publisher.url + "/console/")
                await page.fill("#admin-key", "not-the-key")
                await page.click("#login-button")
                await expect(page.locator("#login-error")).to_contain_text(
                    "refused", timeout=WAIT_MS
                )
                await page.fill("#admin-key", ADMIN_KEY)
                await page.click("#login-button")
                await expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)

                # Both edges, with their figures, and charts drawn.
                for edge_id in edge_ids:
                    assert edge_id is not None
                    await expect(
                        page.locator(f'#edge-rows tr[data-edge="{edge_id}"]')
                    ).to_be_visible(timeout=WAIT_MS)
                await expect(page.locator("#totals")).to_contain_text("edges", timeout=WAIT_MS)
                await expect(page.locator("#charts canvas")).to_have_count(5, timeout=WAIT_MS)

                # The live tail, filtered by the room, shows a message published elsewhere.
                await page.fill("#tail-room", room)
                await page.click("#tail-start")
                await expect(page.locator("#tail-status")).to_have_text("watching", timeout=WAIT_MS)
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        stack.publisher.url + "/v1/messages",
                        json={"room": room, "type": "event", "payload": {"from": "api"}},
                        headers={"Authorization": f"Bearer {PUBLISH_KEY}"},
                    ) as response,
                ):
                    assert response.status == 202
                await expect(page.locator("#tail-rows tr").first).to_contain_text(
                    '{"from":"api"}', timeout=WAIT_MS
                )

                # Publish from the form: it reaches the tail and the room's client.
                await page.fill("#pub-room", room)
                await page.fill("#pub-payload", '{"from": "form"}')
                await page.click("#pub-send")
                await expect(page.locator("#pub-result")).to_contain_text(
                    "published at", timeout=WAIT_MS
                )
                await expect(page.locator("#tail-rows tr").first).to_contain_text(
                    '{"from":"form"}', timeout=WAIT_MS
                )
                while (push := await recv_json(near))["payload"] != {"from": "form"}:
                    assert push["payload"] == {"from": "api"}, push

                # Presence of the room: both connections.
                await page.fill("#presence-room", room)
                await page.click("#presence-go")
                await expect(page.locator("#presence-result")).to_contain_text(
                    f"{room}: 2 connections, 1 users", timeout=WAIT_MS
                )

                # The user's connections on both edges, and why a message would not reach
                # one (the page says, per connection); then close the far one.
                await page.fill("#user-id", user)
                await page.fill("#why-room", room)
                await page.fill("#why-topic", "orders")
                await page.click("#user-go")
                await expect(page.locator("#user-rows tr")).to_have_count(2, timeout=WAIT_MS)
                await expect(page.locator("#user-rows tr").first).to_contain_text(
                    "no: not subscribed to orders:*", timeout=WAIT_MS
                )
                await page.fill("#why-topic", "")
                await page.click("#user-go")
                await expect(page.locator("#user-rows tr").first).to_contain_text(
                    "yes", timeout=WAIT_MS
                )

                shot = tmp_path / "console-1280x800.png"
                await page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 20_000
                far_id = far_hello["connection_id"]
                await page.click(f'#user-rows button[data-connection="{far_id}"]')
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(drain(far), WAIT_MS / 1000)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4003
                await expect(page.locator("#user-result")).to_contain_text(
                    "closed", timeout=WAIT_MS
                )
                await expect(page.locator("#user-rows tr")).to_have_count(1, timeout=WAIT_MS)

                # A phone-width screen: nothing wider than the screen.
                await page.set_viewport_size({"width": 390, "height": 844})
                await expect(page.locator("#charts canvas").first).to_be_visible()
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, width
                phone = tmp_path / "console-390.png"
                await page.screenshot(path=str(phone), full_page=True)
                assert phone.stat().st_size > 10_000
            finally:
                await browser.close()
    finally:
        await near.close()
        await far.close()


async def test_the_console_pages_and_searches_fifty_edges_and_ten_thousand_rooms(
    console_stack: Stack,
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    async with (
        seeded_crowd(console_stack.infra.redis_url) as crowd,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(console_stack.publisher.url + "/console/")
            await page.fill("#admin-key", ADMIN_KEY)
            await page.click("#login-button")
            # Ten edges a page, found by a search; the totals count every edge.
            await page.fill("#edge-search", f"crowd{crowd.tag}")
            await expect(page.locator("#edge-page")).to_have_text(
                f"page 1 of 5 ({EDGES} edges)", timeout=WAIT_MS
            )
            await expect(page.locator("#edge-rows tr")).to_have_count(10)
            await page.click("#edge-next")
            await expect(page.locator("#edge-page")).to_contain_text("page 2 of 5")
            await expect(
                page.locator(f'#edge-rows tr[data-edge="{crowd.edges[10]}"]')
            ).to_be_visible()
            await page.fill("#edge-search", crowd.edges[42])
            await expect(page.locator("#edge-rows tr")).to_have_count(1)

            # One room among 10 000, following "more" until the search has walked far enough.
            wanted = crowd.rooms[4321]
            await page.fill("#room-search", wanted)
            await page.click("#room-go")
            found = page.locator("#room-rows button", has_text=wanted)
            for _ in range(100):
                await expect(page.locator("#room-result")).to_contain_text(
                    "listed", timeout=WAIT_MS
                )
                if await found.count() or await page.locator("#room-more").is_disabled():
                    break
                await page.locator("#room-result").evaluate("node => { node.textContent = '' }")
                await page.click("#room-more")
            await expect(found).to_have_count(1)
            await found.click()
            await expect(page.locator("#presence-result")).to_contain_text(
                f"{wanted}: 1 connections, 1 users", timeout=WAIT_MS
            )
        finally:
            await browser.close()
