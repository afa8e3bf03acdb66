"""`roomcast`: tokens, listening, publishing and load from the command line.

roomcast token   --device D [--user U] [--room R ...] [--topic T ...]
roomcast listen  --room R --topic order:event          (JSON lines on stdout)
roomcast publish --topic order --type event --payload '{"x": 1}'
roomcast load    -n 500 --room R --rate 20 --duration 30
                 (publishes at that rate, counts deliveries and latency; --rate 0 only listens)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from typing import Any

import aiohttp
import orjson

from roomcast_client.client import RoomcastClient
from roomcast_client.http import fetch_token, publish
from roomcast_client.load import LoadPlan, run_load


def _topic_pairs(values: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        topic, _, type_ = value.partition(":")
        pairs.append((topic, type_ or "*"))
    return tuple(pairs)


async def _token(session: aiohttp.ClientSession, args: argparse.Namespace) -> str:
    if getattr(args, "token", None):
        return str(args.token)
    return await fetch_token(
        session,
        args.auth,
        device_id=args.device or f"cli-{uuid.uuid4().hex[:8]}",
        user_id=args.user,
        rooms=args.claim_room or None,
        topics=args.claim_topic or None,
        api_key=args.auth_key,
    )


async def _cmd_token(args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession() as session:
        print(await _token(session, args))
    return 0


async def _cmd_publish(args: argparse.Namespace) -> int:
    payload: Any = args.text if args.text is not None else orjson.loads(args.payload)
    async with aiohttp.ClientSession() as session:
        result = await publish(
            session,
            args.publisher,
            payload,
            topic=args.topic,
            type_=args.type,
            room=args.room,
            message_id=args.message_id,
            api_key=args.publisher_key,
        )
    print(orjson.dumps(result).decode())
    return 0


async def _cmd_listen(args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession() as session:

        async def token() -> str:
            return await _token(session, args)

        client = RoomcastClient(
            args.edge,
            token,
            rooms=tuple(args.room),
            subscriptions=_topic_pairs(args.topic),
            session=session,
        )
        hello = await client.connect()
        print(orjson.dumps(hello).decode(), file=sys.stderr, flush=True)
        try:
            count = 0
            async for push in client.messages():
                line = {
                    "topic": push.topic,
                    "type": push.type,
                    "room": push.room,
                    "payload": push.payload,
                    "meta": {
                        "message_id": push.message_id,
                        "receive_time": push.receive_time,
                        "position": push.position,
                    },
                }
                print(orjson.dumps(line).decode(), flush=True)
                count += 1
                if args.count and count >= args.count:
                    break
        finally:
            await client.close()
    return 0


async def _cmd_load(args: argparse.Namespace) -> int:
    plan = LoadPlan(
        edge=args.edge,
        publisher=args.publisher,
        connections=args.connections,
        duration=args.duration,
        rate=args.rate,
        rooms=tuple(args.room),
        subscriptions=_topic_pairs(args.topic),
        publisher_key=args.publisher_key,
    )
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        summary = await run_load(plan, session, await _token(session, args))
    print(orjson.dumps(summary).decode())
    # A publishing run that lost or failed a message says so in its exit status too.
    return 0 if summary.get("complete", True) else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100000, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="roomcast", description=__doc__.split("\n")[0])
    parser.add_argument("--auth", default=env("ROOMCAST_AUTH_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--edge", default=env("ROOMCAST_EDGE_URL", "ws://127.0.0.1:8081/ws"))
    parser.add_argument(
        "--publisher", default=env("ROOMCAST_PUBLISHER_URL", "http://127.0.0.1:8082")
    )
    parser.add_argument("--auth-key", default=env("ROOMCAST_AUTH_API_KEY"))
    parser.add_argument("--publisher-key", default=env("ROOMCAST_PUBLISHER_API_KEY"))
    sub = parser.add_subparsers(dest="command", required=True)

    def identity(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", help="device id (default: a random one)")
        p.add_argument("--user", help="user id (a logged-in token)")
        p.add_argument("--claim-room", action="append", default=[], help="limit token to room")
        p.add_argument("--claim-topic", action="append", default=[], help="limit to topic")
        p.add_argument("--token", help="use this token instead of asking auth")

    token = sub.add_parser("token", help="print a connection token")
    identity(token)
    token.set_defaults(func=_cmd_token)

    listen = sub.add_parser("listen", help="print pushes as JSON lines")
    identity(listen)
    listen.add_argument("--room", action="append", default=[])
    listen.add_argument("--topic", action="append", default=[], help="topic[:type]")
    listen.add_argument("--count", type=int, default=0, help="stop after this many")
    listen.set_defaults(func=_cmd_listen)

    pub = sub.add_parser("publish", help="publish one message")
    pub.add_argument("--topic")
    pub.add_argument("--type")
    pub.add_argument("--room")
    pub.add_argument("--message-id")
    group = pub.add_mutually_exclusive_group(required=True)
    group.add_argument("--payload", help="JSON value")
    group.add_argument("--text", help="a string payload")
    pub.set_defaults(func=_cmd_publish)

    load = sub.add_parser(
        "load", help="open N connections, publish to them at a rate, measure delivery"
    )
    identity(load)
    load.add_argument("-n", "--connections", type=_positive_int, default=100)
    load.add_argument("--room", action="append", default=[])
    load.add_argument("--topic", action="append", default=[], help="topic[:type]")
    load.add_argument("--duration", type=_positive_float, default=10.0, help="seconds")
    load.add_argument(
        "--rate",
        type=_rate,
        default=10.0,
        help="messages per second published through the publisher to the first room"
        " and/or topic (default 10); 0: only listen to what others publish",
    )
    load.set_defaults(func=_cmd_load)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = asyncio.run(args.func(args))
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        print(f"roomcast: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
