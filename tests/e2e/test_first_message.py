"""The README's "first message" recipe, run as written: websocat with pings, then a publish.

A raw client that sends nothing is closed after the heartbeat timeout (4000), so the
recipe's `websocat --ping-interval` is what keeps a slow reader's terminal connected.
The edge here times out after 2 s instead of 30 (and websocat pings every 1 s instead
of 10), so the run takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.conftest import Infra
from tests.e2e.conftest import Stack, start_stack

WEBSOCAT = str(Path(sys.executable).parent / "websocat")  # the dev dependency's binary
WAIT = 30.0


@pytest.fixture
def quick_timeouts(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(
        infra,
        tmp_path,
        edges=1,
        ROOMCAST_EDGE__HEARTBEAT_TIMEOUT="2",
        ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL="0.5",
    )
    yield running
    running.stop()


@contextlib.asynccontextmanager
async def _websocat(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    # stdin stays open, as a terminal's does: websocat closes the socket at stdin's EOF.
    proc = await asyncio.create_subprocess_exec(
        WEBSOCAT,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _line(proc: asyncio.subprocess.Process) -> dict[str, object]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
    assert line, "websocat ended before printing a message"
    parsed: dict[str, object] = json.loads(line)
    return parsed


async def test_the_recipe_with_pings_outlives_the_heartbeat_timeout(quick_timeouts: Stack) -> None:
    stack = quick_timeouts
    room = f"first-{uuid.uuid4().hex[:6]}"
    # TOKEN=$(roomcast token --device d1), as the README gets it
    cli = [sys.executable, "-m", "roomcast_client", "--auth", stack.auth.url]
    token = subprocess.run(
        [*cli, "token", "--device", "d1"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    ).stdout.strip()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        url = f"{stack.ws_url()}?token={token}&roomIds={room}"

        async with _websocat("--ping-interval", "1", url) as pinging:
            assert (await _line(pinging))["action"] == "connected"
            # A client that sends nothing, connected after websocat, so the younger of the
            # two: once the edge has closed it for silence, websocat is past the timeout
            # too. (websocat itself would not show that close: it waits for stdin's EOF.)
            async with websockets.connect(url, ping_interval=None) as silent:
                assert json.loads(await silent.recv())["action"] == "connected"
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(silent.recv(), WAIT)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4000
            async with session.post(
                f"{stack.publisher.url}/v1/messages",
                json={"room": room, "type": "event", "payload": {"content": "hello"}},
            ) as response:
                assert response.status == 202
            push = await _line(pinging)
            assert push["payload"] == {"content": "hello"}
            assert push["room"] == room
            assert pinging.returncode is None
