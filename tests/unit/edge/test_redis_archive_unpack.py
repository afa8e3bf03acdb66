"""The Redis archive's packed chunk: ids, offsets and values back as the live source
parses entries (a missing field stays missing, so the entry is judged the same way)."""

from __future__ import annotations

import struct

import pytest

from roomcast_core.stream_wire import EntryError, decode_entry
from roomcast_edge.adapters.redis_archive import unpack


def _pack(*parts: bytes | None) -> bytes:
    """What READ_SCRIPT's put() writes: a signed 32-bit length (-1: none), the bytes."""
    out = b""
    for part in parts:
        out += struct.pack(">i", -1 if part is None else len(part))
        out += part or b""
    return out


def test_entries_come_back_in_order_with_their_fields() -> None:
    value = b'{"v":1,"payload":"\x00\xff binary-safe"}'
    packed = _pack(b"1700000000000-0", b"7", value) + _pack(b"1700000000001-3", b"8", b"")
    entries = unpack(packed)
    assert entries == [
        (b"1700000000000-0", {b"offset": b"7", b"value": value}),
        (b"1700000000001-3", {b"offset": b"8", b"value": b""}),
    ]
    first = decode_entry(*entries[0])
    assert (first.offset, first.value, first.timestamp) == (7, value, 1700000000.0)


def test_missing_fields_stay_missing() -> None:
    (no_value,) = unpack(_pack(b"5-0", b"3", None))
    assert no_value == (b"5-0", {b"offset": b"3"})
    assert decode_entry(*no_value).value is None
    (no_offset,) = unpack(_pack(b"5-1", None, b"x"))
    with pytest.raises(EntryError):
        decode_entry(*no_offset)


def test_an_empty_chunk_is_no_entries() -> None:
    assert unpack(b"") == []
