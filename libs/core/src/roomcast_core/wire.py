"""The Kafka record format shared by publisher (encode) and ws-edge (decode).

Record key:   the room if there is one, else the topic, else ``*`` (broadcasts),
              UTF-8; Kafka's partitioner then keeps order per room / per topic.
Record value: one JSON object, UTF-8, version 1:
              {"v": 1, "topic": str|null, "type": str|null, "room": str|null,
               "payload": <any JSON>, "message_id": str, "receive_time": str}
              receive_time is RFC 3339 UTC with milliseconds, e.g.
              "2025-08-06T14:20:00.123Z", taken when the publisher received the call.
Headers:      "content-type": b"application/vnd.roomcast.v1+json",
              "roomcast-message-id": the message id, plus W3C "traceparent" /
              "tracestate" when the publish was traced.
A consumer must skip (and count) a record whose value does not decode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

WIRE_VERSION = 1
CONTENT_TYPE = b"application/vnd.roomcast.v1+json"
BROADCAST_KEY = "*"

Headers = list[tuple[str, bytes]]


class WireError(ValueError):
    """A record that is not a valid roomcast message."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str | None
    type: str | None
    room: str | None
    payload: Any
    message_id: str
    receive_time: str

    @property
    def key(self) -> str:
        return self.room or self.topic or BROADCAST_KEY


def format_time(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch of a receive_time; WireError when it is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise WireError(f"bad receive_time {text!r}") from exc


def now_time() -> str:
    return format_time(time.time())


def encode_value(message: Message) -> bytes:
    return orjson.dumps(
        {
            "v": WIRE_VERSION,
            "topic": message.topic,
            "type": message.type,
            "room": message.room,
            "payload": message.payload,
            "message_id": message.message_id,
            "receive_time": message.receive_time,
        }
    )


def encode_key(message: Message) -> bytes:
    return message.key.encode()


def encode_headers(message: Message, extra: Headers | None = None) -> Headers:
    headers: Headers = [
        ("content-type", CONTENT_TYPE),
        ("roomcast-message-id", message.message_id.encode()),
    ]
    if extra:
        headers.extend(extra)
    return headers


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise WireError(f"field {name!r} must be a string or null")


def decode_value(value: bytes | None) -> Message:
    if value is None:
        raise WireError("empty record")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"record is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WireError("record is not a JSON object")
    if data.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported wire version {data.get('v')!r}")
    if "payload" not in data:
        raise WireError("record has no payload")
    message_id = data.get("message_id")
    receive_time = data.get("receive_time")
    if not isinstance(message_id, str) or not isinstance(receive_time, str):
        raise WireError("record needs string message_id and receive_time")
    return Message(
        topic=_optional_str(data, "topic"),
        type=_optional_str(data, "type"),
        room=_optional_str(data, "room"),
        payload=data["payload"],
        message_id=message_id,
        receive_time=receive_time,
    )


def header_value(headers: Any, name: str) -> bytes | None:
    """First value of a header in aiokafka's sequence of (name, bytes) pairs."""
    for key, value in headers or ():
        if key == name:
            return bytes(value) if value is not None else None
    return None


def position(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"
