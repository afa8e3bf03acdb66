"""Heartbeats: no life for HEARTBEAT_TIMEOUT closes with 4000; frames or HTTP heartbeats are life."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_core.token_store import RedisTokenStore
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import (
    WAIT,
    connect,
    metric,
    module_edge,
    recv_json,
    token,
    token_and_jti,
)

TIMEOUT = 3.0


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__HEARTBEAT_TIMEOUT=str(TIMEOUT),
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL="0.5",
    ) as shared:
        yield shared.edge


async def _closed(ws: ClientConnection, timeout: float = WAIT) -> None:
    async def drain() -> None:
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            return

    await asyncio.wait_for(drain(), timeout)


async def _still_open_after(ws: ClientConnection, seconds: float, keep_alive: object) -> None:
    """Run keep_alive() every 0.4 s for `seconds`; the connection must stay open."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await keep_alive()  # type: ignore[operator]
        await asyncio.sleep(0.4)
    assert ws.close_code is None


async def test_idle_client_is_closed_with_4000(edge: ServiceProcess) -> None:
    ws, _ = await connect(edge, token=token())
    await _closed(ws)
    assert ws.close_code == 4000
    assert ws.close_reason == "heartbeat timeout"
    assert metric(edge, 'roomcast_edge_drops_total{reason="heartbeat_timeout"}') >= 1


async def test_ping_actions_and_ping_frames_keep_a_client_alive(edge: ServiceProcess) -> None:
    by_action, _ = await connect(edge, token=token())
    by_frame, _ = await connect(edge, token=token())
    counter = 0

    async def both() -> None:
        nonlocal counter
        counter += 1
        await by_action.send(json.dumps({"request_id": str(counter), "action": "ping"}))
        assert (await recv_json(by_action))["status"] == "ok"
        await asyncio.wait_for(await by_frame.ping(), WAIT)

    await _still_open_after(by_action, TIMEOUT * 3, both)
    assert by_frame.close_code is None
    # and once they stop, they are closed
    await _closed(by_action)
    await _closed(by_frame)
    assert [ws.close_code for ws in (by_action, by_frame)] == [4000, 4000]


async def test_http_heartbeats_in_redis_keep_a_silent_client_alive(
    edge: ServiceProcess, infra: Infra
) -> None:
    client = aioredis.from_url(infra.redis_url)
    store = RedisTokenStore(client)
    try:
        raw, jti = token_and_jti()
        ws, _ = await connect(edge, token=raw)
        silent, _ = await connect(edge, token=token())

        async def heartbeat() -> None:
            await store.record_heartbeat(jti, TIMEOUT)

        await _still_open_after(ws, TIMEOUT * 3, heartbeat)
        # the other token had no heartbeat: it is gone meanwhile
        await _closed(silent, timeout=1)
        assert silent.close_code == 4000
        # stop the HTTP heartbeats: the client is closed
        await _closed(ws)
        assert ws.close_code == 4000
    finally:
        await client.aclose()
