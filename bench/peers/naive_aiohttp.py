"""Benchmark peer: the naive aiohttp broadcaster, same protocol shape as the edge.

    GET  /ws?token=T&topics=a:x,b:y
                          JWT (HS256) checked before the upgrade (401 otherwise), then a
                          {"action": "connected", ...} message like the edge sends.
    POST /publish         {"records": [<roomcast wire record>, ...]}: queued; one task turns
                          each record into a push and does ``await ws.send_str(json.dumps(m))``
                          for every client subscribed to its topic:type (every client when
                          it has no topic), the way most hand-written broadcasters do.
    GET  /health          200.

It is deliberately the textbook version (stdlib json, one serialization and one awaited
send per client, the default asyncio loop): the floor roomcast must be far above.

Usage: BENCH_JWT_SECRET=... python -m bench.peers.naive_aiohttp --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
from aiohttp import WSMsgType, web

CLIENTS = web.AppKey[set[web.WebSocketResponse]]("clients")
SUBSCRIBERS = web.AppKey[dict[str, set[web.WebSocketResponse]]]("subscribers")
QUEUE = web.AppKey["asyncio.Queue[dict[str, Any]]"]("queue")
SECRET = web.AppKey("secret", str)


def push_of(record: dict[str, Any], position: int) -> dict[str, Any]:
    push: dict[str, Any] = {}
    for name in ("topic", "type", "room"):
        if record.get(name) is not None:
            push[name] = record[name]
    push["payload"] = record.get("payload")
    push["meta"] = {
        "receive_time": record.get("receive_time"),
        "message_id": record.get("message_id"),
        "position": f"0:{position}",
    }
    return push


async def websocket(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token", "")
    try:
        claims = jwt.decode(token, request.app[SECRET], algorithms=["HS256"])
    except jwt.PyJWTError:
        raise web.HTTPUnauthorized() from None
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    clients = request.app[CLIENTS]
    clients.add(ws)
    keys = [k for k in request.query.get("topics", "").split(",") if k]
    subscribers = request.app[SUBSCRIBERS]
    for key in keys:
        subscribers.setdefault(key, set()).add(ws)
    try:
        await ws.send_str(
            json.dumps(
                {
                    "action": "connected",
                    "status": "ok",
                    "connection_id": uuid.uuid4().hex,
                    "subject": claims.get("sub"),
                    "rooms": [],
                    "position": "0:0",
                    "timestamp": int(time.time() * 1000),
                }
            )
        )
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        clients.discard(ws)
        for key in keys:
            subscribers.get(key, set()).discard(ws)
    return ws


async def publish(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        records = body["records"]
        if not isinstance(records, list):
            raise TypeError("records must be a list")
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    for record in records:
        request.app[QUEUE].put_nowait(record)
    return web.json_response({"accepted": len(records)}, status=202)


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "healthy"})


async def broadcaster(app: web.Application) -> None:
    position = 0
    while True:
        record = await app[QUEUE].get()
        position += 1
        message = push_of(record, position)
        if record.get("topic") is None:
            clients = app[CLIENTS]
        else:
            clients = app[SUBSCRIBERS].get(f"{record.get('topic')}:{record.get('type')}", set())
        for ws in tuple(clients):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(message))


async def broadcaster_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(broadcaster(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def close_clients(app: web.Application) -> None:
    clients = app[CLIENTS]
    for ws in tuple(clients):
        await ws.close()


def create_app(secret: str) -> web.Application:
    app = web.Application()
    app[CLIENTS] = set()
    app[SUBSCRIBERS] = {}
    app[QUEUE] = asyncio.Queue()
    app[SECRET] = secret
    app.cleanup_ctx.append(broadcaster_ctx)
    app.on_shutdown.append(close_clients)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/publish", publish)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ.get("BENCH_JWT_SECRET")
    if not secret:
        sys.exit("BENCH_JWT_SECRET is required")
    web.run_app(create_app(secret), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
