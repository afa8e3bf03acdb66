"""Request and response bodies; the same models validate requests and document them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from roomcast_core.api import MAX_WRITE_DEPTH, ApiError, validate
from roomcast_publisher.domain.publishing import Draft

NAME_MAX = 128
MESSAGE_ID_MAX = 128
# JSON around the payload of one message (field names, ids, quoting).
ENVELOPE_BYTES = 4096
# The deepest payload a message can carry: the Kafka record and the push each wrap it
# in one object, and orjson writes no deeper than MAX_WRITE_DEPTH levels.
MAX_PAYLOAD_DEPTH = MAX_WRITE_DEPTH - 1
# A batch body never needs more than this; larger requests get 413 before parsing.
BATCH_BODY_MAX = 16 << 20

# No control characters, no blank or padded names: such a room or topic could not be
# joined or subscribed to through the edge's comma-separated query parameters.
_NAME = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
_MESSAGE_ID = r"^[\x21-\x7e]+$"  # printable ASCII, no spaces: it is a header and a Redis key

Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX, pattern=_NAME)]
MessageId = Annotated[
    str, StringConstraints(min_length=1, max_length=MESSAGE_ID_MAX, pattern=_MESSAGE_ID)
]


class MessageIn(BaseModel):
    """One message to publish. room, topic and type address it; payload is delivered as is."""

    model_config = ConfigDict(extra="forbid", strict=True)

    topic: Name | None = None
    type: Name | None = None
    room: Name | None = None
    payload: Any = Field(description="any JSON value, delivered exactly as published")
    message_id: MessageId | None = Field(
        default=None,
        description="idempotency key: the same id within the window publishes once",
    )

    @field_validator("type")
    @classmethod
    def _no_wildcard_type(cls, value: str | None) -> str | None:
        if value == "*":
            raise ValueError("'*' is reserved for subscriptions to every type")
        return value

    def draft(self) -> Draft:
        return Draft(self.topic, self.type, self.room, self.payload, self.message_id)


# The common shape, checked without pydantic: printable ASCII names and ids. Anything
# else (non-ASCII names, wrong types, unknown fields, errors) takes the model's path,
# which accepts or refuses exactly as before, with the same messages.
_PLAIN_NAME = re.compile(rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{NAME_MAX - 2}}}[\x21-\x7e])?")
_PLAIN_ID = re.compile(rf"[\x21-\x7e]{{1,{MESSAGE_ID_MAX}}}")
_FIELDS = frozenset({"topic", "type", "room", "payload", "message_id"})


def _plain_name(value: Any) -> bool:
    return value is None or (type(value) is str and _PLAIN_NAME.fullmatch(value) is not None)


def plain_draft(data: Any) -> Draft | None:
    """The draft of a message that is obviously valid, or None: then ask the model."""
    if type(data) is not dict or "payload" not in data or not _FIELDS.issuperset(data):
        return None
    topic = data.get("topic")
    kind = data.get("type")
    room = data.get("room")
    message_id = data.get("message_id")
    if not (_plain_name(topic) and _plain_name(kind) and _plain_name(room)) or kind == "*":
        return None
    if message_id is not None and (
        type(message_id) is not str or _PLAIN_ID.fullmatch(message_id) is None
    ):
        return None
    return Draft(topic, kind, room, data["payload"], message_id)


def message_draft(data: Any) -> Draft:
    """A single message's draft; 400 naming the field when it is not one."""
    draft = plain_draft(data)
    return draft if draft is not None else validate(MessageIn, data).draft()


def batch_drafts(data: Any) -> list[Draft]:
    """A batch's drafts in order; 400 naming the message and field when one is bad."""
    messages = data.get("messages") if type(data) is dict and len(data) == 1 else None
    if type(messages) is list and messages:
        drafts: list[Draft] = []
        for message in messages:
            draft = plain_draft(message)
            if draft is None:
                break
            drafts.append(draft)
        else:
            return drafts
    return [message.draft() for message in validate(BatchIn, data).messages]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    messages: list[MessageIn] = Field(min_length=1)


class ScoreIn(BaseModel):
    """[compat] The earlier score push; unknown fields are ignored as they were then."""

    model_config = ConfigDict(extra="ignore", strict=True)

    message: str | None = None
    roomId: Name | None = None  # the compat wire name

    @field_validator("roomId", mode="before")
    @classmethod
    def _empty_room_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class ReceiptOut(BaseModel):
    message_id: str
    position: str = Field(description="partition:offset of the record in Kafka")
    receive_time: str = Field(description="RFC 3339 UTC, milliseconds")


class ErrorOut(BaseModel):
    code: str
    message: str


class BatchResultOut(BaseModel):
    status: int = Field(description="202 published, 409 in progress elsewhere, 503 not published")
    message_id: str
    position: str | None = None
    receive_time: str | None = None
    error: ErrorOut | None = None


class BatchOut(BaseModel):
    results: list[BatchResultOut]


class ScoreOut(BaseModel):
    message: str


class CompatErrorOut(BaseModel):
    error: str


def encoded_size(payload: Any, where: str = "payload") -> int:
    """Bytes of the payload serialized, checked encodable as the record and the push
    carry it: inside one object, so one level deeper than the payload itself."""
    try:
        # The list stands for that envelope; its two brackets are not the payload's.
        return len(orjson.dumps([payload])) - 2
    except orjson.JSONEncodeError as exc:
        if "recursion" in str(exc).lower():
            raise ApiError(
                400,
                "payload_too_deep",
                f"{where} is nested deeper than {MAX_PAYLOAD_DEPTH} levels",
            ) from None
        raise ApiError(400, "invalid_request", f"{where} cannot be encoded: {exc}") from None


def check_payload(payload: Any, limit: int, where: str = "payload") -> None:
    """413 when too large, 400 when it could not be produced: before anything is."""
    size = encoded_size(payload, where)
    if size > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"{where} is {size} bytes serialized; the limit is {limit}",
        )


def check_unique_ids(messages: Sequence[MessageIn | Draft]) -> None:
    seen: dict[str, int] = {}
    for index, message in enumerate(messages):
        if message.message_id is None:
            continue
        if message.message_id in seen:
            raise ApiError(
                400,
                "invalid_request",
                f"messages.{index}.message_id repeats messages.{seen[message.message_id]}",
            )
        seen[message.message_id] = index
