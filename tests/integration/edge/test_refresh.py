"""Token lifetime on open connections: expires_in, refresh, 4001 after the grace, 401 codes.

The edge runs as its own process with a one-second grace, a half-second check
interval and no clock-skew leeway, so a token's end is seen within seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_core.token_store import RedisTokenStore
from roomcast_core.tokens import IssuedToken, TokenIssuer
from tests.conftest import Infra
from tests.integration.edge.conftest import (
    SECRET,
    WAIT,
    Publisher,
    SharedEdge,
    bus_publisher,
    connect,
    expect_nothing,
    http_get,
    message,
    metric,
    module_edge,
    pushes_until,
    request,
)

GRACE = 1.0
CHECK = 0.5


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__REFRESH_GRACE=str(GRACE),
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL=str(CHECK),
        ROOMCAST_EDGE__HEARTBEAT_TIMEOUT="600",
        ROOMCAST_JWT__LEEWAY="0",
    ) as shared:
        yield shared


@pytest_asyncio.fixture
async def feed(infra: Infra, edge: SharedEdge) -> AsyncIterator[Publisher]:
    async with bus_publisher(infra, edge.topic) as publisher:
        yield publisher


def issue(
    ttl: int = 600,
    *,
    rooms: list[str] | None = None,
    topics: list[str] | None = None,
    sub: str = "user-1",
    did: str = "device-1",
    now: float | None = None,
) -> IssuedToken:
    return TokenIssuer("HS256", SECRET).issue(sub, did, ttl, rooms=rooms, topics=topics, now=now)


async def refresh(ws: ClientConnection, token: object, request_id: str = "rf") -> dict[str, Any]:
    return await request(ws, "refresh", {"token": token}, request_id=request_id)


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None, float]:
    """The close code and reason, and the wall-clock time the close arrived."""

    async def drain() -> None:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            return

    await asyncio.wait_for(drain(), WAIT)
    return ws.close_code, ws.close_reason, time.time()


async def delivered(feed: Publisher, ws: ClientConnection, room: str) -> list[str]:
    """Publish a marker to room; the message ids ws got up to it."""
    marker = message(room=room)
    await feed.send(marker)
    return [p["meta"]["message_id"] for p in await pushes_until(ws, marker.message_id)]


async def test_connected_carries_expires_in(edge: SharedEdge) -> None:
    issued = issue(600)
    ws, hello = await connect(edge.edge, token=issued.token)
    async with ws:
        assert isinstance(hello["expires_in"], int)
        assert issued.claims.exp - time.time() - 2 <= hello["expires_in"] <= 600


async def test_refresh_extends_the_connection_past_the_old_exp(
    edge: SharedEdge, feed: Publisher
) -> None:
    short = issue(3, rooms=["r1"])
    ws, hello = await connect(edge.edge, token=short.token, roomIds="r1")
    async with ws:
        assert hello["expires_in"] <= 3
        reply = await refresh(ws, issue(60, rooms=["r1"]).token)
        assert reply["status"] == "ok", reply
        assert reply["error_message"] == ""
        assert 55 <= reply["expires_in"] <= 60
        assert reply["revoked"] == []
        # Well past the old token's exp + grace + one check: still open, still served.
        while time.time() < short.claims.exp + GRACE + 3 * CHECK:
            await asyncio.sleep(0.25)
        assert (await request(ws, "ping", request_id="alive"))["status"] == "ok"
        assert len(await delivered(feed, ws, "r1")) == 1
        assert ws.close_code is None


async def test_without_refresh_the_connection_closes_4001_after_the_grace(
    edge: SharedEdge,
) -> None:
    before = metric(edge.edge, 'roomcast_edge_drops_total{reason="token_expired"}')
    issued = issue(3)
    ws, _ = await connect(edge.edge, token=issued.token)
    # A long-lived token on the same edge is not touched by the sweep.
    other, _ = await connect(edge.edge, token=issue(600).token)
    async with other:
        code, reason, at = await closed_with(ws)
        assert (code, reason) == (4001, "token expired")
        # Never before exp + grace (the sweep may add up to one check interval).
        assert at >= issued.claims.exp + GRACE
        assert (await request(other, "ping", request_id="p"))["status"] == "ok"
    after = metric(edge.edge, 'roomcast_edge_drops_total{reason="token_expired"}')
    assert after == before + 1


async def test_a_refresh_during_the_grace_still_saves_the_connection(edge: SharedEdge) -> None:
    issued = issue(3)
    ws, _ = await connect(edge.edge, token=issued.token)
    async with ws:
        while time.time() < issued.claims.exp + 0.1:
            await asyncio.sleep(0.05)
        reply = await refresh(ws, issue(60).token)
        assert reply["status"] == "ok", reply
        await asyncio.sleep(GRACE + 3 * CHECK)
        assert (await request(ws, "ping", request_id="alive"))["status"] == "ok"


async def test_narrowed_claims_revoke_a_room_and_a_topic_and_their_pushes_stop(
    edge: SharedEdge, feed: Publisher
) -> None:
    wide = issue(600, rooms=["ra", "rb"], topics=["keep", "drop"])
    ws, hello = await connect(edge.edge, token=wide.token, roomIds="ra,rb", topics="keep,drop:x")
    async with ws:
        assert hello["rooms"] == ["ra", "rb"]
        reply = await refresh(ws, issue(600, rooms=["ra"], topics=["keep"]).token)
        assert reply["status"] == "ok", reply
        assert sorted(reply["revoked"]) == ["drop:x", "rb"]
        gone_room = message(room="rb")
        gone_topic = message(topic="drop", type_="x")
        kept = message(topic="keep", type_="y")
        for msg in (gone_room, gone_topic, kept):
            await feed.send(msg)
        got = await delivered(feed, ws, "ra")
        assert kept.message_id in got
        assert gone_room.message_id not in got
        assert gone_topic.message_id not in got
        # The narrowed token is the one in force now.
        join = await request(ws, "join", {"room": "rb"}, request_id="j")
        assert join["status"] == "fail"
        assert "not allowed" in join["error_message"]
        sub = await request(ws, "subscribe", {"topic": "drop"}, request_id="s")
        assert sub["status"] == "fail"


def _wrong_algorithm() -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "user-1", "did": "device-1", "jti": uuid.uuid4().hex}
    claims |= {"iat": now, "exp": now + 600, "rooms": ["*"]}
    return jwt.encode(claims, "k" * 64, algorithm="HS512")


def _alg_none() -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "did": "device-1", "jti": "x", "iat": now, "exp": now + 600}
    return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]


async def test_bad_refreshes_fail_and_change_nothing(edge: SharedEdge, feed: Publisher) -> None:
    current = issue(8, rooms=["home"])
    ws, _ = await connect(edge.edge, token=current.token, roomIds="home")
    forged = TokenIssuer("HS256", "z" * 40).issue("user-1", "device-1", 600, rooms=["*"])
    cases: list[tuple[object, str]] = [
        ("garbage", "token"),
        ("", "token"),
        (42, "token"),
        (None, "token"),
        ("x" * 10_000, "token"),
        (issue(10, rooms=["*"], now=time.time() - 100).token, "expired"),
        (issue(600, rooms=["*"], sub="someone-else").token, "same user"),
        (issue(600, rooms=["*"], did="other-device").token, "same user"),
        (_wrong_algorithm(), "algorithm"),
        (_alg_none(), "algorithm"),
        (forged.token, "signature"),
    ]
    async with ws:
        for i, (bad, reason) in enumerate(cases):
            reply = await refresh(ws, bad, request_id=f"bad{i}")
            assert reply["status"] == "fail", (bad, reply)
            assert reason in reply["error_message"], (bad, reply)
            assert "expires_in" not in reply
            assert "revoked" not in reply
        no_token: list[tuple[dict[str, Any] | None, str]] = [(None, "params"), ({}, "token")]
        for params, reason in no_token:  # no params at all, no token in them
            reply = await request(ws, "refresh", params, request_id="np")
            assert reply["status"] == "fail", reply
            assert reason in reply["error_message"], reply
        # Rights unchanged: the wide bad tokens granted nothing, the room is still served.
        join = await request(ws, "join", {"room": "elsewhere"}, request_id="j")
        assert join["status"] == "fail"
        assert len(await delivered(feed, ws, "home")) == 1
        # Lifetime unchanged: the old token still ends the connection on time.
        code, why, at = await closed_with(ws)
        assert (code, why) == (4001, "token expired")
        assert at >= current.claims.exp + GRACE


async def test_a_revoked_token_cannot_refresh_and_the_new_token_governs_revocation(
    infra: Infra, edge: SharedEdge
) -> None:
    first = issue(600)
    ws, _ = await connect(edge.edge, token=first.token)
    revoked_one, fresh = issue(600), issue(600)
    client = aioredis.from_url(infra.redis_url)
    store = RedisTokenStore(client)
    try:
        await store.revoke(revoked_one.claims.jti, 600)
        async with ws:
            reply = await refresh(ws, revoked_one.token, request_id="rv")
            assert reply["status"] == "fail"
            assert "revoked" in reply["error_message"]
            assert (await refresh(ws, fresh.token))["status"] == "ok"
            # The connection now runs on the fresh token: revoking that one closes it.
            await store.revoke(fresh.claims.jti, 600)
            code, reason, _ = await closed_with(ws)
            assert (code, reason) == (1008, "token revoked")
    finally:
        await client.aclose()


async def test_refused_tokens_at_connect_name_the_reason(infra: Infra, edge: SharedEdge) -> None:
    base = edge.edge.url + "/ws?token="
    expired = issue(10, now=time.time() - 100).token
    not_yet = issue(600, now=time.time() + 3600).token
    forged = TokenIssuer("HS256", "z" * 40).issue("u", "d", 600).token
    revoked = issue(600)
    client = aioredis.from_url(infra.redis_url)
    try:
        await RedisTokenStore(client).revoke(revoked.claims.jti, 600)
    finally:
        await client.aclose()
    cases = [
        (expired, "token_expired"),
        (not_yet, "token_expired"),
        ("garbage", "token_invalid"),
        (forged, "token_invalid"),
        (_wrong_algorithm(), "token_invalid"),
        (revoked.token, "token_revoked"),
    ]
    for bad, code in cases:
        status, body = http_get(base + bad)
        assert status == 401, (code, body)
        assert json.loads(body)["error"]["code"] == code, body
    status, body = http_get(edge.edge.url + "/ws")
    assert status == 401
    assert json.loads(body)["error"]["code"] == "token_invalid"
    # The code is also in WWW-Authenticate, where a WebSocket library can read it.
    refused = websockets.connect(base.replace("http://", "ws://") + expired, open_timeout=WAIT)
    with pytest.raises(websockets.InvalidStatus) as info:
        await refused
    headers = info.value.response.headers
    assert 'error_description="token_expired"' in headers["WWW-Authenticate"]


async def test_refresh_costs_no_extra_frames(edge: SharedEdge, feed: Publisher) -> None:
    """A refresh gets exactly one reply and the stream around it is whole."""
    ws, _ = await connect(edge.edge, token=issue(600, rooms=["seq"]).token, roomIds="seq")
    async with ws:
        sent = [message(room="seq") for _ in range(20)]
        await feed.send_many(sent[:10])
        before = await pushes_until(ws, sent[9].message_id)
        assert (await refresh(ws, issue(600, rooms=["seq"]).token))["status"] == "ok"
        await feed.send_many(sent[10:])
        after = await delivered(feed, ws, "seq")
        got = [p["meta"]["message_id"] for p in before] + after[:-1]
        assert got == [m.message_id for m in sent]
        await expect_nothing(ws, 0.5)
