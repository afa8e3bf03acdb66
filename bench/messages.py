"""The messages a benchmark sends and how a client recognises them. No I/O.

Every server gets the same messages: a publish request (``topic``, ``type``, ``payload``,
``message_id``) that the publisher turns into a Kafka record, or the same record sent to a
peer. Each delivery is a push shaped like the edge's, whose ``meta.receive_time`` (set by
the publisher, or by the driver when it feeds a peer or Kafka directly) is the start of the
publish-to-deliver latency.
"""

from __future__ import annotations

from typing import Any

import orjson

from roomcast_core import wire

TOPIC = "bench"
TYPE = "tick"
# Pads a push to ~205 bytes of JSON, the size the reference figures were measured with.
PAD = "x" * 64


def publish_request(run_id: str, seq: int) -> dict[str, Any]:
    """Body of one POST /v1/messages (and one entry of a batch)."""
    return {
        "topic": TOPIC,
        "type": TYPE,
        "payload": {"seq": seq, "pad": PAD},
        "message_id": f"{run_id}-{seq:07d}",
    }


def wire_message(request: dict[str, Any], receive_time: str) -> wire.Message:
    return wire.Message(
        topic=request.get("topic"),
        type=request.get("type"),
        room=request.get("room"),
        payload=request["payload"],
        message_id=request["message_id"],
        receive_time=receive_time,
    )


def wire_record(request: dict[str, Any], receive_time: str) -> dict[str, Any]:
    """The Kafka record value as a JSON object: what a peer is fed."""
    record: dict[str, Any] = orjson.loads(wire.encode_value(wire_message(request, receive_time)))
    return record


def sent_time(frame: bytes) -> float | None:
    """Epoch seconds a benchmark push was received for publishing; None for other frames."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    meta, payload = data.get("meta"), data.get("payload")
    if not isinstance(meta, dict) or not isinstance(payload, dict) or "seq" not in payload:
        return None
    receive_time = meta.get("receive_time")
    if not isinstance(receive_time, str):
        return None
    try:
        return wire.parse_time(receive_time)
    except wire.WireError:
        return None


def is_connected(frame: bytes) -> bool:
    """The first message every server sends once the connection is subscribed."""
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("action") == "connected"


def centrifugo_sent_time(line: bytes) -> float | None:
    """Like sent_time, for one line of a Centrifugo frame: a push whose data is the record."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    push = data.get("push")
    pub = push.get("pub") if isinstance(push, dict) else None
    record = pub.get("data") if isinstance(pub, dict) else None
    if not isinstance(record, dict):
        return None
    payload, receive_time = record.get("payload"), record.get("receive_time")
    if not isinstance(payload, dict) or "seq" not in payload or not isinstance(receive_time, str):
        return None
    try:
        return wire.parse_time(receive_time)
    except wire.WireError:
        return None


def ticks_request(run_id: str, seq: int, topic: str, type_: str) -> dict[str, Any]:
    """A `ticks` message: the same ~205-byte shape as the others, on its own topic and type."""
    return {
        "topic": topic,
        "type": type_,
        "payload": {"seq": seq, "pad": PAD},
        "message_id": f"{run_id}-{seq:07d}",
    }
