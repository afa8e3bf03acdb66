"""Shared ingest on Kafka: each partition read by one edge, messages routed to the others.

Two (or three) edge processes in `shared` mode on one topic and consumer group. The
tests check what a client sees (exactly once, filtered, in order, recoverable) and
what each edge spends (records read, messages routed in and out).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import (
    WAIT,
    Publisher,
    bus_publisher,
    connect,
    http_get,
    message,
    metric,
    pushes_until,
    recv_json,
    request,
    token,
)
from tests.integration.edge.shared_ingest_support import (
    PARTITIONS,
    routed,
    shared_env,
    split,
    start_edges,
    vector,
)

# Not in `make test` yet: shared ingest still loses a message now and then under
# load (`make test-shared` runs these).
pytestmark = pytest.mark.shared_ingest


@pytest.fixture
def two_edges(infra: Infra, topic: str, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    env = shared_env(infra, topic)
    procs = start_edges([env, env], tmp_path / "logs")
    yield procs
    for proc in procs:
        proc.stop()


async def _pushes(ws: ClientConnection, marker: str) -> list[dict[str, Any]]:
    return await pushes_until(ws, marker)


async def test_a_client_gets_what_another_edge_read_once_and_filtered(
    infra: Infra, topic: str, two_edges: list[ServiceProcess]
) -> None:
    await split(two_edges)
    edge_a, edge_b = two_edges
    room = f"r-{uuid.uuid4().hex[:6]}"
    # One client per way of addressing, on each edge: every message is read by one edge
    # (its partition's), so each edge's clients get some messages read by the other.
    clients: dict[str, tuple[ClientConnection, str]] = {}
    for edge, name in ((edge_a, "a"), (edge_b, "b")):
        ws_room, _ = await connect(edge, token=token(), roomIds=room)
        ws_topic, _ = await connect(edge, token=token(), topics="quotes:tick")
        ws_all, _ = await connect(edge, token=token())
        clients[f"room-{name}"] = (ws_room, "room")
        clients[f"topic-{name}"] = (ws_topic, "topic")
        clients[f"all-{name}"] = (ws_all, "all")
    async with bus_publisher(infra, topic, PARTITIONS) as publisher:
        # Steady state first: each client has one message of each of its channels, so
        # every channel is taken up on both edges (a channel taken up while messages of
        # it are in flight is another test's matter).
        probes = {
            "room": message({"probe": 1}, room=room),
            "topic": message({"probe": 1}, topic="quotes", type_="tick"),
            "broadcast": message({"probe": 1}),
        }
        for probe in probes.values():
            await publisher.send(probe)
        for ws, kind in clients.values():
            await _receive_all(ws, {probes[k].message_id for k in _wants(kind)})
        sent = await _send_mix(publisher, room, 40)
    for name, (ws, kind) in clients.items():
        got = await _pushes(ws, sent["marker"])
        ids = [p["meta"]["message_id"] for p in got]
        assert len(ids) == len(set(ids)), f"{name} got a message twice"
        expected = [m for m, k in sent["order"] if k in _wants(kind)] + [sent["marker"]]
        assert sorted(ids) == sorted(expected), name
        # Order per key: the room's messages (all on one partition) in publish order.
        keyed = [i for i in ids if i in sent["room_ids"]]
        assert keyed == [i for i in sent["room_ids"] if i in keyed], name
        await ws.close()
    # Each record was read by one edge only (so the clients of the other got it routed)
    # and sent on once.
    read = [metric(e, "roomcast_edge_bus_records_total") for e in two_edges]
    assert sum(read) == len(sent["order"]) + 1 + len(probes)
    out = sum(routed(e, "out") for e in two_edges)
    assert out == len(sent["order"]) + 1 + len(probes)


async def _receive_all(ws: ClientConnection, ids: set[str]) -> None:
    """Read pushes until each of `ids` has come (nothing else is expected meanwhile)."""
    waiting = set(ids)
    while waiting:
        body = await recv_json(ws)
        if "meta" in body:
            got = body["meta"]["message_id"]
            assert got in waiting, f"unexpected push {body}"
            waiting.discard(got)


def _wants(kind: str) -> set[str]:
    return {"room": {"room", "broadcast"}, "topic": {"topic", "broadcast"}}.get(kind, {"broadcast"})


async def _send_mix(publisher: Publisher, room: str, count: int) -> dict[str, Any]:
    """Room, topic, other-room, other-topic and broadcast messages, then a broadcast marker."""
    order: list[tuple[str, str]] = []
    room_ids: list[str] = []
    for i in range(count):
        kind = ("room", "topic", "noise-room", "noise-topic", "broadcast")[i % 5]
        if kind == "room":
            msg = message({"seq": i}, room=room)
            room_ids.append(msg.message_id)
        elif kind == "topic":
            msg = message({"seq": i}, topic="quotes", type_="tick")
        elif kind == "noise-room":
            msg = message({"seq": i}, room="elsewhere")
        elif kind == "noise-topic":
            msg = message({"seq": i}, topic="quotes", type_="other")
        else:
            msg = message({"seq": i})
        await publisher.send(msg)
        order.append((msg.message_id, kind))
    marker = message({"marker": True})
    await publisher.send(marker)
    return {"order": order, "room_ids": room_ids, "marker": marker.message_id}


async def test_an_edge_whose_clients_want_nothing_gets_nothing_routed(
    infra: Infra, topic: str, two_edges: list[ServiceProcess]
) -> None:
    await split(two_edges)
    busy, idle = two_edges
    room = f"r-{uuid.uuid4().hex[:6]}"
    ws, _ = await connect(busy, token=token(), roomIds=room)
    async with bus_publisher(infra, topic, PARTITIONS) as publisher:
        last = ""
        for i in range(30):
            msg = message({"seq": i}, room=room)
            await publisher.send(msg)
            last = msg.message_id
    got = await _pushes(ws, last)
    assert len(got) == 30
    assert routed(idle, "in") == 0
    assert metric(idle, "roomcast_edge_messages_in_total") == 0
    # Routed to the busy edge; a first message that came while the room's channel was
    # being taken up reaches it from the bus instead (the gap fill), never twice.
    assert 0 < routed(busy, "in") <= 30
    await ws.close()


async def test_clients_joining_while_messages_of_the_room_are_in_flight(
    infra: Infra, topic: str, two_edges: list[ServiceProcess]
) -> None:
    """A room taken up by an edge while its messages stream: every message after the
    client's `connected.position`, exactly once and in order, none lost in the seam."""
    await split(two_edges)
    room = f"r-{uuid.uuid4().hex[:6]}"
    total = 300
    positions: list[tuple[int, int]] = []
    async with bus_publisher(infra, topic, PARTITIONS) as publisher:

        async def stream() -> None:
            for i in range(total):
                sent = await publisher.send(message({"seq": i}, room=room))
                partition, offset = (int(x) for x in sent.split(":"))
                positions.append((partition, offset))

        producing = asyncio.create_task(stream())
        joined: list[tuple[ClientConnection, dict[int, int]]] = []
        for i in range(6):  # one after another, on both edges, while the room streams
            while len(positions) < 20 * i and not producing.done():
                await asyncio.sleep(0.01)
            ws, hello = await connect(two_edges[i % 2], token=token(), roomIds=room)
            joined.append((ws, vector(hello["position"])))
        await producing
        assert positions[-1][1] > max(v.get(positions[0][0], -1) for _, v in joined)
    for ws, last in joined:
        partition = positions[0][0]
        expected = [i for i, (_, offset) in enumerate(positions) if offset > last[partition]]
        seqs: list[int] = []
        while len(seqs) < len(expected):
            body = await recv_json(ws, timeout=WAIT)
            if "meta" not in body:
                continue
            got_partition, offset = (int(x) for x in body["meta"]["position"].split(":"))
            assert offset > last.get(got_partition, -1), "twice or out of order"
            last[got_partition] = offset
            seqs.append(body["payload"]["seq"])
        assert seqs == expected
        await ws.close()


