"""Clients that recover from far back and never read hold no reader of the bus.

Four sockets connect with an old `since` on a busy room, keep sending `ping`
requests (so they count as alive) and never read a byte. The edge's readers of the
bus's log must stay available to everyone else: another client's recovery and a
history page go through, a bystander's round trip stays short, and the four are
closed 4008 once it is clear they do not read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from roomcast_edge.domain.positions import parse_vector
from roomcast_harness.services import ServiceProcess
from tests.conftest import BUSES, Infra, ServiceFactory, infra_on
from tests.integration.edge.conftest import (
    Publisher,
    connect,
    http_get,
    message,
    metric,
    pushes_until,
    read_seqs_in_order,
    request,
    token,
)

TINY = {"ROOMCAST_EDGE__HISTORY_SIZE": "30"}
BEHIND = 3000  # records of 4 KB in the busy room, all older than the history
DEADLINE = 45.0
# Clients here wait on the edge without sending: a failure shows as a timeout, not a 4000.
PATIENT = {"ROOMCAST_EDGE__HEARTBEAT_TIMEOUT": "120"}


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


def _masked_text(payload: bytes) -> bytes:
    """One masked text frame, as a client sends it (payloads under 126 bytes)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


@contextlib.asynccontextmanager
async def never_reading(edge: ServiceProcess, query: dict[str, str]) -> AsyncIterator[None]:
    """A WebSocket client that pings every 0.5 s and reads nothing after the 101.

    Its receive buffer is made small before it connects, so the edge soon cannot
    write to it; its pings keep it alive (they are life, as any client frame is).
    """
    url = urllib.parse.urlsplit(edge.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws?{urllib.parse.urlencode(query)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    assert status.startswith(b"HTTP/1.1 101"), status

    async def ping() -> None:
        for i in range(10_000):
            writer.write(
                _masked_text(json.dumps({"request_id": f"n{i}", "action": "ping"}).encode())
            )
            await asyncio.sleep(0.5)

    pinging = asyncio.create_task(ping())
    try:
        yield
    finally:
        pinging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinging
        writer.transport.abort()


def drops(edge: ServiceProcess, reason: str) -> float:
    _, body = http_get(edge.url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(f'roomcast_edge_drops_total{{reason="{reason}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def until(check: Any, deadline: float, what: str) -> None:
    """Wait for `check()` to be true, looking every 0.1 s, failing after `deadline` s."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.1)


async def ping_median_ms(ws: ClientConnection, count: int) -> float:
    times = []
    for i in range(count):
        started = time.perf_counter()
        reply = await request(ws, "ping", request_id=f"p{i}")
        assert reply["status"] == "ok"
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _fill(publisher: Publisher, busy: str, quiet: str) -> None:
    blob = "x" * 4000
    for start in range(0, BEHIND, 500):
        await publisher.send_many(
            [message({"seq": i, "blob": blob}, room=busy) for i in range(start, start + 500)]
        )
    await publisher.send_many([message({"seq": i}, room=quiet) for i in range(3)])


async def test_four_sockets_that_never_read_hold_no_bus_reader(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    env = infra.env(topic, ROOMCAST_EDGE__ARCHIVE_READERS="4", **TINY, **PATIENT)
    edge = start_service("edge", env)
    busy, quiet = f"busy-{uuid.uuid4().hex[:6]}", f"quiet-{uuid.uuid4().hex[:6]}"
    probe, hello = await connect(edge, token=token())
    since = hello["position"]
    await _fill(publisher, busy, quiet)
    marker = message({"seq": "marker"})  # a broadcast: once the probe has it, all were read
    await publisher.send(marker)
    await asyncio.wait_for(pushes_until(probe, marker.message_id), 60)
    baseline = await ping_median_ms(probe, 30)

    async with contextlib.AsyncExitStack() as stack:
        for i in range(4):  # four users, four tokens
            query = {"token": token(subject=f"slow-{i}"), "roomIds": busy, "since": since}
            await stack.enter_async_context(never_reading(edge, query))
        # They have read back at least their read-ahead each (and then stopped).
        await until(
            lambda: metric(edge, "roomcast_edge_archive_records_total") >= 4 * 60,
            DEADLINE,
            "the four recoveries started",
        )
        during = await ping_median_ms(probe, 30)

        # Another client back from far away gets its missed messages, then live ones.
        other, hello = await connect(edge, token=token(), roomIds=quiet, since=since)
        assert hello["recovered"] is True
        vector = parse_vector(since)
        # Six pushes: its room's five and the broadcast marker, which it is entitled to
        # too (where the marker falls among them depends on partitions and timing).
        reading = asyncio.create_task(read_seqs_in_order(other, vector, 6))
        await publisher.send_many([message({"seq": i}, room=quiet) for i in (3, 4)])
        seqs: list[object] = list(await asyncio.wait_for(reading, DEADLINE))
        assert [s for s in seqs if s != "marker"] == [0, 1, 2, 3, 4]
        assert seqs.count("marker") == 1
        await other.close()

        # A history page that needs the bus is answered, not a 503 after 30 s.
        url = (
            edge.url
            + "/v1/history?"
            + urllib.parse.urlencode({"room": quiet, "since": since, "token": token()})
        )
        status, body = await asyncio.to_thread(http_get, url)
        assert status == 200, body
        messages = json.loads(body)["messages"]
        assert [m["payload"]["seq"] for m in messages if m.get("room") == quiet] == [0, 1, 2, 3, 4]

        # The four do not read: closed as slow consumers, their readers long given back.
        await until(lambda: drops(edge, "slow_consumer") >= 4, DEADLINE, "the four closed 4008")
        assert metric(edge, "roomcast_edge_archive_readers") == 0

    print(f"bystander ping median {baseline:.2f} ms, with four stalled recoveries {during:.2f} ms")
    assert during < max(15.0, 5 * baseline)
    await probe.close()


async def test_history_requests_of_one_token_beyond_the_limit_get_429(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, **TINY))
    busy, quiet = f"busy-{uuid.uuid4().hex[:6]}", f"quiet-{uuid.uuid4().hex[:6]}"
    probe, hello = await connect(edge, token=token())
    since = hello["position"]
    await _fill(publisher, busy, quiet)
    marker = message({"seq": "marker"})
    await publisher.send(marker)
    await asyncio.wait_for(pushes_until(probe, marker.message_id), 60)
    await probe.close()
    # Each page reads the whole busy gap back from the bus for nothing that matches:
    # six of them at once with one token overlap, whatever the machine's speed.
    tok = token()

    def page(tok: str) -> tuple[int, bytes]:
        query = {"room": f"none-{busy}", "since": since, "token": tok, "limit": "1000"}
        return http_get(edge.url + "/v1/history?" + urllib.parse.urlencode(query))

    answers = await asyncio.gather(*[asyncio.to_thread(page, tok) for _ in range(6)])
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 1, statuses
    assert statuses.count(200) >= 1, statuses
    for status, body in answers:
        if status == 429:
            assert json.loads(body)["error"]["code"] == "too_many_requests"
    # Another token is not held back by this one's pages.
    status, body = await asyncio.to_thread(page, token(subject="another"))
    assert status == 200, body
