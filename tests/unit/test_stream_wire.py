"""The Redis Streams form of the bus: Kafka's partitioner, entry decoding."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from roomcast_core.stream_wire import (
    EntryError,
    counter_key,
    decode_entry,
    parse_id,
    partition_for,
    stream_key,
)


@pytest.mark.parametrize("partitions", [1, 3, 7, 64])
def test_partition_is_the_one_kafka_picks_for_the_key(partitions: int) -> None:
    kafka = DefaultPartitioner()
    every = list(range(partitions))
    keys = [b"", b"*", b"a", b"ab", b"abc", b"room-1001", "caf\u00e9".encode(), bytes(range(256))]
    keys += [f"room-{n}".encode() for n in range(200)]
    for key in keys:
        assert partition_for(key, partitions) == kafka(key, every, every), key


def test_stream_and_counter_share_a_cluster_slot_tag() -> None:
    assert stream_key("roomcast:bus", 2) == "roomcast:bus:{2}"
    assert counter_key("roomcast:bus", 2) == "roomcast:bus:{2}:offset"


def test_entry_decodes_offset_value_and_trace_context() -> None:
    entry = decode_entry(
        b"1700000000123-4",
        {b"offset": b"41", b"key": b"r", b"value": b"{}", b"traceparent": b"00-ab-cd-01"},
    )
    assert (entry.offset, entry.value, entry.traceparent, entry.tracestate) == (
        41,
        b"{}",
        b"00-ab-cd-01",
        None,
    )
    assert entry.timestamp == pytest.approx(1700000000.123)
    assert parse_id(b"1700000000123-4") == (1700000000123, 4)


@pytest.mark.parametrize(
    "fields",
    [{b"value": b"{}"}, {b"offset": b"x"}, {b"offset": b"-1"}, {b"offset": b"1.5"}],
)
def test_entry_without_a_whole_offset_is_refused(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(EntryError):
        decode_entry(b"1-0", fields)
