"""Revocation, SIGTERM drain, readiness and metrics of the edge process."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import redis.asyncio as aioredis
import websockets

from roomcast_core.token_store import RedisTokenStore
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import (
    WAIT,
    Publisher,
    connect,
    http_get,
    message,
    metric,
    recv_json,
    token,
    token_and_jti,
)


async def _close_code(ws: websockets.ClientConnection) -> tuple[int | None, str | None]:
    async def drain() -> None:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            return

    await asyncio.wait_for(drain(), WAIT)
    return ws.close_code, ws.close_reason


async def test_revoked_token_is_closed_and_refused(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    edge = start_service("edge", infra.env(topic))
    raw, jti = token_and_jti()
    ws, _ = await connect(edge, token=raw)
    same_token, _ = await connect(edge, token=raw)
    bystander, _ = await connect(edge, token=token())
    client = aioredis.from_url(infra.redis_url)
    try:
        await RedisTokenStore(client).revoke(jti, 600)
    finally:
        await client.aclose()
    assert await _close_code(ws) == (1008, "token revoked")
    assert await _close_code(same_token) == (1008, "token revoked")
    status, _ = http_get(edge.url + f"/ws?token={raw}")
    assert status == 401
    await bystander.send(json.dumps({"request_id": "b", "action": "ping"}))
    assert (await recv_json(bystander))["status"] == "ok"
    assert metric(edge, 'roomcast_edge_drops_total{reason="revoked"}') == 2
    await bystander.close()


async def test_sigterm_drains_then_exits_cleanly(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__DRAIN_SECONDS="3"))
    clients = [(await connect(edge, token=token()))[0] for _ in range(6)]
    assert http_get(edge.url + "/readyz")[0] == 200
    edge.process.send_signal(signal.SIGTERM)

    async def refused() -> None:
        while http_get(edge.url + "/readyz")[0] != 503:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(refused(), WAIT)
    status, body = http_get(edge.url + f"/ws?token={token()}")
    assert status == 503
    assert json.loads(body)["error"]["code"] == "draining"
    for ws in clients:
        assert await _close_code(ws) == (1012, "service restart")
    code = await asyncio.to_thread(edge.process.wait, 30)
    assert code == 0


async def test_metrics_count_connections_and_deliveries(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic))
    ws, _ = await connect(edge, token=token(), topics="a,b:c")
    other, _ = await connect(edge, token=token())
    assert metric(edge, "roomcast_edge_connections") == 2
    assert metric(edge, "roomcast_edge_subscriptions") == 2
    msg = message({"hello": 1})
    await publisher.send(msg)
    for client in (ws, other):
        assert (await recv_json(client))["meta"]["message_id"] == msg.message_id
    assert metric(edge, "roomcast_edge_messages_in_total") == 1
    assert metric(edge, "roomcast_edge_deliveries_total") == 2
    assert metric(edge, "roomcast_edge_publish_to_deliver_seconds_count") == 1
    assert metric(edge, "roomcast_edge_fanout_seconds_count") == 1
    assert metric(edge, "roomcast_edge_asyncio_tasks") > 0
    await other.close()
    deadline = time.monotonic() + WAIT
    while metric(edge, "roomcast_edge_connections") != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert metric(edge, "roomcast_edge_connections") == 1
    await ws.close()
