"""@roomcast/client (clients/js) against real processes: auth, publisher and two edges,
Toxiproxy in front of each edge. Each test runs one scenario of
clients/js/stack/client.stack.ts with the stack's addresses in its environment, and
one drives the React bindings under StrictMode in headless Chromium.

Tokens live 4 s and the edge closes 1 s after exp (checked every 0.5 s), so three
token lifetimes and a 4001 fit in seconds. The second edge replays at most 5
messages, so a larger gap answers `recovered: false` as a lapsed retention does.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import async_playwright, expect

from roomcast_client import RoomcastClient, fetch_token, publish
from roomcast_harness.toxiproxy import ToxiproxyServer
from tests.conftest import Infra, NginxFactory
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.js import run_js_test, run_node
from tests.e2e.test_browser import CHROMIUM_FLAGS

SCENARIOS = "stack/client.stack.ts"


@pytest.fixture(scope="module")
def js_stack(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, dict[str, object]]]:
    workdir = tmp_path_factory.mktemp("jsclient")
    running = start_stack(
        infra,
        workdir,
        edges=1,
        ROOMCAST_EDGE__REFRESH_GRACE="1",
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL="0.5",
        ROOMCAST_EDGE__PRESENCE_EVENTS="true",
        ROOMCAST_JWT__LEEWAY="0",
        ROOMCAST_AUTH__CORS_ORIGINS="*",
        ROOMCAST_PUBLISHER__CORS_ORIGINS="*",
    )
    try:
        small = running.start_edge("edge-small", ROOMCAST_EDGE__MAX_REPLAY="5")
        with ToxiproxyServer(workdir / "toxiproxy") as toxiproxy:

            def proxied(name: str, url: str) -> dict[str, str]:
                proxy = toxiproxy.proxy(name, url.removeprefix("http://"))
                return {"name": proxy.name, "url": proxy.url}

            info: dict[str, object] = {
                "edge": running.edges[0].url,
                "auth": running.auth.url,
                "publisher": running.publisher.url,
                "toxiproxy": toxiproxy.api,
                "proxies": {
                    "edge": proxied("js-edge", running.edges[0].url),
                    "small": proxied("js-small", small.url),
                },
            }
            yield running, info
    finally:
        running.stop()


def scenario(info: dict[str, object], name: str) -> None:
    run_js_test(SCENARIOS, name, {"ROOMCAST_TEST_STACK": json.dumps(info)})


def test_reconnects_through_a_cut_and_a_silent_network(
    js_stack: tuple[Stack, dict[str, object]],
) -> None:
    scenario(
        js_stack[1],
        "reconnects through a Toxiproxy cut and a silent network with nothing lost or twice",
    )


def test_refreshes_across_three_token_lifetimes(
    js_stack: tuple[Stack, dict[str, object]],
) -> None:
    scenario(js_stack[1], "refreshes its token across three lifetimes on one connection")


def test_resumes_after_4001_with_a_new_token(js_stack: tuple[Stack, dict[str, object]]) -> None:
    scenario(js_stack[1], "after 4001 it gets a new token and resumes with nothing lost")


def test_replaces_a_token_refused_as_expired_at_connect(
    js_stack: tuple[Stack, dict[str, object]],
) -> None:
    scenario(
        js_stack[1], "a token already expired at connect (401 token_expired) is replaced at once"
    )


def test_stops_on_unauthorized_error(js_stack: tuple[Stack, dict[str, object]]) -> None:
    scenario(js_stack[1], "stops for good when getToken throws UnauthorizedError")


def test_continuity_lost_beyond_what_the_edge_replays(
    js_stack: tuple[Stack, dict[str, object]],
) -> None:
    scenario(js_stack[1], "continuity_lost when the gap is beyond what the edge replays")


def test_history_and_presence(js_stack: tuple[Stack, dict[str, object]]) -> None:
    scenario(js_stack[1], "history pages and presence answer from the edge")


async def test_sse_transport_end_to_end(js_stack: tuple[Stack, dict[str, object]]) -> None:
    await asyncio.to_thread(
        scenario, js_stack[1], "over SSE: connects, receives, requests through the uplink"
    )


def test_behind_a_proxy_that_refuses_websockets_it_ends_up_on_sse(
    js_stack: tuple[Stack, dict[str, object]], start_nginx: NginxFactory
) -> None:
    """nginx with its defaults (buffering on) that does not pass upgrades on: the
    client's WebSocket fails, it falls back to SSE and gets everything once."""
    stack, info = js_stack
    proxy = start_nginx([stack.edges[0].port], websocket=False)
    scenario(
        {**info, "noWebsocketProxy": proxy.url},
        "behind a proxy that refuses WebSockets it falls back to SSE and delivers everything",
    )


# ---- React under StrictMode in Chromium ---------------------------------------------


@pytest.fixture
async def react_page(tmp_path: Path) -> AsyncIterator[str]:
    """The bundled React test page, served from a loopback port of its own."""
    await asyncio.to_thread(run_node, ["scripts/stack-pages.mjs", str(tmp_path)])
    app = web.Application()
    app.router.add_static("/", tmp_path)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://localhost:{port}/index.html"
    await runner.cleanup()


async def test_react_hooks_under_strict_mode(
    js_stack: tuple[Stack, dict[str, object]], react_page: str
) -> None:
    stack, _ = js_stack
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    topic = f"react-{uuid.uuid4().hex[:6]}"
    room = f"room-{uuid.uuid4().hex[:6]}"
    edge = stack.edges[0].url
    query = f"?edge={edge}&auth={stack.auth.url}&topic={topic}&room={room}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(react_page + query)
            await expect(page.locator("#state")).to_have_text("connected", timeout=20_000)
            await expect(page.locator("#feed")).to_have_attribute(
                "data-ready", "true", timeout=20_000
            )
            await expect(page.locator("#presence")).to_contain_text("1 connections", timeout=20_000)

            async with aiohttp.ClientSession() as session:
                for n in range(3):
                    await publish(session, stack.publisher.url, {"n": n}, topic=topic)
                await publish(session, stack.publisher.url, {"to": "room"}, room=room)
                await expect(page.locator("#feed li")).to_have_count(3, timeout=20_000)
                await expect(page.locator("#room-feed li")).to_have_text(['{"to":"room"}'])

                # Someone else joins the room, then leaves: the page shows both.
                other = RoomcastClient(
                    stack.ws_url(),
                    lambda: fetch_token(
                        session, stack.auth.url, device_id="other", user_id="other-user"
                    ),
                    rooms=(room,),
                    session=session,
                )
                await other.connect()
                try:
                    await expect(page.locator("#presence")).to_contain_text(
                        "2 connections, 2 users", timeout=20_000
                    )
                finally:
                    await other.close()
                await expect(page.locator("#presence")).to_contain_text(
                    "1 connections", timeout=20_000
                )

            seen = await page.evaluate("window.seen")
            # StrictMode mounted everything twice, and useRoom and usePresence share the
            # room: still one socket, one subscribe, one join.
            assert seen["sockets"] == 1, seen
            sent = [a for a in seen["sent"] if a != "ping"]
            assert sent.count("subscribe") == 1, sent
            assert sent.count("join") == 1, sent
            assert "unsubscribe" not in sent, sent
            assert "leave" not in sent, sent
            texts = await page.locator("#feed li").all_inner_texts()
            assert texts == ['{"n":0}', '{"n":1}', '{"n":2}']
        finally:
            await browser.close()
