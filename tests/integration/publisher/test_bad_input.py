"""Bad input is a precise 400 (or 413), never a 500, and never publishes anything."""

from __future__ import annotations

import orjson

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
