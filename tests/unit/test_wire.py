from __future__ import annotations

import pytest

from roomcast_core.wire import (
    Message,
    WireError,
    decode_value,
    encode_headers,
    encode_key,
    encode_value,
    format_time,
    parse_time,
)


def _message(**fields: object) -> Message:
    base: dict[str, object] = {
        "topic": "order",
        "type": "event",
        "room": None,
        "payload": {"content": "message", "n": [1, 2.5, None]},
        "message_id": "msg-001",
        "receive_time": "2025-08-06T14:20:00.000Z",
    }
    base.update(fields)
    return Message(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", ["text", 42, None, [1, "a"], {"deep": {"x": True}}])
def test_value_round_trips_any_json_payload(payload: object) -> None:
    message = _message(payload=payload)
    assert decode_value(encode_value(message)) == message


def test_key_is_room_then_topic_then_broadcast() -> None:
    assert encode_key(_message(room="1001")) == b"1001"
    assert encode_key(_message()) == b"order"
    assert encode_key(_message(topic=None)) == b"*"


def test_headers_carry_id_and_extras() -> None:
    headers = encode_headers(_message(), [("traceparent", b"00-x")])
    assert ("roomcast-message-id", b"msg-001") in headers
    assert ("traceparent", b"00-x") in headers


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[1,2]",
        b'{"v": 2, "payload": 1, "message_id": "a", "receive_time": "t"}',
        b'{"v": 1, "message_id": "a", "receive_time": "t"}',
        b'{"v": 1, "payload": 1, "message_id": 7, "receive_time": "t"}',
        b'{"v": 1, "payload": 1, "message_id": "a", "receive_time": "t", "room": 5}',
    ],
)
def test_bad_records_raise_wire_error(value: bytes | None) -> None:
    with pytest.raises(WireError):
        decode_value(value)


def test_time_format_round_trips_to_the_millisecond() -> None:
    text = format_time(1754490000.123)
    assert text == "2025-08-06T14:20:00.123Z"
    assert parse_time(text) == pytest.approx(1754490000.123, abs=1e-6)
    with pytest.raises(WireError):
        parse_time("yesterday")