async def test_subscribe_and_join_requests_take_channels_up(
    infra: Infra, topic: str, two_edges: list[ServiceProcess]
) -> None:
    await split(two_edges)
    room = f"r-{uuid.uuid4().hex[:6]}"
    ws, _ = await connect(two_edges[1], token=token())
    assert (await request(ws, "join", {"room": room}))["status"] == "ok"
    assert (await request(ws, "subscribe", {"topic": "news"}, "r2"))["status"] == "ok"
    async with bus_publisher(infra, topic, PARTITIONS) as publisher:
        first = message({"n": 1}, room=room)
        second = message({"n": 2}, topic="news", type_="x")
        await publisher.send(first)
        await publisher.send(second)
    # Two keys, so two partitions maybe: no order between them.
    wanted = {first.message_id, second.message_id}
    seen: list[str] = []
    while not wanted <= set(seen):
        body = await recv_json(ws)
        if "meta" in body:
            seen.append(body["meta"]["message_id"])
    assert sorted(seen) == sorted(wanted)
    await ws.close()


async def test_history_of_a_room_this_edge_never_held_comes_from_the_bus(
    infra: Infra, topic: str, two_edges: list[ServiceProcess]
) -> None:
    await split(two_edges)
    holder, other = two_edges
    room = f"r-{uuid.uuid4().hex[:6]}"
    ws, _ = await connect(holder, token=token(), roomIds=room)
    # A position the other edge's memory reaches back to, though it holds nothing of
    # the room: only the bus has the room's messages after it.
    bystander, hello = await connect(other, token=token())
    async with bus_publisher(infra, topic, PARTITIONS) as publisher:
        sent = [message({"n": i}, room=room) for i in range(5)]
        for msg in sent:
            await publisher.send(msg)
    await _pushes(ws, sent[-1].message_id)  # routed: the holder has them all
    query = urllib.parse.urlencode({"room": room, "since": hello["position"], "token": token()})
    status, body = await asyncio.to_thread(http_get, f"{other.url}/v1/history?{query}")
    assert status == 200, body
    page = json.loads(body)
    assert [m["meta"]["message_id"] for m in page["messages"]] == [m.message_id for m in sent]
    assert page["complete"] is True
    await ws.close()
    await bystander.close()


async def test_with_ingest_all_every_record_is_read_and_nothing_routed(
    infra: Infra, topic: str, tmp_path: Path
) -> None:
    env = infra.env(topic, ROOMCAST_KAFKA__PARTITIONS=str(PARTITIONS))
    (edge,) = start_edges([env], tmp_path / "logs")
    try:
        ws, _ = await connect(edge, token=token())
        async with bus_publisher(infra, topic, PARTITIONS) as publisher:
            sent = [message({"n": i}, topic=f"t{i}") for i in range(9)] + [message({"end": 1})]
            for msg in sent:
                await publisher.send(msg)
        await _pushes(ws, sent[-1].message_id)
        assert metric(edge, "roomcast_edge_bus_records_total") == len(sent)
        assert metric(edge, "roomcast_edge_routed_total") == 0
        assert metric(edge, "roomcast_edge_partitions_owned") == PARTITIONS
        await ws.close()
    finally:
        edge.stop()
