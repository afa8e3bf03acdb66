"""`make run BUS=redis`: the stack on Redis Streams, with no Kafka (and so no Java) at all."""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import uuid
from pathlib import Path

import aiohttp
import websockets

from roomcast_core.tokens import TokenIssuer
from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for

SECRET = "stack-secret-0123456789abcdefghijklmnopq"
WAIT = 30.0


async def test_the_stack_runs_on_redis_streams_without_kafka(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("AUTH", "EDGE", "PUBLISHER")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")},
        "OTEL_SDK_DISABLED": "true",
        "ROOMCAST_JWT__SECRET": SECRET,
        "ROOMCAST_BUS__STREAM": f"roomcast.test.{uuid.uuid4().hex[:12]}",
        **{f"ROOMCAST_{name}__PORT": str(port) for name, port in ports.items()},
    }
    harness = Path(sys.executable).parent / "roomcast-harness"
    log = tmp_path / "stack.log"
    argv = [str(harness), "stack", "--bus", "redis", "--workdir", str(tmp_path / "stack")]
    proc = spawn(argv, log, env=env)
    try:
        wait_for(
            lambda: proc.poll() is not None or "roomcast is up" in log.read_text(errors="replace"),
            120,
            "the stack's banner",
        )
        assert proc.poll() is None, tail(log)
        text = log.read_text(errors="replace")
        assert "starting redis" in text
        assert "starting kafka" not in text
        assert not (tmp_path / "stack" / "kafka").exists()
        appendonly = (tmp_path / "stack" / "redis").glob("appendonly*")
        assert list(appendonly), "the bus's Redis runs without AOF"

        token = TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 600).token
        edge = f"ws://127.0.0.1:{ports['EDGE']}/ws?" + urllib.parse.urlencode({"token": token})
        async with websockets.connect(edge, open_timeout=WAIT, ping_interval=None) as ws:
            assert json.loads(await ws.recv())["action"] == "connected"
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
                session.post(
                    f"http://127.0.0.1:{ports['PUBLISHER']}/v1/messages",
                    json={"payload": {"hello": "redis"}},
                ) as response,
            ):
                assert response.status == 202
                position = (await response.json())["position"]
            push = json.loads(await ws.recv())
            assert push["payload"] == {"hello": "redis"}
            assert push["meta"]["position"] == position
    finally:
        stop(proc, timeout=60)
