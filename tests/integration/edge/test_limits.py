"""Protection: slow consumers (4008), request rate, connection limit."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
import websockets

from roomcast_harness.services import ServiceProcess
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
)


async def test_slow_consumer_is_closed_while_a_fast_one_keeps_receiving(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__MAX_OUTBOUND_BYTES="1048576"))
    # The slow client: a tiny receive buffer and it never reads.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", edge.port))
    slow, _ = await connect(edge, {"sock": sock, "max_queue": 1}, token=token())
    fast, _ = await connect(edge, token=token())
    count = 1200
    received: list[str] = []

    async def read_fast() -> None:
        while len(received) < count:
            body = await recv_json(fast)
            received.append(body["meta"]["message_id"])

    reader = asyncio.create_task(read_fast())
    payload = "x" * 8000
    msgs = [message({"seq": i, "pad": payload}) for i in range(count)]
    for start in range(0, count, 200):
        await publisher.send_many(msgs[start : start + 200])
    await asyncio.wait_for(reader, 120)
    assert received == [m.message_id for m in msgs]  # all of them, in order, on time
    assert metric(edge, 'roomcast_edge_drops_total{reason="slow_consumer"}') == 1

    # The slow client, reading at last, finds a gap and then the 4008 close.
    got = 0
    try:
        while True:
            await asyncio.wait_for(slow.recv(), WAIT)
            got += 1
    except websockets.ConnectionClosed:
        pass
    assert slow.close_code == 4008
    assert slow.close_reason == "slow consumer"
    assert got < count
    await fast.close()


async def test_request_rate_limit_replies_fail_then_closes_abusers(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__REQUEST_RATE="5"))
    ws, _ = await connect(edge, token=token())
    for i in range(40):
        await ws.send(json.dumps({"request_id": str(i), "action": "ping"}))
    replies: list[dict[str, Any]] = [await recv_json(ws) for _ in range(40)]
    assert [r["request_id"] for r in replies] == [str(i) for i in range(40)]  # one each
    statuses = [r["status"] for r in replies]
    assert statuses[:10] == ["ok"] * 10  # the burst
    assert "fail" in statuses
    assert all("rate limit" in r["error_message"] for r in replies if r["status"] == "fail")
    # sustained abuse: closed with 1008
    for i in range(400):
        try:
            await ws.send(json.dumps({"request_id": f"x{i}", "action": "ping"}))
        except websockets.ConnectionClosed:
            break
    try:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    except websockets.ConnectionClosed:
        pass
    assert ws.close_code == 1008
    # others are unaffected
    other, _ = await connect(edge, token=token())
    await other.send(json.dumps({"request_id": "o", "action": "ping"}))
    assert (await recv_json(other))["status"] == "ok"
    await other.close()


async def test_connection_limit_answers_503_before_the_upgrade(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    edge: ServiceProcess = start_service(
        "edge", infra.env(topic, ROOMCAST_EDGE__MAX_CONNECTIONS="2")
    )
    first, _ = await connect(edge, token=token())
    second, _ = await connect(edge, token=token())
    status, body = http_get(edge.url + f"/ws?token={token()}")
    assert status == 503
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(edge.url.replace("http", "ws") + f"/ws?token={token()}")
    assert refused.value.response.status_code == 503
    await first.close()

    # a freed slot is usable again
    async def third_connects() -> None:
        while True:
            try:
                ws, _ = await connect(edge, token=token())
            except websockets.InvalidStatus:
                await asyncio.sleep(0.1)
                continue
            await ws.close()
            return

    await asyncio.wait_for(third_connects(), WAIT)
    await second.close()


async def test_concurrent_handshakes_never_open_more_than_the_limit(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    limit = 3
    edge: ServiceProcess = start_service(
        "edge", infra.env(topic, ROOMCAST_EDGE__MAX_CONNECTIONS=str(limit))
    )

    async def attempt() -> Any:
        try:
            ws, _ = await connect(edge, token=token())
        except websockets.InvalidStatus as refused:
            return refused.response.status_code
        return ws

    # Every handshake awaits its token's revocation lookup: all of them are in
    # flight together, past the limit check, before any of them opens.
    results = await asyncio.gather(*(attempt() for _ in range(40)))
    opened = [ws for ws in results if not isinstance(ws, int)]
    assert [r for r in results if isinstance(r, int)] == [503] * (40 - limit)
    assert len(opened) == limit
    assert metric(edge, "roomcast_edge_connections") == limit
    for ws in opened:
        await ws.close()
