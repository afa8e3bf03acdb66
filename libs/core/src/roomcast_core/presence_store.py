"""Room presence in Redis: written by every edge, read by edges and the publisher.

Key layout (under roomcast:presence:):
    room:<room>    hash connection_id -> member JSON {connection_id, user_id, device_id, joined_at}
    users:<room>   hash user_id -> how many of its connections are in the room
    edge:<edge>    set of [room, connection_id, user_id] JSON arrays an edge holds
    edges          sorted set edge id -> deadline (Redis clock, ms) of its last heartbeat
    grave:<edge>   what a dead edge held, being removed by the sweep a chunk at a time
    graves         set of the edges whose grave is not empty yet

Every change goes through one Lua script per batch, so the transitions it causes
(room_occupied, room_vacated, member_added, member_removed) are decided atomically:
whichever edge makes a change, exactly one script run sees each transition. The
same run appends them to the webhook outbox (a stream) and publishes the join/leave
notices, so a transition is never decided without being queued, nor queued twice.
Adding a member twice or removing an absent one changes nothing and emits nothing,
which makes every batch safe to send again after a failure.

A dead edge is claimed whole in one step (unregistered, its set moved to its grave),
then its members are removed a chunk per run. An edge that was only paused finds
itself unregistered at its next heartbeat and writes all its members again; the
sweep leaves alone the members it wrote back, so a heartbeat landing between two
sweep runs never leaves an edge with part of its members gone.

The keys of one room are computed inside the scripts: the layout assumes one Redis
(or one primary), not a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

PRESENCE_PREFIX = "roomcast:presence:"
EDGES_KEY = PRESENCE_PREFIX + "edges"
NOTICE_CHANNEL = "roomcast:presence:notices"
# Entries the outbox keeps at most (approximately): far more than ten minutes of
# transitions of any realistic deployment, so retries never lose an entry to trimming.
OUTBOX_MAXLEN = 1_000_000

_COMMON = """
local prefix, outbox, channel, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local events, notices = {}, {}
local function add(holder, room, conn, user, member)
  local rk = prefix .. 'room:' .. room
  -- Held first, whether or not the member is new: one written back by an edge that
  -- was swept is still in the room until the sweep reaches it, and must stay.
  redis.call('SADD', holder, cjson.encode({room, conn, user}))
  if redis.call('HSET', rk, conn, member) == 0 then return end
  if redis.call('HLEN', rk) == 1 then
    events[#events + 1] = {name = 'room_occupied', room = room}
  end
  if redis.call('HINCRBY', prefix .. 'users:' .. room, user, 1) == 1 then
    events[#events + 1] = {name = 'member_added', room = room, user_id = user}
    notices[#notices + 1] = {'join', room, member}
  end
end
local function remove(holder, room, conn, user)
  local rk = prefix .. 'room:' .. room
  local member = redis.call('HGET', rk, conn)
  redis.call('SREM', holder, cjson.encode({room, conn, user}))
  if not member then return end
  redis.call('HDEL', rk, conn)
  local uk = prefix .. 'users:' .. room
  if redis.call('HINCRBY', uk, user, -1) <= 0 then
    redis.call('HDEL', uk, user)
    events[#events + 1] = {name = 'member_removed', room = room, user_id = user}
    notices[#notices + 1] = {'leave', room, member}
  end
  if redis.call('HLEN', rk) == 0 then
    events[#events + 1] = {name = 'room_vacated', room = room}
  end
end
local function emit()
  if #events > 0 and outbox ~= '' then
    redis.call('XADD', outbox, 'MAXLEN', '~', maxlen, '*',
      'time_ms', now, 'events', cjson.encode(events))
  end
  if #notices > 0 and channel ~= '' then
    redis.call('PUBLISH', channel, cjson.encode(notices))
  end
end
"""

# ARGV[5] edge id, ARGV[6] the changes as one JSON array of [room, connection_id,
# user_id, member] (member "" for a removal). One argument, not five per change: the
# client encodes and the server parses far less per change.
_APPLY = (
    _COMMON
    + """
local holder = prefix .. 'edge:' .. ARGV[5]
for _, c in ipairs(cjson.decode(ARGV[6])) do
  if c[4] ~= '' then
    add(holder, c[1], c[2], c[3], c[4])
  else
    remove(holder, c[1], c[2], c[3])
  end
end
emit()
return #events
"""
)

# ARGV[5] most members removed per run. One run either claims the first edge whose
# heartbeat deadline has passed (unregisters it and moves its set to its grave, so
# its next heartbeat, if it was only paused, says it was swept) or removes up to
# ARGV[5] members of a grave, leaving those its edge has written back since. Returns
# 1 while such work remains, else 0.
_SWEEP = (
    _COMMON
    + """
local edges, graves = prefix .. 'edges', prefix .. 'graves'
local victim = redis.call('SRANDMEMBER', graves)
if not victim then
  local dead = redis.call('ZRANGEBYSCORE', edges, '-inf', now, 'LIMIT', 0, 1)
  if #dead == 0 then return 0 end
  victim = dead[1]
  redis.call('ZREM', edges, victim)
  local holder, grave = prefix .. 'edge:' .. victim, prefix .. 'grave:' .. victim
  if redis.call('EXISTS', holder) == 1 then
    if redis.call('EXISTS', grave) == 1 then
      redis.call('SUNIONSTORE', grave, grave, holder)
      redis.call('DEL', holder)
    else
      redis.call('RENAME', holder, grave)
    end
    redis.call('SADD', graves, victim)
  end
  return 1
end
local grave, holder = prefix .. 'grave:' .. victim, prefix .. 'edge:' .. victim
for _, entry in ipairs(redis.call('SPOP', grave, tonumber(ARGV[5]))) do
  if redis.call('SISMEMBER', holder, entry) == 0 then
    local e = cjson.decode(entry)
    remove(grave, e[1], e[2], e[3])
  end
end
emit()
if redis.call('SCARD', grave) == 0 then
  redis.call('SREM', graves, victim)
end
return 1
"""
)

# ARGV edges key, edge id, ttl ms. 1 when the edge was not registered (first beat,
# or it was swept as dead meanwhile: its members are to be written again).
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', ARGV[1], now + tonumber(ARGV[3]), ARGV[2])
"""

# KEYS room hash, users hash; ARGV cap. {connections, users, members (at most cap)}.
_READ = """
local n = redis.call('HLEN', KEYS[1])
local u = redis.call('HLEN', KEYS[2])
local cap = tonumber(ARGV[1])
local members
if n <= cap then
  members = redis.call('HVALS', KEYS[1])
else
  members = {}
  local pairs = redis.call('HRANDFIELD', KEYS[1], cap, 'WITHVALUES')
  for i = 2, #pairs, 2 do members[#members + 1] = pairs[i] end
end
return {n, u, members}
"""

# ARGV edges key, edge id: an edge that stops cleanly, with nothing left to hold.
_RETIRE = """
if redis.call('SCARD', KEYS[1]) == 0 then
  return redis.call('ZREM', ARGV[1], ARGV[2])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One membership change: `member` (JSON) set for an addition, None for a removal."""

    room: str
    connection_id: str
    user_id: str
    member: bytes | None


@dataclass(frozen=True, slots=True)
class Outlets:
    """Where transitions go: the outbox stream ("" none) and the notice channel ("" none)."""

    outbox: str = ""
    channel: str = ""


def room_key(room: str) -> str:
    return f"{PRESENCE_PREFIX}room:{room}"


def users_key(room: str) -> str:
    return f"{PRESENCE_PREFIX}users:{room}"


def edge_key(edge: str) -> str:
    return f"{PRESENCE_PREFIX}edge:{edge}"


def presence_body(room: str, raw: Sequence[Any]) -> dict[str, Any]:
    """The `presence` object of the protocol and the REST API from one read result."""
    connections, users, members = raw
    return {
        "room": room,
        "connections": int(connections),
        "users": int(users),
        "members": [orjson.loads(m) for m in members],
    }


class PresenceStore:
    """The scripts above, run alone or queued on a pipeline (`pipe`)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._apply = client.register_script(_APPLY)
        self._sweep = client.register_script(_SWEEP)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._read = client.register_script(_READ)
        self._retire = client.register_script(_RETIRE)

    @staticmethod
    def _head(outlets: Outlets) -> list[Any]:
        return [PRESENCE_PREFIX, outlets.outbox, outlets.channel, OUTBOX_MAXLEN]

    def queue_apply(
        self, pipe: aioredis.client.Pipeline, edge: str, changes: Sequence[Change], outlets: Outlets
    ) -> None:
        packed = orjson.dumps(
            [
                (c.room, c.connection_id, c.user_id, "" if c.member is None else c.member.decode())
                for c in changes
            ]
        )
        self._queue(pipe, self._apply, [], [*self._head(outlets), edge, packed])

    def queue_read(self, pipe: aioredis.client.Pipeline, room: str, cap: int) -> None:
        self._queue(pipe, self._read, [room_key(room), users_key(room)], [cap])

    @staticmethod
    def _queue(
        pipe: aioredis.client.Pipeline, script: Any, keys: list[str], args: list[Any]
    ) -> None:
        # EVALSHA alone: a pipeline told of its scripts asks SCRIPT EXISTS first, a
        # round trip of its own on every flush. See `load` for a Redis without them.
        pipe.evalsha(script.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        """Load the scripts (after a start, or a Redis that answered NOSCRIPT)."""
        for script in (self._apply, self._sweep, self._heartbeat, self._read, self._retire):
            await self.client.script_load(script.script)

    async def read(self, room: str, cap: int) -> dict[str, Any]:
        raw = await self._read(keys=[room_key(room), users_key(room)], args=[cap])
        return presence_body(room, raw)

    async def heartbeat(self, edge: str, ttl_ms: int) -> bool:
        """Renew the edge's deadline; True when it had to be registered anew."""
        return bool(await self._heartbeat(args=[EDGES_KEY, edge, ttl_ms]))

    async def sweep(self, outlets: Outlets, limit: int = 500) -> bool:
        """Remove up to `limit` members of one dead edge; True while more work remains."""
        return bool(await self._sweep(args=[*self._head(outlets), limit]))

    async def retire(self, edge: str) -> None:
        await self._retire(keys=[edge_key(edge)], args=[EDGES_KEY, edge])
