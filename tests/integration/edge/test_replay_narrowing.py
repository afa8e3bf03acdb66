"""A replay stops sending a room the moment the connection no longer holds it.

A client recovers a long gap of two rooms and reads slowly; while the replay runs
it leaves one of them (or a refresh takes it away). After the reply that removed
the room, no push of that room may arrive, from the history or from the bus.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.parse
import uuid
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_core.tokens import TokenIssuer
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import (
    SECRET,
    WAIT,
    Publisher,
    connect,
    message,
    pushes_until,
    recv_json,
    token,
    ws_url,
)

GAP = 2000  # pushes of about 2 KB in the room that is left


def _token(rooms: list[str]) -> str:
    return TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 600, rooms=rooms).token


async def _slow_client(url: str) -> tuple[ClientConnection, dict[str, Any]]:
    """A client with a small receive buffer that reads only when asked: the edge's
    replay to it runs as long as it does not read."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    ws = await websockets.connect(
        url, sock=sock, max_queue=2, ping_interval=None, open_timeout=WAIT
    )
    hello = await recv_json(ws)
    assert hello["action"] == "connected", hello
    return ws, hello


async def _after_the_reply(
    ws: ClientConnection, request_id: str, publisher: Publisher, left: str
) -> tuple[int, list[str], dict[str, Any]]:
    """(pushes of `left` before the reply, rooms of the pushes after it, the reply),
    reading up to a broadcast sent once the reply arrived."""
    before = 0
    reply: dict[str, Any] | None = None
    after: list[str] = []
    marker = message({"seq": "marker"})
    while True:
        body = await recv_json(ws, timeout=60)
        if body.get("request_id") == request_id:
            reply = body
            await publisher.send(marker)
            continue
        if "meta" not in body:
            continue
        if body["meta"]["message_id"] == marker.message_id:
            assert reply is not None
            return before, after, reply
        if reply is None:
            before += body.get("room") == left
        else:
            after.append(body.get("room", ""))


async def _publish(publisher: Publisher, left: str, kept: str) -> None:
    blob = "y" * 2000
    for start in range(0, GAP, 500):
        await publisher.send_many(
            [message({"seq": i, "b": blob}, room=left) for i in range(start, start + 500)]
        )
    await publisher.send_many([message({"seq": i}, room=kept) for i in range(20)])


@pytest.mark.parametrize("history", ["memory", "bus"])
@pytest.mark.parametrize("how", ["leave", "refresh"])
async def test_a_room_taken_away_mid_replay_sends_nothing_more(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    publisher: Publisher,
    how: str,
    history: str,
) -> None:
    size = {"memory": "100000", "bus": "30"}[history]  # "bus": the replay reads it back
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__HISTORY_SIZE=size))
    left, kept = f"left-{uuid.uuid4().hex[:6]}", f"kept-{uuid.uuid4().hex[:6]}"
    probe, hello = await connect(edge, token=token())
    since = hello["position"]
    await _publish(publisher, left, kept)
    marker = message({"seq": "read"})
    await publisher.send(marker)
    await asyncio.wait_for(pushes_until(probe, marker.message_id), 60)

    url = ws_url(edge, token=_token([left, kept]), roomIds=f"{left},{kept}", since=since)
    ws, hello = await _slow_client(url)
    assert hello["recovered"] is True
    if how == "leave":
        body = {"request_id": "x", "action": "leave", "params": {"room": left}}
    else:
        body = {"request_id": "x", "action": "refresh", "params": {"token": _token([kept])}}
    await ws.send(json.dumps(body))
    before, after, reply = await _after_the_reply(ws, "x", publisher, left)
    assert reply["status"] == "ok", reply
    if how == "refresh":
        assert reply["revoked"] == [left]
    assert before < GAP  # the replay was still running when the room was taken away
    assert left not in after, f"{after.count(left)} pushes of {left} after the reply"
    await ws.close()
    await probe.close()
