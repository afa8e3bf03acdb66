"""Recovery past the in-memory history: the gap is read back from the bus itself.

Every edge here keeps a tiny history (a few dozen messages per partition), so any
real gap has to come from the bus's log: Kafka's topic, or the Redis streams.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from websockets.asyncio.client import ClientConnection

from roomcast_core.stream_wire import stream_key
from roomcast_edge.domain.positions import format_vector, parse_vector
from roomcast_harness.services import ServiceProcess
from tests.conftest import BUSES, Infra, ServiceFactory, infra_on
from tests.integration.edge.conftest import (
    Publisher,
    connect,
    message,
    metric,
    read_seqs_in_order,
    recv_json,
    request,
    token,
    ws_url,
)

# Connects one client per room with `since`, says "connected" once all are recovering,
# reads each room's PER_ROOM pushes and prints how many came whole and in order.
RECOVER_SCRIPT = """
import asyncio, json, sys, time
import websockets

async def one(url, room, per_room, finished):
    async with websockets.connect(url + "&roomIds=" + room, max_queue=None) as ws:
        hello = json.loads(await ws.recv())
        seqs = []
        if hello.get("recovered") is not True:
            return False
        while len(seqs) < per_room:
            body = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if "meta" in body:
                seqs.append(body["payload"]["seq"])
        finished.append(time.monotonic())
        return seqs == list(range(per_room))

async def main():
    url, rooms, per_room = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    finished = []
    tasks = [asyncio.create_task(one(url, room, per_room, finished)) for room in rooms]
    await asyncio.sleep(0.3)
    print("connected", flush=True)
    marked = len(finished)
    results = await asyncio.gather(*tasks)
    print(json.dumps({"ok": sum(results), "done_before_pings": marked}), flush=True)

