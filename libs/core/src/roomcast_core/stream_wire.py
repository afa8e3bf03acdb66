"""The Redis Streams form of the bus, shared by publisher (append) and ws-edge (read).

Streams:   ``<stream>:{<n>}`` for n in 0 … partitions-1 (``ROOMCAST_BUS__STREAM``,
           ``ROOMCAST_BUS__PARTITIONS``); the braces keep a stream and its counter
           ``<stream>:{<n>}:offset`` in one Redis Cluster slot.
Partition: the one Kafka's default partitioner picks for the record key
           (``murmur2(key) & 0x7fffffff`` modulo partitions), so order per room,
           per topic and of broadcasts holds exactly as on Kafka.
Entry:     fields ``offset`` (decimal, assigned by APPEND_SCRIPT), ``key`` and
           ``value`` (the record key and value of roomcast_core.wire, byte for byte),
           and optionally ``traceparent`` / ``tracestate`` (W3C trace context).
           The entry id is Redis' own (``*``, time based), which MINID trimming uses.

Positions stay ``partition:offset``: the offset is the stream's own counter,
incremented in the same script that appends, so offsets are dense and increasing
per stream whoever appends. A backend appends by running APPEND_SCRIPT
(EVAL/EVALSHA) with KEYS = (stream, counter) and ARGV = (max_len, max_age_ms, then
key, value, traceparent, tracestate per entry, "" for none); it answers the offsets.
An entry without a whole ``offset``, or whose value does not decode, is skipped by
every edge and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

APPEND_SCRIPT = """
local stream, counter = KEYS[1], KEYS[2]
local max_len, max_age = tonumber(ARGV[1]), tonumber(ARGV[2])
local offsets = {}
for i = 3, #ARGV - 3, 4 do
  local offset = redis.call('INCR', counter) - 1
  local fields = {'offset', offset, 'key', ARGV[i], 'value', ARGV[i + 1]}
  if ARGV[i + 2] ~= '' then
    fields[#fields + 1] = 'traceparent'
    fields[#fields + 1] = ARGV[i + 2]
  end
  if ARGV[i + 3] ~= '' then
    fields[#fields + 1] = 'tracestate'
    fields[#fields + 1] = ARGV[i + 3]
  end
  redis.call('XADD', stream, 'MAXLEN', '~', max_len, '*', unpack(fields))
  offsets[#offsets + 1] = offset
end
if max_age > 0 then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - max_age
  if cutoff > 0 then
    redis.call('XTRIM', stream, 'MINID', '~', cutoff)
  end
end
return offsets
"""


def stream_key(prefix: str, partition: int) -> str:
    return f"{prefix}:{{{partition}}}"


def counter_key(prefix: str, partition: int) -> str:
    return f"{stream_key(prefix, partition)}:offset"


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 (seed 0x9747b28c), as a signed int like Java's."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def append_args(
    max_len: int, max_age_seconds: float, entries: list[tuple[bytes, bytes, bytes, bytes]]
) -> list[bytes | int]:
    """ARGV of APPEND_SCRIPT: (key, value, traceparent, tracestate) per entry."""
    args: list[bytes | int] = [max_len, int(max_age_seconds * 1000)]
    for entry in entries:
        args.extend(entry)
    return args


class EntryError(ValueError):
    """A stream entry that is not in the documented shape."""


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: bytes
    offset: int
    value: bytes | None
    traceparent: bytes | None
    tracestate: bytes | None

    @property
    def timestamp(self) -> float:
        """Seconds since the epoch when Redis appended it (the id's time part)."""
        return int(self.entry_id.split(b"-", 1)[0]) / 1000


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    """The entry's offset and record; EntryError when it has no usable offset."""
    raw = fields.get(b"offset")
    if raw is None:
        raise EntryError("entry has no offset field")
    try:
        offset = int(raw)
    except ValueError:
        raise EntryError(f"offset {raw[:32]!r} is not a whole number") from None
    if offset < 0:
        raise EntryError(f"offset {offset} is negative")
    return Entry(
        entry_id=entry_id,
        offset=offset,
        value=fields.get(b"value"),
        traceparent=fields.get(b"traceparent"),
        tracestate=fields.get(b"tracestate"),
    )


def parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
