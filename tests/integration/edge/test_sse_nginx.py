"""The SSE transport behind nginx with its defaults (`proxy_buffering on`): the stream
flows in real time, and works where the proxy does not pass WebSocket upgrades."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import websockets

from tests.conftest import Infra, NginxFactory, ServiceFactory, infra_on
from tests.integration.edge.conftest import Publisher, message, token, ws_url
from tests.integration.edge.sse_client import open_stream, post_request

# A push must cross the proxy as it happens: far less than a ping interval (10 s),
# which is when a buffering proxy would pass on the first bytes it held, if ever.
REAL_TIME = 5.0


@pytest.fixture(scope="module", params=["redis"])
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_the_stream_flows_through_a_buffering_nginx_in_real_time(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    start_nginx: NginxFactory,
    publisher: Publisher,
    session: aiohttp.ClientSession,
) -> None:
    edge = start_service("edge", infra.env(topic))
    proxy = start_nginx([edge.port])
    raw = token()
    async with open_stream(session, proxy.url, token=raw, roomIds="r") as stream:
        started = time.monotonic()
        hello = await stream.connected()
        assert time.monotonic() - started < REAL_TIME
        for i in range(3):
            sent = message({"n": i}, room="r")
            await publisher.send(sent)
            started = time.monotonic()
            (push,) = await stream.pushes(1, timeout=REAL_TIME)
            assert push.json()["meta"]["message_id"] == sent.message_id
            assert time.monotonic() - started < REAL_TIME
        # Requests cross the proxy too.
        ping = {"request_id": "p", "action": "ping"}
        status, reply = await post_request(session, proxy.url, hello["connection_id"], raw, ping)
        assert (status, reply["status"]) == (200, "ok")


async def test_where_the_proxy_refuses_websockets_sse_still_delivers(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    start_nginx: NginxFactory,
    publisher: Publisher,
    session: aiohttp.ClientSession,
) -> None:
    edge = start_service("edge", infra.env(topic))
    plain = start_nginx([edge.port], websocket=False)
    passing = start_nginx([edge.port])
    raw = token()
    # The same WebSocket handshake works through a proxy that passes upgrades ...
    through = ws_url(edge, token=raw).replace(f":{edge.port}/", f":{passing.port}/")
    async with websockets.connect(through, open_timeout=20) as ws:
        assert "connected" in str(await ws.recv())
    # ... and fails through the one that does not,
    refused = ws_url(edge, token=raw).replace(f":{edge.port}/", f":{plain.port}/")
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(refused, open_timeout=20)
    # where the stream gets every push.
    async with open_stream(session, plain.url, token=raw, roomIds="r") as stream:
        await stream.connected()
        sent = [message({"n": i}, room="r") for i in range(5)]
        await publisher.send_many(sent)
        got = [e.json()["meta"]["message_id"] for e in await stream.pushes(5)]
        assert got == [m.message_id for m in sent]
