"""The SSE transport across edges and at the edge's limits: requests landing on the
other edge, the connection limit shared with WebSockets, drain, slow readers."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from roomcast_core.tokens import TokenIssuer
from tests.conftest import Infra, ServiceFactory, infra_on
from tests.integration.edge.conftest import (
    SECRET,
    WAIT,
    Publisher,
    connect,
    message,
    metric,
    token,
)
from tests.integration.edge.sse_client import open_stream, post_request, sse_url


@pytest.fixture(scope="module", params=["redis"])
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_a_request_posted_to_another_edge_reaches_the_stream(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    publisher: Publisher,
    session: aiohttp.ClientSession,
) -> None:
    holder = start_service("edge", infra.env(topic), name="edge-a")
    other = start_service("edge", infra.env(topic), name="edge-b")
    raw = token(topics=["news"])
    async with open_stream(session, holder.url, token=raw) as stream:
        cid = (await stream.connected())["connection_id"]
        body = {"request_id": "s1", "action": "subscribe", "params": {"topic": "news"}}
        status, reply = await post_request(session, other.url, cid, raw, body)
        assert status == 200, reply
        assert (reply["request_id"], reply["status"]) == ("s1", "ok")
        news = message({"n": 1}, topic="news", type_="flash")
        await publisher.send(news)
        assert (await stream.pushes(1))[0].json()["meta"]["message_id"] == news.message_id
        # The holder's answers pass through unchanged: refusals included.
        stranger = TokenIssuer("HS256", SECRET).issue("user-2", "device-2", 600).token
        status, reply = await post_request(session, other.url, cid, stranger, body)
        assert (status, reply["error"]["code"]) == (403, "forbidden")
        gone = cid.rsplit("-", 1)[0] + "-" + "0" * 20
        status, reply = await post_request(session, other.url, gone, raw, body)
        assert (status, reply["error"]["code"]) == (404, "unknown_connection")
        # A token no edge signed never crosses the link.
        status, reply = await post_request(session, other.url, cid, "x.y.z", body)
        assert status == 401
    assert (
        metric(holder, 'roomcast_edge_sse_requests_total{status="200",where="for_another_edge"}')
        == 1
    )
    assert metric(other, 'roomcast_edge_sse_requests_total{status="200",where="forwarded"}') == 1
    # An edge that is gone answers nothing: its connections are unknown, at once.
    holder.stop()
    status, reply = await post_request(session, other.url, cid, raw, body)
    assert (status, reply["error"]["code"]) == (404, "unknown_connection")


async def test_the_connection_limit_counts_streams_and_websockets_together(
    infra: Infra, topic: str, start_service: ServiceFactory, session: aiohttp.ClientSession
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__MAX_CONNECTIONS="2"))
    ws, _ = await connect(edge, token=token())
    async with ws, open_stream(session, edge.url, token=token()) as stream:
        await stream.connected()
        async with session.get(sse_url(edge.url, token=token())) as refused:
            assert refused.status == 503
            assert (await refused.json())["error"]["code"] == "too_many_connections"
        with pytest.raises(Exception, match="503"):
            await connect(edge, token=token())
        assert metric(edge, 'roomcast_edge_transport_connections{transport="sse"}') == 1
        assert metric(edge, 'roomcast_edge_transport_connections{transport="websocket"}') == 1
        assert metric(edge, "roomcast_edge_connections") == 2


async def test_a_draining_edge_ends_streams_with_1012_and_a_jittered_retry(
    infra: Infra, topic: str, start_service: ServiceFactory, session: aiohttp.ClientSession
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__DRAIN_SECONDS="1"))
    async with open_stream(session, edge.url, token=token()) as stream:
        await stream.connected()
        edge.process.send_signal(signal.SIGTERM)
        close = await stream.close_event()
        assert close.json() == {"code": 1012, "reason": "service restart"}
        assert close.retry is not None
        assert 1000 <= close.retry <= 5000


async def test_a_slow_reader_is_closed_with_4008_and_a_good_one_is_unaffected(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    publisher: Publisher,
    session: aiohttp.ClientSession,
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__MAX_OUTBOUND_BYTES="262144"))
    # The slow reader: a small receive buffer, and it reads nothing after the request.
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", edge.port))
    slow.sendall(f"GET /sse?token={token()} HTTP/1.1\r\nHost: edge\r\n\r\n".encode())
    count = 1000
    async with open_stream(session, edge.url, token=token()) as good:
        await good.connected()
        async with asyncio.timeout(WAIT):  # the raw request may still be being admitted
            while metric(edge, 'roomcast_edge_transport_connections{transport="sse"}') < 2:
                await asyncio.sleep(0.05)
        pad = "x" * 8000
        sent = [message({"seq": i, "pad": pad}) for i in range(count)]

        async def read_all() -> list[int]:
            return [e.json()["payload"]["seq"] for e in await good.pushes(count, timeout=60)]

        reader = asyncio.create_task(read_all())
        for start in range(0, count, 100):
            await publisher.send_many(sent[start : start + 100])
        assert await asyncio.wait_for(reader, 120) == list(range(count))
    assert metric(edge, 'roomcast_edge_drops_total{reason="slow_consumer"}') == 1
    assert (
        metric(edge, 'roomcast_edge_transport_drops_total{reason="slow_consumer",transport="sse"}')
        == 1
    )
    # Reading at last, the slow one finds the close event at the end of its stream.
    slow.setblocking(False)
    received = b""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(WAIT):
        while chunk := await loop.sock_recv(slow, 65536):
            received += chunk
    slow.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b'event: close\ndata: {"code":4008,"reason":"slow consumer"}\n\n')


async def test_the_request_rate_limit_applies_to_posted_requests(
    infra: Infra, topic: str, start_service: ServiceFactory, session: aiohttp.ClientSession
) -> None:
    # A rate whose burst holds less than one request: every request is over it.
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__REQUEST_RATE="0.1"))
    raw = token()
    async with open_stream(session, edge.url, token=raw) as stream:
        cid = (await stream.connected())["connection_id"]
        ping = {"request_id": "p", "action": "ping"}
        status, reply = await post_request(session, edge.url, cid, raw, ping)
        assert status == 429
        assert reply["status"] == "fail"
        assert "rate limit" in reply["error_message"]
        # A client that keeps going regardless is closed, as on a WebSocket.
        for _ in range(250):
            status, _ = await post_request(session, edge.url, cid, raw, ping)
            if status != 429:
                break
        assert status == 404
        close = await stream.close_event()
        assert close.json() == {"code": 1008, "reason": "rate limit exceeded"}
    assert metric(edge, 'roomcast_edge_sse_requests_total{status="429",where="here"}') == 199


async def test_presence_pushes_reach_a_stream_as_events_without_an_id(
    infra: Infra, topic: str, start_service: ServiceFactory, session: aiohttp.ClientSession
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__PRESENCE_EVENTS="true"))
    async with open_stream(session, edge.url, token=token(), roomIds="hall") as stream:
        await stream.connected()
        other = TokenIssuer("HS256", SECRET).issue("user-2", "device-2", 600).token
        ws, _ = await connect(edge, token=other, roomIds="hall")
        async with ws:
            (event,) = await stream.pushes(1)
            assert event.id is None
            notice = event.json()
            assert (notice["action"], notice["event"], notice["room"]) == (
                "presence",
                "join",
                "hall",
            )
            assert notice["member"]["user_id"] == "user-2"


async def test_pages_of_the_allowed_origins_may_use_the_stream_from_elsewhere(
    infra: Infra, topic: str, start_service: ServiceFactory, session: aiohttp.ClientSession
) -> None:
    app = "http://app.example"
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__CORS_ORIGINS=app))
    raw = token()
    async with open_stream(
        session, edge.url, {"Origin": "http://evil.example"}, token=raw
    ) as other:
        assert "Access-Control-Allow-Origin" not in other.response.headers
    async with session.get(sse_url(edge.url), headers={"Origin": app}) as refused:
        assert refused.status == 401
        assert refused.headers["Access-Control-Allow-Origin"] == app  # the page may read why
    async with open_stream(session, edge.url, {"Origin": app}, token=raw) as stream:
        assert stream.response.headers["Access-Control-Allow-Origin"] == app
        cid = (await stream.connected())["connection_id"]
        url = f"{edge.url}/v1/connections/{cid}/requests"
        preflight = {"Origin": app, "Access-Control-Request-Method": "POST"}
        async with session.options(url, headers=preflight) as answer:
            assert answer.status == 204
            assert answer.headers["Access-Control-Allow-Origin"] == app
            assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
        ping = {"request_id": "p", "action": "ping"}
        headers = {"Origin": app, "Authorization": f"Bearer {raw}"}
        async with session.post(url, json=ping, headers=headers) as posted:
            assert posted.status == 200
            assert posted.headers["Access-Control-Allow-Origin"] == app
