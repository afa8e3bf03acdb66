"""Bad input is a precise 400 (or 413), never a 500, and never publishes anything."""

from __future__ import annotations

import uuid

import orjson
import pytest

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.publisher.conftest import MAX_BATCH, MAX_PAYLOAD
from tests.integration.publisher.helpers import post, read_topic

BAD_MESSAGES: list[tuple[bytes, str, str]] = [
    (b"{not json", "invalid_json", "JSON"),
    (b"", "invalid_json", "empty"),
    (b"[1, 2]", "invalid_request", "object"),
    (b'{"topic": "t"}', "invalid_request", "payload"),
    (b'{"payload": 1, "topic": ""}', "invalid_request", "topic"),
    (b'{"payload": 1, "type": ""}', "invalid_request", "type"),
    (b'{"payload": 1, "room": ""}', "invalid_request", "room"),
    (b'{"payload": 1, "message_id": ""}', "invalid_request", "message_id"),
    (b'{"payload": 1, "room": 1001}', "invalid_request", "room"),
    (b'{"payload": 1, "topic": ["t"]}', "invalid_request", "topic"),
    (b'{"payload": 1, "type": "*"}', "invalid_request", "type"),
    (b'{"payload": 1, "colour": "red"}', "invalid_request", "colour"),
    (b'{"payload": 1, "topic": "' + b"x" * 300 + b'"}', "invalid_request", "topic"),
]


async def test_bad_messages_are_400_and_publish_nothing(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    before = len(await read_topic(infra.kafka_bootstrap, module_topic))
    for data, code, fragment in BAD_MESSAGES:
        reply = await post(
            publisher.url + "/v1/messages", data=data, headers={"Content-Type": "application/json"}
        )
        assert reply.status == 400, (data, reply.body)
        assert reply.body["error"]["code"] == code, data
        assert fragment in reply.body["error"]["message"], (data, reply.body)
    assert len(await read_topic(infra.kafka_bootstrap, module_topic)) == before


async def test_payload_over_the_limit_is_413(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    fits = "x" * (MAX_PAYLOAD - 2)  # the quotes make it exactly the limit
    assert (await post(publisher.url + "/v1/messages", {"payload": fits})).status == 202
    before = len(await read_topic(infra.kafka_bootstrap, module_topic))

    over = await post(publisher.url + "/v1/messages", {"payload": fits + "x"})
    assert over.status == 413
    assert over.body["error"]["code"] == "payload_too_large"
    huge = await post(publisher.url + "/v1/messages", {"payload": "x" * (MAX_PAYLOAD * 10)})
    assert huge.status == 413
    batch = await post(
        publisher.url + "/v1/messages/batch",
        {"messages": [{"payload": 1}, {"payload": fits + "x"}]},
    )
    assert batch.status == 413
    assert "messages.1.payload" in batch.body["error"]["message"]
    score = await post(publisher.url + "/push/new/score/message", {"message": fits + "x"})
    assert score.status == 413
    assert isinstance(score.body["error"], str)
    assert len(await read_topic(infra.kafka_bootstrap, module_topic)) == before


async def test_bad_batches_are_400_naming_the_message(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    before = len(await read_topic(infra.kafka_bootstrap, module_topic))
    url = publisher.url + "/v1/messages/batch"
    good = {"payload": 1}
    cases = [
        ({"messages": []}, "messages"),
        ({}, "messages"),
        ({"messages": [good] * (MAX_BATCH + 1)}, f"at most {MAX_BATCH}"),
        ({"messages": [good, good, good, {"payload": 1, "room": ""}]}, "messages.3.room"),
        ({"messages": [good, {"room": "r"}]}, "messages.1.payload"),
        ({"messages": [good], "extra": 1}, "extra"),
        (
            {"messages": [{"payload": 1, "message_id": "a"}, {"payload": 2, "message_id": "a"}]},
            "messages.1.message_id",
        ),
    ]
    for body, fragment in cases:
        reply = await post(
            url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert reply.status == 400, (body, reply.body)
        assert fragment in reply.body["error"]["message"], (fragment, reply.body)
    assert len(await read_topic(infra.kafka_bootstrap, module_topic)) == before


def _nested(levels: int) -> bytes:
    """A JSON array nested `levels` deep, as raw text (no encoder needed to build it)."""
    return b"[" * levels + b"]" * levels


async def test_payloads_too_deep_to_encode_are_400_and_a_fixed_retry_publishes(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    """orjson writes at most 254 levels, and the record wraps the payload in one object:
    253 is the deepest payload; deeper ones are refused before anything is produced."""
    assert orjson.dumps(orjson.loads(_nested(254)))  # the codec's own limit, checked
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(_nested(255)))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(_nested(1025))
    url = publisher.url + "/v1/messages"
    headers = {"Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]  # in every id of this test, to find its records
    fixed_ids = []
    for depth in (254, 255, 1024):
        message_id = f"deep-{depth}-{run}"
        fixed_ids.append(message_id)
        body = b'{"message_id": "%s", "payload": %s}' % (message_id.encode(), _nested(depth))
        reply = await post(url, data=body, headers=headers)
        assert reply.status == 400, (depth, reply.body)
        assert reply.body["error"]["code"] == "payload_too_deep", depth
        # The same message_id, fixed, is accepted: the refusal claimed nothing.
        fixed = await post(url, {"message_id": message_id, "payload": orjson.loads(_nested(253))})
        assert fixed.status == 202, (depth, fixed.body)
        assert "Idempotent-Replayed" not in fixed.headers

    # A batch is judged whole: one deep message and nothing of it is produced.
    ids = [f"batch-{i}-{run}" for i in range(3)]
    deep = b'{"messages": [%s]}' % b", ".join(
        b'{"message_id": "%s", "payload": %s}' % (mid.encode(), _nested(254 if i == 1 else 3))
        for i, mid in enumerate(ids)
    )
    reply = await post(url + "/batch", data=deep, headers=headers)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == "payload_too_deep"
    assert "messages.1.payload" in reply.body["error"]["message"]
    retry = await post(
        url + "/batch",
        {"messages": [{"message_id": mid, "payload": i} for i, mid in enumerate(ids)]},
    )
    assert retry.status == 202, retry.body
    assert [r["status"] for r in retry.body["results"]] == [202, 202, 202]

    landed = [
        r
        for r in await read_topic(infra.kafka_bootstrap, module_topic)
        if r.message.message_id.endswith(run)
    ]
    # Exactly the fixed messages, each once: no deep one, no duplicate of a retry.
    assert sorted(r.message.message_id for r in landed) == sorted([*fixed_ids, *ids])
