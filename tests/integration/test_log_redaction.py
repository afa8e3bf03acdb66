"""Tokens never reach a log line: not from a malformed request line, a bad header, or
a refused token, in any service.

Each service runs as its own process with its log in a file; the test sends raw
requests that aiohttp refuses and logs, then reads the file.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from roomcast_core.tokens import TokenIssuer
from roomcast_harness.services import ServiceProcess
from tests.conftest import NO_KAFKA, Infra, ServiceFactory
from tests.integration.edge.conftest import SECRET

# What aiohttp refuses, each carrying the token where clients put it.
BAD_REQUESTS = [
    b"GET /ws?token={t}&roomIds=1 HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
    b"GET /ws?token={t} HTTP/1.x\r\nHost: x\r\n\r\n",
    b"GET /heartbeat?token={t}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nBad Header\r\n\r\n",
    b"GET /ws?access_token={t} HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
]


@pytest.fixture(scope="module")
def infra(aof_redis_url: str) -> Infra:
    return Infra(aof_redis_url, NO_KAFKA, bus="redis")


async def _send(proc: ServiceProcess, raw: bytes) -> bytes:
    host, port = proc.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("service", ["edge", "auth", "publisher"])
async def test_no_token_reaches_the_log(
    infra: Infra, topic: str, start_service: ServiceFactory, service: str
) -> None:
    proc = start_service(service, infra.env(topic, ROOMCAST_LOG__LEVEL="DEBUG"))
    token = TokenIssuer("HS256", SECRET).issue("leaky-user", "d", 600).token
    for template in BAD_REQUESTS:
        answer = await _send(proc, template.replace(b"{t}", token.encode()))
        assert answer.split(b" ", 2)[1].startswith(b"4"), answer[:80]
    # A refused token through the normal path, too.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    await _send(proc, f"GET /heartbeat?token={forged} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    log = _settled_log(proc.log_path)
    assert "400" in log or "Bad" in log or "bad" in log, log[-2000:]  # the refusals were logged
    assert token not in log
    assert token.split(".")[1] not in log  # not even the claims part
    assert forged not in log


def _settled_log(path: Path, quiet: float = 0.5, timeout: float = 10.0) -> str:
    """The log once it stopped growing for `quiet` seconds (the lines are written)."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = path.stat().st_size
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.05)
    return path.read_text(errors="replace")
