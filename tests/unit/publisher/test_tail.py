"""The live tail's rules: filters, the rate with its skipped count, payloads cut to 2 KB."""

from __future__ import annotations

import json

from roomcast_core.wire import Message, decode_value, encode_key, encode_value
from roomcast_publisher.domain.tail import (
    MAX_PAYLOAD_BYTES,
    BusRecord,
    Sampler,
    Tail,
    TailFilter,
    push_event,
)


def message(
    room: str | None = None, topic: str | None = None, type_: str | None = None, payload: object = 1
) -> Message:
    return Message(topic, type_, room, payload, "m1", "2025-08-06T14:20:00.000Z")


def record(msg: Message, offset: int = 0) -> BusRecord:
    return BusRecord(2, offset, encode_key(msg), encode_value(msg))


def decode(rec: BusRecord) -> Message | None:
    return decode_value(rec.value)


def test_the_sampler_allows_a_burst_of_rate_then_rate_per_second() -> None:
    sampler = Sampler(5, now=0.0)
    assert [sampler.take(0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert sampler.take(0.1) is False  # half a token
    assert sampler.take(0.2) is True
    assert sampler.take_skipped() == 3
    assert sampler.take_skipped() == 0
    # Over any 10 s, no more than rate * 10 + the burst.
    sampler = Sampler(5, now=0.0)
    taken = sum(sampler.take(i / 100) for i in range(1000))
    assert taken <= 5 * 10 + 5


def test_the_next_event_after_sampling_carries_the_skipped_count() -> None:
    tail = Tail(TailFilter(), rate=1, now=0.0)
    first = tail.offer(record(message(room="r"), 0), 0.0, decode)
    assert first is not None
    assert "skipped" not in first
    assert tail.offer(record(message(room="r"), 1), 0.1, decode) is None
    assert tail.offer(record(message(room="r"), 2), 0.2, decode) is None
    later = tail.offer(record(message(room="r"), 3), 1.5, decode)
    assert later is not None
    assert later["skipped"] == 2
    assert later["meta"]["position"] == "2:3"


def test_filters_match_room_topic_and_type() -> None:
    by_room = Tail(TailFilter(room="1001"), 100, 0.0)
    assert by_room.offer(record(message(room="1001")), 0, decode) is not None
    assert by_room.offer(record(message(room="1002")), 0, decode) is None
    # A topic named like the room is keyed alike: the message itself decides.
    assert by_room.offer(record(message(topic="1001")), 0, decode) is None
    by_topic = Tail(TailFilter(topic="order", type="event"), 100, 0.0)
    assert by_topic.offer(record(message(room="x", topic="order", type_="event")), 0, decode)
    assert by_topic.offer(record(message(topic="order", type_="quote")), 0, decode) is None
    assert by_topic.offer(record(message(topic="other", type_="event")), 0, decode) is None


def test_a_record_ruled_out_by_its_key_is_never_decoded() -> None:
    decoded: list[BusRecord] = []

    def counting(rec: BusRecord) -> Message | None:
        decoded.append(rec)
        return decode(rec)

    tail = Tail(TailFilter(room="1001"), 100, 0.0)
    assert tail.offer(record(message(room="other")), 0, counting) is None
    assert decoded == []


def test_undecodable_records_are_passed_over() -> None:
    tail = Tail(TailFilter(topic="t"), 100, 0.0)
    assert tail.offer(BusRecord(0, 0, b"t", b"not json"), 0, decode_or_none) is None


def decode_or_none(rec: BusRecord) -> Message | None:
    try:
        return decode(rec)
    except ValueError:
        return None


def test_the_push_is_the_edges_shape_with_a_payload_cut_to_2_kb() -> None:
    small = push_event(message(room="r", payload={"a": 1}), 1, 7)
    assert small == {
        "room": "r",
        "payload": {"a": 1},
        "meta": {"receive_time": "2025-08-06T14:20:00.000Z", "message_id": "m1", "position": "1:7"},
    }
    big = push_event(message(topic="t", type_="e", payload={"text": "é" * 3000}), 0, 0)
    assert big["topic"] == "t"
    assert big["payload_truncated"] is True
    assert len(big["payload"].encode()) <= MAX_PAYLOAD_BYTES
    assert big["payload"].startswith('{"text":"é')
    exact = "x" * (MAX_PAYLOAD_BYTES - 2)  # its JSON is exactly the limit
    assert push_event(message(payload=exact), 0, 0)["payload"] == exact
    assert len(json.dumps(exact)) == MAX_PAYLOAD_BYTES


def test_an_event_that_does_not_fit_counts_as_skipped() -> None:
    tail = Tail(TailFilter(), 10, 0.0)
    tail.lost({"skipped": 4})
    event = tail.offer(record(message()), 0.0, decode)
    assert event is not None
    assert event["skipped"] == 5
