"""IdempotencyStore on Redis: one key per message_id (roomcast_core.redis_keys).

Value, JSON: {"state": "pending", "token": "<owner>"} while a publish is under way
(SET NX with a short TTL, so exactly one concurrent request wins and a crashed
publisher lets go), then {"state": "done", "message_id", "position",
"receive_time"} for the idempotency window.

Claims and settlements are Lua scripts over many keys, and the calls of concurrent
requests are joined into one script call: one round trip and one command to encode
and parse serve a whole batch, or many single-message requests at once, instead of
one or two commands per message (redis-py's per-command cost in Python was larger
than Redis's own work).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

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
from roomcast_publisher.domain.publishing import uuid4_hex_source

# KEYS: the ids' keys. ARGV[1]: hold in ms, ARGV[1 + i]: the claim token for KEYS[i].
# Per key: 1 when this caller now holds it, else the current value, or 0 when it
# vanished between the SET and the GET (its owner just let go).
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
    local marker = '{"state":"pending","token":"' .. ARGV[i + 1] .. '"}'
    if redis.call('SET', key, marker, 'NX', 'PX', ARGV[1]) then
        out[i] = 1
    else
        out[i] = redis.call('GET', key) or 0
    end
end
return out
"""

# KEYS: receipts' keys, then released claims' keys. ARGV[1]: the window in seconds,
# ARGV[2]: how many receipts, then per key its receipt or its claim token. A marker is
# deleted only while it is still ours: one that expired and was claimed by another
# request must survive our late failure.
_SETTLE = """
local window, receipts = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
    if i <= receipts then
        redis.call('SET', key, ARGV[i + 2], 'EX', window)
    else
        local current = redis.call('GET', key)
        if current then
            local ok, record = pcall(cjson.decode, current)
            if ok and type(record) == 'table' and record['token'] == ARGV[i + 2] then
                redis.call('DEL', key)
            end
        end
    end
end
return #KEYS
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


Item = TypeVar("Item")
Reply = TypeVar("Reply")


class _Coalescer(Generic[Item, Reply]):
    """Joins the items of concurrent callers into one call of `execute`.

    Items queued while a call is on the wire go out together in the next one, so under
    load one round trip serves many requests, while an idle caller waits only until
    the next loop turn.
    """

    def __init__(self, execute: Callable[[list[Item]], Awaitable[list[Reply]]]) -> None:
        self._execute = execute
        self._queue: list[tuple[Sequence[Item], asyncio.Future[list[Reply]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, items: Sequence[Item]) -> list[Reply]:
        future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="redis-idempotency")
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._call(batch)
        finally:
            self._flusher = None

    async def _call(self, batch: list[tuple[Sequence[Item], asyncio.Future[list[Reply]]]]) -> None:
        try:
            replies = await self._execute([item for items, _ in batch for item in items])
        except BaseException as exc:
            # Redis down or slow, or this task cancelled: nobody may wait forever.
            failure = StoreUnavailable(f"{type(exc).__name__}: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            if isinstance(exc, RedisError | OSError | TimeoutError):
                return
            raise
        offset = 0
        for items, future in batch:
            if not future.done():
                future.set_result(replies[offset : offset + len(items)])
            offset += len(items)


class RedisIdempotencyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._claim_script = client.register_script(_CLAIM)
        self._settle_script = client.register_script(_SETTLE)
        self._new_token = uuid4_hex_source()
        # One claim call and one settle call at a time; each may carry many requests.
        # Claim items: (key, token, hold ms); settle items: (key, receipt or None, token,
        # window seconds).
        self._claims: _Coalescer[tuple[str, str, int], Any] = _Coalescer(self._claim_many)
        self._settles: _Coalescer[tuple[str, bytes | None, str, int], None] = _Coalescer(
            self._settle_many
        )

    async def _claim_many(self, items: list[tuple[str, str, int]]) -> list[Any]:
        # Holds differ only if callers' policies do; the longest is the safe one.
        hold_ms = max(hold for _, _, hold in items)
        replies = await self._claim_script(
            keys=[key for key, _, _ in items], args=[hold_ms, *(token for _, token, _ in items)]
        )
        if not isinstance(replies, list) or len(replies) != len(items):
            raise RedisError(f"claim script answered {replies!r}")
        return replies

    async def _settle_many(self, items: list[tuple[str, bytes | None, str, int]]) -> list[None]:
        releases = [(key, token) for key, receipt, token, _ in items if receipt is None]
        by_window: dict[int, list[tuple[str, bytes]]] = {}
        for key, receipt, _, window in items:
            if receipt is not None:
                by_window.setdefault(window, []).append((key, receipt))
        calls = [(window, receipts) for window, receipts in by_window.items()] or [(0, [])]
        for index, (window, receipts) in enumerate(calls):
            released = releases if index == 0 else []
            await self._settle_script(
                keys=[key for key, _ in receipts] + [key for key, _ in released],
                args=[
                    window,
                    len(receipts),
                    *(receipt for _, receipt in receipts),
                    *(token for _, token in released),
                ],
            )
        return [None] * len(items)

    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        tokens = [self._new_token() for _ in message_ids]
        hold_ms = max(1, int(hold_seconds * 1000))
        replies = await self._claims.run(
            [
                (idempotency_key(message_id), token, hold_ms)
                for message_id, token in zip(message_ids, tokens, strict=True)
            ]
        )
        claims: list[Claim] = []
        for token, reply in zip(tokens, replies, strict=True):
            if reply == 1:
                claims.append(Claimed(token))
            else:
                # 0: gone between SET and GET, its owner just released it; let the
                # caller look again rather than publish behind its back.
                claims.append(_decode(reply if isinstance(reply, bytes) else None) or InProgress())
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
        items: list[tuple[str, bytes | None, str, int]] = [
            (
                idempotency_key(receipt.message_id),
                orjson.dumps(
                    {
                        "state": "done",
                        "message_id": receipt.message_id,
                        "position": receipt.position,
                        "receive_time": receipt.receive_time,
                    }
                ),
                "",
                window_seconds,
            )
            for receipt in receipts
        ]
        items += [(idempotency_key(message_id), None, token, 0) for message_id, token in releases]
        if items:
            await self._settles.run(items)

    async def readiness(self) -> str | None:
        try:
            await self._client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