asyncio.run(main())
"""
TINY = {"ROOMCAST_EDGE__HISTORY_SIZE": "30"}
GAP = 10_000
PER_ROOM = 500  # of the twenty rooms recovered at once


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


async def _drop_first(infra: Infra, topic: str, partition: int, count: int) -> None:
    """The partition loses its first `count` records, as retention would drop them."""
    if infra.bus == "redis":
        client = aioredis.Redis.from_url(infra.redis_url)
        try:
            key = stream_key(topic, partition)
            entries: Any = await client.xrange(key, count=count + 1)
            await client.xtrim(key, minid=entries[count][0], approximate=False)
        finally:
            await client.aclose()
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(count)})
    finally:
        await admin.close()


async def _publish_gap(publisher: Publisher, room: str, count: int) -> None:
    missed = [message({"seq": i}, room=room) for i in range(count)]
    for start in range(0, count, 2000):
        await publisher.send_many(missed[start : start + 2000])


async def test_a_10000_message_gap_is_recovered_from_the_bus_on_the_same_and_another_edge(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    env = infra.env(topic, **TINY)
    first = start_service("edge", env, name="edge-a")
    room = f"deep-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(first, token=token(), roomIds=room)
    since = hello["position"]
    await ws.close()
    await _publish_gap(publisher, room, GAP)
    # Noise on other keys: read back from the bus too, never sent.
    await publisher.send_many([message({"seq": -1}, room="elsewhere") for _ in range(500)])
    await publisher.send(message({"seq": GAP}, room=room))

    again, hello = await connect(first, {"max_queue": 32}, token=token(), roomIds=room, since=since)
    assert hello["recovered"] is True
    reading = asyncio.create_task(read_seqs_in_order(again, parse_vector(since), GAP + 1 + 30))
    await asyncio.sleep(0.3)
    for i in range(30):  # live while the replay runs: joined with no gap, no duplicate
        await publisher.send(message({"seq": GAP + 1 + i}, room=room))
    assert await asyncio.wait_for(reading, 180) == list(range(GAP + 1 + 30))
    assert again.close_code is None
    await again.close()
    assert metric(first, "roomcast_edge_archive_records_total") >= GAP

    second = start_service("edge", env, name="edge-b")
    other, hello = await connect(second, token=token(), roomIds=room, since=since)
    assert hello["recovered"] is True
    seqs = await asyncio.wait_for(read_seqs_in_order(other, parse_vector(since), GAP + 1 + 30), 180)
    assert seqs == list(range(GAP + 1 + 30))
    await other.close()
    assert metric(second, "roomcast_edge_archive_records_total") >= GAP


async def test_a_vector_older_than_retention_is_not_recovered(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, **TINY), name="edge")
    room = f"gone-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(edge, token=token(), roomIds=room)
    since = hello["position"]
    await _publish_gap(publisher, room, 200)
    await publisher.send(message({"seq": 200}, room=room))
    seen = parse_vector(since)
    pushes = await read_seqs_in_order(ws, seen, 201)
    assert pushes[-1] == 200
    await ws.close()
    (partition,) = [p for p, o in seen.items() if o >= 200]
    await _drop_first(infra, topic, partition, 100)
    late, hello = await connect(edge, token=token(), roomIds=room, since=since)
    assert hello["recovered"] is False
    assert (await request(late, "ping"))["status"] == "ok"
    await late.close()
    # A vector past the deleted records still recovers, from the bus (the history is tiny).
    newer = {**parse_vector(since), partition: 99}
    fine, hello = await connect(edge, token=token(), roomIds=room, since=format_vector(newer))
    assert hello["recovered"] is True
    assert await read_seqs_in_order(fine, newer, 101) == list(range(100, 201))
    await fine.close()


async def _ping_ms(
    ws: ClientConnection, count: int, edge: ServiceProcess | None = None
) -> tuple[float, list[float]]:
    """Median ping round trip, and (with `edge`) its lent bus readers every 5 pings."""
    readers: list[float] = []
    times = []
    for i in range(count):
        started = time.perf_counter()
        reply = await request(ws, "ping", request_id=f"p{i}")
        assert reply["status"] == "ok"
        times.append((time.perf_counter() - started) * 1000)
        if edge is not None and i % 5 == 0:
            readers.append(metric(edge, "roomcast_edge_archive_readers"))
    return statistics.median(times), readers


async def test_twenty_deep_recoveries_leave_a_well_behaved_client_alone(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__ARCHIVE_READERS="4", **TINY))
    rooms = [f"r{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
    probe, hello = await connect(edge, token=token())
    since = hello["position"]
    # 10 000 records in all, 500 per room: each recovery reads all of the bus's gap
    # (its room shares partitions with others) and sends its own room's part.
    msgs = [message({"seq": i // 20}, room=rooms[i % 20]) for i in range(20 * PER_ROOM)]
    for start in range(0, len(msgs), 2000):
        await publisher.send_many(msgs[start : start + 2000])
    await asyncio.sleep(1.0)
    before, _ = await _ping_ms(probe, 40)

    # The recovering clients run in a process of their own: the probe measures the
    # edge, not this process parsing 10 000 pushes.
    url = ws_url(edge, token=token(), since=since)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RECOVER_SCRIPT,
        url,
        json.dumps(rooms),
        str(PER_ROOM),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    started = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert started.strip() == b"connected", started
    during, readers = await _ping_ms(probe, 40, edge)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    finished_after_pings = json.loads(out)
    assert finished_after_pings["ok"] == len(rooms), finished_after_pings
    assert finished_after_pings["done_before_pings"] < len(rooms)
    # The pings ran while the bus was being read, by at most ARCHIVE_READERS readers.
    assert 0 < max(readers) <= 4, readers
    ratio = during / before
    print(
        f"ping median before {before:.2f} ms, during 20 deep recoveries {during:.2f} ms, "
        f"ratio {ratio:.2f}"
    )
    assert ratio < 50  # a stall would be far beyond; measured 5-30 on a loaded machine
    await probe.close()


async def test_join_and_subscribe_with_an_old_since_recover_from_the_bus(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, **TINY), name="edge")
    room, sub = f"j-{uuid.uuid4().hex[:6]}", f"s{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(edge, token=token())
    since = hello["position"]
    msgs = [message({"seq": i}, room=room) for i in range(300)]
    msgs += [message({"seq": i}, topic=sub, type_="a") for i in range(300)]
    msgs += [message({"seq": -1}, topic=sub, type_="b") for _ in range(100)]
    await publisher.send_many(msgs)
    marker = message({"seq": "marker"})  # a broadcast: once seen, the edge read them all
    await publisher.send(marker)
    while (await recv_json(ws)).get("meta", {}).get("message_id") != marker.message_id:
        pass
    # A connect with an old since makes the edge ask the bus where its log starts
    # (it also asks on its own every few seconds).
    warm, hello = await connect(edge, token=token(), since=since)
    assert hello["recovered"] is True
    await warm.close()

    reply = await request(ws, "join", {"room": room, "since": since}, request_id="j")
    assert reply["status"] == "ok"
    assert reply["recovered"] is True
    assert await read_seqs_in_order(ws, parse_vector(since), 300) == list(range(300))
    reply = await request(ws, "subscribe", {"topic": sub, "type": "a", "since": since}, "s")
    assert reply["recovered"] is True
    assert await read_seqs_in_order(ws, parse_vector(since), 300) == list(range(300))
    await ws.close()
