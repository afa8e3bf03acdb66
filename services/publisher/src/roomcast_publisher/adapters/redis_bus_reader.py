"""The Redis Streams bus read directly for the operator: XREAD on every stream from `$`.

`$` is taken once per stream (its last id, read at start) and then followed by id,
so no entry between two reads is missed. The follower has a connection of its own
(its reads block) and exists only while a tail is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from roomcast_core.redis_link import redis_client
from roomcast_core.settings import Settings
from roomcast_core.stream_wire import EntryError, decode_entry, stream_key
from roomcast_publisher.domain.tail import BusRecord

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
BATCH_ENTRIES = 1000
BLOCK_MS = 500


def _records(partition: int, entries: Any) -> list[BusRecord]:
    out = []
    for entry_id, fields in entries or ():
        try:
            entry = decode_entry(entry_id, fields)
        except EntryError:
            continue
        out.append(BusRecord(partition, entry.offset, fields.get(b"key"), entry.value))
    return out


class RedisBusReader:
    def __init__(self, settings: Settings) -> None:
        self._redis = settings.redis
        self._timeout = settings.redis.timeout
        self._keys = {stream_key(settings.bus.stream, p): p for p in range(settings.bus.partitions)}

    def _client(self) -> aioredis.Redis:
        return redis_client(
            self._redis,
            socket_timeout=self._timeout + BLOCK_MS / 1000,
            socket_connect_timeout=self._timeout,
        )

    async def follow(
        self, deliver: Callable[[list[BusRecord]], None], ready: Callable[[], None]
    ) -> None:
        client = self._client()
        try:
            while True:
                try:
                    after: dict[str, bytes] = {}
                    for key in self._keys:
                        last: Any = await client.xrevrange(key, count=1)
                        after[key] = last[0][0] if last else b"0-0"
                    ready()
                    while True:
                        streams: Any = dict(after)
                        replies: Any = await client.xread(
                            streams, count=BATCH_ENTRIES, block=BLOCK_MS
                        )
                        records: list[BusRecord] = []
                        for raw_key, entries in replies or ():
                            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                            if entries:
                                after[key] = entries[-1][0]
                            records.extend(_records(self._keys[key], entries))
                        if records:
                            deliver(records)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("tail reader failed, starting again: %r", exc)
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def recent(self, per_partition: int, timeout: float) -> list[BusRecord]:
        client = self._client()
        try:
            async with asyncio.timeout(timeout):
                pipe = client.pipeline(transaction=False)
                for key in self._keys:
                    pipe.xrevrange(key, count=per_partition)
                replies: list[Any] = await pipe.execute()
        finally:
            await client.aclose()
        out: list[BusRecord] = []
        for (_, partition), entries in zip(self._keys.items(), replies, strict=True):
            out.extend(reversed(_records(partition, entries)))
        return out
