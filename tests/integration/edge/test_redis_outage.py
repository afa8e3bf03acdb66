"""Redis going away: the edge fails open for revocation at connect, reports 503, and
resumes revocations (pub/sub resubscribed) once Redis is back."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
import websockets

from roomcast_core.token_store import RedisTokenStore
from roomcast_core.tokens import TokenIssuer
from roomcast_harness.redis_server import RedisServer
from tests.conftest import NO_KAFKA, Infra, ServiceFactory
from tests.integration.edge.conftest import (
    SECRET,
    WAIT,
    Publisher,
    connect,
    http_get,
    message,
    metric,
    recv_json,
    request,
    token_and_jti,
)


async def _readyz_becomes(url: str, status: int) -> None:
    async def poll() -> None:
        while (await asyncio.to_thread(http_get, url + "/readyz"))[0] != status:
            await asyncio.sleep(0.2)

    await asyncio.wait_for(poll(), WAIT * 2)


async def test_connects_fail_open_during_a_redis_outage_and_revocation_resumes(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    own_redis: RedisServer,
    publisher: Publisher,
) -> None:
    env = {**infra.env(topic), "ROOMCAST_REDIS__URL": own_redis.url}
    edge = start_service("edge", env)
    await asyncio.to_thread(own_redis.stop)
    await _readyz_becomes(edge.url, 503)

    raw, jti = token_and_jti()
    ws, _ = await connect(edge, token=raw)  # revocation unreadable: let in, counted
    assert metric(edge, 'roomcast_edge_redis_errors_total{call="is_revoked"}') >= 1
    msg = message("during the outage")
    await publisher.send(msg)
    assert (await recv_json(ws))["meta"]["message_id"] == msg.message_id

    await asyncio.to_thread(own_redis.start)
    await _readyz_becomes(edge.url, 200)
    client = aioredis.from_url(own_redis.url)
    try:
        await RedisTokenStore(client).revoke(jti, 600)
    finally:
        await client.aclose()

    async def closed() -> None:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            return

    await asyncio.wait_for(closed(), WAIT * 2)
    assert (ws.close_code, ws.close_reason) == (1008, "token revoked")


async def test_a_refresh_fails_closed_during_a_redis_outage(
    topic: str, start_service: ServiceFactory, own_redis: RedisServer
) -> None:
    """Whether the new token is revoked cannot be read: the refresh is refused (the
    connection keeps its token and retries later); connects still fail open."""
    env = Infra(own_redis.url, NO_KAFKA, bus="redis").env(topic)
    edge = start_service("edge", env)
    old = TokenIssuer("HS256", SECRET).issue("u1", "d1", 600)
    ws, hello = await connect(edge, token=old.token)
    fresh = TokenIssuer("HS256", SECRET).issue("u1", "d1", 3600).token
    await asyncio.to_thread(own_redis.stop)
    try:
        reply = await request(ws, "refresh", {"token": fresh}, request_id="rf")
        assert reply["status"] == "fail", reply
        assert "could not be checked" in reply["error_message"]
        assert "expires_in" not in reply
        assert (await request(ws, "ping", request_id="alive"))["status"] == "ok"
        # A connect in the same outage is let in (see the test above).
        other, _ = await connect(edge, token=fresh)
        await other.close()
    finally:
        await asyncio.to_thread(own_redis.start)
    await _readyz_becomes(edge.url, 200)
    reply = await request(ws, "refresh", {"token": fresh}, request_id="rf2")
    assert reply["status"] == "ok", reply
    assert reply["expires_in"] > hello["expires_in"]
    await ws.close()
