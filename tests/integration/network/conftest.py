"""One roomcast stack for the package, Toxiproxy in front of each of its services, and
small clients that talk to a service directly or through its proxy."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_harness.toxiproxy import Proxy, ToxiproxyServer
from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack

WAIT = 30.0  # generous: the test machine is small and shared
TIMEOUT = aiohttp.ClientTimeout(total=120)


@pytest.fixture(scope="package")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """auth, publisher and one edge with their default limits (a 1000-message batch of
    1 KB payloads is a normal request for them)."""
    running = start_stack(infra, tmp_path_factory.mktemp("network"), edges=1)
    yield running
    running.stop()


@dataclass(frozen=True)
class Proxies:
    server: ToxiproxyServer
    auth: Proxy
    publisher: Proxy
    edge: Proxy

    def all(self) -> tuple[Proxy, Proxy, Proxy]:
        return (self.auth, self.publisher, self.edge)


@pytest.fixture(scope="package")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToxiproxyServer]:
    with ToxiproxyServer(Path(tmp_path_factory.mktemp("toxiproxy"))) as server:
        yield server


@pytest.fixture(scope="package")
def package_proxies(toxiproxy: ToxiproxyServer, stack: Stack) -> Proxies:
    def upstream(url: str) -> str:
        return url.removeprefix("http://")

    return Proxies(
        toxiproxy,
        auth=toxiproxy.proxy("auth", upstream(stack.auth.url)),
        publisher=toxiproxy.proxy("publisher", upstream(stack.publisher.url)),
        edge=toxiproxy.proxy("edge", upstream(stack.edges[0].url)),
    )


@pytest.fixture
def proxies(package_proxies: Proxies) -> Iterator[Proxies]:
    """The proxies with no toxics; whatever a test adds is gone after it."""
    package_proxies.server.reset()
    yield package_proxies
    package_proxies.server.reset()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # A connection per request: each one meets the toxics from its first byte.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as client:
        yield client


def room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


async def issue_token(session: aiohttp.ClientSession, auth_url: str) -> str:
    body = {"device_id": f"dev-{uuid.uuid4().hex[:8]}", "user_id": "user-1", "is_login": True}
    async with session.post(auth_url + "/v1/tokens", json=body) as response:
        assert response.status == 201, await response.text()
        token: str = (await response.json())["token"]
        return token


def ws_url(base: str, **query: str) -> str:
    return base.replace("http://", "ws://") + "/ws?" + urllib.parse.urlencode(query)


async def connect(base: str, **query: str) -> tuple[ClientConnection, dict[str, Any]]:
    """A client on `base` (an edge or its proxy), and its `connected` message."""
    ws = await websockets.connect(
        ws_url(base, **query), open_timeout=WAIT, max_queue=None, ping_interval=None
    )
    hello = await recv_json(ws)
    assert hello["action"] == "connected", hello
    return ws, hello


async def recv_json(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    body = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(body, dict)
    return body


async def pushes(ws: ClientConnection, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
    """The next `count` pushes (replies and other frames are skipped)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        body = await recv_json(ws, timeout)
        if "meta" in body:
            got.append(body)
    return got


async def silent(ws: ClientConnection, seconds: float = 1.5) -> None:
    """Nothing more arrives for a while: no duplicate, no stray push."""
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    pytest.fail(f"unexpected frame {extra!r}")
