"""The SSE transport of one edge: refusals, the stream, resuming, requests, closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_core.token_store import RedisTokenStore
from roomcast_core.tokens import TokenIssuer
from roomcast_edge.domain.positions import format_vector, parse_vector
from tests.conftest import BUSES, Infra, infra_on
from tests.integration.edge.conftest import (
    SECRET,
    WAIT,
    Publisher,
    SharedEdge,
    bus_publisher,
    connect,
    message,
    module_edge,
    token,
)
from tests.integration.edge.sse_client import open_stream, post_request, sse_url

CHECK = 0.5  # HEARTBEAT_CHECK_INTERVAL of the module's edge
GRACE = 1.0  # REFRESH_GRACE


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__HEARTBEAT_TIMEOUT="2",
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL=str(CHECK),
        ROOMCAST_EDGE__REFRESH_GRACE=str(GRACE),
    ) as shared:
        yield shared


@pytest_asyncio.fixture
async def feed(infra: Infra, edge: SharedEdge) -> AsyncIterator[Publisher]:
    async with bus_publisher(infra, edge.topic) as publisher:
        yield publisher


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def other_user_token() -> str:
    return TokenIssuer("HS256", SECRET).issue("user-2", "device-2", 600).token


async def test_refusals_come_before_any_byte_of_the_stream(
    edge: SharedEdge, session: aiohttp.ClientSession
) -> None:
    expired = TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 1, now=time.time() - 600)
    cases = [
        ({}, 401, "token_invalid"),
        ({"token": "not-a-token"}, 401, "token_invalid"),
        ({"token": expired.token}, 401, "token_expired"),
        ({"token": token(), "since": "zz"}, 400, "invalid_since"),
        ({"token": token(), "rewind": "many"}, 400, "invalid_rewind"),
        ({"token": token(), "rewind": "3", "since": "0:1"}, 400, "invalid_rewind"),
    ]
    for query, status, code in cases:
        async with session.get(sse_url(edge.edge.url, **query)) as response:
            assert response.status == status, query
            assert response.content_type == "application/json"
            assert (await response.json())["error"]["code"] == code


async def test_the_stream_opens_with_connected_and_carries_pushes_with_vector_ids(
    edge: SharedEdge, feed: Publisher, session: aiohttp.ClientSession
) -> None:
    async with open_stream(session, edge.edge.url, token=token(), roomIds="r1") as stream:
        headers = stream.response.headers
        assert headers["Content-Type"] == "text/event-stream"
        assert headers["Cache-Control"] == "no-cache, no-transform"
        assert headers["X-Accel-Buffering"] == "no"
        hello = await stream.connected()
        assert hello["action"] == "connected"
        assert hello["rooms"] == ["r1"]
        assert stream.last_id == hello["position"]
        vector = parse_vector(hello["position"])
        sent = [message({"n": i}, room="r1") for i in range(5)]
        positions = await feed.send_many(sent)
        events = await stream.pushes(5)
        for msg, position, event in zip(sent, positions, events, strict=True):
            push = event.json()
            assert push["room"] == "r1"
            assert push["payload"] == msg.payload
            assert push["meta"]["position"] == position
            partition, offset = (int(x) for x in position.split(":"))
            vector[partition] = offset
            assert event.id == format_vector(vector)


async def test_last_event_id_resumes_with_no_gap_and_no_duplicate(
    edge: SharedEdge, feed: Publisher, session: aiohttp.ClientSession
) -> None:
    raw = token()
    async with open_stream(session, edge.edge.url, token=raw, roomIds="r2") as stream:
        first = await stream.connected()
        await feed.send_many([message({"n": i}, room="r2") for i in range(3)])
        await stream.pushes(3)
        last_id = stream.last_id
    assert last_id is not None
    missed = [message({"n": i}, room="r2") for i in range(3, 9)]
    await feed.send_many(missed)
    # What EventSource does: the same URL (here with a stale `since` and a `rewind`,
    # which would be refused together), plus Last-Event-ID, which wins.
    resume = {"Last-Event-ID": last_id}
    query = {"token": raw, "roomIds": "r2", "since": first["position"], "rewind": "5"}
    async with open_stream(session, edge.edge.url, resume, **query) as stream:
        hello = await stream.connected()
        assert hello["recovered"] is True
        got = [e.json()["meta"]["message_id"] for e in await stream.pushes(6)]
        assert got == [m.message_id for m in missed]
        marker = message({"n": "live"}, room="r2")
        await feed.send(marker)
        assert (await stream.pushes(1))[0].json()["meta"]["message_id"] == marker.message_id
    # `since` in the query recovers the same way.
    async with open_stream(
        session, edge.edge.url, token=raw, roomIds="r2", since=last_id
    ) as stream:
        assert (await stream.connected())["recovered"] is True
        got = [e.json()["meta"]["message_id"] for e in await stream.pushes(7)]
        assert got == [*(m.message_id for m in missed), marker.message_id]


async def test_requests_posted_for_a_stream_are_answered_in_the_response(
    edge: SharedEdge, feed: Publisher, session: aiohttp.ClientSession
) -> None:
    raw = token(topics=["news"])
    base = edge.edge.url
    async with open_stream(session, base, token=raw) as stream:
        hello = await stream.connected()
        cid = hello["connection_id"]

        async def ask(action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
            body: dict[str, Any] = {"request_id": f"q-{action}", "action": action}
            if params is not None:
                body["params"] = params
            status, reply = await post_request(session, base, cid, raw, body)
            assert status == 200, reply
            assert reply["request_id"] == f"q-{action}"
            assert reply["action"] == action
            return reply

        assert (await ask("ping"))["status"] == "ok"
        assert (await ask("subscribe", {"topic": "news", "type": "*"}))["status"] == "ok"
        refused = await ask("subscribe", {"topic": "secret"})
        assert refused["status"] == "fail"
        assert "not allowed" in str(refused["error_message"])
        assert (await ask("join", {"room": "lobby"}))["status"] == "ok"
        presence = await ask("presence", {"room": "lobby"})
        assert presence["status"] == "ok", presence
        members = presence["presence"]["members"]
        assert cid in {m["connection_id"] for m in members}
        news = message({"n": 1}, topic="news", type_="flash")
        await feed.send(news)
        assert (await stream.pushes(1))[0].json()["meta"]["message_id"] == news.message_id
        assert (await ask("unsubscribe", {"topic": "news", "type": "*"}))["status"] == "ok"
        assert (await ask("leave", {"room": "lobby"}))["status"] == "ok"
        unknown = await ask("dance")
        assert unknown["status"] == "fail"
        # A join with `since`: the reply says recovered, the replay follows on the stream.
        missed = [message({"n": i}, room="hist") for i in range(2)]
        await feed.send_many(missed)
        joined = await ask("join", {"room": "hist", "since": hello["position"]})
        assert joined["recovered"] is True
        replayed = await stream.pushes(2)
        assert [e.json()["meta"]["message_id"] for e in replayed] == [m.message_id for m in missed]
        assert all(e.id for e in replayed)

        # A refresh: the new token is the stream's from then on.
        fresh = token(topics=["news"], ttl=1200)
        renewed = await ask("refresh", {"token": fresh})
        assert renewed["status"] == "ok"
        assert renewed["expires_in"] > 600
        status, reply = await post_request(
            session, base, cid, fresh, {"request_id": "p2", "action": "ping"}
        )
        assert (status, reply["status"]) == (200, "ok")


async def test_hostile_posts_get_a_4xx_never_a_500(
    edge: SharedEdge, session: aiohttp.ClientSession
) -> None:
    raw = token()
    base = edge.edge.url
    ws, ws_hello = await connect(edge.edge, token=raw)
    async with ws, open_stream(session, base, token=raw) as stream:
        cid = (await stream.connected())["connection_id"]
        edge_id = cid.split("-")[0]
        ping = {"request_id": "x", "action": "ping"}
        cases: list[tuple[str, str | None, bytes | None, int, str]] = [
            (cid, other_user_token(), None, 403, "forbidden"),
            (cid, "garbage", None, 401, "token_invalid"),
            (cid, None, None, 401, "token_invalid"),
            (f"{edge_id}-{'0' * 20}", raw, None, 404, "unknown_connection"),
            ("feedbeef0000-00000000", raw, None, 404, "unknown_connection"),
            ("nonsense", raw, None, 404, "unknown_connection"),
            ("x" * 300 + "-y", raw, None, 404, "unknown_connection"),
            (ws_hello["connection_id"], raw, None, 404, "unknown_connection"),
            (cid, raw, b"{not json", 400, "invalid_json"),
            (cid, raw, b"[1, 2]", 400, "invalid_request"),
            (cid, raw, b"\xff\xfe", 400, "invalid_json"),
            (
                cid,
                raw,
                b'{"action": "ping", "pad": "' + b"x" * 70_000 + b'"}',
                413,
                "body_too_large",
            ),
        ]
        for connection_id, auth, raw_body, status, code in cases:
            got, answer = await post_request(session, base, connection_id, auth, ping, raw=raw_body)
            assert (got, answer["error"]["code"]) == (status, code), connection_id
        # A body streamed in chunks (no Content-Length) is bounded by what was read.
        headers = {"Authorization": f"Bearer {raw}"}

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" " * 4096

        url = f"{base}/v1/connections/{cid}/requests"
        async with session.post(url, data=chunks(), headers=headers) as response:
            assert response.status == 413
        # The stream is untouched by all of it.
        status, reply = await post_request(session, base, cid, raw, ping)
        assert (status, reply["status"]) == (200, "ok")


async def close_of(ws: ClientConnection) -> tuple[int | None, str | None]:
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason


async def test_a_stream_needs_no_heartbeats_and_gets_pings(
    edge: SharedEdge, feed: Publisher, session: aiohttp.ClientSession
) -> None:
    async with open_stream(session, edge.edge.url, token=token(), roomIds="quiet") as stream:
        await stream.connected()
        # An idle WebSocket opened alongside is closed for silence (4000) ...
        ws, _ = await connect(edge.edge, token=token())
        assert (await close_of(ws)) == (4000, "heartbeat timeout")
        # ... while the stream, silent as well, is kept and pinged.
        assert await stream.comment(timeout=16) == "ping"
        marker = message({"n": "alive"}, room="quiet")
        await feed.send(marker)
        assert (await stream.pushes(1))[0].json()["meta"]["message_id"] == marker.message_id


async def test_an_expired_token_ends_the_stream_with_4001(
    edge: SharedEdge, session: aiohttp.ClientSession
) -> None:
    short = TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 2)
    async with open_stream(session, edge.edge.url, token=short.token) as stream:
        await stream.connected()
        close = await stream.close_event(timeout=short.claims.exp - time.time() + GRACE + 15)
        assert close.json() == {"code": 4001, "reason": "token expired"}
        assert time.time() >= short.claims.exp + GRACE


async def test_a_revoked_token_ends_the_stream_with_1008(
    edge: SharedEdge, infra: Infra, session: aiohttp.ClientSession
) -> None:
    issued = TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 600)
    async with open_stream(session, edge.edge.url, token=issued.token) as stream:
        await stream.connected()
        client = aioredis.from_url(infra.redis_url)
        try:
            await RedisTokenStore(client).revoke(issued.claims.jti, 600)
        finally:
            await client.aclose()
        close = await stream.close_event()
        assert close.json() == {"code": 1008, "reason": "token revoked"}


async def test_a_raw_stream_parses_as_event_source_would(
    edge: SharedEdge, session: aiohttp.ClientSession
) -> None:
    # The wire itself: the head, then `event: connected` with its id and one data line.
    async with session.get(sse_url(edge.edge.url, token=token())) as response:
        raw = await response.content.readuntil(b"\n\n")
    lines = raw.decode().split("\n")
    assert lines[0] == "event: connected"
    assert lines[1].startswith("id: ")
    assert lines[2].startswith("data: {")
    assert json.loads(lines[2][len("data: ") :])["action"] == "connected"
