"""Every client path through Toxiproxy: tiny segments with pauses, latency, little bandwidth.

Toxiproxy sits between the test's clients and each service (auth, publisher, edge).
Whatever the network does to the bytes, nothing is refused, lost or duplicated.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from roomcast_harness.toxiproxy import bandwidth, latency, slicer
from tests.e2e.conftest import Stack
from tests.integration.network.conftest import (
    Proxies,
    connect,
    issue_token,
    pushes,
    recv_json,
    room,
    silent,
)

# Segments of ~10 bytes 0.2 ms apart: a request head alone arrives in dozens of reads.
TINY = {"average_size": 10, "size_variation": 6, "delay_us": 200}
# The 1 MB batch in ~600-byte segments: thousands of reads, still about a second.
SMALL = {"average_size": 600, "size_variation": 400, "delay_us": 100}


def slow_everything(proxies: Proxies) -> None:
    """Tiny segments both ways, some latency, for every service."""
    for proxy in proxies.all():
        proxy.add(slicer("upstream", **TINY))
        proxy.add(slicer("downstream", **TINY))
        proxy.add(latency("downstream", 20, jitter_ms=10))


async def test_token_heartbeat_connect_and_publish_through_a_slicing_network(
    stack: Stack, proxies: Proxies, session: aiohttp.ClientSession
) -> None:
    slow_everything(proxies)
    token = await issue_token(session, proxies.auth.url)
    async with session.post(
        proxies.auth.url + "/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["expires_in"] > 0
    async with session.get(
        proxies.auth.url + "/get/token", params={"deviceId": "sliced", "userId": "u"}
    ) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["data"]

    target = room()
    ws, hello = await connect(proxies.edge.url, token=token, roomIds=target)
    assert hello["rooms"] == [target]
    await ws.send('{"request_id": "p1", "action": "ping"}')
    assert (await recv_json(ws))["status"] == "ok"

    payload = {"text": "ü" * 1500, "n": 1}  # 3 KB: many segments on the way in and out
    message_id = uuid.uuid4().hex
    body = {"room": target, "message_id": message_id, "payload": payload}
    async with session.post(proxies.publisher.url + "/v1/messages", json=body) as response:
        assert response.status == 202, await response.text()
    [push] = await pushes(ws, 1)
    assert (push["payload"], push["meta"]["message_id"]) == (payload, message_id)
    await silent(ws)
    await ws.close()


async def test_a_thousand_message_batch_through_the_slicer_is_delivered_once(
    stack: Stack, proxies: Proxies, session: aiohttp.ClientSession
) -> None:
    proxies.publisher.add(slicer("upstream", **SMALL))
    proxies.edge.add(latency("downstream", 20))
    proxies.edge.add(bandwidth("downstream", 4096))
    target = room()
    ws, _ = await connect(
        proxies.edge.url, token=await issue_token(session, stack.auth.url), roomIds=target
    )
    batch = [
        {"room": target, "message_id": f"{target}-{i}", "payload": {"n": i, "pad": "x" * 1000}}
        for i in range(1000)
    ]
    async with session.post(
        proxies.publisher.url + "/v1/messages/batch", json={"messages": batch}
    ) as response:
        assert response.status == 202, await response.text()
        results = (await response.json())["results"]
    assert [(r["status"], r["message_id"]) for r in results] == [
        (202, m["message_id"]) for m in batch
    ]
    got = await pushes(ws, len(batch), timeout=60)
    assert [p["meta"]["message_id"] for p in got] == [m["message_id"] for m in batch]
    assert [p["payload"] for p in got] == [m["payload"] for m in batch]
    await silent(ws)
    await ws.close()


async def test_recovery_with_since_through_a_slow_network(
    stack: Stack, proxies: Proxies, session: aiohttp.ClientSession
) -> None:
    slow_everything(proxies)
    proxies.edge.add(bandwidth("downstream", 256))
    token = await issue_token(session, stack.auth.url)
    target = room()

    async def publish(first: int, count: int) -> None:
        batch = [{"room": target, "payload": {"n": n}} for n in range(first, first + count)]
        async with session.post(
            proxies.publisher.url + "/v1/messages/batch", json={"messages": batch}
        ) as response:
            assert response.status == 202, await response.text()

    def numbers(got: list[dict[str, Any]]) -> list[int]:
        return [p["payload"]["n"] for p in got]

    ws, hello = await connect(proxies.edge.url, token=token, roomIds=target)
    vector = dict(entry.split(":") for entry in hello["position"].split(","))
    await publish(0, 20)
    seen = await pushes(ws, 20)
    assert numbers(seen) == list(range(20))
    for push in seen:
        partition, offset = push["meta"]["position"].split(":")
        vector[partition] = offset
    await ws.close()

    await publish(20, 30)  # missed while away
    since = ",".join(f"{p}:{o}" for p, o in sorted(vector.items()))
    ws, hello = await connect(proxies.edge.url, token=token, roomIds=target, since=since)
    assert hello.get("recovered") is True, hello
    await publish(50, 5)  # live again after the replay
    assert numbers(await pushes(ws, 35)) == list(range(20, 55))
    await silent(ws)
    await ws.close()
