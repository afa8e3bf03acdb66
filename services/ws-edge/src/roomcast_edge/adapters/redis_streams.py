"""Reading positions off the Redis Streams bus, shared by the live source and the archive."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from roomcast_core.stream_wire import EntryError, counter_key, decode_entry, stream_key

# The first page is one entry: it is nearly always in the right shape, entries may
# be large, and a position is asked for often (the archive's log start, every few
# seconds, and at each connect with an old `since`).
FIRST_PAGE = 1
PAGE = 1000
MAX_SEQ = (1 << 64) - 1


def before_time(ms: int) -> str:
    """The id just before every entry appended at or after `ms`."""
    return f"{ms - 1}-{MAX_SEQ}" if ms > 0 else "0-0"


async def first_offset(client: aioredis.Redis, prefix: str, partition: int, after: str) -> int:
    """The offset of the first entry after id `after` that has one, or else the next
    offset to be appended (the stream's counter)."""
    key = stream_key(prefix, partition)
    start = f"({after}"
    count = FIRST_PAGE
    while True:
        entries: Any = await client.xrange(key, min=start, count=count)
        for _, fields in entries:
            try:
                return decode_entry(b"0-0", fields).offset
            except EntryError:
                continue  # wrong-shaped entries ahead: the first good one counts
        if len(entries) < count:
            break
        last_id = entries[-1][0]
        start = "(" + (last_id.decode() if isinstance(last_id, bytes) else str(last_id))
        count = PAGE
    counter = await client.get(counter_key(prefix, partition))
    return int(counter or 0)
