"""`make run` passes every ROOMCAST_* variable to the services it starts.

The stack runs as `make run` runs it (`roomcast-harness stack`, its own process) on the
session's Redis and Kafka, with a JWT secret and a heartbeat timeout of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from roomcast_core.settings import DEV_SECRET
from roomcast_core.tokens import TokenIssuer, TokenVerifier, VerificationKey
from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for
from tests.conftest import Infra

SECRET = "stack-secret-0123456789abcdefghijklmnopq"
HEARTBEAT_TIMEOUT = 2.0  # the default is 30
WAIT = 30.0


@dataclass(frozen=True)
class RunningStack:
    auth: str
    edge: str
    log: Path


@pytest.fixture
def custom_stack(infra: Infra, tmp_path: Path) -> Iterator[RunningStack]:
    ports = {name: free_port() for name in ("AUTH", "EDGE", "PUBLISHER")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")},
        "OTEL_SDK_DISABLED": "true",
        "ROOMCAST_REDIS__URL": infra.redis_url,
        "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "ROOMCAST_KAFKA__TOPIC": f"roomcast.test.{uuid.uuid4().hex[:12]}",
        "ROOMCAST_JWT__SECRET": SECRET,
        "ROOMCAST_EDGE__HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL": "0.5",
        **{f"ROOMCAST_{name}__PORT": str(port) for name, port in ports.items()},
    }
    harness = Path(sys.executable).parent / "roomcast-harness"
    log = tmp_path / "stack.log"
    proc = spawn([str(harness), "stack", "--workdir", str(tmp_path / "stack")], log, env=env)
    try:
        wait_for(
            lambda: proc.poll() is not None or "roomcast is up" in log.read_text(errors="replace"),
            180,
            "the stack's banner",
        )
        assert proc.poll() is None, tail(log)
        yield RunningStack(
            auth=f"http://127.0.0.1:{ports['AUTH']}",
            edge=f"ws://127.0.0.1:{ports['EDGE']}/ws",
            log=log,
        )
    finally:
        stop(proc, timeout=60)


def _token(secret: str) -> str:
    return TokenIssuer("HS256", secret).issue("user-1", "device-1", 600).token


async def test_the_stack_passes_secret_and_heartbeat_timeout_through(
    custom_stack: RunningStack,
) -> None:
    def url(token: str) -> str:
        return custom_stack.edge + "?" + urllib.parse.urlencode({"token": token})

    # The default secret is refused: the edge verifies with the one we set.
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url(_token(DEV_SECRET)), open_timeout=WAIT)
    assert refused.value.response.status_code == 401

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        # auth signs with it too, and reports the heartbeat timeout as a heartbeat's life.
        body = {"device_id": "d", "user_id": "u", "is_login": True}
        async with session.post(custom_stack.auth + "/v1/tokens", json=body) as response:
            assert response.status == 201
            issued = (await response.json())["token"]
        TokenVerifier([VerificationKey("HS256", SECRET)]).verify(issued)
        beat_headers = {"Authorization": f"Bearer {issued}"}
        async with session.post(custom_stack.auth + "/v1/heartbeat", headers=beat_headers) as r:
            assert r.status == 200
            assert (await r.json())["expires_in"] == pytest.approx(HEARTBEAT_TIMEOUT, abs=1)

    # A silent client is closed for lack of heartbeats long before the default 30 s.
    loop = asyncio.get_running_loop()
    async with websockets.connect(url(_token(SECRET)), open_timeout=WAIT, ping_interval=None) as ws:
        assert json.loads(await ws.recv())["action"] == "connected"
        opened = loop.time()
        closed = await _closed(ws, within=15)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 4000, closed
        assert loop.time() - opened >= HEARTBEAT_TIMEOUT


async def _closed(ws: websockets.ClientConnection, within: float) -> ConnectionClosed:
    async with asyncio.timeout(within):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                return closed
