"""Rooms found in the presence keys, a bounded page at a time (the console's room search).

A page ends at `limit` rooms or after SCAN_STEPS steps. When it ends inside a step,
its cursor names that step and how much of it was listed: the next page runs the step
again and goes on after those (a step's matches are listed in name order), so paging
skips no room.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from roomcast_core.presence_store import room_key, users_key

ROOM_PREFIX = room_key("")
# SCAN steps (of SCAN_COUNT keys each) one page takes at most.
SCAN_STEPS = 20
SCAN_COUNT = 1000
_GLOB = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class PageCursor:
    scan: int = 0
    skip: int = 0

    @classmethod
    def parse(cls, raw: str) -> PageCursor | None:
        """The cursor a previous page returned, or None when it is not one."""
        scan, dot, skip = raw.partition(".")
        if not (scan.isdigit() and len(scan) <= 20):
            return None
        if dot and not (skip.isdigit() and len(skip) <= 6):
            return None
        cursor = int(scan)
        # SCAN's cursor is an unsigned 64-bit number.
        return cls(cursor, int(skip or 0)) if cursor < 1 << 64 else None


def _text(key: bytes | str) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else key


async def search_rooms(
    client: aioredis.Redis, search: str, limit: int, start: PageCursor
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` rooms whose name contains `search`, with their counts, and the next cursor."""
    escaped = _GLOB.sub(r"\\\1", search)  # the search is text, never a pattern
    match = ROOM_PREFIX + (f"*{escaped}*" if search else "*")
    cursor, skip = start.scan, start.skip
    found: list[str] = []
    after: str | None = None
    for _ in range(SCAN_STEPS):
        following, keys = await client.scan(cursor, match=match, count=SCAN_COUNT)
        names = sorted({_text(k)[len(ROOM_PREFIX) :] for k in keys})[skip:]
        space = limit - len(found)
        found.extend(names[:space])
        if len(names) > space:
            after = f"{cursor}.{skip + space}"
            break
        cursor, skip = int(following), 0
        after = str(cursor) if cursor else None
        if cursor == 0 or len(found) >= limit:
            break
    pipe = client.pipeline(transaction=False)
    for name in found:
        pipe.hlen(room_key(name))
        pipe.hlen(users_key(name))
    counts: list[Any] = await pipe.execute()
    listed = [
        {"room": name, "connections": int(counts[2 * i]), "users": int(counts[2 * i + 1])}
        for i, name in enumerate(found)
    ]
    return listed, after
