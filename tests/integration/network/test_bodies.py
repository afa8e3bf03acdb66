"""Request bodies are read whole however they arrive: split with a pause, chunked, large.

Raw sockets send the bytes exactly as a slow network or a streaming client would; the
payload must come out of the WebSocket intact, and limits still hold on what is read.
"""

from __future__ import annotations

import gzip
import uuid

import aiohttp
import orjson

from tests.e2e.conftest import Stack
from tests.integration.network.conftest import connect, issue_token, pushes, room, silent
from tests.integration.network.rawhttp import (
    chunked_post,
    exchange,
    head,
    post,
    split,
)

ENVELOPE_BYTES = 4096  # the publisher's allowance around one payload
MAX_PAYLOAD = 65536  # its default ROOMCAST_PUBLISHER__MAX_PAYLOAD_BYTES


def port(url: str) -> int:
    return int(url.rpartition(":")[2])


def message(target: str, size: int) -> dict[str, object]:
    return {"room": target, "message_id": uuid.uuid4().hex, "payload": {"text": "é" * size}}


async def test_a_body_split_with_a_pause_is_read_whole(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    target = room()
    ws, _ = await connect(
        stack.edges[0].url, token=await issue_token(session, stack.auth.url), roomIds=target
    )
    sent = message(target, 1500)  # 3 KB of UTF-8
    request = post("/v1/messages", orjson.dumps(sent))
    body_start = request.index(b"\r\n\r\n") + 4
    # One full segment of the body, then the rest 100 ms later.
    reply = await exchange(port(stack.publisher.url), split(request, body_start + 1400), gap=0.1)
    assert reply.status == 202, reply.body
    assert reply.json()["message_id"] == sent["message_id"]
    [push] = await pushes(ws, 1)
    assert push["payload"] == sent["payload"]
    await silent(ws, 0.5)
    await ws.close()


async def test_chunked_bodies_are_read_whole(stack: Stack, session: aiohttp.ClientSession) -> None:
    target = room()
    ws, _ = await connect(
        stack.edges[0].url, token=await issue_token(session, stack.auth.url), roomIds=target
    )
    sent = message(target, 6000)
    parts = chunked_post("/v1/messages", orjson.dumps(sent), size=1000)
    reply = await exchange(port(stack.publisher.url), parts, gap=0.01)
    assert reply.status == 202, reply.body
    [push] = await pushes(ws, 1)
    assert push["payload"] == sent["payload"]

    # auth reads its bodies the same way: a token request in 7-byte chunks
    token_request = {"device_id": "chunked", "user_id": "u", "is_login": True}
    parts = chunked_post("/v1/tokens", orjson.dumps(token_request), size=7)
    issued = await exchange(port(stack.auth.url), parts, gap=0.005)
    assert issued.status == 201, issued.body
    assert issued.json()["token"]
    await ws.close()


async def test_a_thousand_one_kilobyte_messages_are_one_normal_batch(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    target = room()
    ws, _ = await connect(
        stack.edges[0].url, token=await issue_token(session, stack.auth.url), roomIds=target
    )
    batch = [
        {
            "room": target,
            "message_id": f"b-{uuid.uuid4().hex}",
            "payload": {"n": i, "pad": "x" * 1000},
        }
        for i in range(1000)
    ]
    # aiohttp's own client on loopback: about 1 MB, which arrives in many reads.
    async with session.post(
        stack.publisher.url + "/v1/messages/batch", json={"messages": batch}
    ) as response:
        assert response.status == 202, await response.text()
        results = (await response.json())["results"]
    assert [r["message_id"] for r in results] == [m["message_id"] for m in batch]
    assert {r["status"] for r in results} == {202}
    got = await pushes(ws, len(batch))
    assert [p["payload"]["n"] for p in got] == list(range(1000))
    await silent(ws)
    await ws.close()


async def test_limits_hold_on_the_bytes_read(stack: Stack) -> None:
    limit = MAX_PAYLOAD + ENVELOPE_BYTES
    publisher = port(stack.publisher.url)
    # Announced too large: refused from the headers, before any body is sent.
    announced = head(
        "POST",
        "/v1/messages",
        {"Content-Type": "application/json", "Content-Length": str(limit + 1)},
    )
    reply = await exchange(publisher, [announced])
    assert reply.status == 413
    assert reply.code == "payload_too_large"
    # Not announced (chunked): counted while reading, refused once past the limit.
    too_long = b'{"payload": "' + b"x" * limit + b'"}'
    reply = await exchange(publisher, chunked_post("/v1/messages", too_long, size=16384))
    assert reply.status == 413
    assert reply.code == "payload_too_large"
    # Just under the body limit is read whole, then judged by the payload limit.
    fits = orjson.dumps({"payload": "x" * (MAX_PAYLOAD - 2)})
    reply = await exchange(publisher, chunked_post("/v1/messages", fits, size=4096), gap=0.005)
    assert reply.status == 202, reply.body


async def test_compressed_bodies_are_read_and_a_corrupt_one_is_400(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    target = room()
    token = await issue_token(session, stack.auth.url)
    ws, _ = await connect(stack.edges[0].url, token=token, roomIds=target)
    sent = message(target, 3000)
    gzipped = gzip.compress(orjson.dumps(sent))
    publisher = port(stack.publisher.url)
    reply = await exchange(
        publisher, split(post("/v1/messages", gzipped, {"Content-Encoding": "gzip"}), 200), 0.05
    )
    assert reply.status == 202, reply.body
    [push] = await pushes(ws, 1)
    assert push["payload"] == sent["payload"]

    corrupt = post("/v1/messages", b"not gzip at all", {"Content-Encoding": "gzip"})
    reply = await exchange(publisher, [corrupt])
    assert reply.status == 400, reply.body
    assert "Content-Encoding" in reply.json()["error"]["message"]
    await silent(ws, 0.5)
    await ws.close()
