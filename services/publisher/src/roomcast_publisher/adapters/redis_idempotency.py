"""IdempotencyStore on Redis: one key per message_id (roomcast_core.redis_keys).

Value, JSON: {"state": "pending", "token": "<owner>"} while a publish is under way
(SET NX with a short TTL, so exactly one concurrent request wins and a crashed
publisher lets go), then {"state": "done", "message_id", "position",
"receive_time"} for the idempotency window.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from roomcast_core.redis_keys import idempotency_key
from roomcast_publisher.domain.ports import (
    Claim,
    Claimed,
    InProgress,
    Receipt,
    StoreUnavailable,
)

# Delete the marker only while it is still ours: a marker that expired and was
# claimed by another request must survive our late failure.
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['token'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def _decode(value: bytes | str | None) -> Receipt | InProgress | None:
    if value is None:
        return None
    try:
        record: Any = orjson.loads(value)
        if record.get("state") == "done":
            return Receipt(
                message_id=str(record["message_id"]),
                position=str(record["position"]),
                receive_time=str(record["receive_time"]),
                replayed=True,
            )
    except (orjson.JSONDecodeError, AttributeError, KeyError):
        pass  # unreadable: treat as held, never as free (that could publish twice)
    return InProgress()


class RedisIdempotencyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        tokens = [uuid.uuid4().hex for _ in message_ids]
        hold_ms = max(1, int(hold_seconds * 1000))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for message_id, token in zip(message_ids, tokens, strict=True):
                    marker = orjson.dumps({"state": "pending", "token": token})
                    pipe.set(idempotency_key(message_id), marker, nx=True, px=hold_ms)
                    pipe.get(idempotency_key(message_id))
                replies = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        claims: list[Claim] = []
        for index, token in enumerate(tokens):
            won, current = replies[2 * index], replies[2 * index + 1]
            if won:
                claims.append(Claimed(token))
            else:
                # Gone between SET and GET: its owner just released it; let the
                # caller look again rather than publish behind its back.
                claims.append(_decode(current) or InProgress())
        return claims

    async def lookup(self, message_id: str) -> Receipt | InProgress | None:
        try:
            value = await self._client.get(idempotency_key(message_id))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return _decode(value)

    async def remember(self, receipt: Receipt, window_seconds: int) -> None:
        record = {
            "state": "done",
            "message_id": receipt.message_id,
            "position": receipt.position,
            "receive_time": receipt.receive_time,
        }
        try:
            await self._client.set(
                idempotency_key(receipt.message_id), orjson.dumps(record), ex=window_seconds
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def release(self, message_id: str, token: str) -> None:
        try:
            await self._client.eval(_RELEASE, 1, idempotency_key(message_id), token)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def readiness(self) -> str | None:
        try:
            await self._client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
