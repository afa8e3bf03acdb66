"""A silent client lives exactly as long as auth keeps recording its HTTP heartbeats."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack

TIMEOUT = 3.0
CHECK = 1.0


@pytest.fixture
def short_heartbeats(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(
        infra,
        tmp_path,
        edges=1,
        ROOMCAST_EDGE__HEARTBEAT_TIMEOUT=str(TIMEOUT),
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL=str(CHECK),
    )
    yield running
    running.stop()


async def test_http_heartbeats_keep_a_silent_client(short_heartbeats: Stack) -> None:
    stack = short_heartbeats
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{stack.auth.url}/v1/tokens", json={"device_id": "silent", "is_login": False}
        ) as response:
            assert response.status == 201
            token = (await response.json())["token"]
        # ping_interval=None: the client library sends nothing on its own.
        async with websockets.connect(f"{stack.ws_url()}?token={token}", ping_interval=None) as ws:
            assert json.loads(await ws.recv())["action"] == "connected"
            alive_until = time.monotonic() + 3 * TIMEOUT
            while time.monotonic() < alive_until:
                async with session.post(
                    f"{stack.auth.url}/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    assert response.status == 200
                    assert (await response.json())["expires_in"] > 0
                await asyncio.sleep(CHECK)
            assert ws.close_code is None, "closed although auth recorded heartbeats"
            # Heartbeats stop: the edge must close the connection with 4000.
            closed = await _closed(ws, 4 * TIMEOUT)
            assert closed.rcvd is not None
            assert closed.rcvd.code == 4000
            assert closed.rcvd.reason == "heartbeat timeout"


async def _closed(ws: websockets.ClientConnection, within: float) -> ConnectionClosed:
    async with asyncio.timeout(within):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                return closed
