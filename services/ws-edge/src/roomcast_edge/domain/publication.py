"""A message as the edge handles it: where it sits in the stream and its push frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from roomcast_core.wire import Message, WireError
from roomcast_edge.domain.frames import text_frame
from roomcast_edge.domain.positions import format_position


# Never changed once made, but not frozen: a frozen dataclass's __init__ sets each
# field through object.__setattr__, ~1 µs of every record of the stream.
@dataclass(slots=True)
class Publication:
    partition: int
    offset: int
    topic: str | None
    type: str | None
    room: str | None
    # The complete WebSocket text frame of the push, shared by every recipient.
    frame: bytes
    # Seconds since the epoch when the record entered the stream (history age).
    timestamp: float


def push_body(
    message: Message, partition: int, offset: int, trace_id: str | None = None
) -> dict[str, Any]:
    """The push as SPEC shows it: topic/type/room only when the message has them."""
    meta: dict[str, Any] = {
        "receive_time": message.receive_time,
        "message_id": message.message_id,
        "position": format_position(partition, offset),
    }
    if trace_id:
        meta["trace_id"] = trace_id
    body: dict[str, Any] = {}
    if message.topic is not None:
        body["topic"] = message.topic
    if message.type is not None:
        body["type"] = message.type
    if message.room is not None:
        body["room"] = message.room
    body["payload"] = message.payload
    body["meta"] = meta
    return body


def make_publication(
    message: Message,
    partition: int,
    offset: int,
    timestamp: float,
    trace_id: str | None = None,
) -> Publication:
    """Serialize and frame the push once; every delivery reuses these bytes.

    Raises WireError for a record that cannot be re-encoded (a backend may write
    JSON nested deeper than the push can carry straight to the stream).
    """
    try:
        body = orjson.dumps(push_body(message, partition, offset, trace_id))
    except orjson.JSONEncodeError as exc:
        raise WireError(f"record cannot be re-encoded as a push: {exc}") from exc
    frame = text_frame(body)
    return Publication(
        partition=partition,
        offset=offset,
        topic=message.topic,
        type=message.type,
        room=message.room,
        frame=frame,
        timestamp=timestamp,
    )
