"""IdempotencyStore on Redis: one key per message_id (roomcast_core.redis_keys).

Value, JSON: {"state": "pending", "token": "<owner>"} while a publish is under way
(SET NX with a short TTL, so exactly one concurrent request wins and a crashed
publisher lets go), then {"state": "done", "message_id", "position",
"receive_time"} for the idempotency window.

Claims and settlements are Lua scripts over many ids, and the calls of concurrent
requests are joined into one script call: one round trip and one command to encode
and parse serve a whole batch, or many single-message requests at once, instead of
one or two commands per message (redis-py's per-command cost in Python was larger
than Redis's own work). For the same reason their arguments and replies are packed
into a few strings rather than one element per id. The scripts name the keys they
build from the prefix and the ids: a single Redis, not a cluster.
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

# Arguments are packed: redis-py encodes and frames every argument and parses every
# reply element in Python, which cost more per message than Redis's own work. Ids are
# printable ASCII without spaces (the API's rule), so a space separates them; tokens
# are 32 hex characters each, concatenated.
# ARGV: hold in ms, the key prefix, the ids, their tokens. Answers {mask, values...}:
# per id "1" when this caller now holds it, "v" when it is held (its value follows in
# order), "0" when it vanished between the SET and the GET (its owner just let go).
_CLAIM = """
local hold, prefix, tokens = ARGV[1], ARGV[2], ARGV[4]
local mask, out, i = {}, {''}, 0
for id in string.gmatch(ARGV[3], '[^ ]+') do
    i = i + 1
    local key = prefix .. id
    local marker = '{"state":"pending","token":"' .. string.sub(tokens, i * 32 - 31, i * 32) .. '"}'
    if redis.call('SET', key, marker, 'NX', 'PX', hold) then
        mask[i] = '1'
    else
        local current = redis.call('GET', key)
        if current then
            mask[i] = 'v'
            out[#out + 1] = current
        else
            mask[i] = '0'
        end
    end
end
out[1] = table.concat(mask)
return out
"""

# ARGV: the window in seconds, the key prefix, the receipts (id, position and receive
# time per receipt), the releases (id and claim token per release). A marker is deleted
# only while it is still ours: one that expired and was claimed by another request must
# survive our late failure.
_SETTLE = """
local window, prefix = ARGV[1], ARGV[2]
local n = 0
for id, position, at in string.gmatch(ARGV[3], '([^ ]+) ([^ ]+) ([^ ]+)') do
    local receipt = '{"state":"done","message_id":' .. cjson.encode(id)
        .. ',"position":"' .. position .. '","receive_time":"' .. at .. '"}'
    redis.call('SET', prefix .. id, receipt, 'EX', window)
    n = n + 1
end
for id, token in string.gmatch(ARGV[4], '([^ ]+) ([^ ]+)') do
    local key = prefix .. id
    local current = redis.call('GET', key)
    if current then
        local ok, record = pcall(cjson.decode, current)
        if ok and type(record) == 'table' and record['token'] == token then
            redis.call('DEL', key)
        end
    end
    n = n + 1
end
return n
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


def _check_ids(message_ids: Sequence[str]) -> None:
    """The packed arguments need ids without spaces or control characters (as the API
    accepts them); anything else would split wrongly, so it is refused here."""
    for message_id in message_ids:
        if not message_id or not _packable(message_id):
            raise StoreUnavailable(f"message id {message_id!r} cannot be stored")


def _packable(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


def _receipt_fields(receipt: Receipt) -> str:
    fields = f"{receipt.position} {receipt.receive_time}"
    if fields.count(" ") != 1 or not _packable(fields.replace(" ", "")):
        raise StoreUnavailable(f"receipt {receipt!r} cannot be stored")
    return fields


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
        self._prefix = idempotency_key("")
        self._new_token = uuid4_hex_source()
        # One claim call and one settle call at a time; each may carry many requests.
        # Claim items: (message_id, token, hold ms); settle items: (message_id, receipt
        # fields "position receive_time" or None, token, window seconds).
        self._claims: _Coalescer[tuple[str, str, int], Any] = _Coalescer(self._claim_many)
        self._settles: _Coalescer[tuple[str, str | None, str, int], None] = _Coalescer(
            self._settle_many
        )

    async def _claim_many(self, items: list[tuple[str, str, int]]) -> list[Any]:
        # Holds differ only if callers' policies do; the longest is the safe one.
        hold_ms = max(hold for _, _, hold in items)
        reply = await self._claim_script(
            args=[
                hold_ms,
                self._prefix,
                " ".join([message_id for message_id, _, _ in items]),
                "".join([token for _, token, _ in items]),
            ]
        )
        if not isinstance(reply, list) or not reply or not isinstance(reply[0], bytes):
            raise RedisError(f"claim script answered {reply!r}")
        mask, values = reply[0], iter(reply[1:])
        if len(mask) != len(items) or mask.count(b"v") != len(reply) - 1:
            raise RedisError(f"claim script answered {reply!r}")
        # b"1"[0] is 49: held by us; 118 ("v"): its value; 48 ("0"): gone meanwhile.
        return [1 if flag == 49 else next(values) if flag == 118 else 0 for flag in mask]

    async def _settle_many(self, items: list[tuple[str, str | None, str, int]]) -> list[None]:
        releases = " ".join(
            [f"{message_id} {token}" for message_id, fields, token, _ in items if fields is None]
        )
        by_window: dict[int, list[str]] = {}
        for message_id, fields, _, window in items:
            if fields is not None:
                by_window.setdefault(window, []).append(f"{message_id} {fields}")
        calls = list(by_window.items()) or [(0, [])]
        for index, (window, receipts) in enumerate(calls):
            await self._settle_script(
                args=[window, self._prefix, " ".join(receipts), releases if index == 0 else ""]
            )
        return [None] * len(items)

    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        _check_ids(message_ids)
        tokens = [self._new_token() for _ in message_ids]  # 32 characters each
        hold_ms = max(1, int(hold_seconds * 1000))
        replies = await self._claims.run(
            [
                (message_id, token, hold_ms)
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
        _check_ids([receipt.message_id for receipt in receipts])
        _check_ids([message_id for message_id, _ in releases])
        items: list[tuple[str, str | None, str, int]] = [
            (
                receipt.message_id,
                _receipt_fields(receipt),
                "",
                window_seconds,
            )
            for receipt in receipts
        ]
        items += [(message_id, None, token, 0) for message_id, token in releases]
        if items:
            await self._settles.run(items)

    async def readiness(self) -> str | None:
        try:
            await self._client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
