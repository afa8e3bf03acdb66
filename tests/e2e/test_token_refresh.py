"""Clients across token lifetimes, through auth, publisher and an edge as real processes.

Auth issues tokens that live a few seconds; the edge closes a connection one second
after its token's exp unless it was refreshed. A publisher streams room messages the
whole time and a ledger checks that each client got every one exactly once.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import jwt
import pytest
from playwright.async_api import async_playwright, expect

from roomcast_client import RoomcastClient, fetch_token, publish
from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack
from tests.e2e.test_browser import CHROMIUM_FLAGS
from tests.robustness.ledger import Ledger, Sent

TTL = 4  # seconds a token lives
GRACE = 1
CHECK = 0.5
WAIT = 60.0  # bound on a whole scenario on a busy machine


@pytest.fixture(scope="module")
def lifetime_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(
        infra,
        tmp_path_factory.mktemp("refresh"),
        edges=1,
        ROOMCAST_EDGE__REFRESH_GRACE=str(GRACE),
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL=str(CHECK),
        ROOMCAST_JWT__LEEWAY="0",
        ROOMCAST_AUTH__CORS_ORIGINS="*",
        ROOMCAST_PUBLISHER__CORS_ORIGINS="*",
    )
    yield running
    running.stop()


class Provider:
    """A token provider backed by auth; counts the tokens it handed out."""

    def __init__(self, session: aiohttp.ClientSession, stack: Stack, room: str) -> None:
        self.session = session
        self.stack = stack
        self.room = room
        self.device = f"dev-{uuid.uuid4().hex[:8]}"
        self.tokens: list[str] = []

    async def __call__(self) -> str:
        token = await fetch_token(
            self.session,
            self.stack.auth.url,
            device_id=self.device,
            user_id="u-refresh",
            rooms=[self.room],
            ttl=TTL,
        )
        self.tokens.append(token)
        return token


async def stream_until(
    session: aiohttp.ClientSession,
    stack: Stack,
    room: str,
    ledger: Ledger,
    done: Callable[[], bool],
) -> str:
    """Publish to room until done() (then one more second); returns the last message id."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WAIT
    stop_at: float | None = None
    n = 0
    while stop_at is None or loop.time() < stop_at:
        assert loop.time() < give_up, "the scenario did not reach its goal in time"
        if stop_at is None and done():
            stop_at = loop.time() + 1.0
        n += 1
        message_id = f"m{n}-{uuid.uuid4().hex[:8]}"
        try:
            receipt = await publish(
                session, stack.publisher.url, {"n": n}, room=room, message_id=message_id
            )
        except (aiohttp.ClientError, TimeoutError):
            ledger.maybe(message_id)
        else:
            ledger.acknowledged(Sent(message_id, str(receipt["position"]), room=room))
        await asyncio.sleep(0.03)
    return message_id


def assert_whole(ledger: Ledger) -> None:
    report = ledger.check()
    assert report.ok, report.text()
    for client in report.clients:
        assert not client.missing, report.text()
        assert client.delivered == client.expected > 50, report.text()


async def _drain_to(client: RoomcastClient, last: str) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    while True:
        push = await client.next_message(timeout=30)
        got.append((push.message_id, push.position))
        if push.message_id == last:
            return got


async def test_python_client_refreshes_across_three_lifetimes_on_one_connection(
    lifetime_stack: Stack,
) -> None:
    room = f"life-{uuid.uuid4().hex[:6]}"
    ledger = Ledger()
    async with aiohttp.ClientSession() as session:
        provider = Provider(session, lifetime_stack, room)
        client = RoomcastClient(lifetime_stack.ws_url(), provider, rooms=(room,), session=session)
        hello = await client.connect()
        try:
            assert 0 < hello["expires_in"] <= TTL
            record = ledger.client("python", hello)
            last = await stream_until(
                session, lifetime_stack, room, ledger, lambda: client.refreshes >= 3
            )
            record.received.extend(await _drain_to(client, last))
        finally:
            await client.close()
    assert_whole(ledger)
    # The same socket the whole time: refreshed, never closed by the edge.
    assert client.connects == 1
    assert client.close_codes == []
    assert client.refresh_failures == 0
    assert len(provider.tokens) == 1 + client.refreshes


async def test_python_client_without_refresh_reconnects_after_4001_with_nothing_lost(
    lifetime_stack: Stack,
) -> None:
    room = f"life-{uuid.uuid4().hex[:6]}"
    ledger = Ledger()
    async with aiohttp.ClientSession() as session:
        provider = Provider(session, lifetime_stack, room)
        client = RoomcastClient(
            lifetime_stack.ws_url(), provider, rooms=(room,), refresh=False, session=session
        )
        hello = await client.connect()
        try:
            record = ledger.client("python-4001", hello)
            last = await stream_until(
                session, lifetime_stack, room, ledger, lambda: client.connects >= 3
            )
            record.received.extend(await _drain_to(client, last))
        finally:
            await client.close()
    assert_whole(ledger)
    # Each token ran out: 4001, a fresh token, a reconnect with since that recovered.
    assert client.connects >= 3
    assert set(client.close_codes) == {4001}
    assert client.last_connected.get("recovered") is True
    assert client.refreshes == 0
    assert client.terminal is None


