"""rewind: the latest N matching messages, then live, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import BUSES, Infra, infra_on
from tests.integration.edge.conftest import (
    SharedEdge,
    bus_publisher,
    connect,
    http_get,
    message,
    module_edge,
    recv_json,
    request,
    token,
    ws_url,
)


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(infra, tmp_path_factory, ROOMCAST_EDGE__MAX_ROOMS="3") as shared:
        yield shared


async def _seqs(ws: ClientConnection, count: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        body: dict[str, Any] = await recv_json(ws)
        if "meta" in body:
            seqs.append(body["payload"]["seq"])
    return seqs


async def test_rewind_at_connect_sends_the_latest_n_then_live(
    infra: Infra, edge: SharedEdge
) -> None:
    room = f"rw-{uuid.uuid4().hex[:6]}"
    async with bus_publisher(infra, edge.topic) as publisher:
        await publisher.send_many([message({"seq": i}, room=room) for i in range(30)])
        # Another room's messages are not the client's: they never count toward N.
        await publisher.send_many([message({"seq": -1}, room=room + "x") for _ in range(5)])
        # The watcher may join before the edge has read them (the bus is asynchronous);
        # seeing seq 30, published after them on the same partition, proves it has.
        watcher, _ = await connect(edge.edge, token=token(), roomIds=room)
        await publisher.send(message({"seq": 30}, room=room))
        await asyncio.wait_for(_wait_seq(watcher, 30), 20)

        ws, hello = await connect(edge.edge, token=token(), roomIds=room, rewind="10")
        assert "recovered" not in hello
        assert await _seqs(ws, 10) == list(range(21, 31))
        await publisher.send(message({"seq": 31}, room=room))
        assert await _seqs(ws, 1) == [31]
        await ws.close()
        await watcher.close()


async def test_rewind_at_the_seam_with_concurrent_publishing(
    infra: Infra, edge: SharedEdge
) -> None:
    room = f"seam-{uuid.uuid4().hex[:6]}"
    async with bus_publisher(infra, edge.topic) as publisher:
        await publisher.send_many([message({"seq": i}, room=room) for i in range(20)])
        stop = asyncio.Event()

        async def publish() -> int:
            seq = 20
            while not stop.is_set():
                await publisher.send(message({"seq": seq}, room=room))
                seq += 1
            return seq

        writing = asyncio.create_task(publish())
        await asyncio.sleep(0.3)
        clients = []
        for _ in range(3):  # connects and joins land at different points of the stream
            ws, _ = await connect(edge.edge, token=token(), roomIds=room, rewind="7")
            clients.append(ws)
            await asyncio.sleep(0.1)
        joiner, _ = await connect(edge.edge, token=token())
        join = {"request_id": "j", "action": "join", "params": {"room": room, "rewind": 5}}
        await joiner.send(json.dumps(join))
        await asyncio.sleep(0.3)
        stop.set()
        end = await writing
        for ws in clients:
            seqs = await _seqs(ws, 7)
            rest = await _seqs(ws, end - seqs[-1] - 1)
            got = seqs + rest
            assert got == list(range(got[0], end)), "a gap or a duplicate at the seam"
            await ws.close()
        got = []
        while not got or got[-1] != end - 1:
            body = await recv_json(joiner)
            if "meta" in body:
                got.append(body["payload"]["seq"])
            else:
                assert body.get("status") == "ok", body
        assert len(got) >= 5
        assert got == list(range(got[0], end)), "a gap or a duplicate at the seam"
        await joiner.close()


async def test_rewind_on_subscribe_counts_only_the_matching_type(
    infra: Infra, edge: SharedEdge
) -> None:
    topic = f"t{uuid.uuid4().hex[:6]}"
    async with bus_publisher(infra, edge.topic) as publisher:
        msgs = [message({"seq": i}, topic=topic, type_="a" if i % 2 else "b") for i in range(20)]
        await publisher.send_many(msgs)
        watcher, _ = await connect(edge.edge, token=token(), topics=f"{topic}:*")
        await publisher.send(message({"seq": 20}, topic=topic, type_="b"))
        await asyncio.wait_for(_wait_seq(watcher, 20), 20)
        ws, _ = await connect(edge.edge, token=token())
        reply = await request(ws, "subscribe", {"topic": topic, "type": "a", "rewind": 3})
        assert reply["status"] == "ok", reply
        assert await _seqs(ws, 3) == [15, 17, 19]
        await ws.close()
        await watcher.close()


async def _wait_seq(ws: ClientConnection, seq: int) -> None:
    while (await _seqs(ws, 1)) != [seq]:
        pass


async def test_bad_rewind_is_a_400_at_connect_and_a_fail_in_requests(
    edge: SharedEdge,
) -> None:
    for bad in ("101", "-1", "ten", "1e3", ""):
        status, body = http_get(
            ws_url(edge.edge, token=token(), rewind=bad).replace("ws", "http", 1)
        )
        assert status == 400, (bad, status, body)
        assert b"invalid_rewind" in body
    status, body = http_get(
        ws_url(edge.edge, token=token(), rewind="3", since="0:-1").replace("ws", "http", 1)
    )
    assert (status, b"invalid_rewind" in body) == (400, True)
    ws, _ = await connect(edge.edge, token=token())
    for bad_value in (101, -1, "5", 2.5, True, None):
        params: dict[str, Any] = {"room": "r1", "rewind": bad_value}
        reply = await request(ws, "join", params)
        if bad_value is None:
            assert reply["status"] == "ok"
            await request(ws, "leave", {"room": "r1"})
            continue
        assert reply["status"] == "fail", (bad_value, reply)
        assert "rewind" in reply["error_message"]
    reply = await request(ws, "subscribe", {"topic": "x", "rewind": 2, "since": "0:-1"})
    assert reply["status"] == "fail"
    assert "combined" in reply["error_message"]
    # The connection is still fine.
    reply = await request(ws, "ping")
    assert reply["status"] == "ok"
    with contextlib.suppress(Exception):
        await ws.close()
