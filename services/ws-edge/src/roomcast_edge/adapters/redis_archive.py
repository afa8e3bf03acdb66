"""Redis Streams read back: what the edge's in-memory history no longer holds, from
the partition streams themselves (see roomcast_core.stream_wire for their entries).

Entry ids are Redis' own, time based, so the entry holding a given offset has to be
searched for: READ_SCRIPT bisects over the ids' time part, then over their sequence
part within one millisecond (a batch appended by one script shares it), each probe
an XRANGE … COUNT of a few entries, and returns the chunk that follows, all in one
round trip. A reader remembers the id of the last entry it read, so a sequential
read carries on with an exclusive range and no search.

Readers share one Redis client (its pool holds a connection per reader busy); at
most `readers` are lent at once per edge, like the Kafka archive's.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis

from roomcast_core.redis_link import redis_client
from roomcast_core.settings import Settings
from roomcast_core.stream_wire import EntryError, counter_key, decode_entry, stream_key
from roomcast_edge.adapters.archive_reading import YIELD_EVERY, CpuBudget, Lending, decode
from roomcast_edge.adapters.redis_streams import before_time, first_offset
from roomcast_edge.domain.ports import ArchiveChunk, ArchiveGone, Wanted
from roomcast_edge.domain.publication import Publication
from roomcast_edge.metrics import EdgeMetrics

# Bytes of entries one read brings (at least one entry): a reader's memory, whatever the gap.
READ_BYTES = 64 * 1024
# Reads of a chunk that brought only entries to skip (wrong-shaped, or not after
# the offset asked for) before the chunk is answered empty.
READ_ATTEMPTS = 10

# KEYS: stream, counter. ARGV: after, count, max_bytes, start ("" to search for the
# first entry whose offset is past `after`, else an XRANGE start such as "(<id>").
# Answers {log start, id of the last entry looked at ("" for none), packed entries}: the log
# start is the offset of the first entry (the counter when the stream is empty, -1
# when the first entries have no offset).
# A probe looks at a few entries, so a run of wrong-shaped ones is stepped over; a
# probe that finds no offset counts as past `after`, which can only make the search
# land earlier, and the chunk steps over what comes before the entry wanted.
READ_SCRIPT = """
local stream, counter = KEYS[1], KEYS[2]
local after, count, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = ARGV[4]
local PROBE = 16
local SCAN = 4096

local function fmt(n)
  return string.format('%.0f', n)
end

