"""Benchmark anchor: the least an aiohttp JSON endpoint can do per request.

    POST /v1/messages  reads the body, parses it (orjson), answers 202 with a JSON receipt.
    GET  /health       200.

Same stack as the publisher (aiohttp, uvloop, orjson) without validation, Redis or Kafka:
the ceiling one publisher process could reach one message per request.

Usage: python -m bench.peers.bare_json --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import orjson
import uvloop
from aiohttp import web


async def publish(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    message_id = body.get("message_id") if isinstance(body, dict) else None
    receipt = {
        "message_id": message_id or uuid.uuid4().hex,
        "position": "0:0",
        "receive_time": "1970-01-01T00:00:00.000Z",
    }
    return web.Response(body=orjson.dumps(receipt), status=202, content_type="application/json")


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/messages", publish)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.bare_json")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(create_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
