"""Requests to edges over Redis pub/sub: to one edge by id, or to every edge at once.

Any process (another edge, the publisher's admin API) can ask an edge something about
the connections it holds; the edge answers on the asker's own reply channel. Plain
PUBLISH works on a single Redis and on a Redis Cluster alike. A connection id names its
edge, so a request for one connection goes straight to the edge holding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

ALL_EDGES = "roomcast:edges"
EDGE_PREFIX = "roomcast:edge:"
REPLY_PREFIX = "roomcast:reply:"
# Bytes of one request or reply on the link: a request is a client's request plus a
# few fields, a reply at most one presence or history answer.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Requests one edge handles at once; more wait in Redis's output buffer, not in memory.
MAX_CONCURRENT = 64
RETRY_SECONDS = 1.0
# Seconds a PUBLISH may take: the link's client has no socket timeout (it subscribes).
PUBLISH_TIMEOUT = 5.0

# A handler answers a request's body; None means "not for me" (no reply is sent).
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]

_ID_SEPARATOR = "-"


def new_edge_id() -> str:
    """An edge's identity for its lifetime: short, unique, free of the separator."""
    return secrets.token_hex(6)


def new_connection_id(edge_id: str) -> str:
    return f"{edge_id}{_ID_SEPARATOR}{secrets.token_hex(10)}"


def edge_of(connection_id: str) -> str | None:
    """The edge a connection id names, or None when the id has no edge in it."""
    edge, sep, rest = connection_id.partition(_ID_SEPARATOR)
    if not sep or not edge or not rest or len(connection_id) > 128:
        return None
    return edge


def edge_channel(edge_id: str) -> str:
    return EDGE_PREFIX + edge_id


def _encode(message: dict[str, Any]) -> bytes | None:
    data = json.dumps(message, separators=(",", ":")).encode()
    return data if len(data) <= MAX_MESSAGE_BYTES else None


def _decode(data: object) -> dict[str, Any] | None:
    if not isinstance(data, bytes | str) or len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


async def _subscribed(
    client: aioredis.Redis,
    channels: list[str],
    on_message: Callable[[dict[str, Any]], None],
    ready: asyncio.Event,
) -> None:
    """Deliver every decodable message of channels to on_message, resubscribing after losses."""
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            ready.set()
            while True:
                raw = await pubsub.get_message(timeout=5.0)
                if raw is None:
                    continue
                message = _decode(raw.get("data"))
                if message is not None:
                    on_message(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ready.clear()
            log.warning("edge link channel lost, resubscribing", extra={"error": repr(exc)})
            await asyncio.sleep(RETRY_SECONDS)
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await pubsub.aclose()  # type: ignore[no-untyped-call]


@dataclass
class EdgeLinkServer:
    """An edge's side: answers requests sent to it or to every edge."""

    client: aioredis.Redis
    edge_id: str
    handlers: Mapping[str, Handler]
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self) -> None:
        """Until cancelled; requests in flight are cancelled with it."""
        try:
            await _subscribed(
                self.client, [edge_channel(self.edge_id), ALL_EDGES], self._received, self.ready
            )
        finally:
            for task in list(self._tasks):
                task.cancel()

    def _received(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(str(message.get("op")))
        reply_to, request_id, body = message.get("reply_to"), message.get("id"), message.get("body")
        if handler is None or not isinstance(reply_to, str) or not isinstance(body, dict):
            return
        if not reply_to.startswith(REPLY_PREFIX):
            return  # never let a request make this edge publish on another channel
        task = asyncio.create_task(self._answer(handler, body, reply_to, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, handler: Handler, body: dict[str, Any], reply_to: str, rid: Any
    ) -> None:
        async with self._slots:
            try:
                answer = await handler(body)
            except Exception:
                log.exception("edge link request failed")
                answer = {"error": "internal"}
            if answer is None:
                return
            data = _encode({"id": rid, "edge_id": self.edge_id, "body": answer})
            if data is None:
                data = _encode({"id": rid, "edge_id": self.edge_id, "body": {"error": "too_big"}})
            try:
                await asyncio.wait_for(
                    self.client.publish(reply_to, data or b"{}"), PUBLISH_TIMEOUT
                )
            except Exception as exc:
                log.warning("edge link reply lost", extra={"error": repr(exc)})


@dataclass
class EdgeLinkClient:
    """The asking side: one reply channel per process, requests matched by id."""

    client: aioredis.Redis
    reply_channel: str = field(default_factory=lambda: REPLY_PREFIX + secrets.token_hex(8))
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: dict[int, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def run(self) -> None:
        """Until cancelled: receives the replies."""
        await _subscribed(self.client, [self.reply_channel], self._received, self.ready)

    def _received(self, message: dict[str, Any]) -> None:
        rid, body, edge = message.get("id"), message.get("body"), message.get("edge_id")
        deliver = self._pending.get(rid) if isinstance(rid, int) else None
        if deliver is not None and isinstance(body, dict) and isinstance(edge, str):
            deliver({"edge_id": edge, **body})

    async def call(
        self, edge_id: str, op: str, body: dict[str, Any], timeout: float
    ) -> dict[str, Any] | None:
        """One edge's answer (with its `edge_id`), or None: no such edge, or no answer in time."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()

        def deliver(reply: dict[str, Any]) -> None:
            if not answer.done():
                answer.set_result(reply)

        sent = await self._send(edge_channel(edge_id), op, body, deliver)
        if sent is None:
            return None
        rid, receivers = sent
        try:
            if receivers == 0:
                return None
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(rid, None)

    async def broadcast(
        self, op: str, body: dict[str, Any], timeout: float, *, expect: int | None = None
    ) -> list[dict[str, Any]]:
        """Every edge's answer that came in time (each with its `edge_id`).

        Returns early once `expect` answers are in, or when Redis says no edge listens.
        """
        replies: list[dict[str, Any]] = []
        enough = asyncio.Event()

        def deliver(reply: dict[str, Any]) -> None:
            replies.append(reply)
            if expect is not None and len(replies) >= expect:
                enough.set()

        sent = await self._send(ALL_EDGES, op, body, deliver)
        if sent is None:
            return []
        rid, receivers = sent
        try:
            if receivers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(enough.wait(), timeout)
            return list(replies)
        finally:
            self._pending.pop(rid, None)

    async def _send(
        self,
        channel: str,
        op: str,
        body: dict[str, Any],
        deliver: Callable[[dict[str, Any]], None],
    ) -> tuple[int, int] | None:
        if not self.ready.is_set():
            # The reply channel must be subscribed before anyone can answer on it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), 2.0)
        rid = next(self._ids)
        data = _encode({"op": op, "id": rid, "reply_to": self.reply_channel, "body": body})
        if data is None:
            return None
        self._pending[rid] = deliver
        try:
            receivers = int(
                await asyncio.wait_for(self.client.publish(channel, data), PUBLISH_TIMEOUT)
            )
        except Exception:
            self._pending.pop(rid, None)
            raise
        return rid, receivers
