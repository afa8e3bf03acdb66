"""A backend on the Redis Streams bus: appends in the documented format, reads back.

Deliberately written from the format's description (roomcast_core.stream_wire's
docstring), not with the publisher's adapter: what it appends is what any backend
speaking Redis would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from roomcast_core import wire
from roomcast_core.stream_wire import APPEND_SCRIPT, counter_key, partition_for, stream_key


class StreamPublisher:
    """Same calls as the edge tests' Kafka publisher: send, send_many, send_raw."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, partitions: int = 3, max_len: int = 100_000
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self.max_len = max_len  # entries a stream keeps, about (XADD MAXLEN ~)

    async def append(self, key: bytes, values: Sequence[bytes]) -> list[str]:
        partition = partition_for(key, self.partitions)
        argv: list[Any] = [self.max_len, 0]
        for value in values:
            argv += [key, value, b"", b""]
        offsets: Any = await self.client.eval(
            APPEND_SCRIPT,
            2,
            stream_key(self.prefix, partition),
            counter_key(self.prefix, partition),
            *argv,
        )
        return [wire.position(partition, int(offset)) for offset in offsets]

    async def send(self, msg: wire.Message) -> str:
        return (await self.append(wire.encode_key(msg), [wire.encode_value(msg)]))[0]

    async def send_many(self, msgs: Sequence[wire.Message]) -> list[str]:
        """Runs of one key in one script call each (order per key holds either way)."""
        positions: list[str] = []
        start = 0
        while start < len(msgs):
            key = wire.encode_key(msgs[start])
            end = start + 1
            while end < len(msgs) and end - start < 1000 and wire.encode_key(msgs[end]) == key:
                end += 1
            positions += await self.append(key, [wire.encode_value(m) for m in msgs[start:end]])
            start = end
        return positions

    async def send_raw(self, value: bytes, key: bytes = b"*") -> None:
        await self.append(key, [value])

    async def close(self) -> None:
        await self.client.aclose()


def stream_publisher(
    redis_url: str, prefix: str, partitions: int = 3, max_len: int = 100_000
) -> StreamPublisher:
    return StreamPublisher(aioredis.Redis.from_url(redis_url), prefix, partitions, max_len)


@dataclass(frozen=True)
class StreamEntry:
    partition: int
    offset: int
    key: bytes
    fields: dict[bytes, bytes]
    message: wire.Message

    @property
    def position(self) -> str:
        return wire.position(self.partition, self.offset)


async def read_streams(redis_url: str, prefix: str, partitions: int = 3) -> list[StreamEntry]:
    """Every entry of every partition stream, in partition then offset order."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        found: list[StreamEntry] = []
        for partition in range(partitions):
            entries: Any = await client.xrange(stream_key(prefix, partition))
            for _, fields in entries:
                found.append(
                    StreamEntry(
                        partition,
                        int(fields[b"offset"]),
                        fields[b"key"],
                        fields,
                        wire.decode_value(fields[b"value"]),
                    )
                )
        return found
    finally:
        await client.aclose()
