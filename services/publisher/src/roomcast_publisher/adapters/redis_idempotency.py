"""IdempotencyStore on Redis: one key per message_id (roomcast_core.redis_keys).

Value, JSON: {"state": "pending", "token": "<owner>"} while a publish is under way
(SET NX with a short TTL, so exactly one concurrent request wins and a crashed
publisher lets go), then {"state": "done", "message_id", "position",
"receive_time"} for the idempotency window.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
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


Command = Callable[[Pipeline], None]


class _Coalescer:
    """Carries the commands of concurrent callers in shared pipelines.

    Commands queued while a pipeline is on the wire go out together in the next one, so
    under load a single round trip serves many requests (and a whole batch is one
    round trip), while an idle caller waits only until the next loop turn.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._queue: list[tuple[Command, int, asyncio.Future[list[Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, command: Command, replies: int) -> list[Any]:
        """Queue `command` (which adds `replies` commands to a pipeline); its replies."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((command, replies, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="redis-idempotency")
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._execute(batch)
        finally:
            self._flusher = None

    async def _execute(self, batch: list[tuple[Command, int, asyncio.Future[list[Any]]]]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for command, _, _ in batch:
                    command(pipe)
                replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            failure = StoreUnavailable(f"{type(exc).__name__}: {exc}")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        except BaseException as exc:
            # Cancelled (shutdown) or a bug: nobody may wait forever for this batch.
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(StoreUnavailable(f"{type(exc).__name__}: {exc}"))
            raise
        offset = 0
        for _, count, future in batch:
            mine = replies[offset : offset + count]
            offset += count
            if future.done():
                continue
            errors = [r for r in mine if isinstance(r, Exception)]
            if errors:
                future.set_exception(StoreUnavailable(f"{type(errors[0]).__name__}: {errors[0]}"))
            else:
                future.set_result(mine)


class RedisIdempotencyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._coalescer = _Coalescer(client)

    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        tokens = [uuid.uuid4().hex for _ in message_ids]
        hold_ms = max(1, int(hold_seconds * 1000))

        def command(pipe: Pipeline) -> None:
            for message_id, token in zip(message_ids, tokens, strict=True):
                key = idempotency_key(message_id)
                marker = orjson.dumps({"state": "pending", "token": token})
                pipe.set(key, marker, nx=True, px=hold_ms)
                pipe.get(key)

        replies = await self._coalescer.run(command, 2 * len(message_ids))
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

    async def settle(
        self,
        receipts: Sequence[Receipt],
        releases: Sequence[tuple[str, str]],
        window_seconds: int,
    ) -> None:
        def command(pipe: Pipeline) -> None:
            for receipt in receipts:
                record = {
                    "state": "done",
                    "message_id": receipt.message_id,
                    "position": receipt.position,
                    "receive_time": receipt.receive_time,
                }
                pipe.set(
                    idempotency_key(receipt.message_id), orjson.dumps(record), ex=window_seconds
                )
            for message_id, token in releases:
                pipe.eval(_RELEASE, 1, idempotency_key(message_id), token)

        await self._coalescer.run(command, len(receipts) + len(releases))

    async def readiness(self) -> str | None:
        try:
            await self._client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
