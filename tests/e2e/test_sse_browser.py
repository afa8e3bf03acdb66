"""The browser's own EventSource on /sse, in headless Chromium, through nginx in front
of two edges: the edge holding the stream restarts, EventSource reconnects by itself
with Last-Event-ID, and the ledger shows every message once, in order."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra, NginxFactory, ServiceFactory, infra_on
from tests.e2e.test_browser import CHROMIUM_FLAGS
from tests.integration.edge.conftest import WAIT, bus_publisher, message, metric, token

MESSAGES = 120
SSE = 'roomcast_edge_transport_connections{transport="sse"}'

LISTEN = """([url]) => {
  window.ledger = []; window.hellos = []; window.closes = [];
  const source = new EventSource(url);
  source.addEventListener("connected", (e) => window.hellos.push(JSON.parse(e.data)));
  source.addEventListener("close", (e) => window.closes.push(JSON.parse(e.data)));
  source.onmessage = (e) => window.ledger.push(JSON.parse(e.data).payload.seq);
}"""


@pytest.fixture(scope="module", params=["redis"])
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


async def _until(page: Page, expression: str, what: str, timeout: float = 60) -> Any:
    """The page's value of `expression` once it is truthy."""
    async with asyncio.timeout(timeout):
        while not (value := await page.evaluate(expression)):
            await asyncio.sleep(0.1)
    assert value, what
    return value


async def _holder(edges: list[ServiceProcess]) -> ServiceProcess:
    async with asyncio.timeout(WAIT):
        while True:
            for edge in edges:
                if metric(edge, SSE) == 1:
                    return edge
            await asyncio.sleep(0.1)


async def test_event_source_survives_an_edge_restart_with_nothing_lost_or_twice(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    start_nginx: NginxFactory,
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make install`"
    env = infra.env(topic, ROOMCAST_EDGE__DRAIN_SECONDS="1")
    edges = [start_service("edge", env, name=f"edge-{i}") for i in (1, 2)]
    proxy = start_nginx([e.port for e in edges])
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{proxy.url}/health")  # the stream's origin
            await page.evaluate(LISTEN, [f"/sse?token={token(ttl=1200)}&roomIds=ledger"])
            await _until(page, "window.hellos.length", "connected")

            async def feed() -> None:
                async with bus_publisher(infra, topic) as publisher:
                    for seq in range(MESSAGES):
                        await publisher.send(message({"seq": seq}, room="ledger"))
                        await asyncio.sleep(0.02)

            feeding = asyncio.create_task(feed())
            await _until(page, "window.ledger.length >= 20", "pushes before the restart")
            holder = await _holder(edges)
            port, name = holder.port, holder.name
            holder.stop()  # SIGTERM: event close 1012, then the process exits
            await _until(page, "window.hellos.length >= 2", "a reconnect", timeout=90)
            restarted = start_service("edge", env, name=f"{name}-again", port=port)
            await asyncio.wait_for(feeding, 120)
            done = f"window.ledger.length >= {MESSAGES}"
            await _until(page, done, "every message", timeout=90)
            ledger = await page.evaluate("window.ledger")
            hellos = await page.evaluate("window.hellos")
            closes = await page.evaluate("window.closes")
        finally:
            await browser.close()
    assert ledger == list(range(MESSAGES))  # nothing lost, nothing twice, in order
    assert closes[0] == {"code": 1012, "reason": "service restart"}
    assert hellos[1]["recovered"] is True
    assert not restarted.exited