async def test_python_client_stops_after_a_terminal_close(lifetime_stack: Stack) -> None:
    room = f"life-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        provider = Provider(session, lifetime_stack, room)
        client = RoomcastClient(lifetime_stack.ws_url(), provider, rooms=(room,), session=session)
        await client.connect()
        try:
            jti = jwt.decode(provider.tokens[0], options={"verify_signature": False})["jti"]
            url = f"{lifetime_stack.auth.url}/v1/tokens/{jti}/revoke"
            async with session.post(url) as response:
                assert response.status == 200, await response.text()

            async def stopped() -> None:
                while client.terminal is None:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(stopped(), 20)
            await asyncio.sleep(1.5)  # time enough for a retry that must not happen
        finally:
            await client.close()
    assert client.close_codes == [1008]
    assert client.connects == 1
    assert len(provider.tokens) == 1


# ---- the browser client ------------------------------------------------------------

BROWSER_CLIENT = """
async ({ authUrl, edgeUrl, room, ttl }) => {
  const { Roomcast } = await import("/demo/client.js");
  window.got = [];
  window.tokens = 0;
  window.refreshes = 0;
  window.closeCodes = [];
  window.errors = [];
  const getToken = async () => {
    window.tokens += 1;
    const response = await fetch(`${authUrl}/v1/tokens`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ device_id: "browser-1", user_id: "u-browser", is_login: true, rooms: [room], ttl }),
    });
    return (await response.json()).token;
  };
  const client = new Roomcast({ url: edgeUrl, getToken, rooms: [room], transports: ["websocket"] });
  client.on("push", (push) => window.got.push([push.meta.message_id, push.meta.position]));
  client.on("refreshed", () => { window.refreshes += 1; });
  client.on("disconnected", (event) => window.closeCodes.push(event.code));
  client.on("error", (error) => window.errors.push(error.message));
  window.client = client;
  return await client.connect();
}
"""


async def test_browser_client_refreshes_across_three_lifetimes(lifetime_stack: Stack) -> None:
    stack = lifetime_stack
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    room = f"life-{uuid.uuid4().hex[:6]}"
    edge_url = stack.edges[0].url.replace("127.0.0.1", "localhost")
    ledger = Ledger()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{edge_url}/demo/")
            args = {
                "authUrl": stack.auth.url,
                "edgeUrl": edge_url,
                "room": room,
                "ttl": TTL,
            }
            hello: dict[str, Any] = await page.evaluate(BROWSER_CLIENT, args)
            assert 0 < hello["expires_in"] <= TTL
            record = ledger.client("browser", hello)
            state: dict[str, int] = {"refreshes": 0}

            async def refreshes() -> None:
                state["refreshes"] = int(await page.evaluate("window.refreshes"))

            async with aiohttp.ClientSession() as session:
                poll = _poller(refreshes)
                try:
                    last = await stream_until(
                        session, stack, room, ledger, lambda: state["refreshes"] >= 3
                    )
                finally:
                    poll.cancel()
            await page.wait_for_function(
                "(last) => window.got.some(([id]) => id === last)", arg=last, timeout=30_000
            )
            got = await page.evaluate("window.got")
            record.received.extend((str(m), str(p)) for m, p in got)
            close_codes = await page.evaluate("window.closeCodes")
            failures = await page.evaluate("window.errors")
            tokens = await page.evaluate("window.tokens")
            final_refreshes = await page.evaluate("window.refreshes")
            await page.evaluate("window.client.disconnect()")

            # The demo page shows the token's remaining lifetime and refreshes it.
            await _demo_page_shows_the_lifetime(page, stack)
        finally:
            await browser.close()
    assert_whole(ledger)
    assert close_codes == []
    assert failures == []
    assert final_refreshes >= 3
    assert tokens == 1 + final_refreshes


def _poller(read: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    async def run() -> None:
        while True:
            await read()
            await asyncio.sleep(0.2)

    return asyncio.create_task(run())


async def _demo_page_shows_the_lifetime(page: Any, stack: Stack) -> None:
    await page.reload()
    await page.fill("#auth-url", stack.auth.url)
    await page.fill("#publisher-url", stack.publisher.url)
    await page.fill("#rooms", "")
    await page.fill("#token-ttl", str(TTL))
    await page.click("#connect")
    await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
    life = page.locator("#token-life")
    await expect(life).to_contain_text("token expires in", timeout=10_000)
    # Automatic refreshes keep the connection up and are counted on the page.
    await expect(life).to_contain_text("refreshed 2", timeout=20_000)
    await expect(page.locator("#status")).to_have_text("connected")
