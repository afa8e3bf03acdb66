"""Request validation: precise 400s, 413 over the payload limit, reserved names."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roomcast_core.api import ApiError, validate
from roomcast_publisher.models import (
    MAX_PAYLOAD_DEPTH,
    NAME_MAX,
    BatchIn,
    MessageIn,
    ScoreIn,
    batch_drafts,
    check_payload,
    check_unique_ids,
    message_draft,
)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "payload"),
        ({"topic": "t"}, "payload"),
        ({"payload": 1, "topic": ""}, "topic"),
        ({"payload": 1, "type": ""}, "type"),
        ({"payload": 1, "room": ""}, "room"),
        ({"payload": 1, "message_id": ""}, "message_id"),
        ({"payload": 1, "message_id": "has space"}, "message_id"),
        ({"payload": 1, "topic": 5}, "topic"),
        ({"payload": 1, "room": 1001}, "room"),
        ({"payload": 1, "room": " 1001"}, "room"),
        ({"payload": 1, "room": "a\nb"}, "room"),
        ({"payload": 1, "topic": "x" * (NAME_MAX + 1)}, "topic"),
        ({"payload": 1, "type": "*"}, "type"),
        ({"payload": 1, "extra": True}, "extra"),
        ([1], "JSON object"),
    ],
)
def test_bad_message_is_400_naming_the_field(data: object, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate(MessageIn, data)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_good_message_becomes_a_draft() -> None:
    body = validate(
        MessageIn,
        {"topic": "order", "type": "event", "room": "1001", "payload": None, "message_id": "m1"},
    )
    draft = body.draft()
    assert (draft.topic, draft.type, draft.room, draft.payload, draft.message_id) == (
        "order",
        "event",
        "1001",
        None,
        "m1",
    )


def test_batch_errors_name_the_index() -> None:
    with pytest.raises(ApiError) as caught:
        validate(BatchIn, {"messages": [{"payload": 1}, {"payload": 2, "topic": ""}]})
    assert "messages.1.topic" in caught.value.message
    with pytest.raises(ApiError):
        validate(BatchIn, {"messages": []})


def test_repeated_ids_in_a_batch_are_refused() -> None:
    batch = validate(
        BatchIn,
        {
            "messages": [
                {"payload": 1, "message_id": "a"},
                {"payload": 2},
                {"payload": 3, "message_id": "a"},
            ]
        },
    )
    with pytest.raises(ApiError) as caught:
        check_unique_ids(batch.messages)
    assert "messages.2.message_id" in caught.value.message


def test_payload_limit_counts_serialized_bytes() -> None:
    check_payload("x" * 8, 10)  # 10 bytes with quotes
    with pytest.raises(ApiError) as caught:
        check_payload("x" * 9, 10)
    assert caught.value.status == 413


def test_score_body_is_lenient_like_before_but_typed() -> None:
    body = validate(ScoreIn, {"message": "1:0", "roomId": "", "unknown": 1})
    assert body.roomId is None
    with pytest.raises(ApiError):
        validate(ScoreIn, {"message": "1:0", "roomId": 1001})


def test_payload_deeper_than_the_record_can_carry_is_400() -> None:
    fits: object = []
    for _ in range(MAX_PAYLOAD_DEPTH - 1):
        fits = [fits]
    check_payload(fits, 10_000)
    with pytest.raises(ApiError) as caught:
        check_payload([fits], 10_000, "messages.3.payload")
    assert (caught.value.status, caught.value.code) == (400, "payload_too_deep")
    assert "messages.3.payload" in caught.value.message


@pytest.mark.parametrize(
    "data",
    [
        {"payload": 1},
        {"topic": "order", "type": "event", "room": "1001", "payload": None, "message_id": "m1"},
        {"room": "a b", "payload": [1]},
        {"room": "x" * NAME_MAX, "payload": 1},
        {"room": "x" * (NAME_MAX + 1), "payload": 1},
        {"room": "zimmer-ü", "payload": 1},
        {"room": "ends ", "payload": 1},
        {"room": "a\nb", "payload": 1},
        {"type": "*", "payload": 1},
        {"topic": 5, "payload": 1},
        {"message_id": "has space", "payload": 1},
        {"message_id": "m" * 129, "payload": 1},
        {"payload": 1, "extra": True},
        {"topic": "t"},
        [1],
        "text",
    ],
)
def test_the_fast_path_accepts_and_refuses_exactly_as_the_model(data: object) -> None:
    expected = outcome(lambda: validate(MessageIn, data).draft())
    assert outcome(lambda: message_draft(data)) == expected
    batch = {"messages": [{"payload": 0}, data]}
    expected_batch = outcome(lambda: [m.draft() for m in validate(BatchIn, batch).messages])
    assert outcome(lambda: batch_drafts(batch)) == expected_batch


def outcome(call: Callable[[], object]) -> object:
    """The value, or the error's status and message."""
    try:
        return call()
    except ApiError as exc:
        return (exc.status, exc.message)


def describe(model: type[BatchIn], data: object) -> str:
    with pytest.raises(ApiError) as caught:
        validate(model, data)
    return caught.value.message


@pytest.mark.parametrize("data", [{"messages": []}, {"messages": [{"payload": 1}], "x": 1}, []])
def test_a_malformed_batch_is_refused_as_the_model_refuses_it(data: object) -> None:
    with pytest.raises(ApiError) as caught:
        batch_drafts(data)
    assert caught.value.message == describe(BatchIn, data)