local function offset_of(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'offset' then
      if string.match(fields[i + 1], '^%d+$') then
        return tonumber(fields[i + 1])
      end
      return nil
    end
  end
  return nil
end

-- The offset of the first entry at or after `id` that has one; false past the end.
-- One entry first: nearly always it has an offset, and entries may be large.
local function probe(id)
  local entries = redis.call('XRANGE', stream, id, '+', 'COUNT', 1)
  if #entries == 0 then
    return false
  end
  local offset = offset_of(entries[1][2])
  if offset then
    return offset
  end
  entries = redis.call('XRANGE', stream, '(' .. entries[1][1], '+', 'COUNT', PROBE)
  for _, entry in ipairs(entries) do
    offset = offset_of(entry[2])
    if offset then
      return offset
    end
  end
  return nil
end

local function beyond(id)
  local offset = probe(id)
  return (not offset) or offset > after
end

local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local first = probe('-')
local log_start = -1
if first == false then
  log_start = tonumber(redis.call('GET', counter) or '0')
  return {log_start, ''}
elseif first ~= nil then
  log_start = first
end
if log_start > after + 1 then
  return {log_start, ''}
end

if start == '' then
  if log_start == after + 1 then
    start = '-'
  else
    local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    local lo = parts(head[1][1])
    local hi = parts(tail[1][1]) + 1
    -- The first millisecond whose entries start past `after` (the one after the last does).
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if beyond(fmt(mid) .. '-0') then
        hi = mid
      else
        lo = mid + 1
      end
    end
    start = fmt(lo) .. '-0'
    -- The entry wanted may be within the millisecond before, after others not past `after`.
    local prev = lo - 1
    local last = redis.call('XREVRANGE', stream, fmt(prev), fmt(prev), 'COUNT', 1)
    if #last > 0 then
      local _, top = parts(last[1][1])
      if top < 2 ^ 52 then
        local s_lo, s_hi = 0, top + 1
        while s_lo < s_hi do
          local mid = math.floor((s_lo + s_hi) / 2)
          if beyond(fmt(prev) .. '-' .. fmt(mid)) then
            s_hi = mid
          else
            s_lo = mid + 1
          end
        end
        if s_lo <= top then
          start = fmt(prev) .. '-' .. fmt(s_lo)
        end
      else
        start = fmt(prev) .. '-0'
      end
    end
  end
end

-- The chunk: entries past `after`, or whose offset is for the reader to judge, up to
-- `count` of them and `max_bytes`; the others are only stepped over, SCAN at most.
-- Each entry taken is packed as its id, offset and value, each a signed 32-bit
-- length (-1: no such field) then the bytes: one reply string instead of a dozen
-- reply elements per entry, which the client would parse one by one.
local packed, last_id, bytes, taken, examined = {}, '', 0, 0, 0
local page = math.max(count, 100)
local full = false

local function put(text)
  if text then
    packed[#packed + 1] = struct.pack('>i4', #text) .. text
  else
    packed[#packed + 1] = struct.pack('>i4', -1)
  end
end

while not full and examined < SCAN do
  local entries = redis.call('XRANGE', stream, start, '+', 'COUNT', page)
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    local raw, value, size = nil, nil, 0
    for i = 1, #fields, 2 do
      size = size + #fields[i + 1]
      if fields[i] == 'offset' then
        raw = fields[i + 1]
      elseif fields[i] == 'value' then
        value = fields[i + 1]
      end
    end
    local offset = nil
    if raw and string.match(raw, '^%d+$') then
      offset = tonumber(raw)
    end
    if raw and not (offset and offset <= after) then
      if taken > 0 and bytes + size > max_bytes then
        full = true
        break
      end
      bytes = bytes + size
      taken = taken + 1
      put(entry[1])
      put(raw)
      put(value)
    end
    last_id = entry[1]
    examined = examined + 1
    if taken >= count or examined >= SCAN then
      full = true
      break
    end
  end
  if #entries < page then
    break
  end
  start = '(' .. entries[#entries][1]
end
return {log_start, last_id, table.concat(packed)}
"""
_LENGTH = struct.Struct(">i")


def unpack(packed: bytes) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The (id, fields) of the entries READ_SCRIPT packed, with their offset and value."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    at, end = 0, len(packed)
    read_length = _LENGTH.unpack_from
    while at < end:
        parts: list[bytes | None] = []
        for _ in range(3):
            (length,) = read_length(packed, at)
            at += 4
            if length < 0:
                parts.append(None)
            else:
                parts.append(packed[at : at + length])
                at += length
        entry_id, offset, value = parts
        fields = {b"offset": offset} if offset is not None else {}
        if value is not None:
            fields[b"value"] = value
        entries.append((entry_id or b"", fields))
    return entries


class RedisReader:
    def __init__(
        self,
        client: aioredis.Redis,
        script: Any,
        prefix: str,
        metrics: EdgeMetrics,
        budget: CpuBudget,
        purpose: str,
    ) -> None:
        self._client = client
        self._script = script
        self._prefix = prefix
        self._metrics = metrics
        self._budget = budget
        self.purpose = purpose
        # (partition, last offset read) and the id of the last entry looked at
        self._at: tuple[int, int] | None = None
        self._at_id = b""

    async def read(
        self, partition: int, after: int, upto: int, max_records: int, wanted: Wanted
    ) -> ArchiveChunk:
        if upto <= after:
            return ArchiveChunk([], after)
        keys = [stream_key(self._prefix, partition), counter_key(self._prefix, partition)]
        start = "(" + self._at_id.decode() if self._at == (partition, after) else ""
        self._at = None
        publications: list[Publication] = []
        last = after
        resume: bytes | None = None  # the id to carry on after
        for _ in range(READ_ATTEMPTS):
            reply: Any = await self._script(
                keys=keys, args=[after, max_records, READ_BYTES, start], client=self._client
            )
            log_start, examined = int(reply[0]), reply[1]
            entries = unpack(reply[2]) if len(reply) > 2 else []
            if log_start > after + 1:
                raise ArchiveGone(partition, log_start)
            last_id, last, done = await self._decode(
                partition, after, upto, entries, wanted, publications
            )
            if done:
                resume = last_id or resume
            elif examined:
                resume = examined
            if resume is not None:
                start = "(" + resume.decode()
            if last > after or done or not examined:
                break
        if last > after and resume is not None:
            self._at, self._at_id = (partition, last), resume
        self._metrics.archive_records.labels(self.purpose).inc(last - after)
        return ArchiveChunk(publications, last)

    async def _decode(
        self,
        partition: int,
        after: int,
        upto: int,
        entries: list[tuple[bytes, dict[bytes, bytes]]],
        wanted: Wanted,
        publications: list[Publication],
    ) -> tuple[bytes | None, int, bool]:
        """Decode the entries in (after, upto] into `publications`: the id of the last
        entry looked at up to `upto`, the last offset read, whether `upto` was passed."""
        last_id: bytes | None = None
        last = after
        started = time.perf_counter()
        for i, (entry_id, fields) in enumerate(entries):
            if i and i % YIELD_EVERY == 0:
                await self._budget.spend(time.perf_counter() - started)
                await asyncio.sleep(0)
                started = time.perf_counter()
            try:
                entry = decode_entry(entry_id, fields)
            except EntryError:
                last_id = entry_id  # skipped, as the live source does (it counts them)
                continue
            if entry.offset > upto:
                await self._budget.spend(time.perf_counter() - started)
                return last_id, last, True
            last_id = entry_id
            if entry.offset <= after:
                continue  # the search lands at most a little early
            last = entry.offset
            publication = decode(partition, entry.offset, entry.value, entry.timestamp, wanted)
            if publication is not None:
                publications.append(publication)
        await self._budget.spend(time.perf_counter() - started)
        return last_id, last, False


class RedisArchive:
    def __init__(self, settings: Settings, readers: int, metrics: EdgeMetrics) -> None:
        self._prefix = settings.bus.stream
        self._metrics = metrics
        self._client = redis_client(
            settings.redis,
            socket_timeout=settings.redis.timeout,
            socket_connect_timeout=settings.redis.timeout,
            health_check_interval=15,
        )
        self._script = self._client.register_script(READ_SCRIPT)
        self._lending = Lending(readers, metrics)
        self._budget = CpuBudget()
        self._known_start: dict[int, int] | None = None

    async def _first_offsets(self, after: str, partitions: Sequence[int]) -> dict[int, int]:
        found = await asyncio.gather(
            *(first_offset(self._client, self._prefix, p, after) for p in partitions)
        )
        return dict(zip(partitions, found, strict=True))

    async def log_start(self, partitions: Sequence[int]) -> dict[int, int]:
        start = await self._first_offsets("0-0", partitions)
        self._known_start = start
        return start

    def known_log_start(self) -> dict[int, int] | None:
        return self._known_start

    async def offsets_at(self, timestamp_ms: int, partitions: Sequence[int]) -> dict[int, int]:
        return await self._first_offsets(before_time(timestamp_ms), partitions)

    @contextlib.asynccontextmanager
    async def reader(self, purpose: str, owner: str = "") -> AsyncIterator[RedisReader]:
        async with self._lending.slot(owner):
            yield RedisReader(
                self._client, self._script, self._prefix, self._metrics, self._budget, purpose
            )

    async def close(self) -> None:
        await self._client.aclose()
