"""RecordSink on Redis Streams: one append script per partition, offsets from Redis.

Each call groups its messages by partition (Kafka's partitioner on the record key,
see roomcast_core.stream_wire) and runs the append script once per partition, all
on one connection in one round trip; the script assigns the offsets, so they are
dense and increasing per stream. Same key, same stream, one script: order per key
holds within a call, and calls are appended in the order Redis runs them.

Durability ("aof", the default): the link check refuses to publish unless Redis
has ``appendonly yes``; with ``appendfsync always`` Redis answers only after the
fsync, with ``everysec`` the entry is written to the AOF before the answer and
fsynced within a second (a killed Redis process loses nothing, a lost machine up to
a second). Where the server has WAITAOF (Redis 7.2+) the 202 also waits for the
local fsync. "write" waits for the append alone.

Honest outcomes: a connection that cannot be had means nothing was sent
(SinkUnavailable); a failure after the commands went out leaves the appends
unknown (OutcomeUnknown), as Redis may have run them. Nothing is ever retried
here: a retried append would be a second record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.exceptions import RedisError, ResponseError

from roomcast_core import wire
from roomcast_core.settings import BusSettings
from roomcast_core.stream_wire import (
    APPEND_SCRIPT,
    append_args,
    counter_key,
    partition_for,
    stream_key,
)
from roomcast_publisher.domain.ports import Delivery, OutcomeUnknown, SinkUnavailable
from roomcast_publisher.observe import record_trace

log = logging.getLogger(__name__)

Entry = tuple[bytes, bytes, bytes, bytes]


class RedisStreamSink:
    """Checks the Redis link (run()) and appends messages as stream entries."""

    def __init__(
        self,
        client: aioredis.Redis,
        settings: BusSettings,
        *,
        timeout: float,
        probe_interval: float = 1.0,
        traced: bool = True,
    ) -> None:
        self._client = client
        self._settings = settings
        self._timeout = timeout
        self._probe_interval = probe_interval
        self._wait_aof = False
        self._up = False
        self._problem: str | None = "not connected yet"
        self._tracer = trace.get_tracer("roomcast_publisher")
        self._traced = traced  # False: no span, the request's record_trace() context

    @property
    def up(self) -> bool:
        return self._up

    async def readiness(self) -> str | None:
        return None if self._up else (self._problem or "redis unreachable")

    # ---- link ----------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._step()
            await asyncio.sleep(self._probe_interval)

    async def _step(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                persistence = await self._client.info("persistence")
                server = await self._client.info("server")
            problem = None
            if self._settings.durability == "aof" and not int(persistence.get("aof_enabled", 0)):
                problem = (
                    "redis has appendonly off: ROOMCAST_BUS__DURABILITY=aof needs "
                    "appendonly yes (or set it to write)"
                )
            self._wait_aof = self._settings.durability == "aof" and _has_waitaof(
                str(server.get("redis_version", ""))
            )
            self._set_state(problem is None, problem)
        except (RedisError, OSError, TimeoutError) as exc:
            self._set_state(False, f"redis unreachable: {type(exc).__name__}: {exc}")

    def _set_state(self, up: bool, problem: str | None) -> None:
        if up != self._up:
            if up:
                log.info("redis stream link up", extra={"stream": self._settings.stream})
            else:
                log.warning("redis stream link down", extra={"reason": problem})
        self._up = up
        self._problem = problem

    async def close(self) -> None:
        """Nothing held: every append was answered within its call (the client is shared)."""

    # ---- producing -------------------------------------------------------------

    async def produce(self, messages: Sequence[wire.Message]) -> list[Delivery]:
        if not self._up:
            refused = SinkUnavailable(f"redis is unreachable ({self._problem or 'reconnecting'})")
            return [refused] * len(messages)
        if not self._traced:
            headers = dict(record_trace())
            return await self._produce(
                messages, headers.get("traceparent", b""), headers.get("tracestate", b"")
            )
        span = self._tracer.start_span(
            f"send {self._settings.stream}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "send",
                "messaging.destination.name": self._settings.stream,
                "messaging.batch.message_count": len(messages),
            },
        )
        try:
            carrier: dict[str, str] = {}
            inject(carrier, context=trace.set_span_in_context(span))
            deliveries = await self._produce(
                messages,
                carrier.get("traceparent", "").encode(),
                carrier.get("tracestate", "").encode(),
            )
            failure = next((d for d in deliveries if not isinstance(d, str)), None)
            if failure is not None:
                span.record_exception(failure)
                span.set_status(Status(StatusCode.ERROR, str(failure)))
            return deliveries
        finally:
            span.end()

    async def _produce(
        self, messages: Sequence[wire.Message], traceparent: bytes, tracestate: bytes
    ) -> list[Delivery]:
        groups: dict[int, list[int]] = {}
        entries: dict[int, list[Entry]] = {}
        for index, message in enumerate(messages):
            key = wire.encode_key(message)
            partition = partition_for(key, self._settings.partitions)
            groups.setdefault(partition, []).append(index)
            entries.setdefault(partition, []).append(
                (key, wire.encode_value(message), traceparent, tracestate)
            )
        return await self._append(groups, entries, len(messages))

    async def _append(
        self, groups: dict[int, list[int]], entries: dict[int, list[Entry]], count: int
    ) -> list[Delivery]:
        partitions = sorted(groups)
        prefix = self._settings.stream
        commands: list[tuple[Any, ...]] = [
            (
                # EVAL, not EVALSHA: Redis caches the script by its hash all the same,
                # and a restarted Redis never answers NOSCRIPT to a publish.
                "EVAL",
                APPEND_SCRIPT,
                2,
                stream_key(prefix, p),
                counter_key(prefix, p),
                *append_args(self._settings.max_len, self._settings.max_age, entries[p]),
            )
            for p in partitions
        ]
        if self._wait_aof:
            commands.append(("WAITAOF", 1, 0, max(int(self._timeout * 1000), 1)))
        pool: Any = self._client.connection_pool
        try:
            async with asyncio.timeout(self._timeout):
                conn = await pool.get_connection()
        except (RedisError, OSError, TimeoutError) as exc:
            return [SinkUnavailable(f"redis is unreachable: {exc!r}")] * count
        sent = False
        try:
            async with asyncio.timeout(self._timeout * 2):
                sent = True
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
        except BaseException as exc:
            await conn.disconnect()
            await pool.release(conn)
            if isinstance(exc, asyncio.CancelledError):
                raise
            why = f"redis did not answer the append: {exc!r}"
            return [OutcomeUnknown(why) if sent else SinkUnavailable(why)] * count
        await pool.release(conn)
        deliveries: list[Delivery] = [SinkUnavailable("not appended")] * count
        fsynced = True
        if self._wait_aof:
            waited = replies.pop()
            fsynced = isinstance(waited, list) and bool(waited) and int(waited[0]) >= 1
        for partition, reply in zip(partitions, replies, strict=True):
            for n, index in enumerate(groups[partition]):
                deliveries[index] = self._delivery(partition, reply, n, fsynced)
        return deliveries

    def _delivery(self, partition: int, reply: Any, n: int, fsynced: bool) -> Delivery:
        if isinstance(reply, ResponseError):
            return SinkUnavailable(f"redis refused the append: {reply}")
        if not isinstance(reply, list) or n >= len(reply):
            return OutcomeUnknown(f"unexpected answer to the append: {reply!r}")
        if not fsynced:
            return OutcomeUnknown("appended, but not fsynced to the AOF in time")
        return wire.position(partition, int(reply[n]))


def _has_waitaof(version: str) -> bool:
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (7, 2)
