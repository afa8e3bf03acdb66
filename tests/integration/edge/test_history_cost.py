"""History pages and rewinds over a large in-memory history leave other clients alone.

60 000 messages of one topic sit in the edge's memory. Clients loop history
queries and `subscribe` rewinds for a type nobody published; a bystander's `ping`
round trip must stay within a few milliseconds of what it was without them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import Infra
from tests.integration.edge.conftest import (
    SharedEdge,
    bus_publisher,
    connect,
    message,
    module_edge,
    pushes_until,
    request,
    token,
    ws_url,
)

MESSAGES = 60_000

# Four clients loop history pages and one loops subscribe-with-rewind / unsubscribe,
# in a process of their own (so the probe measures the edge, not this process); it
# prints "started" once each has had an answer, then the rounds each made.
LOOP_SCRIPT = """
import asyncio, http.client, json, sys, threading
import websockets

base, ws_base, topic, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
tokens = json.loads(sys.argv[5])
stop = threading.Event()
rounds = [0] * 5
ready = threading.Barrier(6)

def pages(i):
    path = f"/v1/history?topic={topic}&type=nobody&limit=1000&token={tokens[i]}"
    host, port = base.rsplit("/", 1)[-1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)  # kept alive
    first = True
    while not stop.is_set():
        connection.request("GET", path)
        answer = connection.getresponse()
        assert answer.status == 200, answer.status
        body = json.loads(answer.read())
        # Broadcasts reach every selection; nothing of the topic does.
        assert body["complete"] is True, body
        assert all("topic" not in m for m in body["messages"]), body
        rounds[i] += 1
        if first:
            first = False
            ready.wait(60)

def rewinds():
    async def loop():
        async with websockets.connect(ws_base + "?token=" + tokens[4], max_queue=None) as ws:
            await ws.recv()
            n, first = 0, True
            while not stop.is_set():
                for action, extra in (("subscribe", {"rewind": 1}), ("unsubscribe", {})):
                    n += 1
                    params = {"topic": topic, "type": "nobody", **extra}
                    await ws.send(json.dumps({"request_id": str(n), "action": action, "params": params}))
                    while True:
                        body = json.loads(await ws.recv())
                        if body.get("request_id") == str(n):
                            break
                    if body["status"] != "ok":
                        # Over the request rate limit: the edge said so; go on later.
                        assert "rate limit" in body["error_message"], body
                        await asyncio.sleep(0.1)
                rounds[4] += 1
                if first:
                    first = False
                    await asyncio.to_thread(ready.wait, 60)
    asyncio.run(loop())

def guarded(work, *args):
    def run():
        try:
            work(*args)
        except BaseException:
            ready.abort()  # the others and the main thread stop waiting
            stop.set()
            raise
    return threading.Thread(target=run)

threads = [guarded(pages, i) for i in range(4)]
threads.append(guarded(rewinds))
for thread in threads:
    thread.start()
ready.wait(60)
print("started", flush=True)
stop.wait(seconds)
stop.set()
for thread in threads:
    thread.join()
print(json.dumps(rounds), flush=True)
"""


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(infra, tmp_path_factory) as shared:
        yield shared


async def _ping_median_ms(ws: ClientConnection, count: int) -> float:
    times = []
    for i in range(count):
        started = time.perf_counter()
        reply = await request(ws, "ping", request_id=f"p{i}")
        assert reply["status"] == "ok"
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def test_history_and_rewind_loops_over_a_large_history_leave_a_bystander_alone(
    infra: Infra, edge: SharedEdge
) -> None:
    topic = f"flood{uuid.uuid4().hex[:6]}"
    probe, _ = await connect(edge.edge, token=token())
    async with bus_publisher(infra, edge.topic) as publisher:
        for start in range(0, MESSAGES, 5000):
            await publisher.send_many(
                [message({"seq": i}, topic=topic, type_="a") for i in range(start, start + 5000)]
            )
        marker = message({"seq": "marker"})  # a broadcast: once the probe has it, all were read
        await publisher.send(marker)
    await asyncio.wait_for(pushes_until(probe, marker.message_id), 60)
    before = await _ping_median_ms(probe, 40)

    tokens = [token(subject=f"looper-{i}") for i in range(5)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOOP_SCRIPT,
        edge.edge.url,
        ws_url(edge.edge),
        topic,
        "8",
        json.dumps(tokens),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        started = await asyncio.wait_for(proc.stdout.readline(), 90)
        assert started.strip() == b"started", started
        during = await _ping_median_ms(probe, 60)
        rounds_line = await asyncio.wait_for(proc.stdout.readline(), 90)
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    rounds = json.loads(rounds_line)
    assert proc.returncode == 0
    assert all(r > 0 for r in rounds), rounds
    print(f"ping median {before:.2f} ms alone, {during:.2f} ms with the loops; rounds {rounds}")
    assert during < max(15.0, 5 * before)
    await probe.close()
